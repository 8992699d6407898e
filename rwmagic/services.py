"""Throwaway local services for tests, tutorials and benchmarks: PostgreSQL and S3 (moto).

`start_postgres()` initialises a fresh PostgreSQL cluster from the Debian packages (or
whatever `initdb` is on PATH) in a temporary folder, starts it on a free loopback port with
password authentication for a login role that owns one database, and returns a
`PostgresServer` (`.host .port .user .password .database .dsn .jdbc_url`, `.stop()`).
As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).

`start_s3()` starts moto's S3 server on a free loopback port and returns an `S3Server`
(`.endpoint`, credentials, `.storage_options()`, `.create_bucket()`, `.stop()`).

Both raise `ServiceUnavailable` when the software is missing or the server does not come
up; the message says what to install.

    from rwmagic.services import start_postgres
    pg = start_postgres()
    ...  # CREATE SINK ... WITH (connector = 'jdbc', jdbc.url = pg.jdbc_url, ...)
    pg.stop()
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PostgresServer", "S3Server", "ServiceUnavailable", "free_port", "find_pg_bin",
           "start_postgres", "start_s3"]

STARTUP_TIMEOUT_S = 30.0
PG_USER = "rw_writer"
PG_DATABASE = "analytics"


class ServiceUnavailable(RuntimeError):  # noqa: N818 - reads as a condition
    """A local service could not be started (software missing, or it did not come up)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- PostgreSQL ------------------------------------------------------------------------------


def find_pg_bin() -> Path | None:
    """The folder holding initdb/pg_ctl: the newest /usr/lib/postgresql/*/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_sh_quote(c) for c in cmd)]


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster and the login role that owns its database."""

    host: str
    port: int
    user: str
    password: str
    database: str
    datadir: Path
    bindir: Path
    superuser: str = "postgres"
    _log: Path = field(default=Path(), repr=False)

    @property
    def dsn(self) -> str:
        """A libpq connection string for the login role."""
        return (f"host={self.host} port={self.port} user={self.user} "
                f"password={self.password} dbname={self.database}")

    @property
    def jdbc_url(self) -> str:
        """`jdbc:postgresql://host:port/database` (user and password go in separate options)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def connect(self, autocommit: bool = True) -> Any:
        """A psycopg connection as the login role."""
        import psycopg

        return psycopg.connect(self.dsn, autocommit=autocommit, connect_timeout=5)

    def sink_options(self, table: str) -> str:
        """The WITH (...) body of a `connector = 'jdbc'` sink writing to `table`."""
        return (f"connector = 'jdbc', jdbc.url = '{self.jdbc_url}', table.name = '{table}', "
                f"user = '{self.user}', password = '{self.password}'")

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args])
        return subprocess.run(cmd, capture_output=True, text=True, check=check,
                              timeout=STARTUP_TIMEOUT_S + 10)

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._pg_ctl("status", check=False).returncode == 0

    def start(self) -> None:
        """Start the server (again, after `shutdown`) and wait until it accepts connections."""
        options = (f"-p {self.port} -c listen_addresses={self.host} "
                   f"-c unix_socket_directories={self.datadir}")
        try:
            self._pg_ctl("-o", options, "-l", str(self._log), "-w", "-t",
                         str(int(STARTUP_TIMEOUT_S)), "start")
        except subprocess.CalledProcessError as err:
            log = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
            raise ServiceUnavailable(f"PostgreSQL did not start on port {self.port}: "
                                     f"{err.stderr.strip()} {log}") from None

    def shutdown(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (`start` brings it back)."""
        self._pg_ctl("-m", mode, "-w", "stop", check=False)

    def stop(self) -> None:
        """Stop the server and remove its data."""
        self.shutdown("immediate")
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres(user: str = PG_USER, database: str = PG_DATABASE,
                   password: str | None = None, durable: bool = False,
                   settings: dict[str, str] | None = None) -> PostgresServer:
    """Initialise and start a throwaway cluster on a free loopback port.

    `durable=False` turns fsync off (fine for a cluster thrown away after the tests);
    `settings` are extra postgresql.conf lines (name -> value).
    """
    bindir = find_pg_bin()
    if bindir is None:
        raise ServiceUnavailable("PostgreSQL is not installed (no initdb); on Debian: "
                                 "apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="rwmagic-pg-"))
    datadir = root / "data"
    datadir.mkdir()
    pwfile = root / "pw"
    superpw = secrets.token_hex(12)
    pwfile.write_text(superpw + "\n")
    if os.geteuid() == 0:
        entry = _postgres_user()
        for path in (root, datadir, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(root, 0o755)
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                                     "--auth-local=trust", "--auth-host=scram-sha-256",
                                     f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale"]),
                       capture_output=True, text=True, check=True, timeout=120)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(root, ignore_errors=True)
        raise ServiceUnavailable(f"initdb failed: {err.stderr.strip()[-2000:]}") from None
    conf = datadir / "postgresql.conf"
    extra = ["max_connections = 200"]
    if not durable:
        extra += ["fsync = off", "full_page_writes = off", "synchronous_commit = off"]
    extra += [f"{name} = {value}" for name, value in (settings or {}).items()]
    with open(conf, "a") as f:
        f.write("\n" + "\n".join(extra) + "\n")
    server = PostgresServer("127.0.0.1", free_port(), user, password or secrets.token_hex(12),
                            database, datadir, bindir, _log=root / "postgres.log")
    if os.geteuid() == 0:
        log = root / "postgres.log"
        log.touch()
        entry = _postgres_user()
        os.chown(log, entry.pw_uid, entry.pw_gid)
    try:
        server.start()
        _create_role(server, superpw)
    except BaseException:
        server.stop()
        raise
    return server


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root needs a 'postgres' user to run PostgreSQL "
                                 "(it comes with the Debian package)") from None


