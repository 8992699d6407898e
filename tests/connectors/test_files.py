"""File sources over a temporary folder: CSV, JSON and Parquet; new files; offsets; errors."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kernel_engine.connectors import FileSource, make_reader
from kernel_engine.connectors.files import filesystem
from kernel_engine.errors import BindError, ExecutionError, UnsupportedError

from ._support import FakeClock, assert_deterministic, drain

COLUMNS = [("id", "BIGINT"), ("name", "VARCHAR"), ("ts", "TIMESTAMP"), ("amount", "DOUBLE")]
ROWS = [
    {"id": i, "name": f"n{i}", "ts": f"2024-01-01 00:00:{i:02d}", "amount": i * 1.5}
    for i in range(30)
]


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or list(rows[0])
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_json(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_parquet(path: Path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows)
    ts = table.column("ts").cast(pa.timestamp("us"))
    pq.write_table(table.set_column(2, "ts", ts), path)


WRITERS = {"CSV": write_csv, "JSON": write_json, "PARQUET": write_parquet}
SUFFIX = {"CSV": "csv", "JSON": "json", "PARQUET": "parquet"}


def fs_reader(folder: Path, encode: str = "CSV", clock: FakeClock | None = None,
              **options: str) -> FileSource:
    built = make_reader({"connector": "fs", "fs.path": str(folder),
                         "match_pattern": f"*.{SUFFIX[encode]}", **options},
                        COLUMNS, "PLAIN", encode, clock=clock or FakeClock())
    assert isinstance(built, FileSource)
    return built


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("encode", ["CSV", "JSON", "PARQUET"])
def test_reads_files_in_name_order_deterministically(folder: Path, encode: str) -> None:
    write = WRITERS[encode]
    write(folder / f"b.{SUFFIX[encode]}", ROWS[12:30])
    write(folder / f"a.{SUFFIX[encode]}", ROWS[0:12])
    (folder / "notes.txt").write_text("ignored: no match")
    whole = assert_deterministic(lambda: fs_reader(folder, encode), every=2)
    assert whole.column("id").to_pylist() == list(range(30))
    assert str(whole.column("ts")[5].as_py()) == "2024-01-01 00:00:05"
    assert whole.schema.field("ts").type == pa.timestamp("us")


def test_new_files_are_picked_up_after_the_refresh_interval(folder: Path) -> None:
    write_csv(folder / "1.csv", ROWS[0:10])
    write_csv(folder / "2.csv", ROWS[10:20])
    clock = FakeClock()
    src = fs_reader(folder, clock=clock, **{"refresh.interval.sec": "5"})
    table, _ = drain(src, (7,))
    assert table.column("id").to_pylist() == list(range(20))
    assert src.offset() == {"files_done": ["1.csv", "2.csv"], "file": None, "row": 0}
    write_csv(folder / "3.csv", ROWS[20:30])
    clock.advance(4.9)
    assert src.next_batch() is None                 # not listed again yet
    clock.advance(0.2)
    assert src.next_batch(4).column("id").to_pylist() == [20, 21, 22, 23]
    assert src.offset() == {"files_done": ["1.csv", "2.csv"], "file": "3.csv", "row": 4}


def test_seek_to_the_middle_of_a_file_continues_exactly(folder: Path) -> None:
    write_csv(folder / "1.csv", ROWS[0:10])
    write_csv(folder / "2.csv", ROWS[10:20])
    src = fs_reader(folder)
    src.next_batch(10)
    src.next_batch(3)
    offset = src.offset()
    assert offset == {"files_done": ["1.csv"], "file": "2.csv", "row": 3}
    write_csv(folder / "0.csv", ROWS[20:30])        # sorts first, but appears later
    other = fs_reader(folder)
    other.seek(offset)
    rest, _ = drain(other, (5,))
    assert rest.column("id").to_pylist() == list(range(13, 30))


def test_csv_columns_by_name_missing_extra_and_types(folder: Path) -> None:
    (folder / "x.csv").write_text(
        "extra,flag,name,id,at,price,tz\n"
        "1,t,Ann,1,10:00:01,12.345,2024-01-01 00:00:00\n"
        "2,FALSE,,2,23:59:59.5,-1,2024-01-01T02:00:00+02:00\n")
    columns = [("id", "INTEGER"), ("name", "VARCHAR"), ("flag", "BOOLEAN"), ("at", "TIME"),
               ("price", "DECIMAL(10,2)"), ("tz", "TIMESTAMPTZ"), ("missing", "DATE")]
    src = make_reader({"connector": "fs", "path": str(folder)}, columns, "PLAIN", "CSV")
    table = src.next_batch()
    assert table.schema.names == [c for c, _ in columns]
    rows = table.to_pylist()
    assert [r["flag"] for r in rows] == [True, False]
    assert [r["name"] for r in rows] == ["Ann", ""]
    assert [r["price"] for r in rows] == [Decimal("12.35"), Decimal("-1.00")]
    assert [str(r["at"]) for r in rows] == ["10:00:01", "23:59:59.500000"]
    assert [r["tz"].isoformat() for r in rows] == ["2024-01-01T00:00:00+00:00"] * 2
    assert [r["missing"] for r in rows] == [None, None]


def test_csv_without_header_and_delimiter(folder: Path) -> None:
    (folder / "x.csv").write_text("1;a;2024-01-01 00:00:00;1.5\n2;b;2024-01-01 00:00:01;2\n")
    src = fs_reader(folder, without_header="true", delimiter=";")
    assert src.next_batch().column("name").to_pylist() == ["a", "b"]


def test_gzip_files(folder: Path) -> None:
    (folder / "x.json.gz").write_bytes(gzip.compress(b'{"id": 7, "name": "z"}\n'))
    src = make_reader({"connector": "fs", "fs.path": str(folder), "match_pattern": "*.gz"},
                      COLUMNS, "PLAIN", "JSON")
    assert src.next_batch().to_pylist() == [{"id": 7, "name": "z", "ts": None, "amount": None}]


def test_empty_files_and_subfolders(folder: Path) -> None:
    (folder / "a.csv").write_text("id,name,ts,amount\n")
    (folder / "sub").mkdir()
    write_csv(folder / "sub" / "b.csv", ROWS[:2])
    src = fs_reader(folder)
    assert src.next_batch().column("id").to_pylist() == [0, 1]
    assert src.offset()["files_done"] == ["a.csv", "sub/b.csv"]


def test_memory_filesystem_like_a_bucket() -> None:
    fs = filesystem("memory")
    for name, rows in (("bucket-t/k/2.json", ROWS[5:9]), ("bucket-t/k/1.json", ROWS[0:5])):
        with fs.open(name, "wb") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows).encode())
    from kernel_engine.connectors import arrow_schema

    def make() -> FileSource:
        return FileSource(fs, "bucket-t", arrow_schema(COLUMNS), "json", pattern="k/*.json",
                          clock=FakeClock())

    whole = assert_deterministic(make)
    assert whole.column("id").to_pylist() == list(range(9))
    fs.rm("bucket-t", recursive=True)


def test_bad_data_names_the_file(folder: Path) -> None:
    (folder / "bad.csv").write_text("id,name\nnot-a-number,x\n")
    with pytest.raises(ExecutionError, match="bad.csv"):
        fs_reader(folder).next_batch()


def test_a_vanished_file_after_seek_is_an_error(folder: Path) -> None:
    src = fs_reader(folder)
    src.seek({"files_done": [], "file": "gone.csv", "row": 3})
    with pytest.raises(ExecutionError, match="gone.csv"):
        src.next_batch()


@pytest.mark.parametrize(("options", "fmt", "encode", "error", "message"), [
    ({}, "PLAIN", "CSV", BindError, "'fs.path' or 'path'"),
    ({"fs.path": "/no/such/folder"}, "PLAIN", "CSV", BindError, "'fs.path'"),
    ({"fs.path": "."}, None, None, BindError, "ENCODE CSV"),
    ({"fs.path": "."}, "PLAIN", "AVRO", BindError, "ENCODE CSV"),
    ({"fs.path": ".", "match_patern": "*"}, "PLAIN", "CSV", BindError, "'match_patern'"),
    ({"fs.path": ".", "refresh.interval.sec": "-1"}, "PLAIN", "CSV", BindError,
     "'refresh.interval.sec'"),
    ({"fs.path": ".", "delimiter": ";;"}, "PLAIN", "CSV", BindError, "'delimiter'"),
    ({"fs.path": ".", "without_header": "maybe"}, "PLAIN", "CSV", BindError,
     "'without_header'"),
])
def test_bad_options(options: dict[str, str], fmt: str | None, encode: str | None,
                     error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make_reader({"connector": "fs", **options}, COLUMNS, fmt, encode)


def test_s3_options() -> None:
    base = {"connector": "s3", "match_pattern": "*.csv"}
    with pytest.raises(BindError, match="'s3.bucket_name'"):
        make_reader(base, COLUMNS, "PLAIN", "CSV")
    with pytest.raises(BindError, match="'s3.credentials.access'"):
        make_reader({**base, "s3.bucket_name": "b", "s3.credentials.secret": "s"},
                    COLUMNS, "PLAIN", "CSV")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedError, match="s3fs"):
            make_reader({**base, "s3.bucket_name": "b", "s3.region_name": "us-east-1",
                         "s3.endpoint_url": "http://127.0.0.1:9", "s3.credentials.access": "a",
                         "s3.credentials.secret": "s"}, COLUMNS, "PLAIN", "CSV")
