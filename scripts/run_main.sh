#!/usr/bin/env bash
# Set everything up and run the main job on the embedded default image (image/live_image.fs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
batos main --image "${BATOS_IMAGE:-image/live_image.fs}"
