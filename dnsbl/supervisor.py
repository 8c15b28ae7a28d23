"""The supervisor's side of ``--workers``: several server processes on the same addresses.

The supervisor binds each listen address once per worker with SO_REUSEPORT, so
the kernel spreads queries over the workers, each socket with its own queue. It
starts every worker as ``python -m dnsbl`` with the same arguments and that
worker's sockets inherited (:mod:`dnsbl.worker`), and keeps the sockets open
while a crashed worker is restarted: the queries queued for it wait instead of
being lost. Each worker loads and reloads the data itself. A stream socket to
each worker carries its readiness (or why it could not start), SIGHUP as a
request to check the files and the answer once it has, ``dnsbl ctl`` requests,
and, when Prometheus scrapes the supervisor, its metric families, which are
folded into one ``/metrics`` (:func:`dnsbl.metrics.fold`). The supervisor also
asks each worker every second whether its loop still answers: one that does
not (stopped, or stuck in a loop) is neither healthy nor ready, holds back
systemd's watchdog, and is killed and restarted if it stays silent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from dnsbl import commands, systemd
from dnsbl.config import Listen, ServerConfig
from dnsbl.control import ControlServer
from dnsbl.metrics import MetricsServer, fold, metric_family
from dnsbl.portlock import PortLock
from dnsbl.server import cancel, ignore_reloads, listener_sets, metrics_sockets, new_event_loop
from dnsbl.worker import (
    CONTROL,
    HANGUP,
    PARENT_ENV,
    PING,
    SCRAPE,
    WORKER_ENV,
    pack_message,
    read_message,
)

log = logging.getLogger(__name__)

STARTUP_FAILURE = 3
#: Seconds a worker may owe an answer before it counts as not answering: not
#: ready, not healthy, no WATCHDOG=1, and scrapes stop waiting for it.
_REPLY_TIMEOUT = 2.0
#: Seconds between the supervisor's "are you there?" to each worker.
_PING_INTERVAL = 1.0
#: Seconds without an answer after which a worker is killed (and restarted).
#: Well inside the unit's WatchdogSec=30, so the supervisor replaces the one
#: stuck worker before systemd restarts the whole service.
_KILL_AFTER = 10.0
#: Seconds READY=1 waits for every worker's reload check after SIGHUP (a
#: 10M-entry zone parses in about 5 s); past it, the ones still busy are named.
_RELOAD_WAIT = 120.0
_STOP_TIMEOUT = 10.0
_MAX_BACKOFF = 30.0


class Channel:
    """The supervisor's end of the stream socket to one running worker: the
    requests sent on it, and each answer matched to the request it answers."""

    def __init__(self, index: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, ready: asyncio.Event) -> None:
        self._index = index
        self._writer = writer
        self._ready = ready  # set when the worker says it is
        self.fatal: str | None = None  # why it could not start, in its words
        self._scraped: asyncio.Future[dict | None] | None = None  # the scrape asked last
        self._reloaded: asyncio.Future[bool] | None = None  # the SIGHUP passed on last: changed?
        self.reload_status = "serving"  # its STATUS= line after the SIGHUP passed on last
        #: dnsbl ctl requests passed on and not yet answered, by number.
        self._controls: dict[int, asyncio.Future[dict | None]] = {}
        self._requests = 0  # dnsbl ctl requests passed on, to number them
        # When each scrape or ping not yet answered was sent, oldest first: the
        # worker answers them in order, so the oldest tells how long it is silent.
        self._asked: collections.deque[float] = collections.deque()
        self.listener = asyncio.create_task(self._listen(reader))  # held: not collected

    def silent_for(self, now: float) -> float:
        """Seconds the worker has owed an answer; 0 when it owes none."""
        return now - self._asked[0] if self._asked else 0.0

    def close(self) -> None:
        self._writer.close()

    def ping(self) -> None:
        """Ask whether its loop runs, unless a question is still open (one at a time)."""
        if not self._asked:
            try:
                self._ask(PING)
            except (ConnectionError, RuntimeError):
                pass  # it is ending; WorkerProcess.keep() starts another

    def ask_reload(self) -> asyncio.Future[bool]:
        """Pass SIGHUP on; the answer: did a file change?"""
        self._reloaded = asyncio.get_running_loop().create_future()
        self.reload_status = "serving"
        self._writer.write(HANGUP)
        return self._reloaded

    async def forward(self, request: Any) -> dict[str, Any]:
        """Pass a dnsbl ctl ``request`` on; its reply, or why there is none."""
        self._requests += 1
        number = self._requests
        answered: asyncio.Future[dict | None] = asyncio.get_running_loop().create_future()
        self._controls[number] = answered
        # A reload waits for the files to load, as READY=1 after SIGHUP does.
        wait = _RELOAD_WAIT if request["command"] == "reload" else _KILL_AFTER
        try:
            self._writer.write(CONTROL + pack_message({"control": number, "request": request}))
            reply = await asyncio.wait_for(answered, wait)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            reply = None
            why = f"did not answer in {wait:.0f}s" if isinstance(exc, TimeoutError) else "ended"
        else:
            why = "ended before it answered"
        finally:
            self._controls.pop(number, None)
        return reply or {"ok": False, "error": f"worker {self._index} {why}"}

    async def scrape(self, now: float) -> dict | None:
        """Its metric families and readiness problems, waiting only until it
        would count as not answering; None without an answer."""
        self._scraped = asyncio.get_running_loop().create_future()
        try:
            self._ask(SCRAPE)
            return await asyncio.wait_for(self._scraped, self._asked[0] + _REPLY_TIMEOUT - now)
        except (TimeoutError, ConnectionError, RuntimeError):
            return None

    def _ask(self, request: bytes) -> None:
        """Send a scrape or a ping, remembering when: it is answered in turn."""
        self._writer.write(request)
        self._asked.append(time.monotonic())

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Take its messages until it ends: ready (once its zones are loaded),
        fatal, and the answers to what it was asked."""
        try:
            while True:
                message = await read_message(reader)
                if "ready" in message:
                    self._ready.set()
                elif "fatal" in message:
                    self.fatal = message["fatal"]
                elif "reloaded" in message:
                    if self._reloaded is not None and not self._reloaded.done():
                        self.reload_status = message.get("status", "serving")
                        self._reloaded.set_result(message["changed"])
                elif "control" in message:
                    answered = self._controls.pop(message["control"], None)
                    if answered is not None and not answered.done():
                        answered.set_result(message["reply"])
                else:  # the answer to a scrape or a ping, in the order asked
                    if self._asked:
                        self._asked.popleft()
                    if ("families" in message and self._scraped is not None
                            and not self._scraped.done()):
                        self._scraped.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # it ended; whoever waits on the process sees that
        finally:
            # Nobody waits for an answer from a worker that has gone: one
            # restarted in its place loads the files as they are now.
            if self._reloaded is not None and not self._reloaded.done():
                self._reloaded.set_result(True)
            if self._scraped is not None and not self._scraped.done():
                self._scraped.set_result(None)
            for answered in self._controls.values():
                if not answered.done():
                    answered.set_result(None)
            self._controls.clear()


