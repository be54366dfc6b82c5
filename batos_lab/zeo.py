"""Serving an image to several processes with a ZEO server on loopback."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from batos_lab.errors import ImageError
from batos_lab.image import blob_dir_for, check_image

__all__ = ["free_port", "serve_image", "zeo_config"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def zeo_config(image: Path, host: str, port: int) -> str:
    """Return a runzeo configuration serving ``image`` with its blob directory.

    runzeo's command-line flags cannot name a blob directory, so blobs need a config file.
    """
    return (
        "<zeo>\n"
        f"  address {host}:{port}\n"
        "</zeo>\n"
        "<filestorage 1>\n"
        f"  path {image}\n"
        f"  blob-dir {blob_dir_for(image)}\n"
        "</filestorage>\n"
    )


def serve_image(image: Path, host: str = "127.0.0.1", port: int = 8100) -> None:
    """Run a ZEO server for ``image`` in this process until it is stopped.

    The image must exist (run genesis first: the first client creates the root otherwise).

    Raises:
        ImageError: the host is not a loopback address, or the image is missing or damaged.
    """
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ImageError(
            f"serve-image binds loopback addresses only (got {host!r}): the image executes "
            "methods it is sent, so it is never exposed beyond this machine."
        )
    image = image.expanduser().resolve()
    check_image(image)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="batos-zeo-", delete=False) as f:
        f.write(zeo_config(image, host, port))
        conf = f.name
    from ZEO import runzeo

    runzeo.main(["-C", conf])
