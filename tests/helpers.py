"""What the tests share: time bounds scaled to the host, real servers and
clients on loopback, and the readers of what a server says (answers,
metrics, logs, notifications). Fixtures built on these live in conftest.py;
no test module imports another.

Timing: a test waits for what it needs (``wait_for``) instead of sleeping a
time tuned on one machine; where it asserts that something took at most so
long, it scales the bound with ``scaled`` so a host at half the speed, or one
with a CPU hog beside the suite, gets twice the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import http.client
import io
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dnsbl.cli import main
from dnsbl.config import Listen, ServerConfig
from dnsbl.loader import load_snapshot
from dnsbl.server import Server, new_event_loop

ROOT = Path(__file__).resolve().parent.parent

# -- timing ----------------------------------------------------------------------------

T = TypeVar("T")

#: What ``_workload`` takes, best of five, on the 2-core host the suite was
#: written on when idle. Only the ratio to it matters.
_REFERENCE_SECONDS = 0.02


def _workload() -> float:
    """Seconds for a fixed amount of the work tests do most: DNS messages
    built and parsed by dnspython."""
    import dns.message

    started = time.perf_counter()
    for i in range(300):
        dns.message.from_wire(dns.message.make_query(f"{i}.0.0.127.bl.test", "A").to_wire())
    return time.perf_counter() - started


def _time_factor() -> float:
    """How many times slower than the reference this host runs: at least 1.

    DNSBL_TEST_TIME_FACTOR raises it for a host known to be slow or loaded
    (an emulator, a shared CI runner); the measured ratio is used when larger.
    """
    try:
        wanted = float(os.environ.get("DNSBL_TEST_TIME_FACTOR", "1"))
    except ValueError:
        raise SystemExit("DNSBL_TEST_TIME_FACTOR must be a number, e.g. 3") from None
    measured = min(_workload() for _ in range(5)) / _REFERENCE_SECONDS
    return max(1.0, wanted, min(measured, 20.0))


#: Measured once per test process.
TIME_FACTOR = _time_factor()


def scaled(seconds: float) -> float:
    """``seconds`` on the reference host: as long as it takes here."""
    return seconds * TIME_FACTOR


def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
             what: str = "condition", every: float | None = None) -> float:
    """Seconds until ``predicate()`` is true; AssertionError once ``timeout``
    (seconds on the reference host, scaled to this one) passes. Polls every
    10 ms at first, backing off to 100 ms, so a quick condition is seen quickly;
    ``every`` polls at that fixed interval instead, for a state that lasts
    only a moment (a temporary file while it is written)."""
    limit = scaled(timeout)
    started = time.monotonic()
    pause = 0.01 if every is None else every
    while not predicate():
        waited = time.monotonic() - started
        if waited > limit:
            raise AssertionError(f"{what} not reached within {limit:.1f} s")
        time.sleep(min(pause, max(0.0, limit - waited) + 0.001))
        if every is None:
            pause = min(pause * 1.5, 0.1)
    return time.monotonic() - started


def retry(ask: Callable[[], T], retry_on: tuple[type[BaseException], ...],
          timeout: float = 10.0) -> T:
    """``ask()`` again while it raises one of ``retry_on`` (a UDP question lost
    on a loaded host), until ``timeout`` (reference seconds, scaled) passes;
    then the last error is raised."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        try:
            return ask()
        except retry_on:
            if time.monotonic() >= deadline:
                raise


def timestamp_line(expires_in: float) -> str:
    """A ``$TIMESTAMP`` line stamped 10 s ago whose data expires
    ``expires_in`` seconds from now on the reference host, scaled here (up to
    2 s later: the stamp has whole seconds), so a test has at least that long
    to see the data fresh before it expires."""
    stamp = time.strftime("%Y:%m:%d:%H:%M:%S", time.gmtime(time.time() - 10))
    return f"$TIMESTAMP {stamp} +{math.ceil(11 + scaled(expires_in))}s"

# -- sockets and a DNS client ----------------------------------------------------------

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

# -- servers ---------------------------------------------------------------------------

