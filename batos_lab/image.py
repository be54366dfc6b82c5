"""Opening the living image: embedded FileStorage, in memory, or over ZEO.

``open_image(path)`` opens a FileStorage file with its blob directory beside it (the embedded
default), ``open_image(None)`` an image in memory (tests and throwaway experiments), and
``open_image("zeo://host:port")`` a client of a ZEO server (several processes on one image).
Genesis runs on the first open, in one transaction; later opens resume.

Example:
    >>> with open_image(None) as image:
    ...     with image.transaction("a first object"):
    ...         image["hello"] = UvmObject(name="hello")
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import transaction
import zc.lockfile
import ZODB
from transaction.interfaces import TransientError
from ZODB.blob import BlobStorage
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import ConflictError

from batos_lab.errors import (
    ImageCorrupted,
    ImageError,
    ImageLocked,
    ImageNotFound,
    TransactionFailed,
    UndoUnavailable,
    ZEOUnreachable,
)
from batos_lab.objects import UvmObject

__all__ = ["Image", "check_image", "open_image", "parse_zeo_address"]

T = TypeVar("T")

#: Conflicts retried before a transaction gives up and raises.
DEFAULT_RETRIES = 5

#: Objects each connection keeps in memory. ZODB's default (400) makes a catalog of thousands of
#: chunks reload pickles on every search.
CACHE_SIZE = 50_000


def parse_zeo_address(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` from ``zeo://host:port``.

    Raises:
        ImageError: the address is not of that form.
    """
    rest = url[len("zeo://") :]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ImageError(f"A ZEO address looks like 'zeo://127.0.0.1:8100'; got {url!r}.")
    return host, int(port)


def blob_dir_for(path: Path) -> Path:
    """Return the blob directory that belongs to a FileStorage file."""
    return path.with_name(path.stem + ".blobs")


def check_image(path: str | os.PathLike[str], *, deep: bool = False) -> dict[str, Any]:
    """Check a FileStorage file's structure and return what was found.

    Args:
        path: the ``.fs`` file.
        deep: also read every object record and check that its pickle parses.

    Returns:
        ``{"path", "size", "transactions", "records"}``.

    Raises:
        ImageNotFound: there is no such file.
        ImageCorrupted: the file is truncated or damaged; the message says where.
    """
    from ZODB.FileStorage import FileIterator
    from ZODB.scripts import fstest
    from ZODB.serialize import referencesf

    file = Path(path)
    if not file.exists():
        raise ImageNotFound(f"No image at {file}. Create one with `batos genesis --image {file}`.")
    try:
        fstest.check(str(file))
    except fstest.FormatError as exc:
        raise ImageCorrupted(
            f"The image {file} is damaged: {exc}. Restore a backup, or recover what precedes "
            f"the damage with `python -m ZODB.scripts.fsrecover {file} recovered.fs`."
        ) from None
    transactions = records = 0
    if deep:
        iterator = FileIterator(str(file))
        try:
            for txn in iterator:
                transactions += 1
                for record in txn:
                    records += 1
                    if record.data:
                        try:
                            referencesf(record.data)
                        except Exception as exc:
                            raise ImageCorrupted(
                                f"The image {file} holds an unreadable record for object "
                                f"0x{record.oid.hex()} in transaction {txn.tid.hex()}: {exc}."
                            ) from None
        finally:
            iterator.close()
    return {
        "path": str(file),
        "size": file.stat().st_size,
        "transactions": transactions,
        "records": records,
    }


class _Attempt:
    """One try of a retried transaction, used as a context manager."""

    def __init__(self, image: Image, note: str) -> None:
        self.image = image
        self.note = note
        self.conflicted = False

    def __enter__(self) -> Image:
        self.image.transaction_manager.begin()
        return self.image

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        tm = self.image.transaction_manager
        if exc_type is not None:
            tm.abort()
            if issubclass(exc_type, ConflictError | TransientError):
                self.conflicted = True
                return True  # swallowed: the loop tries again
            return False
        try:
            tm.get().note(self.note)
            tm.commit()
        except (ConflictError, TransientError):
            tm.abort()
            self.conflicted = True
        return False


