"""Source readers: datagen, files (fs/s3) and Python data, behind one interface.

Independent of the engine runtime: a reader turns options into Arrow
batches and a JSON offset, nothing more. Build one from the WITH (...)
options of CREATE SOURCE/TABLE with `make_reader`, or wrap notebook data
in a `PythonSource`.
"""

from __future__ import annotations

from kernel_engine.connectors.base import (
    Clock,
    SourceReader,
    arrow_schema,
    arrow_type,
    make_reader,
)
from kernel_engine.connectors.datagen import DatagenSource
from kernel_engine.connectors.files import FileSource
from kernel_engine.connectors.python import PythonSource

__all__ = [
    "Clock",
    "DatagenSource",
    "FileSource",
    "PythonSource",
    "SourceReader",
    "arrow_schema",
    "arrow_type",
    "make_reader",
]
