"""Several server processes on the same addresses: a supervisor and its workers.

The supervisor binds each listen address once per worker with SO_REUSEPORT, so
the kernel spreads queries over the workers, each socket with its own queue. It
starts every worker as ``python -m dnsbl`` with the same arguments and that
worker's sockets inherited, and keeps the sockets open while a crashed worker
is restarted: the queries queued for it wait instead of being lost. Each worker
loads and reloads the data itself. A stream socket to each worker carries its
readiness (or why it could not start), SIGHUP as a request to check the files
and the answer once it has, and, when Prometheus scrapes the supervisor, its
metric families, which are summed into one ``/metrics``. The supervisor also
asks each worker every second whether its loop still answers: one that does
not (stopped, or stuck in a loop) is neither healthy nor ready, holds back
systemd's watchdog, and is killed and restarted if it stays silent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from dnsbl import commands, systemd
from dnsbl.config import Listen, ServerConfig
from dnsbl.control import ControlServer
from dnsbl.metrics import MetricsServer, fold, metric_family
from dnsbl.portlock import PortLock
from dnsbl.reload import CheckResult, status_line
from dnsbl.server import cancel, ignore_reloads, listener_sets, metrics_sockets, new_event_loop
from dnsbl.spawn import die_with_parent

log = logging.getLogger(__name__)

#: Set in a worker's environment: "INDEX:CONTROL_FD:FD,FD,...".
WORKER_ENV = "DNSBL_WORKER"
#: Set in a worker's environment: the supervisor's pid, for the worker to end with it.
PARENT_ENV = "DNSBL_SUPERVISOR"
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
_HEADER = struct.Struct(">I")

# -- the worker's side ------------------------------------------------------------------------

@dataclass
class WorkerSeat:
    """What a worker inherits from its supervisor."""

    index: int
    control: socket.socket
    sockets: list[socket.socket]


def worker_seat() -> WorkerSeat | None:
    """This process's seat when a supervisor started it, else None."""
    spec = os.environ.pop(WORKER_ENV, None)
    parent = os.environ.pop(PARENT_ENV, "")
    if not spec:
        return None
    if parent.isascii() and parent.isdigit():
        # SIGTERM, not SIGKILL: once serving, it stops as when told to.
        die_with_parent(int(parent), signal.SIGTERM)
    index, control, fds = spec.split(":")
    sockets = [socket.socket(fileno=int(fd)) for fd in fds.split(",") if fd]
    for sock in sockets:
        sock.setblocking(False)
    return WorkerSeat(int(index), socket.socket(fileno=int(control)), sockets)


#: Requests from the supervisor, one byte each.
_SCRAPE = b"?"  # answered with the metric families and readiness problems
_PING = b"p"  # answered at once: the worker's loop runs
_HANGUP = b"h"  # check the files now (SIGHUP), answered once checked
_CONTROL = b"c"  # a dnsbl ctl request follows (id and request, framed); answered when done


async def report(seat: WorkerSeat, registry: CollectorRegistry,
                 readiness: Callable[[], list[str]], stop: Callable[[], None],
                 hangup: Callable[[], Awaitable[CheckResult]],
                 control: Callable[[Any], Awaitable[dict[str, Any]]]) -> None:
    """In a worker: say ready, answer each request (a scrape, SIGHUP or a
    dnsbl ctl request passed on), and stop the server when the supervisor
    goes away."""
    reader, writer = await asyncio.open_connection(sock=seat.control)
    _write(writer, {"ready": True})
    reloads: set[asyncio.Task] = set()  # held so they are not collected

    async def reload() -> None:
        result = await hangup()
        _write(writer, {"reloaded": True, "changed": result.changed,
                        "status": status_line(result)})

    async def controlled(number: int, request: Any) -> None:
        try:
            reply = await control(request)
        except Exception as exc:  # the supervisor waits for an answer: always give one
            log.exception("control request %r failed", request)
            reply = {"ok": False, "error": f"internal error: {exc}"}
        _write(writer, {"control": number, "reply": reply})

    def later(coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        while True:
            request = await reader.readexactly(1)
            if request == _HANGUP:
                later(reload())
                continue
            if request == _CONTROL:
                message = await _read(reader)
                later(controlled(message["control"], message["request"]))
                continue
            if request == _PING:
                _write(writer, {"alive": True})
                continue
            _write(writer, {"families": list(registry.collect()), "problems": readiness()})
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        log.error("the supervisor has gone; stopping")
        stop()
    finally:
        for task in reloads:  # the reloader stops with the server: nothing to wait for
            task.cancel()


def fail(seat: WorkerSeat, message: str) -> None:
    """In a worker that cannot start: tell the supervisor why, for it to say once."""
    data = pickle.dumps({"fatal": message}, protocol=pickle.HIGHEST_PROTOCOL)
    seat.control.setblocking(True)
    try:
        seat.control.sendall(_HEADER.pack(len(data)) + data)
    except OSError:
        pass  # the supervisor has gone: nobody to tell


def _write(writer: asyncio.StreamWriter, message: dict) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_HEADER.pack(len(data)) + data)


