"""Small SQLite helpers shared by the ledger store, the spend log and the live-bench cache."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["enable_wal"]


def enable_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL once. Changing the journal mode needs an exclusive lock
    and SQLite may answer SQLITE_BUSY at once (without the busy handler) while another
    process opens the same new file, so retry for up to `timeout_s`; a file already
    in WAL mode needs no change."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
