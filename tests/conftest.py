"""Fixtures: real servers on free loopback ports, queried with dnspython."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from dnsbl.config import Listen, ServerConfig, with_overrides
from dnsbl.loader import load_snapshot
from dnsbl.server import Server, new_event_loop
from tests.helpers import retry, scaled, wait_for

ROOT = Path(__file__).resolve().parent.parent


def has_ipv6_loopback() -> bool:
    """::1 can be bound here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


#: For tests that listen on or send from ::1.
needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="::1 is not configured here")


def udp_tcp_sockets(host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to one free port, as a DNS server listens.

    The kernel picks a free UDP port; that TCP port may still be taken, so try another.
    """
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((host, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return udp, tcp
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free, just now, for both UDP and TCP: for servers that bind their own."""
    udp, tcp = udp_tcp_sockets(host)
    port = udp.getsockname()[1]
    udp.close()
    tcp.close()
    return port


#: The address sentinel questions come from: in no test's ACL.
SENTINEL_SOURCE = "127.0.99.1"


class Client:
    """Asks one server over real sockets with dnspython (an independent DNS stack)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def query(self, name: str, rdtype: str = "A", tcp: bool = False, source: str | None = None,
              timeout: float | None = None, **make_query: object) -> dns.message.Message:
        """The answer to one question. Without ``timeout`` a UDP question is
        asked again while no answer comes (a datagram lost on a loaded host),
        for 10 s scaled to the host; with one, it is asked once and
        dns.exception.Timeout means silence, for tests about silence."""
        q = dns.message.make_query(name, rdtype, **make_query)  # type: ignore[arg-type]
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, source=source,
                                 timeout=scaled(10) if timeout is None else timeout)
        if timeout is not None:
            return dns.query.udp(q, self.host, port=self.port, timeout=timeout, source=source)
        return retry(lambda: dns.query.udp(q, self.host, port=self.port, timeout=scaled(2),
                                           source=source), (dns.exception.Timeout,))

    def reply_or_silence(self, wire: bytes, source: str | None = None) -> bytes | None:
        """The server's reply to ``wire`` sent from ``source``, or None when it
        sends none: told apart from a slow reply without guessing a time.

        A sentinel question follows it from another address (one no test's
        ACL names) to the same server socket; a server reads one socket in
        order, so once the sentinel is answered, any reply to ``wire`` has
        been sent before it, and over loopback has arrived."""
        v6 = ":" in self.host
        family = socket.AF_INET6 if v6 else socket.AF_INET
        sentinel = dns.message.make_query("sentinel.invalid", "A")
        with socket.socket(family, socket.SOCK_DGRAM) as probe, \
                socket.socket(family, socket.SOCK_DGRAM) as guard:
            probe.bind((source or ("::1" if v6 else "127.0.0.1"), 0))
            guard.bind(("::1" if v6 else SENTINEL_SOURCE, 0))
            probe.sendto(wire, (self.host, self.port))
            guard.settimeout(scaled(2))

            def answered() -> None:
                guard.sendto(sentinel.to_wire(), (self.host, self.port))
                while dns.message.from_wire(guard.recv(65535)).id != sentinel.id:
                    pass  # a late reply to an earlier try

            retry(answered, (TimeoutError,))
            # The two replies left in order; the short wait only covers
            # their taking different CPUs' queues inside the kernel.
            probe.settimeout(0.05)
            try:
                return probe.recv(65535)
            except TimeoutError:
                return None

    def ask_or_silence(self, name: str, rdtype: str = "A",
                       source: str | None = None) -> dns.message.Message | None:
        """The answer to one UDP question from ``source``, or None for none."""
        reply = self.reply_or_silence(dns.message.make_query(name, rdtype).to_wire(), source)
        return None if reply is None else dns.message.from_wire(reply)

    def a(self, name: str) -> list[str]:
        """The A addresses answered for ``name``, sorted; [] for none."""
        r = self.query(name, "A")
        return sorted(rd.address for rrset in r.answer for rd in rrset
                      if rrset.rdtype == dns.rdatatype.A)

    def txt(self, name: str) -> list[str]:
        r = self.query(name, "TXT")
        return sorted(b"".join(rd.strings).decode("latin-1") for rrset in r.answer
                      for rd in rrset if rrset.rdtype == dns.rdatatype.TXT)


class ServerThread:
    """The real server, in-process on its own event loop thread (aiosmtpd style)."""

    def __init__(self, config: ServerConfig, zoneset=None, metrics: Listen | None = None) -> None:
        # No metrics endpoint unless a test asks: the default port is shared.
        self.config = replace(config, metrics=metrics)
        self.zoneset = zoneset
        self.server: Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        loop = self._loop = new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # handed to start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self.server = Server(self.config, self.zoneset or load_snapshot(self.config))
        await self.server.start()
        serving = asyncio.create_task(self.server.serve_forever(handle_signals=False))
        await self.server.running.wait()
        self._ready.set()
        await serving

    def call(self, make_coroutine, timeout: float = 30):
        """Run ``make_coroutine()`` on the server's loop and return its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(make_coroutine(), self._loop)
        return future.result(timeout)

    def check(self) -> bool:
        """One reload check, as the timer or SIGHUP would run it."""
        assert self.server is not None and self.server.reloader is not None
        return self.call(self.server.reloader.check_once)

    def start(self) -> Client:
        self._thread.start()
        if not self._ready.wait(scaled(30)):
            self.stop()
            raise TimeoutError(f"server did not start within {scaled(30):.0f} s")
        if self._error is not None:
            raise self._error
        assert self.server is not None
        bound = self.server.bound[0]
        return Client(bound.host, bound.port)

    def stop(self) -> None:
        """Stop the server and wait for its thread; a server that does not stop
        fails the test that started it, not a later one its sockets leak into."""
        if self._loop is not None and self.server is not None and self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self.server.stop)
            except RuntimeError:  # the loop closed meanwhile: it has stopped
                pass
        if self._thread.ident is not None:
            self._thread.join(scaled(30))
            if self._thread.is_alive():
                raise AssertionError("the server thread did not stop")


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