class Told:
    """A secondary's side of NOTIFY on a UDP socket of the test's: each
    NOTIFY is answered as a secondary would (so the sender stops trying) and
    counted once, a retry (the same id, serial and name) not again."""

    def __init__(self, sock: socket.socket, keyring: Any = None) -> None:
        self.sock = sock
        self.keyring = keyring  # given: a NOTIFY must be signed with it
        #: (zone name, serial) of each NOTIFY, in the order they came.
        self.told: list[tuple[str, int]] = []
        self._seen: set[tuple[str, int, int]] = set()

    def _take(self, wire: bytes, sender: Any) -> None:
        notify = dns.message.from_wire(wire, keyring=self.keyring)  # fails on a bad TSIG
        assert notify.opcode() == dns.opcode.NOTIFY
        self.sock.sendto(dns.message.make_response(notify).to_wire(), sender)
        name = notify.question[0].name.to_text()
        serial = notify.answer[0][0].serial
        if (name, serial, notify.id) not in self._seen:
            self._seen.add((name, serial, notify.id))
            self.told.append((name, serial))

    def until(self, predicate: Callable[[list[tuple[str, int]]], bool],
              timeout: float = 30) -> list[tuple[str, int]]:
        """Take NOTIFYs until ``predicate(told)``; fails after ``timeout``
        (reference seconds, scaled)."""
        deadline = time.monotonic() + scaled(timeout)
        before = self.sock.gettimeout()
        try:
            while not predicate(self.told):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"NOTIFYs told so far: {self.told}")
                self.sock.settimeout(left)
                try:
                    self._take(*self.sock.recvfrom(65535))
                except TimeoutError:
                    pass
        finally:
            self.sock.settimeout(before)
        return self.told

    def waiting(self) -> list[tuple[str, int]]:
        """Take the NOTIFYs that have come and are not yet read (a retry sent
        before the answer got there, too); all told."""
        before = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    self._take(*self.sock.recvfrom(65535))
                except BlockingIOError:
                    return self.told
        finally:
            self.sock.settimeout(before)


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


def stop_all(stoppers: list) -> None:
    """Call every ``stop`` (the last started first); one that raises does not
    keep the others from running, and its error is raised after them."""
    with ExitStack() as stack:
        for stop in stoppers:
            stack.callback(stop)


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


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnsbl", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=scaled(60))


# -- answers ---------------------------------------------------------------------------

#: What ``look`` gives for NXDOMAIN, and for a name that is there without an A
#: or TXT record.
NX = "NXDOMAIN"
NODATA = "NODATA"


def rev(address: str, zone: str = "bl.test") -> str:
    """The name a DNSBL is asked for ``address`` (IPv4 or IPv6) in ``zone``."""
    return ipaddress.ip_address(address).reverse_pointer.rsplit(".", 2)[0] + "." + zone


def look(client: Client, question: str, zone: str = "bl.test") -> str | tuple[list[str], list[str]]:
    """NX, NODATA, or (sorted A addresses, sorted TXT strings) for ``question``:
    a name, or an address asked as its reversed name in ``zone``. Asked as A
    and as TXT, the two questions a mail server asks; both must agree."""
    try:
        name = rev(question, zone)
    except ValueError:
        name = question
    a, txt = client.query(name, "A"), client.query(name, "TXT")
    assert a.rcode() == txt.rcode(), (dns.rcode.to_text(a.rcode()), dns.rcode.to_text(txt.rcode()))
    if a.rcode() == dns.rcode.NXDOMAIN:
        return NX
    assert a.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(a.rcode())
    addresses = sorted(rd.address for rrset in a.answer if rrset.rdtype == dns.rdatatype.A
                       for rd in rrset)
    strings = sorted(b"".join(rd.strings).decode("latin-1") for rrset in txt.answer
                     if rrset.rdtype == dns.rdatatype.TXT for rd in rrset)
    return (addresses, strings) if addresses or strings else NODATA


def soa_of(response: dns.message.Message) -> dns.rrset.RRset:
    """The SOA record of a negative answer's authority section, the only record there."""
    [rrset] = response.authority
    assert rrset.rdtype == dns.rdatatype.SOA
    return rrset


# -- zone files ------------------------------------------------------------------------

LISTED = "2.0.0.127.bl.test"


def write(path: Path, lines: list[str], how: str = "rename", compress: bool = False) -> None:
    """Publish new data the way operators do: rename (atomic) or overwrite in place."""
    data = ("\n".join(lines) + "\n").encode()
    if compress:
        data = gzip.compress(data)
    if how == "rename":
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    else:
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.truncate(0)
            f.write(data)


