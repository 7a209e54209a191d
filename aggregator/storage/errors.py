"""Turn database environment failures into StorageError at the storage edge; bugs pass through.

Environment: the file cannot be opened or written, the disk is full, the database is locked,
the server is unreachable or the connection dropped. Programming errors (bad SQL, constraint
violations, wrong parameter types) are left unwrapped so they stay loud (reader
`_storage/_sqlite_utils.py::wrap_exceptions`: "unlikely to be programming errors").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc

from aggregator.errors import StorageError

#: most specific first; DatabaseError only as itself (SQLite "file is not a database"),
#: its subclasses ProgrammingError, IntegrityError, DataError are bugs
_ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
    OSError,
)


@contextmanager
def wrap_storage_errors(action: str) -> Iterator[None]:
    """Raise StorageError("store: <action>") from any environment failure inside the block."""
    try:
        yield
    except StorageError:
        raise
    except _ENVIRONMENT_ERRORS as e:
        raise StorageError(f"store: {action}") from _driver_error(e)
    except exc.DatabaseError as e:
        if type(e) is not exc.DatabaseError:
            raise
        raise StorageError(f"store: {action}") from _driver_error(e)


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrapper: its text is the useful part
    ("database is locked"), without the SQL statement and the link SQLAlchemy appends."""
    if isinstance(error, exc.DBAPIError) and isinstance(error.orig, BaseException):
        return error.orig
    return error
