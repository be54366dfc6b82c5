# Environment shared by the main job and the tests: offline, headless, bounded threads.
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export MPLBACKEND=Agg
export PYDEVD_DISABLE_FILE_VALIDATION=1
export PATH="$PWD/.venv/bin:$PATH"
