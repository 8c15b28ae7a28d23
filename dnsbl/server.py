"""One server process: bind the listeners, answer until told to stop."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from dnsbl import batch, commands, systemd
from dnsbl.answer import FAST_PATH, FAST_PATH_WHY, Edns
from dnsbl.commands import Statistics
from dnsbl.config import Listen, ServerConfig
from dnsbl.control import ControlServer
from dnsbl.metrics import MetricsServer, bind_sockets, build_registry
from dnsbl.portlock import Held, PortLock
from dnsbl.protocols import Shared, TCPLimits, TCPProtocol, UDPProtocol
from dnsbl.querylog import QueryLog
from dnsbl.reload import CheckResult, DatasetStatus, Reloader, status_line
from dnsbl.rrl import RateLimiter
from dnsbl.stats import Stats
from dnsbl.xfr import Transfers
from dnsbl.zones import DatasetKey, ServedZones, Snapshot

log = logging.getLogger(__name__)

#: Seconds a thread may hold the GIL before another gets it (Python's default: 0.005).
SWITCH_INTERVAL = 0.0005
#: Bytes of queued datagrams a UDP socket may hold (SO_RCVBUF), as NSD's and
#: Unbound's so-rcvbuf advise for busy servers.
UDP_RECEIVE_BUFFER = 1 << 20
#: Seconds open TCP connections get at a stop to take the answers already made.
STOP_GRACE = 0.5


class StartupError(Exception):
    """The server cannot start; the message says why."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else the stdlib one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Server:
    """Serves the current snapshot of its zones on the configured listeners, UDP and TCP."""

    def __init__(self, config: ServerConfig, zoneset: Snapshot,
                 sockets: list[socket.socket] | None = None, origin: str = "",
                 metrics_sockets: list[socket.socket] | None = None,
                 control: socket.socket | None = None) -> None:
        self.config = config
        self._started = time.monotonic()
        self._control_socket = control  # bound already, served once running (dnsbl ctl)
        self._control: ControlServer | None = None
        self.statistics = Statistics()  # what SIGUSR1 and SIGUSR2 log
        self._given = sockets  # bound already: by the caller, a supervisor or systemd
        self._lock = PortLock()  # the addresses claimed when we bind them ourselves
        self._origin = origin  # who bound them, for the log
        self._metrics_sockets = metrics_sockets  # the same, for the metrics endpoint
        #: Zone transfers, where the configuration allows any; their serials
        #: are set on every snapshot before it is served.
        self.transfers = (Transfers(config) if any(z.transfer for z in config.zones)
                          else None)
        self.served = ServedZones(
            zoneset, stamp=self.transfers.stamp if self.transfers is not None else None)
        if self.transfers is not None:
            self.transfers.served = self.served
        self.stats = Stats()
        self.tcp_limits = TCPLimits(config.tcp_idle_timeout, config.tcp_max_connections,
                                    max_per_client=config.tcp_max_per_client)
        rrl = config.rrl
        self.rrl = None if rrl is None else RateLimiter(
            rrl.rate, rrl.slip, rrl.ipv4_prefix, rrl.ipv6_prefix, rrl.exempt)
        self.bound: list[Listen] = []
        self.metrics_port: int | None = None
        self.loop_name = "asyncio"
        self._transports: list[asyncio.BaseTransport] = []
        self._batched: list[batch.BatchedUDP] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._metrics: MetricsServer | None = None
        self._stop = asyncio.Event()
        self.running = asyncio.Event()  # set once serve_forever has made the reloader
        self.reloader: Reloader | None = None
        self.query_log: QueryLog | None = None
        self._hangups: set[asyncio.Task] = set()  # held so they are not collected
        self._reloading = asyncio.Lock()

    # -- what metrics and health read --------------------------------------------

    def zoneset(self) -> Snapshot:
        return self.served.current

    def transport_counts(self) -> tuple[list[int], int, int]:
        return ((self.rrl.limited if self.rrl else [0, 0]), self.tcp_limits.open,
                self.tcp_limits.buffered())

    def query_log_dropped(self) -> int:
        return self.query_log.dropped if self.query_log else 0

    def transfer_counts(self) -> dict[tuple[str, str, str], int]:
        return self.transfers.counts if self.transfers is not None else {}

    def notify_counts(self) -> dict[tuple[str, str], int]:
        return self.transfers.notifier.counts if self.transfers is not None else {}

    def tsig_counts(self) -> dict[str, int]:
        return self.transfers.tsig_counts if self.transfers is not None else {}

    def uptime(self) -> float:
        return time.monotonic() - self._started

    def log_statistics(self, reset: bool = False) -> None:
        """SIGUSR1 (and SIGUSR2, ``reset``): the counts since start or the
        last reset, as rbldnsd logs them; nothing else changes."""
        self.statistics.log(self.served.current, self.stats, self.uptime(), reset)

    def reload_status(self) -> dict[DatasetKey, DatasetStatus]:
        return self.reloader.status if self.reloader else {}

    def readiness(self) -> list[str]:
        """Why this node should not take traffic; [] when it should."""
        problems = []
        now = time.time()
        current = self.served.current
        for zone_config in self.config.zones:
            zone = current.by_name(zone_config.name)
            if zone is None or not zone.loaded:
                problems.append(f"zone {zone_config.name}: not loaded")
            elif zone.expired:
                problems.append(f"zone {zone.name}: data expired ($TIMESTAMP)")
            elif zone_config.max_data_age is not None:
                age = now - max((d.mtime for d in zone.datasets), default=0)
                if age > zone_config.max_data_age:
                    problems.append(f"zone {zone.name}: data is {age:.0f}s old, over "
                                    f"max_data_age {zone_config.max_data_age:.0f}s")
        if self.reloader is not None:
            problems.extend(self.reloader.failed_datasets())
        return problems

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP and TCP on every listener (TCP on the port UDP got, so port 0
        works), unless given sockets; then the metrics endpoint.

        :raises StartupError: naming what could not be bound.
        """
        loop = asyncio.get_running_loop()
        log.info("answering with the %s fast path%s", FAST_PATH, FAST_PATH_WHY)
        self.loop_name = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
        if self.config.query_log:
            try:
                self.query_log = QueryLog(self.config.query_log, self.config.query_log_sample,
                                          self.zoneset)
            except OSError as exc:
                raise StartupError(f"cannot open query log {self.config.query_log}: "
                                   f"{exc.strerror or exc}") from None
        if self._given is None:
            self._given, self._origin = listeners(self.config, self._lock)
        pairs = _paired(self._given)
        shared = Shared(self.served, self.stats,
                        Edns(self.config.edns_payload, self.config.nsid.encode()),
                        self.query_log, self.rrl, self.tcp_limits, self.transfers)
        for udp, tcp in pairs:
            if udp is not None and self.config.udp_batch and batch.AVAILABLE:
                batched = batch.BatchedUDP(udp, shared, self.config.udp_batch)
                batched.start(loop)
                self._batched.append(batched)
            elif udp is not None:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: UDPProtocol(shared), sock=udp)
                self._transports.append(transport)
            if tcp is not None:
                self._servers.append(await loop.create_server(
                    lambda: TCPProtocol(shared), sock=tcp))
            sock = udp or tcp
            assert sock is not None
            host, port = sock.getsockname()[:2]
            bound = Listen(host, port)
            self.bound.append(bound)
            what = "udp+tcp" if udp and tcp else "udp" if udp else "tcp"
            log.info("listening on %s %s%s", what, bound,
                     f" (from {self._origin})" if self._origin else "")
        if self.config.metrics is not None:
            registry = build_registry(self, self.loop_name, self.config.ledger)
            self._metrics = MetricsServer(registry, self.readiness,
                                          max_connections=self.config.metrics_max_connections)
            try:
                self.metrics_port = await self._metrics.start(
                    self.config.metrics.host, self.config.metrics.port, self._metrics_sockets)
            except OSError as exc:
                self.close()
                raise StartupError(f"cannot serve metrics on {self.config.metrics}: "
                                   f"{exc.strerror or exc}") from None
            log.info("metrics on http://%s/metrics",
                     Listen(self.config.metrics.host, self.metrics_port))

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        for batched in self._batched:
            batched.close()
        self._servers.clear()
        self._transports.clear()
        self._batched.clear()
        self._lock.release()

    async def serve_forever(self, handle_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.reloader = Reloader(self.config, self.served, notify=systemd.notify)
        if handle_signals:
            # SIGTERM from systemd or kill, SIGINT from Ctrl-C.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            # SIGHUP: check the zone files now (systemctl reload).
            loop.add_signal_handler(signal.SIGHUP, self._hangup)
            # SIGUSR1 and SIGUSR2 mean what they mean to rbldnsd: log the
            # statistics, and log and reset them.
            loop.add_signal_handler(signal.SIGUSR1, self.log_statistics)
            loop.add_signal_handler(signal.SIGUSR2, self.log_statistics, True)
        if self.transfers is not None:
            # Bound and serving since start(): a secondary told asks at once.
            self.transfers.announce()
        tasks = [asyncio.create_task(self.reloader.run())]
        if self._control_socket is not None:
            self._control = ControlServer(self._control_socket,
                                          lambda request: commands.handle(self, request))
            await self._control.start()
        if self.query_log is not None:
            self.query_log.start()
        interval = systemd.watchdog_interval()
        if interval:
            tasks.append(asyncio.create_task(watchdog(interval)))
        self.running.set()
        systemd.notify("READY=1\nSTATUS=serving")
        log.info("ready")
        try:
            await self._stop.wait()
        finally:
            if handle_signals:
                ignore_reloads(loop)
            # A reload under way ends (READY=1) before STOPPING=1, never after.
            await cancel(self._hangups)
            systemd.notify("STOPPING=1")
            await cancel(tasks)
            if self._control is not None:
                self._control.close()
            self.reloader.close()
            self.close()
            if self.transfers is not None:
                await self.transfers.close()
            await self.tcp_limits.close_all(STOP_GRACE)
            if self.query_log is not None:
                self.query_log.close()
            log.info("stopped")

    def _hangup(self) -> None:
        task = asyncio.create_task(self._announced_hangup())
        self._hangups.add(task)
        task.add_done_callback(self._hangups.discard)

    async def _announced_hangup(self) -> None:
        """SIGHUP: RELOADING=1, check the files, READY=1, whether or not any
        changed: Type=notify-reload waits for READY=1 after every SIGHUP."""
        result = CheckResult()
        async with self._reloading:
            with systemd.reloading(status=lambda: status_line(result)):
                result = await self.hangup()
        if not result.changed:
            log.info("SIGHUP: no zone file changed")

    async def hangup(self) -> CheckResult:
        """What SIGHUP does, returning what the check of the zone files did."""
        assert self.reloader is not None
        if self.query_log is not None:
            self.query_log.reopen()
        return await self.reloader.check_soon()


def ignore_reloads(loop: asyncio.AbstractEventLoop) -> None:
    """Stopping: SIGHUP and SIGUSR1 start no reload (systemd would hear
    RELOADING=1 after STOPPING=1), nor end the process by their default action."""
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


async def cancel(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel ``tasks`` and wait until each has ended: one left pending when
    the loop closes is "Task was destroyed but it is pending!"."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def watchdog(interval: float) -> None:
    """Tell systemd the loop is alive; if the loop hangs, the pings stop."""
    while True:
        systemd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def _bound_socket(listen: Listen, kind: int, partner: socket.socket | None = None,
                  reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``listen``; closes ``partner`` too if binding fails.
    ``reuse_port``: others may bind the same address (SO_REUSEPORT, workers)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_DGRAM:
            # A burst (mail servers' resolvers at a spam run) waits here while
            # a batch is answered; the kernel's default (~200 KiB, some 200
            # datagrams) drops it. The kernel caps this at net.core.rmem_max.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        sock.bind((listen.host, listen.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        if partner is not None:
            partner.close()
        raise
    return sock


def listeners(config: ServerConfig, lock: PortLock) -> tuple[list[socket.socket], str]:
    """The sockets to answer on, and who bound them: systemd's (socket
    activation), else ours, bound to every listen address, each claimed in
    ``lock`` first.

    :raises StartupError: naming the address that cannot be bound or that
        another instance serves.
    """
    [sockets], origin = listener_sets(config, 1, lock)
    return sockets, origin


def listener_sets(config: ServerConfig, copies: int, lock: PortLock
                  ) -> tuple[list[list[socket.socket]], str]:
    """``copies`` sets of sockets on every listen address, the port of each
    the same in all (SO_REUSEPORT when more than one, for workers), and who
    bound them; systemd's sockets, every set the same, under socket activation.
    Each address is claimed in ``lock`` before it is bound (port 0 once bound),
    so a second instance cannot join our SO_REUSEPORT group.

    :raises StartupError: naming the address that cannot be bound or that
        another instance serves.
    """
    try:
        inherited = systemd.listen_sockets()
    except OSError as exc:
        raise StartupError(exc.strerror) from None
    sets: list[list[socket.socket]] = [[] for _ in range(copies)]
    try:
        if inherited:
            for sock in inherited:
                lock.take(*sock.getsockname()[:2])
            return [inherited] * copies, "systemd"
        for listen in config.listen:
            try:
                lock.take(listen.host, listen.port)
                first = bind_pair(listen, reuse_port=copies > 1)
                sets[0].extend(first)
                same_port = Listen(listen.host, first[0].getsockname()[1])
                lock.take(same_port.host, same_port.port)
                for sockets in sets[1:]:
                    sockets.extend(bind_pair(same_port, reuse_port=True))
            except OSError as exc:
                raise StartupError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    except (StartupError, Held) as exc:
        for sock in {s for sockets in (*sets, inherited) for s in sockets}:
            sock.close()
        lock.release()
        raise StartupError(str(exc)) from None
    return sets, ""


def metrics_sockets(config: ServerConfig) -> list[socket.socket] | None:
    """The metrics endpoint's sockets (None when it is off), bound before
    anything loads so that a port clash stops start-up at once.

    :raises StartupError: naming the address that cannot be bound.
    """
    if config.metrics is None:
        return None
    try:
        return bind_sockets(config.metrics.host, config.metrics.port)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {config.metrics}: "
                           f"{exc.strerror or exc}") from None


def _paired(sockets: list[socket.socket]
            ) -> list[tuple[socket.socket | None, socket.socket | None]]:
    """(UDP, TCP) per address, either None where only the other is there."""
    pairs: dict[tuple, list[socket.socket | None]] = {}
    for sock in sockets:
        pair = pairs.setdefault(sock.getsockname()[:2], [None, None])
        pair[0 if sock.type == socket.SOCK_DGRAM else 1] = sock
    return [(udp, tcp) for udp, tcp in pairs.values()]


def bind_pair(listen: Listen, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on one port. For port 0 the port UDP got may be taken
    for TCP (a client's ephemeral port), so try again with another."""
    for _attempt in range(50):
        udp = _bound_socket(listen, socket.SOCK_DGRAM, reuse_port=reuse_port)
        port = udp.getsockname()[1]
        try:
            return udp, _bound_socket(Listen(listen.host, port), socket.SOCK_STREAM, udp,
                                      reuse_port)
        except OSError as exc:
            if listen.port != 0 or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")


def run(config: ServerConfig, zoneset: Snapshot, sockets: list[socket.socket] | None = None,
        alongside: Callable[[Server], Coroutine[Any, Any, None]] | None = None,
        origin: str = "", metrics_sockets: list[socket.socket] | None = None,
        control: socket.socket | None = None) -> None:
    """Serve until SIGTERM/SIGINT, on ``sockets`` if given (bound by ``origin``)
    and the metrics on ``metrics_sockets`` if given; ``alongside(server)``
    runs as a task while serving; ``control``: the bound control socket to serve.

    :raises StartupError: when a listener cannot be bound.
    """

    async def main() -> None:
        server = Server(config, zoneset, sockets, origin, metrics_sockets, control)
        await server.start()
        if alongside is not None:
            task = asyncio.create_task(alongside(server))
        await server.serve_forever()
        if alongside is not None:
            await cancel([task])

    # A reload parses in a thread; with the default 5 ms GIL switch interval each
    # query waiting behind it could wait that long. Hand the GIL over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL)
    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
