"""kernel_engine: an in-kernel streaming SQL engine (RisingWave dialect).

    >>> import kernel_engine
    >>> db = kernel_engine.connect()
    >>> _ = db.execute("CREATE TABLE t (a INT); INSERT INTO t VALUES (1); FLUSH;")
    >>> db.execute("SELECT * FROM t").fetchall()
    [(1,)]
    >>> db.close()
"""

from __future__ import annotations

import logging

from kernel_engine.connection import Connection, connect
from kernel_engine.errors import (
    BindError,
    CatalogError,
    Error,
    ExecutionError,
    ParseError,
    UnsupportedError,
)
from kernel_engine.result import Result
from kernel_engine.state.storage import StorageError

logging.getLogger("sqlglot").setLevel(logging.ERROR)

__all__ = [
    "BindError", "CatalogError", "Connection", "Error", "ExecutionError", "ParseError",
    "Result", "StorageError", "UnsupportedError", "connect",
]
