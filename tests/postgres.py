"""A throwaway PostgreSQL cluster for tests: a real server, not a mock.

`initdb` into a fresh temporary folder, `pg_ctl start` on a free loopback port (no other interface, its
socket in that folder), a password for TCP logins (so URIs carry credentials as users' do), and always
`pg_ctl stop` and the folder removed afterwards. PostgreSQL refuses to run as root, so under root the
binaries run as the `postgres` system user (`runuser -u postgres --`), which owns the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

# Debian/Ubuntu's layout (the `postgresql` package); PG_BIN points elsewhere.
BIN_DIRS = [os.environ.get("PG_BIN", ""), "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"]
PASSWORD = "pg-" + uuid.uuid4().hex[:12]  # one per test session; it must not show up in what runs record


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None where PostgreSQL is not installed."""
    for folder in filter(None, BIN_DIRS):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def missing_reason() -> str | None:
    """Why a PostgreSQL test cannot run here (None: it can)."""
    if binaries() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql or set PG_BIN"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL must run as the postgres user"
    return None


class Cluster:
    """One PostgreSQL cluster; `database(name)` creates a fresh database and returns its URI."""

    def __init__(self, port: int) -> None:
        self.bin = binaries()
        assert self.bin is not None, missing_reason()
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="mlproj-pg-"))
        self.data = self.root / "data"
        self.user = "postgres"
        self.started = False

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def _run(self, *command: str, timeout: float = 120) -> None:
        done = subprocess.run(self._as_owner(*command), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> Cluster:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # Loopback only; fsync off because the cluster is thrown away; room for a server's and workers' pools.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"),
            "-w", "-t", "120", "start",
        )  # fmt: skip
        self.started = True
        return self

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        """A new, empty database; its URI (with the password, as a user writes it)."""
        import psycopg2

        name = name or "db_" + uuid.uuid4().hex[:10]
        conn = psycopg2.connect(self.uri())
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.uri(name)

    def stop(self) -> None:
        try:
            if self.started:
                # immediate: the cluster is thrown away, and clients (a killed worker) may still hold connections
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)
