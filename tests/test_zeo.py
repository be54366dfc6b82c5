"""A real ZEO server on loopback, with two processes committing to one image."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ZODB.blob import Blob

from batos_lab.errors import ImageError
from batos_lab.image import open_image
from batos_lab.zeo import serve_image

from .zeo_helpers import ZEOServer

pytestmark = pytest.mark.zeo

WORKER = textwrap.dedent("""
    import sys
    from batos_lab.image import open_image

    url, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open_image(url, genesis=False) as image:
        for i in range(count):
            def work():
                shared = image["shared"]
                shared.count = shared.count + 1
                image.new(f"{tag}-{i}", by=tag, index=i)
            image.transact(work, note=f"{tag} {i}", retries=50)
    print("done", tag)
""")


def test_two_processes_commit_concurrently_and_nothing_is_lost(image_path: Path) -> None:
    with open_image(image_path) as image, image.transaction("shared counter"):
        image.new("shared", count=0)  # the first client creates the root before others connect
    count = 40
    with ZEOServer(image_path) as server:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, server.url, tag, str(count)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for tag in ("left", "right")
        ]
        outputs = [w.communicate(timeout=300) for w in workers]
        for worker, (_out, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err
        with open_image(server.url) as image:
            assert image["shared"].count == 2 * count
            names = set(image.root["objects"].keys())
            assert {f"left-{i}" for i in range(count)} <= names
            assert {f"right-{i}" for i in range(count)} <= names
    with open_image(image_path) as image:  # the file holds it all once the server is gone
        assert image["shared"].count == 2 * count


def test_blobs_travel_over_zeo(image_path: Path) -> None:
    open_image(image_path).close()
    with ZEOServer(image_path) as server:
        with open_image(server.url) as image, image.transaction("a blob"):
            blob = Blob()
            with blob.open("w") as f:
                f.write(b"weights" * 1000)
            image.new("holder", data=blob)
        with open_image(server.url) as image:
            with image["holder"].data.open("r") as f:
                assert f.read() == b"weights" * 1000


def test_serve_image_refuses_non_loopback_and_missing_images(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="loopback"):
        serve_image(tmp_path / "x.fs", host="0.0.0.0")
    with pytest.raises(ImageError, match="No image"):
        serve_image(tmp_path / "x.fs")
