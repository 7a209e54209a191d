"""Turn database environment failures into StorageError at the storage edge; bugs pass through.

Environment: the file cannot be opened or written, the disk is full, the database is locked,
the server is unreachable or the connection dropped. Programming errors (bad SQL, constraint
violations, wrong parameter types) are left unwrapped so they stay loud (reader
`_storage/_sqlite_utils.py::wrap_exceptions`: "unlikely to be programming errors").
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aggregator.errors import StorageError


@contextmanager
def wrap_storage_errors(action: str) -> Iterator[None]:
    """Raise StorageError("store: <action>") from any environment failure inside the block."""
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        cause = _environment_cause(e)
        if cause is None:
            raise
        raise StorageError(f"store: {action}") from cause


def _environment_cause(error: Exception) -> BaseException | None:
    """The failure of the environment behind `error` (the driver's own exception under SQLAlchemy's
    wrapper: its text is the useful part, "database is locked", without the SQL statement and the link
    SQLAlchemy appends), or None when `error` is a bug.

    Most specific first; DatabaseError only as itself (SQLite "file is not a database"), its subclasses
    ProgrammingError, IntegrityError, DataError are bugs. SQLAlchemy's classes are looked at only when
    SQLAlchemy is loaded: storage/lite.py runs on sqlite3 alone, and raises sqlite3's own.
    """
    if isinstance(error, OSError | sqlite3.OperationalError) or type(error) is sqlite3.DatabaseError:
        return error
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None:
        return None
    environment = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)
    if isinstance(error, environment) or type(error) is exc.DatabaseError:
        orig = error.orig if isinstance(error, exc.DBAPIError) else None
        return orig if isinstance(orig, BaseException) else error
    return None