def _create_role(server: PostgresServer, superpw: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(server.datadir), port=server.port, user="postgres",
                         password=superpw, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(server.user), sql.Literal(server.password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(server.database), sql.Identifier(server.user)))


# ---- S3 (moto) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint with the credentials it accepts."""

    endpoint: str
    key: str = "testing"
    secret: str = "testing"
    region: str = "us-east-1"
    process: Any = field(default=None, compare=False, repr=False)

    def storage_options(self, endpoint: str | None = None) -> dict[str, Any]:
        """`storage_options` for `kernel_engine.connect` (optionally via another endpoint)."""
        return {"key": self.key, "secret": self.secret,
                "endpoint_url": endpoint or self.endpoint}

    def env(self) -> dict[str, str]:
        """The AWS_* environment variables that point a client at this server."""
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": self.region}

    def filesystem(self) -> Any:
        """An s3fs filesystem on this server (to list and read what was written)."""
        import s3fs

        return s3fs.S3FileSystem(key=self.key, secret=self.secret, skip_instance_cache=True,
                                 use_listings_cache=False,
                                 client_kwargs={"endpoint_url": self.endpoint})

    def create_bucket(self) -> str:
        """A new, empty bucket; returns its name."""
        name = f"ke-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name

    def stop(self) -> None:
        """Stop the server process (if this object started it)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if with an error status
    except OSError:
        return False


def start_s3(log: Path | None = None) -> S3Server:
    """moto's S3 server (`python -m moto.server`) on a free loopback port."""
    for module in ("moto", "flask", "s3fs"):
        try:
            __import__(module)
        except ImportError:
            raise ServiceUnavailable(f"an S3 server needs moto[server] and s3fs ({module} is "
                                     "missing)") from None
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = log or Path(tempfile.mkdtemp(prefix="rwmagic-moto-")) / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    server = S3Server(endpoint, process=proc)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers(endpoint):
            return server
        time.sleep(0.1)
    server.stop()
    raise ServiceUnavailable(f"moto server did not start on {endpoint}: "
                             f"{log.read_text(errors='replace')[-2000:]}")