def stop_all(stoppers: list) -> None:
    """Call every ``stop`` (the last started first); one that raises does not
    keep the others from running, and its error is raised after them."""
    with ExitStack() as stack:
        for stop in stoppers:
            stack.callback(stop)


@pytest.fixture
def serve():
    """serve(*zone_specs, **config) -> Client for a real server on 127.0.0.1:<free port>."""
    started: list[ServerThread] = []

    def _serve(*zones: str, listen: tuple[Listen, ...] = (Listen("127.0.0.1", 0),),
               ttl: int = 2100) -> Client:
        config = with_overrides(ServerConfig(listen=listen, ttl=ttl), zones=list(zones))
        thread = ServerThread(config)
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


class Process:
    """`python -m dnsbl serve ...` as a subprocess, port read from its log."""

    def __init__(self, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
                 command: list[str] | None = None, pass_fds: tuple[int, ...] = ()) -> None:
        if "--metrics" not in args:
            args = (*args, "--metrics", "none")  # the default port is shared
        if "--control" not in args and "RUNTIME_DIRECTORY" not in (env or {}):
            # The default path is shared too; a test that sets RUNTIME_DIRECTORY
            # wants the default place, there.
            args = (*args, "--control", "none")
        if "--workers" not in args:
            # One process unless a test is about workers: the default (one per
            # CPU) would make each test's cost grow with the machine.
            args = (*args, "--workers", "1")
        self.proc = subprocess.Popen(
            (command or []) + [sys.executable, "-m", "dnsbl", "serve", *args],
            cwd=cwd, stderr=subprocess.PIPE, text=True, pass_fds=pass_fds,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.log: list[str] = []
        self.port = 0
        self.metrics_port = 0
        self._reader: threading.Thread | None = None

    def wait_listening(self, timeout: float | None = None) -> Client:
        """Read the log until the server is ready; killed after ``timeout``
        (30 s scaled to the host) without it."""
        assert self.proc.stderr is not None
        timer = threading.Timer(scaled(30) if timeout is None else timeout, self.proc.kill)
        timer.start()
        try:
            for line in self.proc.stderr:
                self.log.append(line)
                metrics = re.search(r"metrics on http://\S+:(\d+)/metrics", line)
                if metrics:
                    self.metrics_port = int(metrics.group(1))
                m = re.search(r"listening on udp\+tcp (\S+):(\d+)", line)
                if m and not self.port:
                    host, self.port = m.group(1).strip("[]"), int(m.group(2))
                if line.rstrip().endswith(" INFO ready") and self.port:
                    self._read_on()
                    return Client(host, self.port)
        finally:
            timer.cancel()
        raise AssertionError("server exited before listening:\n" + "".join(self.log))

    def _read_on(self) -> None:
        """Keep reading the log as it comes, so a test can wait for a line and
        a talkative server never blocks on a full pipe."""
        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def wait_log(self, text: str, count: int = 1, start: int = 0,
                 timeout: float = 10) -> list[str]:
        """The lines of the log from line ``start`` on that hold ``text``, once
        there are ``count``; fails, showing the log, after ``timeout``
        (reference seconds, scaled). The log is read as it comes once the
        server is listening."""
        def found() -> list[str]:
            return [line for line in self.log[start:] if text in line]

        try:
            wait_for(lambda: len(found()) >= count, timeout,
                     what=f"{count} log line(s) with {text!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the log:\n{''.join(self.log)}") from None
        return found()

    def stop(self) -> int:
        """SIGTERM (then SIGKILL if it hangs), and the rest of the log; the
        exit code. Stopping twice does no harm."""
        if self._reader is None and self.proc.stderr is not None and not self.proc.stderr.closed:
            self._read_on()  # the last lines, without a full pipe holding up the exit
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=scaled(20))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:  # it reads stderr to the end
            self._reader.join(scaled(20))
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


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


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnsbl", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=scaled(60))