async def _read(reader: asyncio.StreamReader) -> dict:
    size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
    # The peer is our own child process, started by us with our own code.
    return pickle.loads(await reader.readexactly(size))


# -- the supervisor's side --------------------------------------------------------------------

@dataclass
class _Worker:
    index: int
    sockets: list[socket.socket]
    process: asyncio.subprocess.Process | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = 0.0
    restarts: int = 0
    listener: asyncio.Task | None = None  # reads its messages; held so it is not collected
    fatal: str | None = None  # why it could not start, in its words
    reply: asyncio.Future[dict | None] | None = None  # to the scrape asked last
    reloaded: asyncio.Future[bool] | None = None  # to the SIGHUP passed on last: changed?
    #: dnsbl ctl requests passed on and not yet answered, by number.
    controls: dict[int, asyncio.Future[dict | None]] = field(default_factory=dict)
    families: list[Metric] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # When each scrape or ping not yet answered was sent, oldest first: the
    # worker answers them in order, so the oldest tells how long it is silent.
    asked: collections.deque[float] = field(default_factory=collections.deque)
    silent: bool = False  # said so in the log
    reload_status: str = "serving"  # its STATUS= line after the SIGHUP passed on last

    def silent_for(self, now: float) -> float:
        """Seconds this worker has owed an answer; 0 when it owes none."""
        return now - self.asked[0] if self.asked else 0.0

    def answering(self, now: float) -> bool:
        """Ready, and its loop answered what it was asked in time."""
        return self.ready.is_set() and self.silent_for(now) <= _REPLY_TIMEOUT

    def send(self, request: bytes) -> None:
        assert self.writer is not None
        self.writer.write(request)
        self.asked.append(time.monotonic())


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
        self._requests = 0  # dnsbl ctl requests passed on, to number them
        self._workers: list[_Worker] = []
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
        self._workers = [_Worker(i + 1, s) for i, s in enumerate(per_worker)]
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
            registry.register(_Merged(self._workers))  # type: ignore[arg-type]
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
            tasks = [asyncio.create_task(self._keep(w)) for w in self._workers]
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
            await cancel(w.listener for w in self._workers if w.listener is not None)
            if metrics is not None:
                metrics.close()
            if started:
                log.info("stopped")

    async def _start_all(self) -> int | None:
        """Start every worker and wait until each is ready; the exit status if one
        could not start (a zone that cannot load, say), else None."""
        for worker in self._workers:
            await self._spawn(worker)
        for worker in self._workers:
            assert worker.process is not None
            waiting = asyncio.ensure_future(worker.ready.wait())
            exited = asyncio.ensure_future(worker.process.wait())
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({waiting, exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for future in (waiting, exited, stopping):
                future.cancel()
            if self._stopping.is_set():
                return 0
            if not worker.ready.is_set():
                code = worker.process.returncode or STARTUP_FAILURE
                if worker.listener is not None:  # it may have said why: read all it sent
                    await asyncio.wait({worker.listener}, timeout=_REPLY_TIMEOUT)
                log.error("%s", worker.fatal or f"cannot start: worker {worker.index} ended "
                                                f"with exit status {code} before it was ready")
                return code
        return None

    async def _spawn(self, worker: _Worker) -> None:
        ours, theirs = socket.socketpair()
        fds = [s.fileno() for s in worker.sockets]
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        env[WORKER_ENV] = f"{worker.index}:{theirs.fileno()}:{','.join(map(str, fds))}"
        env[PARENT_ENV] = str(os.getpid())
        worker.ready.clear()
        worker.asked.clear()
        worker.silent = False
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dnsbl", *self.argv, env=env,
            pass_fds=(*fds, theirs.fileno()))
        theirs.close()
        worker.started = time.monotonic()
        worker.reader, worker.writer = await asyncio.open_connection(sock=ours)
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)
        worker.fatal = None
        worker.listener = asyncio.create_task(self._listen(worker, worker.reader))

    @staticmethod
    async def _listen(worker: _Worker, reader: asyncio.StreamReader) -> None:
        """Take the worker's messages until it ends: ready (once its zones are
        loaded), fatal, and the answers to what it was asked."""
        try:
            while True:
                message = await _read(reader)
                if "ready" in message:
                    worker.ready.set()
                elif "fatal" in message:
                    worker.fatal = message["fatal"]
                elif "reloaded" in message:
                    if worker.reloaded is not None and not worker.reloaded.done():
                        worker.reload_status = message.get("status", "serving")
                        worker.reloaded.set_result(message["changed"])
                elif "control" in message:
                    answered = worker.controls.pop(message["control"], None)
                    if answered is not None and not answered.done():
                        answered.set_result(message["reply"])
                else:  # the answer to a scrape or a ping, in the order asked
                    if worker.asked:
                        worker.asked.popleft()
                    if ("families" in message and worker.reply is not None
                            and not worker.reply.done()):
                        worker.reply.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # it ended; whoever waits on the process sees that
        finally:
            # Nobody waits for an answer from a worker that has gone: one
            # restarted in its place loads the files as they are now.
            if worker.reloaded is not None and not worker.reloaded.done():
                worker.reloaded.set_result(True)
            if worker.reply is not None and not worker.reply.done():
                worker.reply.set_result(None)
            for answered in worker.controls.values():
                if not answered.done():
                    answered.set_result(None)
            worker.controls.clear()

    async def _keep(self, worker: _Worker) -> None:
        """Restart the worker whenever it ends, waiting longer each time it ends
        soon after starting (a crash loop must not spin)."""
        backoff = 0.5
        while True:
            assert worker.process is not None
            code = await worker.process.wait()
            if worker.writer is not None:
                worker.writer.close()
            worker.ready.clear()
            lived = time.monotonic() - worker.started
            backoff = min(backoff * 2, _MAX_BACKOFF) if lived < 10 else 1.0
            log.error("worker %d (pid %d) ended with status %s; restarting in %.0fs",
                      worker.index, worker.process.pid, code, backoff)
            await asyncio.sleep(backoff)
            worker.restarts += 1
            await self._spawn(worker)

    async def _heartbeat(self, watchdog: float | None) -> None:
        """Ask every ready worker whether its loop runs; kill one silent for
        too long (:meth:`_keep` restarts it). With ``watchdog`` (seconds),
        tell systemd WATCHDOG=1 only while every worker answers: the
        supervisor's own loop running proves nothing about theirs."""
        period = min(_PING_INTERVAL, watchdog) if watchdog else _PING_INTERVAL
        while True:
            now = time.monotonic()
            for worker in self._workers:
                self._check(worker, now)
            if watchdog and all(w.answering(now) for w in self._workers if w.ready.is_set()):
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(period)

    @staticmethod
    def _check(worker: _Worker, now: float) -> None:
        process = worker.process
        if not worker.ready.is_set() or process is None or process.returncode is not None:
            return
        silent = worker.silent_for(now)
        if silent > _KILL_AFTER:
            log.error("worker %d (pid %d) has not answered for %.0fs; killing it",
                      worker.index, process.pid, silent)
            process.kill()
            worker.ready.clear()  # not again: _keep waits for it and starts another
            return
        if silent > _REPLY_TIMEOUT and not worker.silent:
            worker.silent = True
            log.error("worker %d (pid %d) has not answered for %.0fs; not ready until it "
                      "does, killed after %.0fs", worker.index, process.pid, silent,
                      _KILL_AFTER)
        elif silent <= _REPLY_TIMEOUT and worker.silent:
            worker.silent = False
            log.info("worker %d (pid %d) answers again", worker.index, process.pid)
        if not worker.asked and worker.writer is not None:  # one question at a time
            try:
                worker.send(_PING)
            except (ConnectionError, RuntimeError):
                pass  # it is ending; _keep restarts it

    async def _stop_all(self) -> None:
        running = [w.process for w in self._workers
                   if w.process is not None and w.process.returncode is None]
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
        # Only to workers that are ready: one still loading has no handler yet,
        # and the signal's default action would end it.
        for worker in self._workers:
            if (worker.ready.is_set() and worker.process is not None
                    and worker.process.returncode is None):
                worker.process.send_signal(sig)

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
                loop = asyncio.get_running_loop()
                waiting: list[asyncio.Future[bool]] = []
                now = time.monotonic()
                for worker in self._workers:
                    # Not one that does not answer: READY=1 would wait for it until
                    # it is killed, and the one started in its place loads anyway.
                    if worker.answering(now) and worker.writer is not None:
                        worker.reloaded = loop.create_future()
                        worker.reload_status = "serving"
                        worker.writer.write(_HANGUP)
                        waiting.append(worker.reloaded)
                if waiting:
                    done, late = await asyncio.wait(waiting, timeout=_RELOAD_WAIT)
                    # The workers read the same files: one failure said is enough.
                    said.extend(list(dict.fromkeys(
                        w.reload_status for w in self._workers
                        if w.reloaded in done and w.reload_status != "serving"))[:1])
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
        answering = [w for w in self._workers if w.answering(now) and w.writer is not None]
        command = request["command"]
        if not answering:
            return {"ok": False, "error": "no worker is answering"}
        if command == "query":
            return await self._forward(answering[0], request)
        replies = await asyncio.gather(*(self._forward(w, request) for w in answering))
        if command == "reload":
            return commands.merge_reloads(replies, commands.zone_of(request))
        states = []
        for worker in self._workers:
            state = ("answering" if worker.answering(now) else "not answering"
                     if worker.ready.is_set() else "starting"
                     if worker.process is not None and worker.process.returncode is None
                     else "not running")
            states.append({"index": worker.index, "pid": worker.process.pid if worker.process
                           else None, "state": state, "restarts": worker.restarts})
        own = {"pid": os.getpid(), "uptime": round(now - self._started, 1)}
        return commands.merge_status(
            own, [replies[answering.index(w)] if w in answering else None
                  for w in self._workers], states)

    async def _forward(self, worker: _Worker, request: Any) -> dict[str, Any]:
        """Pass ``request`` on to ``worker``; its reply, or why there is none."""
        assert worker.writer is not None
        self._requests += 1
        number = self._requests
        answered: asyncio.Future[dict | None] = asyncio.get_running_loop().create_future()
        worker.controls[number] = answered
        data = pickle.dumps({"control": number, "request": request},
                            protocol=pickle.HIGHEST_PROTOCOL)
        # A reload waits for the files to load, as READY=1 after SIGHUP does.
        wait = _RELOAD_WAIT if request["command"] == "reload" else _KILL_AFTER
        try:
            worker.writer.write(_CONTROL + _HEADER.pack(len(data)) + data)
            reply = await asyncio.wait_for(answered, wait)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            reply = None
            why = f"did not answer in {wait:.0f}s" if isinstance(exc, TimeoutError) else "ended"
        else:
            why = "ended before it answered"
        finally:
            worker.controls.pop(number, None)
        return reply or {"ok": False, "error": f"worker {worker.index} {why}"}

    async def _refresh(self) -> None:
        """Ask every ready worker for its metric families and readiness."""
        async with self._scrape:
            await asyncio.gather(*(self._ask(w) for w in self._workers if w.ready.is_set()))

    async def _ask(self, worker: _Worker) -> None:
        # One that does not answer is not waited for again at every scrape: its
        # last series stand (its counters must not go back), and /readyz says why.
        now = time.monotonic()
        if not worker.answering(now):
            return
        worker.reply = asyncio.get_running_loop().create_future()
        try:
            worker.send(_SCRAPE)
            # Wait only until it would count as not answering.
            reply = await asyncio.wait_for(worker.reply,
                                           worker.asked[0] + _REPLY_TIMEOUT - now)
        except (TimeoutError, ConnectionError, RuntimeError):
            return  # its last reply stands; a dead one is restarted by _keep
        if reply is None:
            return
        worker.families = reply["families"]
        worker.problems = reply["problems"]

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


class _Merged:
    """The workers' metric families folded into one set (metrics.fold), and our own."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        yield from fold(w.families for w in self._workers)
        running = metric_family("dnsbl_workers", [])
        now = time.monotonic()
        running.add_metric([], sum(1 for w in self._workers if w.answering(now)))
        restarts = metric_family("dnsbl_worker_restarts_total", [])
        restarts.add_metric([], sum(w.restarts for w in self._workers))
        yield from (running, restarts)

