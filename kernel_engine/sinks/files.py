"""The file target: one Parquet, JSON (lines) or CSV file per delivered epoch, local or S3.

A file is named after its epoch and the sink's id (`<epoch:020d>-<sink id>.<ext>`) and
written atomically through `Storage` (temporary name + rename locally, one PUT on S3), so a
reader never sees part of a file, and writing an epoch again produces the same file. The
files present are the sink's progress: after a crash the newest epoch with a file is where
delivery resumes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kernel_engine._duck import Duck
from kernel_engine.sinks.errors import SinkDataError, TransientSinkError
from kernel_engine.sinks.log import OP, Entry
from kernel_engine.sinks.spec import SinkSpec
from kernel_engine.sql.redact import redact_text
from kernel_engine.state.storage import Storage, StorageError
from kernel_engine.state.table import quote

__all__ = ["FileTarget"]

EXTENSIONS = {"PARQUET": "parquet", "JSON": "json", "CSV": "csv"}


class FileTarget:
    """Writes a sink's epochs as files under a folder or S3 prefix."""

    def __init__(self, spec: SinkSpec, columns: list[tuple[str, str]]) -> None:
        assert spec.location is not None and spec.encode is not None
        self.spec = spec
        self.columns = columns
        self.ext = EXTENSIONS[spec.encode]
        self.storage: Storage | None = None
        self._duck: Duck | None = None  # converts columns the encoders cannot write

    def _open_storage(self) -> Storage:
        assert self.spec.location is not None
        try:
            if self.spec.location.startswith("s3://"):
                return Storage.s3(self.spec.location, **self.spec.storage_options)
            return Storage.local_folder(self.spec.location)
        except StorageError as err:
            raise TransientSinkError(redact_text(err.message, self.spec.secrets)) from None

    def check(self) -> None:
        """The location must be writable."""
        storage = self._open_storage()
        try:
            storage.check_writable()
        except StorageError as err:
            raise SinkDataError(f"sink {self.spec.name}: "
                                f"{redact_text(err.message, self.spec.secrets)}") from None

    def open(self) -> None:
        """Reach the location (again)."""
        self.storage = self._open_storage()

    def close(self) -> None:
        """Nothing held open."""
        self.storage = None

    def file_name(self, epoch: int) -> str:
        """The file of an epoch."""
        return f"{epoch:020d}-{self.spec.sink_id}.{self.ext}"

    def applied_epoch(self) -> int:
        """The newest epoch this sink wrote a file for."""
        assert self.storage is not None
        suffix = f"-{self.spec.sink_id}.{self.ext}"
        try:
            names = self.storage.list("")
        except StorageError as err:
            raise TransientSinkError(redact_text(err.message, self.spec.secrets)) from None
        epochs = [int(n.rsplit("/", 1)[-1][:20]) for n in names
                  if n.endswith(suffix) and n.rsplit("/", 1)[-1][:20].isdigit()]
        return max(epochs, default=0)

    def forget(self) -> None:
        """Files stay where they are after DROP SINK."""

    def apply(self, entries: list[Entry], record: bool, point: Callable[[str], None]) -> int:
        """Write one file per epoch (epochs without rows get none)."""
        assert self.storage is not None
        point("sink_before_txn")
        written = 0
        for entry in entries:
            rows = entry.rows.drop_columns([OP])
            if rows.num_rows == 0:
                continue
            data = self._encode(rows)
            if written:
                point("sink_mid_txn")
            point("commit")
            try:
                self.storage.write(self.file_name(entry.epoch), data)
            except StorageError as err:
                raise TransientSinkError(redact_text(err.message, self.spec.secrets)) from None
            written += rows.num_rows
        point("sink_mid_txn")
        return written

    def _encode(self, rows: pa.Table) -> bytes:
        out = io.BytesIO()
        if self.ext == "parquet":
            pq.write_table(rows, out)
        elif self.ext == "csv":
            delimiter = self.spec.format_options.get("delimiter", ",")
            pacsv.write_csv(self._as_text(rows, nested=True), out,
                            pacsv.WriteOptions(delimiter=delimiter))
        else:
            frame = self._as_text(rows, nested=False).to_pandas()
            frame.to_json(out, orient="records", lines=True)
        return out.getvalue()

    def _as_text(self, rows: pa.Table, nested: bool) -> pa.Table:
        """Dates, times and intervals as text (JSON has no such types); with `nested`, lists,
        structs and maps as JSON text (CSV has no such types)."""
        items, changed = [], False
        for field in rows.schema:
            col = quote(field.name)
            typ = field.type
            if pa.types.is_temporal(typ) or pa.types.is_interval(typ) or (
                    pa.types.is_decimal(typ) and not nested):
                items.append(f"CAST({col} AS VARCHAR) AS {col}")
                changed = True
            elif nested and (pa.types.is_list(typ) or pa.types.is_large_list(typ)
                             or pa.types.is_struct(typ) or pa.types.is_map(typ)):
                items.append(f"CAST(to_json({col}) AS VARCHAR) AS {col}")
                changed = True
            else:
                items.append(col)
        if not changed:
            return rows
        if self._duck is None:
            self._duck = Duck()
        return self._duck.arrow(f"SELECT {', '.join(items)} FROM _r", _r=rows)
