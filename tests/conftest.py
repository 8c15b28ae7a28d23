"""Fixtures: real servers on free loopback ports, queried with dnspython; the
helpers they are built on are in helpers.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from dnsbl.config import Listen, ServerConfig, load_config, with_overrides
from tests.helpers import (
    Client,
    Ledger,
    PostgresServer,
    Process,
    ServerThread,
    free_port,
    postgres_bin,
    scaled,
    stop_all,
)


@pytest.fixture(autouse=True)
def own_runtime_directory(tmp_path_factory, monkeypatch) -> None:
    """A runtime directory of each test's own: a server it starts without
    --control puts its control socket there, not in /run/dnsbl (root) or
    $XDG_RUNTIME_DIR, where another suite or a real server on this host may
    hold it (and `serve` then says so, or stops)."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path_factory.mktemp("run")))


@pytest.fixture
def cleanup() -> Iterator[ExitStack]:
    """An ExitStack closed after the test whatever its outcome: sockets, threads
    and servers a test opens go in it (``cleanup.enter_context(sock)``,
    ``cleanup.callback(thread.stop)``), so none leaks into the next test."""
    with ExitStack() as stack:
        yield stack

@pytest.fixture
def secondary() -> Iterator[socket.socket]:
    """A UDP socket on loopback standing for a secondary (told by NOTIFY)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(scaled(15))
    yield sock
    sock.close()


@pytest.fixture
def serve():
    """serve(*zone_specs, **settings) -> Client of a real server, in-process.

    ``zone_specs`` are command-line zones (``bl.test:ip4set:/path``);
    ``settings`` are any ServerConfig fields (``check_interval=0.1``,
    ``udp_batch=0``, ``listen=(Listen("::1", 0),)``, ``metrics=Listen(...)``).
    It listens on 127.0.0.1 on a port the kernel picks unless ``listen``
    says otherwise, serves no metrics unless ``metrics`` asks, and is stopped
    after the test whatever its outcome."""
    started: list[ServerThread] = []

    def _serve(*zones: str, **settings: Any) -> Client:
        metrics = settings.pop("metrics", None)
        config = ServerConfig(**{"listen": (Listen("127.0.0.1", 0),), **settings})
        thread = ServerThread(with_overrides(config, zones=list(zones)), metrics=metrics)
        started.append(thread)
        return thread.start()

    yield _serve
    stop_all([thread.stop for thread in started])


@pytest.fixture
def zone_file(tmp_path: Path):
    """zone_file(lines, name=...) -> path of a data file holding those lines."""
    counter = iter(range(1000))

    def _write(lines: list[str] | str, name: str | None = None) -> str:
        path = tmp_path / (name or f"zone{next(counter)}.txt")
        text = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
        path.write_text(text, encoding="latin-1")
        return str(path)

    return _write


@pytest.fixture
def zone(serve, zone_file):
    """zone(lines, kind="ip4set") -> Client serving those lines as bl.test."""

    def _zone(lines: list[str], kind: str = "ip4set") -> Client:
        return serve(f"bl.test:{kind}:{zone_file(lines)}")

    return _zone

@pytest.fixture
def process():
    """process(*serve_args) -> Process started with `python -m dnsbl serve`."""
    started: list[Process] = []

    def _start(*args: str, **kwargs) -> Process:
        p = Process(*args, **kwargs)
        started.append(p)
        return p

    yield _start
    stop_all([p.stop for p in started])


# -- the ledger -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres():
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'dnsbl[postgresql]')")
    server = PostgresServer(bin_dir, free_port())
    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.skip(f"cannot start PostgreSQL here: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def backend(request):
    """The database URL maker for each backend."""
    if request.param == "sqlite":
        return lambda folder: str(folder / "ledger.sqlite")
    server = request.getfixturevalue("postgres")
    return lambda folder: server.new_database()


@pytest.fixture
def make_ledger(tmp_path, backend):
    counter = iter(range(100))

    def _make(extra: str = "") -> Ledger:
        folder = tmp_path / f"l{next(counter)}"
        folder.mkdir()
        return Ledger(folder, backend(folder), extra)

    return _make


@pytest.fixture
def ledger(make_ledger) -> Ledger:
    return make_ledger()


@pytest.fixture
def served():
    """served(ledger) -> Client of a real server over that ledger's configuration."""
    threads: list[ServerThread] = []

    def _serve(ledger: Ledger):
        thread = ServerThread(load_config(str(ledger.config)))
        threads.append(thread)
        return thread, thread.start()

    yield _serve
    for thread in threads:
        thread.stop()