class Transaction:
    """``with image.transaction(note):`` commits once; ``for attempt in ...:`` retries conflicts."""

    def __init__(self, image: Image, note: str, retries: int) -> None:
        self.image = image
        self.note = note
        self.retries = retries

    def __enter__(self) -> Image:
        self._attempt = _Attempt(self.image, self.note)
        return self._attempt.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._attempt.__exit__(exc_type, exc, tb)
        if self._attempt.conflicted:
            raise TransactionFailed(
                f"The transaction {self.note!r} conflicted with another writer and was rolled "
                "back. Retry it with image.transact(fn, note=...) or "
                "`for attempt in image.transaction(note): with attempt: ...`."
            )

    def __iter__(self) -> Iterator[_Attempt]:
        for number in range(self.retries + 1):
            attempt = _Attempt(self.image, self.note)
            yield attempt
            if not attempt.conflicted:
                return
            time.sleep(min(0.01 * 2**number, 0.5))
        raise TransactionFailed(
            f"The transaction {self.note!r} still conflicted after {self.retries} retries; "
            "nothing of it was committed. Reduce contention on the shared objects or retry later."
        )


class Image:
    """An open living image: a database, one connection, and its transaction manager.

    Attributes:
        db: the ZODB database.
        conn: the connection whose root holds the image.
        transaction_manager: the manager of ``conn`` (explicit, not thread-bound).
        location: the path, ``"memory"`` or the ZEO address.
    """

    def __init__(self, db: ZODB.DB, location: str, cleanup: Callable[[], None] | None = None):
        self.db = db
        self.location = location
        self.transaction_manager = transaction.TransactionManager()
        self.conn = db.open(transaction_manager=self.transaction_manager)
        self._cleanup = cleanup
        self.closed = False

    # -- objects

    @property
    def root(self) -> Any:
        """The root mapping of the image."""
        return self.conn.root()

    def __getitem__(self, name: str) -> Any:
        """Return a named object: a primordial one (``traits``) or one stored under ``objects``."""
        root = self.root
        if name in root:
            return root[name]
        objects = root.get("objects")
        if objects is not None and name in objects:
            return objects[name]
        raise KeyError(
            f"The image holds no object named {name!r}; known: {', '.join(self.names())}."
        )

    def __setitem__(self, name: str, obj: Any) -> None:
        """Keep ``obj`` in the image under ``name`` (commit to make it durable)."""
        self.root["objects"][name] = obj

    def __contains__(self, name: str) -> bool:
        return name in self.root or name in self.root.get("objects", {})

    def names(self) -> list[str]:
        """Return the names of the primordial and stored objects."""
        objects = self.root.get("objects", {})
        return sorted(set(self.root.keys()) | set(objects.keys()))

    def new(self, name: str, **slots: Any) -> UvmObject:
        """Create a UvmObject kept under ``name``; without a parent slot, its parent is traits."""
        obj = UvmObject(name=name, **slots)
        if "traits" in self.root and not obj.parents():
            obj.set_slot("parent*", self.root["traits"])
        self[name] = obj
        return obj

    # -- transactions

    def transaction(self, note: str = "", retries: int = DEFAULT_RETRIES) -> Transaction:
        """Return a transaction that commits with ``note``.

        ``with image.transaction(note):`` runs the block once and raises TransactionFailed on a
        conflict; ``for attempt in image.transaction(note): with attempt: ...`` reruns the block
        on conflicts, at most ``retries`` times, then raises.
        """
        return Transaction(self, note, retries)

    def transact(self, fn: Callable[[], T], *, note: str = "", retries: int = DEFAULT_RETRIES) -> T:
        """Run ``fn`` in a transaction, rerunning it on conflicts; return its result.

        Raises:
            TransactionFailed: the transaction still conflicted after ``retries`` reruns.
        """
        result: Any = None
        for attempt in self.transaction(note, retries):
            with attempt:
                result = fn()
        return result

    def commit(self, note: str = "") -> None:
        """Commit what the connection holds, with a note."""
        self.transaction_manager.get().note(note)
        self.transaction_manager.commit()

    def abort(self) -> None:
        """Drop every uncommitted change."""
        self.transaction_manager.abort()

    def sync(self) -> None:
        """See what other processes committed (a new transaction begins)."""
        self.transaction_manager.abort()
        self.conn.sync()

    # -- history

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """Return the last transactions, newest first: id, time, user and note.

        Raises:
            UndoUnavailable: the storage keeps no history (an in-memory image).
        """
        if not self.db.supportsUndo():
            raise UndoUnavailable(
                f"The image at {self.location} keeps no history; open it from a FileStorage file "
                "(open_image('image/live_image.fs')) to read and undo transactions."
            )
        entries = self.db.undoLog(0, limit)
        return [
            {
                "id": e["id"],
                "time": _dt.datetime.fromtimestamp(e["time"]).isoformat(timespec="seconds"),
                "user": e.get("user_name", b"").decode()
                if isinstance(e.get("user_name"), bytes)
                else e.get("user_name", ""),
                "note": e["description"].decode()
                if isinstance(e["description"], bytes)
                else e["description"],
            }
            for e in entries
        ]

    def undo_last(self) -> dict[str, Any]:
        """Undo the newest transaction, commit the undo, and return what was undone.

        Raises:
            UndoUnavailable: no history, or the newest transaction cannot be undone.
        """
        entries = self.history(1)
        if not entries:
            raise UndoUnavailable("The image has no transaction to undo.")
        last = entries[0]
        if last["note"].startswith("genesis"):
            raise UndoUnavailable(
                "The newest transaction is genesis; undoing it would leave no image."
            )
        self.transaction_manager.abort()
        try:
            self.db.undo(last["id"], self.transaction_manager.get())
            self.commit(f"undo: {last['note']}")
        except Exception as exc:
            self.transaction_manager.abort()
            raise UndoUnavailable(
                f"The transaction {last['note']!r} cannot be undone: {exc}. Later transactions "
                "changed the same objects."
            ) from None
        self.conn.sync()
        return last

    # -- lifetime

    def close(self) -> None:
        """Abort what is uncommitted and close the connection, database and storage."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.transaction_manager.abort()
        self.conn.close()
        self.db.close()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.names())} named objects"
        return f"<Image {self.location} ({state})>"


# --------------------------------------------------------------------------- opening


def _open_file(path: Path, create: bool, read_only: bool) -> ZODB.DB:
    if not path.exists() and not create:
        raise ImageNotFound(f"No image at {path}. Create one with `batos genesis --image {path}`.")
    if path.exists() and path.stat().st_size > 0:
        check_image(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = FileStorage(str(path), blob_dir=str(blob_dir_for(path)), read_only=read_only)
    except zc.lockfile.LockError:
        raise ImageLocked(
            f"The image {path} is open in another process, and a FileStorage file has one "
            f"writer. Close the other process, or serve the image with `batos serve-image "
            f"--image {path}` and open it as zeo://127.0.0.1:PORT from every process."
        ) from None
    except Exception as exc:
        raise ImageCorrupted(f"The image {path} cannot be opened: {exc}.") from None
    return ZODB.DB(storage, cache_size=CACHE_SIZE)


def _open_zeo(url: str, timeout: float) -> tuple[ZODB.DB, Callable[[], None]]:
    from ZEO.ClientStorage import ClientStorage
    from ZEO.Exceptions import ClientDisconnected

    host, port = parse_zeo_address(url)
    cache = tempfile.mkdtemp(prefix="batos-zeo-blobs-")
    try:
        storage = ClientStorage(
            (host, port), blob_dir=cache, shared_blob_dir=False, wait_timeout=timeout
        )
    except (ClientDisconnected, OSError, TimeoutError) as exc:
        shutil.rmtree(cache, ignore_errors=True)
        raise ZEOUnreachable(
            f"No ZEO server answered at {host}:{port} within {timeout:g} s ({type(exc).__name__}). "
            "Start one with `batos serve-image --image PATH --port PORT`, or check the address."
        ) from None
    return ZODB.DB(storage, cache_size=CACHE_SIZE), lambda: shutil.rmtree(cache, ignore_errors=True)


def open_image(
    where: str | os.PathLike[str] | None = None,
    *,
    genesis: bool = True,
    create: bool = True,
    read_only: bool = False,
    timeout: float = 10.0,
) -> Image:
    """Open a living image and run genesis on the first open.

    Args:
        where: a FileStorage path (e.g. ``image/live_image.fs``; blobs go beside it in
            ``live_image.blobs``), None for an in-memory image, or ``zeo://host:port``.
        genesis: create the primordial objects when the image has none.
        create: create the file when it does not exist (otherwise ImageNotFound).
        read_only: open a file without writing (no genesis).
        timeout: seconds to wait for a ZEO server.

    Returns:
        The open Image; close it (or use it in a ``with`` block) when done.

    Raises:
        ImageNotFound, ImageLocked, ImageCorrupted, ZEOUnreachable: see their messages.
    """
    cleanup: Callable[[], None] | None = None
    if where is None:
        blobs = tempfile.mkdtemp(prefix="batos-memory-blobs-")
        db = ZODB.DB(BlobStorage(blobs, MappingStorage()), cache_size=CACHE_SIZE)
        location = "memory"
        cleanup = lambda: shutil.rmtree(blobs, ignore_errors=True)  # noqa: E731
    elif str(where).startswith("zeo://"):
        db, cleanup = _open_zeo(str(where), timeout)
        location = str(where)
    else:
        path = Path(where).expanduser().resolve()
        db = _open_file(path, create, read_only)
        location = str(path)
    image = Image(db, location, cleanup)
    if genesis and not read_only:
        from batos_lab.genesis import ensure_genesis

        try:
            ensure_genesis(image)
        except BaseException:
            image.close()
            raise
    return image