class WorkerProcess:
    """One worker as its supervisor sees it: the process, started again in its
    place (on the same sockets) when it ends or stops answering, and what it
    said last."""

    def __init__(self, index: int, sockets: list[socket.socket], argv: list[str]) -> None:
        self.index = index
        self.sockets = sockets
        self._argv = argv
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None  # to the process running now
        self.ready = asyncio.Event()
        self.started = 0.0
        self.restarts = 0
        # Its last scrape: kept while it does not answer (counters must not go back).
        self.families: list[Metric] = []
        self.problems: list[str] = []
        self._silent = False  # said so in the log

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def silent_for(self, now: float) -> float:
        """Seconds this worker has owed an answer; 0 when it owes none."""
        return self.channel.silent_for(now) if self.channel is not None else 0.0

    def answering(self, now: float) -> bool:
        """Ready, and its loop answered what it was asked in time."""
        return self.ready.is_set() and self.silent_for(now) <= _REPLY_TIMEOUT

    def state(self, now: float) -> str:
        """What ``dnsbl ctl status`` says of it."""
        if self.answering(now):
            return "answering"
        if self.ready.is_set():
            return "not answering"
        return "starting" if self.running else "not running"

    async def start(self) -> None:
        """Start the process, with its sockets and its end of the channel."""
        ours, theirs = socket.socketpair()
        fds = [s.fileno() for s in self.sockets]
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        env[WORKER_ENV] = f"{self.index}:{theirs.fileno()}:{','.join(map(str, fds))}"
        env[PARENT_ENV] = str(os.getpid())
        self.ready.clear()
        self._silent = False
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dnsbl", *self._argv, env=env,
            pass_fds=(*fds, theirs.fileno()))
        theirs.close()
        self.started = time.monotonic()
        reader, writer = await asyncio.open_connection(sock=ours)
        log.info("worker %d started (pid %d)", self.index, self.process.pid)
        self.channel = Channel(self.index, reader, writer, self.ready)

    async def wait_ready(self, stopping: asyncio.Event) -> int | None:
        """Wait until it is ready (None) or ``stopping`` is set (0); if it ends
        first, say why once and return its exit status."""
        assert self.process is not None and self.channel is not None
        waiting = asyncio.ensure_future(self.ready.wait())
        exited = asyncio.ensure_future(self.process.wait())
        stopped = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({waiting, exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for future in (waiting, exited, stopped):
            future.cancel()
        if stopping.is_set():
            return 0
        if self.ready.is_set():
            return None
        code = self.process.returncode or STARTUP_FAILURE
        # It may have said why: read all it sent.
        await asyncio.wait({self.channel.listener}, timeout=_REPLY_TIMEOUT)
        log.error("%s", self.channel.fatal or f"cannot start: worker {self.index} ended "
                                              f"with exit status {code} before it was ready")
        return code

    async def keep(self) -> None:
        """Start it again whenever it ends, waiting longer each time it ends
        soon after starting (a crash loop must not spin)."""
        backoff = 0.5
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if self.channel is not None:
                self.channel.close()
            self.ready.clear()
            lived = time.monotonic() - self.started
            backoff = min(backoff * 2, _MAX_BACKOFF) if lived < 10 else 1.0
            log.error("worker %d (pid %d) ended with status %s; restarting in %.0fs",
                      self.index, self.process.pid, code, backoff)
            await asyncio.sleep(backoff)
            self.restarts += 1
            await self.start()

    def check(self, now: float) -> None:
        """Ping it when it owes no answer; say when it falls silent or answers
        again, and kill one silent too long (:meth:`keep` starts another)."""
        process = self.process
        if not self.ready.is_set() or process is None or process.returncode is not None:
            return
        silent = self.silent_for(now)
        if silent > _KILL_AFTER:
            log.error("worker %d (pid %d) has not answered for %.0fs; killing it",
                      self.index, process.pid, silent)
            process.kill()
            self.ready.clear()  # not again: keep() waits for it and starts another
            return
        if silent > _REPLY_TIMEOUT and not self._silent:
            self._silent = True
            log.error("worker %d (pid %d) has not answered for %.0fs; not ready until it "
                      "does, killed after %.0fs", self.index, process.pid, silent,
                      _KILL_AFTER)
        elif silent <= _REPLY_TIMEOUT and self._silent:
            self._silent = False
            log.info("worker %d (pid %d) answers again", self.index, process.pid)
        if self.channel is not None:
            self.channel.ping()

    def signal(self, sig: signal.Signals) -> None:
        """Pass ``sig`` on if it is ready: one still loading has no handler
        yet, and the signal's default action would end it."""
        if self.ready.is_set() and self.process is not None and self.running:
            self.process.send_signal(sig)

    async def scrape(self) -> None:
        """Take its metric families and readiness problems. One that does not
        answer is not waited for again at every scrape: its last series stand,
        and /readyz says why."""
        now = time.monotonic()
        if not self.answering(now) or self.channel is None:
            return
        reply = await self.channel.scrape(now)
        if reply is not None:  # else its last reply stands; a dead one is restarted
            self.families = reply["families"]
            self.problems = reply["problems"]


class Supervisor:
    """Runs ``count`` workers and stands for them: one log, one /metrics, one pid
    for signals and systemd."""

    def __init__(self, config: ServerConfig, count: int, argv: Sequence[str],
                 control: socket.socket | None = None) -> None:
        self.config = config
        self.count = count
        self.argv = list(argv)
        self._control_socket = control  # bound already; served once the workers are ready
        self._started = time.monotonic()
        self._workers: list[WorkerProcess] = []
        self._stopping = asyncio.Event()
        self._scrape = asyncio.Lock()
        self._reloading = asyncio.Lock()
        self._hangups: set[asyncio.Task] = set()
        self._bound: list[Listen] = []
        self._metrics_sockets: list[socket.socket] | None = None
        self._lock = PortLock()  # our listen addresses, claimed until we exit

    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM; the exit status.
        :meth:`bind` first."""
        loop = new_event_loop()
        try:
            return loop.run_until_complete(self._main())
        finally:
            loop.close()

    def bind(self) -> None:
        """Bind every listen address once per worker, or take systemd's sockets.

        :raises StartupError: naming the address that cannot be bound.
        """
        per_worker, _origin = listener_sets(self.config, self.count, self._lock)
        self._workers = [WorkerProcess(i + 1, s, self.argv) for i, s in enumerate(per_worker)]
        self._bound = list(dict.fromkeys(Listen(*s.getsockname()[:2]) for s in per_worker[0]))
        self._metrics_sockets = metrics_sockets(self.config)

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        # SIGHUP: every worker checks its files (systemctl reload).
        loop.add_signal_handler(signal.SIGHUP, self._hangup)
        # SIGUSR1 and SIGUSR2 (log statistics, and reset them): each worker
        # logs its own counts.
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            loop.add_signal_handler(sig, self._pass_on, sig)
        metrics = None
        control = None
        if self.config.metrics is not None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Folded(self._workers))  # type: ignore[arg-type]
            metrics = MetricsServer(registry, self.readiness, refresh=self._refresh,
                                    health=self.health,
                                    max_connections=self.config.metrics_max_connections)
            try:
                port = await metrics.start(self.config.metrics.host, self.config.metrics.port,
                                           self._metrics_sockets)
            except OSError as exc:
                log.error("cannot serve metrics on %s: %s", self.config.metrics,
                          exc.strerror or exc)
                return STARTUP_FAILURE
            log.info("metrics on http://%s/metrics", Listen(self.config.metrics.host, port))
        started = False
        try:
            code = await self._start_all()
            if code is not None:
                return code
            started = True
            if self._control_socket is not None:
                control = ControlServer(self._control_socket, self._control)
                await control.start()
            for bound in self._bound:
                log.info("listening on udp+tcp %s (%d workers)", bound, self.count)
            systemd.notify("READY=1\nSTATUS=serving")
            log.info("ready")
            tasks = [asyncio.create_task(w.keep()) for w in self._workers]
            tasks.append(asyncio.create_task(self._heartbeat(systemd.watchdog_interval())))
            await self._stopping.wait()
            ignore_reloads(loop)
            # A reload under way ends (READY=1) before STOPPING=1, never after.
            await cancel(self._hangups)
            systemd.notify("STOPPING=1")
            await cancel(tasks)
            return 0
        finally:
            await cancel(self._hangups)  # stopped while starting: none left pending
            if control is not None:
                control.close()
            elif self._control_socket is not None:
                self._control_socket.close()
            await self._stop_all()
            await cancel(w.channel.listener for w in self._workers if w.channel is not None)
            if metrics is not None:
                metrics.close()
            if started:
                log.info("stopped")

    async def _start_all(self) -> int | None:
        """Start every worker and wait until each is ready; the exit status if one
        could not start (a zone that cannot load, say), else None."""
        for worker in self._workers:
            await worker.start()
        for worker in self._workers:
            code = await worker.wait_ready(self._stopping)
            if code is not None:
                return code
        return None

    async def _heartbeat(self, watchdog: float | None) -> None:
        """Ask every ready worker whether its loop runs (:meth:`WorkerProcess.check`).
        With ``watchdog`` (seconds), tell systemd WATCHDOG=1 only while every
        worker answers: the supervisor's own loop running proves nothing about
        theirs."""
        period = min(_PING_INTERVAL, watchdog) if watchdog else _PING_INTERVAL
        while True:
            now = time.monotonic()
            for worker in self._workers:
                worker.check(now)
            if watchdog and all(w.answering(now) for w in self._workers if w.ready.is_set()):
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(period)

    async def _stop_all(self) -> None:
        running = [w.process for w in self._workers if w.process is not None and w.running]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), _STOP_TIMEOUT)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.error("worker pid %d did not stop in %.0fs; killing it", process.pid,
                              _STOP_TIMEOUT)
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))

    def _pass_on(self, sig: signal.Signals) -> None:
        for worker in self._workers:
            worker.signal(sig)

    def _hangup(self) -> None:
        task = asyncio.create_task(self._reload())
        self._hangups.add(task)
        task.add_done_callback(self._hangups.discard)

    async def _reload(self) -> None:
        """Have every ready worker check its files; tell systemd RELOADING=1
        now and READY=1 once all have (a worker still starting loads the files
        as they are anyway)."""
        said: list[str] = []  # what went wrong, for STATUS= with READY=1

        def status() -> str:
            return "serving" if not said else "; ".join(said)

        async with self._reloading:
            with systemd.reloading(status=status):
                # Not one that does not answer: READY=1 would wait for it until it is
                # killed, and the one started in its place loads the files anyway.
                asked = {channel: channel.ask_reload() for channel in self._answering().values()}
                if asked:
                    done, late = await asyncio.wait(asked.values(), timeout=_RELOAD_WAIT)
                    # The workers read the same files: one failure said is enough.
                    said.extend(list(dict.fromkeys(
                        channel.reload_status for channel, future in asked.items()
                        if future in done and channel.reload_status != "serving"))[:1])
                    if late:
                        log.warning("%d worker(s) still checking files %.0f s after SIGHUP; "
                                    "ready without them", len(late), _RELOAD_WAIT)
                        said.append(f"{len(late)} worker(s) still checking files")
                    elif not any(future.result() for future in done):
                        log.info("SIGHUP: no zone file changed")

    async def _control(self, request: Any) -> dict[str, Any]:
        """A dnsbl ctl request: status and reload go to every worker, folded
        into one reply; a query to one (each holds the same data)."""
        problem = commands.invalid(self.config, request)
        if problem:
            return {"ok": False, "error": problem}
        now = time.monotonic()
        answering = self._answering()
        command = request["command"]
        if not answering:
            return {"ok": False, "error": "no worker is answering"}
        if command == "query":
            return await next(iter(answering.values())).forward(request)
        replies = dict(zip(answering, await asyncio.gather(
            *(channel.forward(request) for channel in answering.values())), strict=True))
        if command == "reload":
            return commands.merge_reloads(list(replies.values()), commands.zone_of(request))
        states = [{"index": w.index, "pid": w.process.pid if w.process else None,
                   "state": w.state(now), "restarts": w.restarts} for w in self._workers]
        own = {"pid": os.getpid(), "uptime": round(now - self._started, 1)}
        return commands.merge_status(own, [replies.get(w) for w in self._workers], states)

    def _answering(self) -> dict[WorkerProcess, Channel]:
        """The channel of each worker that answers now."""
        now = time.monotonic()
        return {w: w.channel for w in self._workers
                if w.answering(now) and w.channel is not None}

    async def _refresh(self) -> None:
        """Ask every ready worker for its metric families and readiness."""
        async with self._scrape:
            await asyncio.gather(*(w.scrape() for w in self._workers if w.ready.is_set()))

    def health(self) -> list[str]:
        """Workers that cannot answer queries: not started yet or still loading
        (its sockets queue queries nobody reads), or whose loop does not
        answer; [] when every one answers."""
        now = time.monotonic()
        return [f"worker {w.index}: has not answered for {w.silent_for(now):.1f}s"
                if w.ready.is_set() else
                f"worker {w.index}: not answering yet, started {now - w.started:.1f}s ago "
                "(loading its zones)"
                for w in self._workers if not w.answering(now)]

    def readiness(self) -> list[str]:
        """Why the workers are not ready to serve, each named; [] when they are."""
        problems = []
        now = time.monotonic()
        for worker in self._workers:
            if not worker.ready.is_set():
                problems.append(f"worker {worker.index}: not running")
            elif not worker.answering(now):
                problems.append(f"worker {worker.index}: has not answered for "
                                f"{worker.silent_for(now):.1f}s")
                continue  # what it said before is stale
            problems.extend(f"worker {worker.index}: {p}" for p in worker.problems)
        return problems


class _Folded:
    """The workers' metric families folded into one set, and the supervisor's own."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        yield from fold(w.families for w in self._workers)
        running = metric_family("dnsbl_workers", [])
        now = time.monotonic()
        running.add_metric([], sum(1 for w in self._workers if w.answering(now)))
        restarts = metric_family("dnsbl_worker_restarts_total", [])
        restarts.add_metric([], sum(w.restarts for w in self._workers))
        yield from (running, restarts)
