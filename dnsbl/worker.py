"""A worker's side of ``--workers``: its seat, and the channel to its supervisor.

A supervisor (:mod:`dnsbl.supervisor`) starts each worker as ``python -m
dnsbl`` with the same arguments, its listen sockets and one end of a stream
socket inherited, and says which in the environment. Over that socket the
worker says it is ready (or why it cannot start), and answers the
supervisor's one-byte requests: a scrape, a ping, SIGHUP passed on, and a
``dnsbl ctl`` request. Each message back is a length-prefixed pickle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from dnsbl.reload import CheckResult, status_line
from dnsbl.spawn import die_with_parent

log = logging.getLogger(__name__)

#: Set in a worker's environment: "INDEX:CONTROL_FD:FD,FD,...".
WORKER_ENV = "DNSBL_WORKER"
#: Set in a worker's environment: the supervisor's pid, for the worker to end with it.
PARENT_ENV = "DNSBL_SUPERVISOR"

#: Requests from the supervisor, one byte each.
SCRAPE = b"?"  # answered with the metric families and readiness problems
PING = b"p"  # answered at once: the worker's loop runs
HANGUP = b"h"  # check the files now (SIGHUP), answered once checked
CONTROL = b"c"  # a dnsbl ctl request follows (a message); answered when done

_HEADER = struct.Struct(">I")


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


def pack_message(message: dict) -> bytes:
    """``message`` framed for the channel: its length, then its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> dict:
    """The next message on the channel.

    :raises asyncio.IncompleteReadError: when the other side has gone.
    """
    size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
    # The peer is our own parent or child process, running our own code.
    return pickle.loads(await reader.readexactly(size))


async def serve_supervisor(seat: WorkerSeat, registry: CollectorRegistry,
                           readiness: Callable[[], list[str]], stop: Callable[[], None],
                           hangup: Callable[[], Awaitable[CheckResult]],
                           control: Callable[[Any], Awaitable[dict[str, Any]]]) -> None:
    """In a worker that has loaded its zones: say ready, answer each request
    (a scrape, a ping, SIGHUP or a dnsbl ctl request passed on), and stop
    the server when the supervisor goes away."""
    reader, writer = await asyncio.open_connection(sock=seat.control)
    writer.write(pack_message({"ready": True}))
    pending: set[asyncio.Task] = set()  # held so they are not collected

    async def reload() -> None:
        result = await hangup()
        writer.write(pack_message({"reloaded": True, "changed": result.changed,
                                   "status": status_line(result)}))

    async def controlled(number: int, request: Any) -> None:
        try:
            reply = await control(request)
        except Exception as exc:  # the supervisor waits for an answer: always give one
            log.exception("control request %r failed", request)
            reply = {"ok": False, "error": f"internal error: {exc}"}
        writer.write(pack_message({"control": number, "reply": reply}))

    def later(coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        while True:
            request = await reader.readexactly(1)
            if request == HANGUP:
                later(reload())
            elif request == CONTROL:
                message = await read_message(reader)
                later(controlled(message["control"], message["request"]))
            elif request == PING:
                writer.write(pack_message({"alive": True}))
            else:
                writer.write(pack_message({"families": list(registry.collect()),
                                           "problems": readiness()}))
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        log.error("the supervisor has gone; stopping")
        stop()
    finally:
        for task in pending:  # the reloader stops with the server: nothing to wait for
            task.cancel()


def send_startup_failure(seat: WorkerSeat, message: str) -> None:
    """In a worker that cannot start: tell the supervisor why, for it to say once."""
    seat.control.setblocking(True)
    try:
        seat.control.sendall(pack_message({"fatal": message}))
    except OSError:
        pass  # the supervisor has gone: nobody to tell
