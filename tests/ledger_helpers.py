"""Ledger test helpers: a configuration per test, the CLI, a PostgreSQL server of our own."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dnsbl.cli import main

CATEGORIES = """
[ledger.categories.spam]
a = "127.0.0.2"
lifetime = "7d"
aliases = ["spam", "rsit:abusive-content=\\"spam\\""]

[ledger.categories.botnet-cc]
a = "127.0.0.3"
lifetime = "30d"
aliases = ["c2-server", "rsit:malicious-code=\\"c2-server\\""]

[ledger.categories.scanner]
a = "127.0.0.4"
lifetime = "3d"
aliases = ["scanner"]
"""


class Ledger:
    """One ledger configuration in a temporary folder, and its CLI."""

    def __init__(self, folder: Path, database: str, extra: str = "") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "dnsbl.toml"
        self.zone = folder / "published" / "rep.example.org.00.zone"
        self.config.write_text(
            'listen = ["127.0.0.1:0"]\n'
            "[ledger]\n"
            f"database = {json.dumps(database)}\n"
            'zone = "rep.example.org"\n'
            'lookup_url = "https://rep.example.org/lookup?ip=$"\n'
            "publish_interval = 0\n"
            f"{extra}\n{CATEGORIES}")

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """``dnsbl ledger --config ... ARGS`` in this process: (status, out, err)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["ledger", "--config", str(self.config), "--by", "tester", *args])
        return status, out.getvalue(), err.getvalue()

    def ok(self, *args: str) -> str:
        status, out, err = self(*args)
        assert status == 0, (status, out, err)
        return out

    def json(self, *args: str) -> dict:
        return json.loads(self.ok("--json", *args))

    def process(self, *args: str, **kwargs) -> subprocess.Popen:
        """The real command as a child process."""
        return subprocess.Popen(
            [sys.executable, "-m", "dnsbl", "ledger", "--config", str(self.config),
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

    def export(self) -> str:
        return self.ok("export", "--format", "json")

    def zone_text(self) -> str:
        """Every published file of the zone, one after the other."""
        return "".join(path.read_text() for path in sorted(self.zone.parent.glob("*.zone")))

    def write(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text)
        return str(path)


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """condition() until truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def postgres_bin() -> str | None:
    """The folder of initdb and pg_ctl, or None where PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PostgresServer:
    """A throw-away PostgreSQL cluster on a free loopback port; as 'nobody' when
    we are root (postgres refuses to run as root)."""

    def __init__(self, bin_dir: str, port: int) -> None:
        self.bin = bin_dir
        self.port = port
        self.folder = tempfile.mkdtemp(prefix="dnsbl-pg-")
        self.data = os.path.join(self.folder, "data")
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            os.chmod(self.folder, 0o755)
            shutil.chown(self.folder, "nobody", "nogroup")
        self.databases = 0

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120,
                       cwd=self.folder)

    def start(self) -> None:
        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                  "--no-sync")
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-l",
                  os.path.join(self.folder, "log"), "-w", "-t", "60", "-o",
                  f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F", "start")

    def new_database(self) -> str:
        import psycopg

        self.databases += 1
        name = f"ledger{self.databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
