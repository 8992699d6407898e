"""Arrow IPC bytes: the one encoding of DML log entries and checkpoint data files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc

__all__ = ["decode", "encode"]


def encode(table: pa.Table, compress: bool = True) -> bytes:
    """An Arrow IPC file, LZ4-compressed unless `compress` is false (several times faster
    to write than Parquet; uncompressed is faster still where bytes are cheap: local disk)."""
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression="lz4" if compress else None)
    with ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes) -> pa.Table:
    """The table encoded in `data`."""
    return ipc.open_file(pa.BufferReader(data)).read_all()
