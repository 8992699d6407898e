"""What a CREATE SINK statement asks for: connector, delivery type, key and target options.

`SinkSpec.from_options` reads the WITH (...) options once, names the option in every
error, and rejects options it does not know. The canonical statement text (`stored_sql`,
with the sink's id, kept in the catalog and checkpoint manifests) and the text shown to
users (`display_sql`, secrets masked) are both built here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from kernel_engine.connectors._options import Options
from kernel_engine.errors import BindError, UnsupportedError
from kernel_engine.sql.redact import redact_options

__all__ = ["ID_OPTION", "PgTarget", "SinkSpec", "render_options"]

ID_OPTION = "sink.id"
CONNECTORS = ("jdbc", "postgres", "fs", "s3")
TYPES = ("upsert", "append-only")
ENCODES = ("PARQUET", "JSON", "CSV")


@dataclass
class PgTarget:
    """Where a PostgreSQL sink writes."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    schema: str
    table: str

    def describe(self) -> str:
        """`postgresql://user@host:port/db schema.table` (no password)."""
        return (f"postgresql://{self.user}@{self.host}:{self.port}/{self.database} "
                f"{self.schema}.{self.table}")

    def conninfo(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "password": self.password, "dbname": self.database}


@dataclass
class SinkSpec:
    """A sink's options, validated."""

    name: str
    connector: str  # "postgres" | "fs" | "s3"
    type: str  # "upsert" | "append-only"
    primary_key: list[str]
    force_append_only: bool
    snapshot: bool
    sink_id: str
    options: dict[str, str] = field(repr=False)
    pg: PgTarget | None = None
    location: str | None = None  # file sinks: a local folder or s3://bucket/path
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    encode: str | None = None
    format_options: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """Literal secret values, masked wherever text is shown."""
        out = [self.pg.password] if self.pg is not None and self.pg.password else []
        out += [v for k, v in self.options.items() if "secret" in k or "password" in k]
        return [s for s in out if s]

    @property
    def upsert(self) -> bool:
        """Whether rows are written by key (INSERT ... ON CONFLICT, DELETE by key)."""
        return self.type == "upsert"

    def target(self) -> str:
        """Where the sink writes, for SHOW and EXPLAIN (no secrets)."""
        if self.pg is not None:
            return self.pg.describe()
        return f"{self.location} ({(self.encode or '').lower()})"

    @classmethod
    def from_options(cls, name: str, options: dict[str, str], encode: str | None = None,
                     format_options: dict[str, str] | None = None) -> SinkSpec:
        """Validate the WITH (...) options of CREATE SINK."""
        opts = Options(options, options.get("connector", "?"))
        connector = opts.choice("connector", CONNECTORS, "") if "connector" in options else ""
        if not connector:
            raise BindError("CREATE SINK needs WITH (connector = ...): 'jdbc' or 'postgres' "
                            "(PostgreSQL), 'fs' or 's3' (files)")
        kind = opts.choice("type", TYPES, "")
        if not kind:
            raise BindError("CREATE SINK needs type = 'upsert' or 'append-only'")
        force = opts.boolean("force_append_only", False)
        pk_text = opts.text("primary_key") or ""
        pk = [c.strip().strip('"') for c in pk_text.split(",") if c.strip()]
        if kind == "upsert" and not pk:
            raise BindError("an upsert sink needs primary_key = 'column[, ...]' (the key the "
                            "target table is updated and deleted by)")
        if force and kind != "append-only":
            raise BindError("force_append_only = 'true' needs type = 'append-only'")
        spec = cls(name, "postgres" if connector == "jdbc" else connector, kind, pk, force,
                   opts.boolean("snapshot", True), opts.text(ID_OPTION) or uuid.uuid4().hex[:16],
                   dict(options), encode=encode, format_options=dict(format_options or {}))
        if connector in ("jdbc", "postgres"):
            if encode is not None:
                raise BindError(f"connector '{connector}' takes no FORMAT ... ENCODE clause")
            spec.pg = _jdbc(opts) if connector == "jdbc" else _postgres(opts)
        else:
            _files(spec, opts, connector)
        opts.reject_unknown()
        return spec

    def stored_options(self) -> dict[str, str]:
        """The options as stored in the catalog (with the sink's id)."""
        return {**{k: v for k, v in self.options.items() if k != ID_OPTION},
                ID_OPTION: self.sink_id}


def _jdbc(opts: Options) -> PgTarget:
    url = opts.require("jdbc.url")
    if not url.startswith("jdbc:postgresql://"):
        raise BindError(f"jdbc.url must start with jdbc:postgresql:// (got "
                        f"'{url.split('?')[0][:40]}'); only PostgreSQL is supported")
    parsed = urlparse(url[len("jdbc:"):])
    query = {k.lower(): v[-1] for k, v in parse_qs(parsed.query).items()}
    user = opts.text("user") or query.get("user") or unquote(parsed.username or "")
    password = opts.text("password") or query.get("password") or unquote(parsed.password or "")
    database = parsed.path.lstrip("/")
    if not user:
        raise BindError("a jdbc sink needs user = '...' (or ?user= in jdbc.url)")
    if not database:
        raise BindError("jdbc.url needs a database: jdbc:postgresql://host:port/database")
    schema, table = _schema_table(opts, "table.name", "schema.name")
    try:
        port = parsed.port or 5432
    except ValueError:
        raise BindError("jdbc.url has an invalid port") from None
    return PgTarget(parsed.hostname or "localhost", port, user, password, database, schema,
                    table)


def _postgres(opts: Options) -> PgTarget:
    host = opts.require("host")
    port = opts.integer("port", 5432)
    user = opts.require("user")
    password = opts.text("password") or ""
    database = opts.require("database")
    schema, table = _schema_table(opts, "table", "schema")
    return PgTarget(host, int(port or 5432), user, password, database, schema, table)


def _schema_table(opts: Options, table_key: str, schema_key: str) -> tuple[str, str]:
    table = opts.require(table_key)
    schema = opts.text(schema_key)
    if schema is None and "." in table:
        schema, table = table.split(".", 1)
    return (schema or "public"), table


def _files(spec: SinkSpec, opts: Options, connector: str) -> None:
    if spec.encode is None:
        raise BindError(f"connector '{connector}' needs FORMAT PLAIN ENCODE PARQUET | JSON | CSV")
    if spec.encode not in ENCODES:
        raise UnsupportedError(f"ENCODE {spec.encode} is not supported for file sinks; use "
                               "PARQUET, JSON or CSV")
    if spec.type != "append-only":
        raise BindError(f"a file sink ('{connector}') is append-only: use type = "
                        "'append-only' (with force_append_only = 'true' for a changing view)")
    if connector == "fs":
        spec.location = opts.require("path", "fs.path")
        return
    bucket = opts.require("s3.bucket_name", "bucket")
    path = (opts.text("s3.path") or opts.text("path") or "").strip("/")
    spec.location = f"s3://{bucket}/{path}".rstrip("/")
    so: dict[str, Any] = {}
    for key, name in (("s3.credentials.access", "key"), ("s3.credentials.secret", "secret"),
                      ("s3.endpoint_url", "endpoint_url"), ("s3.region_name", "region")):
        value = opts.text(key)
        if value:
            so[name] = value
    spec.storage_options = so


def render_options(options: dict[str, str], masked: bool) -> str:
    """`key = 'value', ...` as in a WITH (...) clause (secrets masked when asked)."""
    shown = redact_options(options) if masked else options
    return ", ".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in shown.items())
