"""File sources: `connector = 'fs' | 'posix_fs' | 's3'`, FORMAT PLAIN ENCODE CSV | JSON | PARQUET.

    CREATE SOURCE s (id BIGINT, name VARCHAR) WITH (
        connector = 'fs', fs.path = '/data/in', match_pattern = '*.csv',
        refresh.interval.sec = '5') FORMAT PLAIN ENCODE CSV

Files under the root whose path relative to it matches `match_pattern`
(fnmatch; default '*') are read whole, in sorted name order; files that
appear later are picked up by a re-listing at most every
`refresh.interval.sec` seconds of the clock. Each file is read once and
must be complete when it appears (write it elsewhere, then rename it in).
The offset is `{"files_done": [names], "file": name | None, "row": n}`:
the files read to the end, and the file being read with the rows of it
already returned. Names are relative to the root.

Options: `fs.path` or `path` (fs), `posix_fs.root` (posix_fs),
`s3.bucket_name`, `s3.region_name`, `s3.endpoint_url`,
`s3.credentials.access`, `s3.credentials.secret` (s3, needs s3fs);
`match_pattern`, `refresh.interval.sec`; for CSV `delimiter` (default ',')
and `without_header` (default false: the header names the columns).
This is the one module that imports fsspec.
"""

from __future__ import annotations

import fnmatch
import io
import time
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from kernel_engine.connectors._convert import conform
from kernel_engine.connectors._options import Options
from kernel_engine.connectors.base import Clock, arrow_schema
from kernel_engine.errors import BindError, ExecutionError, UnsupportedError

__all__ = ["FileSource", "files_from_options", "filesystem"]

FileSystem = Any
"""An fsspec AbstractFileSystem (typed loosely: fsspec is imported lazily)."""

ENCODES = ("CSV", "JSON", "PARQUET")


class FileSource:
    """Reads the files of one folder or bucket, whole and in name order."""

    def __init__(self, fs: FileSystem, root: str, schema: pa.Schema, encode: str, *,
                 pattern: str = "*", refresh_interval: float = 1.0, delimiter: str = ",",
                 header: bool = True, clock: Clock = time.monotonic) -> None:
        if encode.upper() not in ENCODES:
            raise BindError(f"file sources take ENCODE CSV, JSON or PARQUET, not {encode}")
        self.schema = schema
        self._fs = fs
        self._root = fs._strip_protocol(root).rstrip("/")
        self._encode = encode.upper()
        self._pattern = pattern
        self._interval = refresh_interval
        self._delimiter = delimiter
        self._header = header
        self._clock = clock
        self._done: set[str] = set()
        self._current: str | None = None
        self._row = 0
        self._table: pa.Table | None = None
        self._pending: list[str] = []
        self._listed_at: float | None = None

    def next_batch(self, max_rows: int = 65536) -> pa.Table | None:
        """Return up to `max_rows` rows of the current file, or None if no file has any."""
        while max_rows > 0:
            if self._table is None and not self._open_next():
                return None
            assert self._table is not None
            if self._row < self._table.num_rows:
                batch = self._table.slice(self._row, max_rows)
                self._row += batch.num_rows
                if self._row >= self._table.num_rows:
                    self._finish()
                return batch
            self._finish()
        return None

    def offset(self) -> dict[str, Any]:
        """Return the files read to the end and the position in the current one."""
        return {"files_done": sorted(self._done), "file": self._current, "row": self._row}

    def seek(self, offset: dict[str, Any]) -> None:
        """Resume after `offset`; the folder is listed again on the next call."""
        done, file, row = offset.get("files_done"), offset.get("file"), offset.get("row", 0)
        if (not isinstance(done, list) or not all(isinstance(n, str) for n in done)
                or not (file is None or isinstance(file, str))
                or not isinstance(row, int) or row < 0):
            raise ValueError(f"file offset must be {{'files_done': [names], 'file': name|None, "
                             f"'row': n}}, got {offset!r}")
        self._done = set(done)
        self._current, self._row = file, row if file is not None else 0
        self._table, self._pending, self._listed_at = None, [], None

    def close(self) -> None:
        """Drop the file held in memory."""
        self._table = None

    def list_files(self) -> list[str]:
        """Return the matching file names under the root (relative to it), sorted."""
        try:
            paths = self._fs.find(self._root, withdirs=False)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ExecutionError(f"file source: cannot list '{self._root}': {exc}") from None
        names = (self._relative(p) for p in paths)
        return sorted(n for n in names if fnmatch.fnmatchcase(n, self._pattern))

    def _relative(self, path: str) -> str:
        path = self._fs._strip_protocol(path)
        return path[len(self._root):].lstrip("/") if path.startswith(self._root) else path

    def _open_next(self) -> bool:
        if self._current is None:
            if not self._pending and self._refresh_due():
                self._refresh()
            if not self._pending:
                return False
            self._current, self._row = self._pending.pop(0), 0
        self._table = self._read(self._current)
        return True

    def _refresh_due(self) -> bool:
        return self._listed_at is None or self._clock() - self._listed_at >= self._interval

    def _refresh(self) -> None:
        self._listed_at = self._clock()
        self._pending = [n for n in self.list_files() if n not in self._done
                         and n != self._current]

    def _finish(self) -> None:
        assert self._current is not None
        self._done.add(self._current)
        self._current, self._row, self._table = None, 0, None

    def _read(self, name: str) -> pa.Table:
        path = f"{self._root}/{name}" if self._root else name
        try:
            if self._encode == "PARQUET":
                with self._fs.open(path, "rb") as f:
                    table = pq.read_table(f)
            else:
                with self._fs.open(path, "rb", compression="infer") as f:
                    data = io.BytesIO(f.read())
                table = self._read_csv(data) if self._encode == "CSV" else self._read_json(data)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ExecutionError(f"file source: cannot read '{name}' as "
                                 f"{self._encode}: {exc}") from None
        return conform(table, self.schema, f"file '{name}'")

    def _read_csv(self, data: io.BytesIO) -> pa.Table:
        read = pa_csv.ReadOptions(column_names=None if self._header else self.schema.names)
        parse = pa_csv.ParseOptions(delimiter=self._delimiter)
        types = {f.name: f.type if _native_csv(f.type) else pa.string() for f in self.schema}
        convert = pa_csv.ConvertOptions(column_types=types)
        return pa_csv.read_csv(data, read_options=read, parse_options=parse,
                               convert_options=convert)

    def _read_json(self, data: io.BytesIO) -> pa.Table:
        explicit = pa.schema([f.with_type(_json_type(f.type)) for f in self.schema
                              if _json_type(f.type) is not None])
        parse = pa_json.ParseOptions(explicit_schema=explicit,
                                     unexpected_field_behavior="infer")
        return pa_json.read_json(data, parse_options=parse)


