"""A real PostgreSQL server for the tests: initdb in a temporary directory, started on a free local port.

The server is the machine's own (Debian's ``postgresql`` package, which ``make
test`` installs when missing). PostgreSQL refuses to run as root, so as root
it runs as the ``postgres`` user the package creates. Password authentication
(SCRAM) is on, so the tests can check that a password never leaks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "abpool_test"
PASSWORD = "pw-Zq8!never-shown"
DATABASE = "experiments"


@dataclass(frozen=True)
class Server:
    """A running server: where it listens and how to reach it."""

    host: str
    port: int
    user: str
    password: str
    database: str
    log: Path

    @property
    def url(self) -> str:
        """A connection string with the password in it, as a user might write one."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def url_without_password(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running() -> Iterator[Server]:
    """Start a throwaway server, yield it, stop it and remove its files.

    Raises
    ------
    RuntimeError
        With the reason, when PostgreSQL is missing or does not start.
    """
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql; make test installs it)")
    as_root = os.geteuid() == 0
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    with tempfile.TemporaryDirectory(prefix="abpool-pg-") as base:
        root = Path(base)
        password_file = root / "password"
        password_file.write_text(PASSWORD + "\n")
        if as_root:
            os.chown(root, owner.pw_uid, owner.pw_gid)
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        data = root / "data"
        port = _free_port()
        run = lambda *args: subprocess.run(  # noqa: E731
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        init = run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={password_file}", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")
        # Every statement is logged: a test reads what abpool asked the server to run.
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c log_statement=all"
        start = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        if start.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else start.stderr
            raise RuntimeError(f"the server did not start: {log.strip().splitlines()[-1:]}")
        try:
            server = Server("127.0.0.1", port, USER, PASSWORD, "postgres", root / "log")
            import psycopg

            with psycopg.connect(server.url, autocommit=True) as con:
                con.execute(f"CREATE DATABASE {DATABASE}")
            yield Server("127.0.0.1", port, USER, PASSWORD, DATABASE, root / "log")
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
