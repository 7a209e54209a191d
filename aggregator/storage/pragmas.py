"""How every connection to a SQLite store is set up, by sql.py's engine and lite.py's sqlite3 alike.

WAL lets readers run beside the one writer; WAL + synchronous NORMAL stays consistent after a crash and
may lose only the last commits on power failure, never on a process kill
(https://www.sqlite.org/pragma.html#pragma_synchronous). No SQLAlchemy here: lite.py runs without it.
"""

from __future__ import annotations

from collections.abc import Callable

#: how long a writer waits for another's lock before "database is locked"
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

_PRAGMAS = (
    "journal_mode = WAL",
    f"busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}",
    "foreign_keys = ON",
    "synchronous = NORMAL",
)


def set_up_connection(execute: Callable[[str], object]) -> None:
    """Run the pragmas through `execute` (a sqlite3 connection's or cursor's)."""
    for pragma in _PRAGMAS:
        execute(f"PRAGMA {pragma}")
