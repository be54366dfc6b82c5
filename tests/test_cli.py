"""The batos command line: what it prints, and clear errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def batos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batos_lab.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_genesis_then_info_then_main_resumes(image_path: Path) -> None:
    first = batos("genesis", "--image", str(image_path), "--no-model")
    assert first.returncode == 0, first.stderr
    assert "created the primordial objects" in first.stdout and "ROBIN" in first.stdout
    again = batos("genesis", "--image", str(image_path), "--no-model")
    assert "already exists, resuming" in again.stdout
    info = batos("info", "--image", str(image_path), "--check")
    assert info.returncode == 0, info.stderr
    assert "is sound" in info.stdout and "genesis: the primordial objects" in info.stdout
    main = batos("main", "--image", str(image_path), "--no-model")
    assert main.returncode == 0 and "[genesis] resumed" in main.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("info", "--image", "{missing}"), "No image at"),
        (("tour", "--image", "{missing}"), "No image at"),
        (("serve-image", "--image", "{missing}", "--port", "0"), "No image at"),
        (("serve-image", "--image", "{missing}", "--host", "0.0.0.0"), "loopback"),
        (("info", "--image", "zeo://nowhere"), "zeo://127.0.0.1:8100"),
    ],
)
def test_user_mistakes_print_one_error_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    missing = str(tmp_path / "missing.fs")
    result = batos(*(a.format(missing=missing) for a in args))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupted_image_is_reported_by_info(image_path: Path) -> None:
    assert batos("genesis", "--image", str(image_path), "--no-model").returncode == 0
    image_path.write_bytes(image_path.read_bytes()[:-20])
    result = batos("info", "--image", str(image_path), "--check")
    assert (
        result.returncode == 2 and "damaged" in result.stderr and "Traceback" not in result.stderr
    )