def _native_csv(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
            or pa.types.is_date(t) or (pa.types.is_timestamp(t) and t.tz is None))


def _json_type(t: pa.DataType) -> pa.DataType | None:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return t
    if pa.types.is_decimal(t):
        return None
    return pa.string()


def filesystem(protocol: str, **storage_options: Any) -> FileSystem:
    """Return an fsspec filesystem, or an UnsupportedError naming the package to install."""
    try:
        import fsspec
    except ImportError:
        raise UnsupportedError("file sources need the fsspec package "
                               "(pip install fsspec)") from None
    try:
        return fsspec.filesystem(protocol, **storage_options)
    except ImportError:
        package = "s3fs" if protocol == "s3" else f"the fsspec backend for '{protocol}'"
        raise UnsupportedError(f"connector '{protocol}' needs {package} "
                               f"(pip install {package})") from None


def files_from_options(options: dict[str, str], columns: list[tuple[str, str]],
                       fmt: str | None, encode: str | None, clock: Clock) -> FileSource:
    """Build a FileSource from WITH (...) options (see the module docstring)."""
    connector = options["connector"].strip().lower()
    if (fmt or "").upper() != "PLAIN" or (encode or "").upper() not in ENCODES:
        raise BindError(f"connector '{connector}' needs FORMAT PLAIN ENCODE CSV | JSON | "
                        f"PARQUET, got FORMAT {fmt} ENCODE {encode}")
    assert encode is not None
    opts = Options(options, connector)
    fs, root = _locate(opts, connector)
    delimiter = opts.text("delimiter", ",") or ","
    if len(delimiter) != 1:
        raise BindError(f"option 'delimiter' must be one character, got '{delimiter}'")
    header = not opts.boolean("without_header", False)
    source = FileSource(
        fs, root, arrow_schema(columns), encode,
        pattern=opts.text("match_pattern", "*") or "*",
        refresh_interval=opts.positive("refresh.interval.sec", 1.0),
        delimiter=delimiter, header=header, clock=clock,
    )
    opts.reject_unknown()
    return source


def _locate(opts: Options, connector: str) -> tuple[FileSystem, str]:
    if connector == "s3":
        bucket = opts.require("s3.bucket_name")
        client = {"region_name": opts.text("s3.region_name"),
                  "endpoint_url": opts.text("s3.endpoint_url")}
        storage: dict[str, Any] = {"client_kwargs": {k: v for k, v in client.items() if v}}
        key, secret = opts.text("s3.credentials.access"), opts.text("s3.credentials.secret")
        if (key is None) != (secret is None):
            raise BindError("options 's3.credentials.access' and 's3.credentials.secret' "
                            "go together")
        if key is not None:
            storage.update(key=key, secret=secret)
        return filesystem("s3", **storage), bucket
    keys = ("posix_fs.root",) if connector == "posix_fs" else ("fs.path", "path")
    root = opts.require(*keys)
    key = next(k for k in keys if opts.text(k) is not None)
    fs = filesystem("file")
    if not fs.isdir(root):
        raise BindError(f"option '{key}': folder '{root}' does not exist")
    return fs, root
