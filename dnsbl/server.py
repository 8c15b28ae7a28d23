"""One server process: bind the listeners, answer until told to stop."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket

from dnsbl.answer import Stats
from dnsbl.config import Listen, ServerConfig
from dnsbl.protocols import TCPLimits, TCPProtocol, UDPProtocol
from dnsbl.registry import Registry, ZoneSet
from dnsbl.reload import Reloader

log = logging.getLogger(__name__)

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
    """Serves a registry's zones on the configured listeners, UDP and TCP."""

    def __init__(self, config: ServerConfig, zoneset: ZoneSet) -> None:
        self.config = config
        self.registry = Registry(zoneset)
        self.stats = Stats()
        self.tcp_limits = TCPLimits()
        self.bound: list[Listen] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._stop = asyncio.Event()
        self.running = asyncio.Event()  # set once serve_forever has made the reloader
        self.reloader: Reloader | None = None

    async def start(self) -> None:
        """Bind UDP and TCP on every listener (TCP on the port UDP got, so port 0
        works); raise StartupError naming the one that failed."""
        loop = asyncio.get_running_loop()
        for listen in self.config.listen:
            try:
                udp, tcp = _bind_pair(listen)
                port = udp.getsockname()[1]
            except OSError as exc:
                self.close()
                raise StartupError(
                    f"cannot listen on {listen}: {exc.strerror or exc}") from None
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UDPProtocol(self.registry, self.stats), sock=udp)
            self._transports.append(transport)
            self._servers.append(await loop.create_server(
                lambda: TCPProtocol(self.registry, self.stats, self.tcp_limits), sock=tcp))
            bound = Listen(listen.host, port)
            self.bound.append(bound)
            log.info("listening on udp+tcp %s", bound)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        self._servers.clear()
        self._transports.clear()

    async def serve_forever(self, handle_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.reloader = Reloader(self.config, self.registry)
        if handle_signals:
            # SIGTERM from systemd or kill, SIGINT from Ctrl-C.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            # SIGHUP: check the zone files now (systemctl reload).
            loop.add_signal_handler(signal.SIGHUP, self.reloader.request)
            # SIGUSR1: the same, accepting data that shrinks a zone past its guard.
            loop.add_signal_handler(signal.SIGUSR1, self.reloader.request, True)
        watcher = asyncio.create_task(self.reloader.run())
        self.running.set()
        try:
            await self._stop.wait()
        finally:
            watcher.cancel()
            self.close()
            log.info("stopped")


def _bound_socket(listen: Listen, kind: int, partner: socket.socket | None = None
                  ) -> socket.socket:
    """A socket bound to ``listen``; closes ``partner`` too if binding fails."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def _bind_pair(listen: Listen) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on one port. For port 0 the port UDP got may be taken
    for TCP (a client's ephemeral port), so try again with another."""
    for _attempt in range(50):
        udp = _bound_socket(listen, socket.SOCK_DGRAM)
        port = udp.getsockname()[1]
        try:
            return udp, _bound_socket(Listen(listen.host, port), socket.SOCK_STREAM, udp)
        except OSError as exc:
            if listen.port != 0 or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")


def run(config: ServerConfig, zoneset: ZoneSet) -> None:
    """Serve until SIGTERM/SIGINT.

    :raises StartupError: when a listener cannot be bound.
    """

    async def main() -> None:
        server = Server(config, zoneset)
        await server.start()
        await server.serve_forever()

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
