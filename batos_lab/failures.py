"""Failure records: what went wrong, written in a transaction of its own.

A failed JIT compilation or cognitive cycle rolls its own work back; the record of the failure
must still survive, so it is written through a separate connection and transaction manager into
``root["failures"]`` (an OOBTree keyed by creation time), where the heartbeat reads it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import transaction
from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

__all__ = ["record_failure"]


def _stored(value: Any) -> Any:
    if isinstance(value, dict):
        return PersistentMapping({k: _stored(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return PersistentList(_stored(v) for v in value)
    return value


def record_failure(db: Any, record: dict[str, Any], note: str, *, retries: int = 5) -> str | None:
    """Write ``record`` to ``root["failures"]`` in its own transaction; return its key.

    Args:
        db: the ZODB database (not a connection: the caller's transaction stays untouched).
        record: plain data; a ``created`` timestamp is added when missing.
        note: the transaction note.
        retries: conflicts retried before giving up.

    Returns:
        The key the record was stored under, or None when every try conflicted.
    """
    record = dict(record)
    record.setdefault("created", dt.datetime.now(dt.UTC).isoformat())
    manager = transaction.TransactionManager()
    conn = db.open(transaction_manager=manager)
    try:
        for _ in range(retries):
            try:
                root = conn.root()
                failures = root.get("failures")
                if failures is None:
                    failures = root["failures"] = OOBTree()
                key = str(record["created"])
                while key in failures:
                    key += "+"
                failures[key] = _stored(record)
                manager.get().note(note)
                manager.commit()
                return key
            except transaction.interfaces.TransientError:
                manager.abort()
        return None
    finally:
        manager.abort()
        conn.close()
