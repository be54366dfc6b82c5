"""The ``batos`` command line: create, inspect, serve and run the living image.

User mistakes print one clear ``error:`` line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from batos_lab.errors import BatosError
from batos_lab.paths import DEFAULT_IMAGE

__all__ = ["main"]


def _image_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image",
        default=str(DEFAULT_IMAGE),
        help=f"FileStorage path or zeo://host:port (default: {DEFAULT_IMAGE})",
    )


def _model_choice(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_model", False):
        return None
    return str(args.model) if getattr(args, "model", None) else "embedded"


def cmd_genesis(args: argparse.Namespace) -> int:
    from batos_lab.genesis import ensure_genesis, tour
    from batos_lab.image import open_image

    with open_image(args.image, genesis=False) as image:
        created = ensure_genesis(image, model=_model_choice(args))
        print(
            (
                "genesis: created the primordial objects in "
                if created
                else "genesis: the image already exists, resuming "
            )
            + image.location
        )
        print(tour(image))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from batos_lab.genesis import tour
    from batos_lab.image import check_image, open_image

    if not args.image.startswith("zeo://"):
        report = check_image(args.image, deep=args.check)
        if args.check:
            print(
                f"check: {report['path']} is sound ({report['size']} bytes, "
                f"{report['transactions']} transactions, {report['records']} records)"
            )
    with open_image(args.image, genesis=False, create=False) as image:
        if "genesis" not in image.root:
            print(f"{image.location}: no genesis yet; run `batos genesis --image {args.image}`.")
            return 0
        print(tour(image))
        if image.db.supportsUndo():
            print("Recent transactions:")
            for entry in image.history(args.history):
                print(f"  {entry['time']}  {entry['note']}")
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    from batos_lab.genesis import tour
    from batos_lab.image import open_image

    with open_image(args.image, create=False) as image:
        print(tour(image))
    return 0


def cmd_serve_image(args: argparse.Namespace) -> int:
    from batos_lab.zeo import free_port, serve_image

    port = args.port or free_port(args.host)
    print(
        f"serving {Path(args.image).resolve()} on zeo://{args.host}:{port} (pid {os.getpid()}); "
        "stop with Ctrl-C or SIGTERM",
        flush=True,
    )
    serve_image(Path(args.image), args.host, port)
    return 0


def cmd_main(args: argparse.Namespace) -> int:
    from batos_lab.mainjob import run_main_job

    run_main_job(args.image, model=_model_choice(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``batos``."""
    parser = argparse.ArgumentParser(
        prog="batos", description="Create, inspect, serve and run a batos_lab living image."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
        "genesis": (cmd_genesis, "create the image (once) and print a tour of it"),
        "info": (cmd_info, "print what an image holds and its recent history"),
        "tour": (cmd_tour, "print a tour of the image"),
        "serve-image": (cmd_serve_image, "serve an image over ZEO on loopback"),
        "main": (cmd_main, "the main job: genesis and a tour of the image"),
    }
    for name, (func, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _image_arg(p)
        p.set_defaults(func=func)
        if name in ("genesis", "main"):
            p.add_argument("--model", help="a local HF model folder (default: the embedded model)")
            p.add_argument("--no-model", action="store_true", help="genesis without a base model")
        if name == "info":
            p.add_argument("--check", action="store_true", help="read every record and check it")
            p.add_argument("--history", type=int, default=5, help="transactions to list")
        if name == "serve-image":
            p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
            p.add_argument("--port", type=int, default=8100, help="port (0 picks a free one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``batos``; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BatosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