def data(reason: str, count: int = 10) -> list[str]:
    """127.0.0.2 with the given TXT, plus ``count`` more addresses."""
    return [f":2:{reason}", "127.0.0.2"] + [f"10.0.0.{i}" for i in range(1, count)]


# -- metrics ---------------------------------------------------------------------------

def fetch(port: int, path: str, accept: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=scaled(5)) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, parsed with prometheus-client's own parser."""
    status, _, text = fetch(port, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


# -- systemd notifications -------------------------------------------------------------

def receive(sock: socket.socket, wanted: str, timeout: float = 10) -> list[str]:
    """Notification datagrams until one contains ``wanted``; each awaited for
    ``timeout`` seconds at most (scaled to the host)."""
    sock.settimeout(scaled(timeout))
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message.split("\n"):
            return seen


@contextmanager
def notified(process, tmp_path, *extra: str, env: dict[str, str] | None = None):
    """A server on bl.test (TXT "one") told NOTIFY_SOCKET=<a socket of ours>:
    yields (notify socket, server, client, zone file)."""
    notify_path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        zone = tmp_path / "bl.zone"
        write(zone, data("one"))
        server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                         *extra, env={"NOTIFY_SOCKET": notify_path, **(env or {})})
        yield notify, server, server.wait_listening(), zone


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.split("\n") if "=" in line)


def as_systemd_starts(udp: socket.socket, tcp: socket.socket) -> list[str]:
    """A command prefix that hands ``udp`` and ``tcp`` to the program after it
    as systemd's socket activation does: at fds 3 and 4, LISTEN_FDS=2 and
    LISTEN_PID its own pid (exec keeps the pid). Pass both in ``pass_fds``."""
    shim = (f"import os, sys; u, t = os.dup({udp.fileno()}), os.dup({tcp.fileno()}); "
            "os.dup2(u, 3); os.dup2(t, 4); os.set_inheritable(3, True); "
            "os.set_inheritable(4, True); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2'); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", shim]


# -- workers ---------------------------------------------------------------------------

def ask_from_new_sockets(client, name: str, count: int,
                         sent: list[int] | None = None) -> list[dns.message.Message]:
    """``count`` queries, each from a fresh source port, so SO_REUSEPORT spreads
    them over the workers. One lost on a loaded host is sent again (a few
    times at most); ``sent`` gets the number of datagrams sent."""
    replies = []
    for i in range(count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(scaled(2))
            wire = dns.message.make_query(name, "TXT", id=i).to_wire()

            def ask(s=s, wire=wire) -> bytes:
                if sent is not None:
                    sent.append(1)
                s.sendto(wire, (client.host, client.port))
                return s.recv(4096)

            replies.append(dns.message.from_wire(retry(ask, (TimeoutError,))))
    return replies


# -- the ledger ------------------------------------------------------------------------

#: The zone every test ledger publishes.
LEDGER_ZONE = "rep.example.org"


def ledger_name(address: str) -> str:
    """The name ``address`` is asked as in the ledger's zone."""
    return ".".join(reversed(address.split("."))) + "." + LEDGER_ZONE


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

    def add(self, key: str, category: str, source: str, reason: str, *more: str) -> str:
        """``dnsbl ledger add``, which must succeed."""
        return self.ok("add", key, "--category", category, "--source", source,
                       "--reason", reason, *more)

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


# -- BIND ------------------------------------------------------------------------------

NAMED = shutil.which("named") or ("/usr/sbin/named" if os.path.exists("/usr/sbin/named")
                                  else None)


class Daemon:
    """A third-party server (named, unbound, knotd, pdns_recursor) in the
    foreground on a free loopback port (or one told to others beforehand),
    with its configuration and log in its own folder under tmp_path, ended
    by PID. A subclass writes the configuration and says the command
    (:meth:`command`) and when it is ready (:meth:`ready`)."""

    name = "daemon"

    def __init__(self, tmp_path: Path, port: int = 0) -> None:
        self.dir = tmp_path / self.name
        self.dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.fixed_port = port  # one told to others beforehand (NOTIFY); 0: any free
        self.port = 0
        self.log = self.dir / f"{self.name}.log"

    def command(self) -> list[str]:
        """Write the configuration for ``self.port``; the command line."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether it serves what the test needs (tried until a deadline)."""
        raise NotImplementedError

    def start(self) -> None:
        for _attempt in range(3):  # a free port may be taken before the server binds it
            self.port = self.fixed_port or free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(self.command(), stdout=log,
                                             stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError(f"{self.name} did not start:\n" + self.log.read_text())

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                if self.ready():
                    return True
            except (dns.exception.DNSException, OSError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        end_process(proc)


def end_process(proc: subprocess.Popen | None) -> None:
    """End a server process a test started, by its PID: TERM, then KILL."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, 15)
    try:
        proc.wait(scaled(10))
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, 9)
        proc.wait(scaled(10))


def unbound_server(port: int, directory: Path) -> str:
    """The ``server:`` lines every test's Unbound starts with: loopback
    only, in the foreground, its files in ``directory``, logging to stderr;
    each test adds its modules and zones after them."""
    return f"""\
server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
"""


def answers_soa(port: int, zone: str) -> bool:
    """Whether the server on ``port`` answers ``zone``'s SOA (has the zone)."""
    r = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=port,
                      timeout=0.2)
    return r.rcode() == dns.rcode.NOERROR and bool(r.answer)


class Named(Daemon):
    """BIND serving the exported files as primaries, on a free loopback port."""

    name = "named"

    def __init__(self, tmp_path: Path, zones: dict[str, Path], port: int = 0) -> None:
        super().__init__(tmp_path, port)
        self.zones = zones

    def command(self) -> list[str]:
        assert NAMED is not None
        conf = self.dir / "named.conf"
        zones = "".join(self.zone_clause(name, path) for name, path in self.zones.items())
        conf.write_text(f"""\
{self.preamble()}options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
{self.options()}
}};
{zones}""")
        return [NAMED, "-g", "-n", "1", "-c", str(conf)]

    def preamble(self) -> str:
        """named.conf statements before options (keys)."""
        return ""

    def options(self) -> str:
        """The options past directory and listening: an authoritative server."""
        return "    recursion no;\n    notify no;"

    def zone_clause(self, name: str, path: Path) -> str:
        return f'zone "{name}" {{ type primary; file "{path}"; }};\n'

    def ready(self) -> bool:
        return all(answers_soa(self.port, name) for name in self.zones)


def ask(port: int, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return retry(lambda: dns.query.udp(q, "127.0.0.1", port=port, timeout=scaled(5)),
                 (dns.exception.Timeout,))


def seen(r: dns.message.Message, rdtype: str) -> tuple[str, list[str]]:
    """What a DNSBL client takes from an answer: listed or not, and the data."""
    data = sorted(rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(
        rdtype) for rd in rrset)
    # NXDOMAIN and NODATA both mean "not listed" to a client (an excluded
    # name under a wildcard is NODATA in a master file; see the README).
    return ("listed" if data else "not listed"), data


# -- the web application (`dnsbl web`) --------------------------------------------------

PASSWORD = "correct horse battery"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Web:
    """One `python -m dnsbl web` child; stop() ends it whatever happened."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dnsbl", "web", "--config", str(ledger.config),
             "--listen", f"127.0.0.1:{self.port}"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self._up(), scaled(30), what="dnsbl web answering")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("dnsbl web exited:\n" + "".join(self.log))
        try:
            return self.request("GET", "/api/v1/openapi.json").status == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                token: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if isinstance(body, dict):
            body = json.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(30))
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            cookies = {}
            for value in response.headers.get_all("set-cookie") or []:
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read(), cookies)
        finally:
            connection.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def make_token(ledger: Ledger, *args: str) -> str:
    """`dnsbl ledger token create ARGS` -> the token it printed alone."""
    out = ledger.ok("token", "create", *args)
    assert re.fullmatch(r"dnsbl_[A-Za-z0-9_-]{43}\n", out), out
    return out.strip()


def set_analyst(ledger: Ledger, name: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dnsbl", "ledger", "--config", str(ledger.config),
         "analyst", "set", name], input=password + "\n", capture_output=True, text=True,
        cwd=ROOT, timeout=60)


def form(web: Web, path: str, fields: dict[str, str], cookies: dict[str, str]):
    return web.request("POST", path, urllib.parse.urlencode(fields), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})


def login(web: Web, name: str, password: str):
    page = web.request("GET", "/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    cookies = dict(page.cookies)
    reply = form(web, "/ui/login", {"csrf": csrf, "name": name, "password": password},
                 cookies)
    cookies.update(reply.cookies)
    return reply, cookies
