"""The control socket: ``dnsbl ctl`` talks to a running server, as rndc does.

A Unix stream socket that only the server's user and root may use: mode 0600
(made so at bind time, under a umask), and each peer's uid checked with
SO_PEERCRED besides, since a directory's mode is not ours to trust. The
protocol is one JSON object per line: one request, one reply, then the server
closes. Requests are served on the event loop, as tasks, so answering never
waits for them (:mod:`dnsbl.commands` says what each one does).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

#: The socket's name in the runtime directory.
NAME = "control"
#: Bytes a request may take; a query names at most 255.
MAX_REQUEST = 4096
#: Seconds a client has to send its request.
REQUEST_TIMEOUT = 10.0
#: struct ucred: pid, uid, gid.
_UCRED = struct.Struct("3i")

Handler = Callable[[Any], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """The control socket cannot be opened or reached; the message says why."""


def default_path() -> str | None:
    """Where the control socket goes when the configuration does not say:
    systemd's ``$RUNTIME_DIRECTORY`` (``RuntimeDirectory=dnsbl``), else
    ``/run/dnsbl`` for root, else ``$XDG_RUNTIME_DIR/dnsbl``; None when there
    is no such directory (a user without a login session)."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return os.path.join(runtime, NAME)
    if os.geteuid() == 0:
        return os.path.join("/run/dnsbl", NAME)
    user = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(user, "dnsbl", NAME) if user else None


def peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    pid, uid, _gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid


def open_socket(path: str) -> socket.socket:
    """Bind the control socket at ``path``, mode 0600, replacing a stale one.

    :raises ControlError: when ``path`` is another server's live socket, is
        not a socket, or cannot be made.
    """
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise ControlError(f"control socket {path}: exists and is not a socket")
            holder = _holder(path)
            if holder is not None:
                raise ControlError(f"control socket {path} is in use by another dnsbl "
                                   f"(pid {holder}); give this one --control PATH or none")
            os.unlink(path)  # stale: its server has gone
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # 0600 from the start, not after a chmod
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        sock.listen(16)
        sock.setblocking(False)
    except OSError as exc:
        raise ControlError(f"cannot open control socket {path}: {exc.strerror or exc}") from None
    return sock


def discard(sock: socket.socket) -> None:
    """Close a control socket that was never served (start-up failed) and
    remove its path; one a :class:`ControlServer` took is closed by it."""
    if sock.fileno() == -1:
        return
    try:
        os.unlink(sock.getsockname())
    except OSError:
        pass
    sock.close()


def _holder(path: str) -> int | None:
    """The pid serving the socket at ``path``; None when nobody does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return None
        return peer(sock)[0]


class ControlServer:
    """Serves requests on a bound control socket with ``handler``."""

    def __init__(self, sock: socket.socket, handler: Handler) -> None:
        self._sock = sock
        self._path = sock.getsockname()
        self._inode = os.stat(self._path).st_ino
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, sock=self._sock,
                                                       limit=MAX_REQUEST)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()
        try:  # only ours: a server started since may have taken the path
            if os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)
        except OSError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._reply(reader, writer.get_extra_info("socket"))
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to tell it
        finally:
            writer.close()

    async def _reply(self, reader: asyncio.StreamReader, sock: Any) -> dict[str, Any]:
        try:
            # Read before answering, even a refusal: a client still writing
            # would see a broken pipe instead of the reason.
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "error": "no request in time"}
        except ValueError:  # longer than MAX_REQUEST
            line = b""
        _pid, uid = peer(sock)
        if uid not in (0, os.geteuid()):
            return {"ok": False, "error": f"permission denied: uid {uid} is neither root nor "
                                          "the server's user"}
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "a request is one JSON object on one line"}
        try:
            return await self._handler(request)
        except Exception as exc:  # a bug must not take the control socket down
            log.exception("control request %r failed", request)
            return {"ok": False, "error": f"internal error: {exc}"}


def call(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send ``request`` to the server at ``path``; its reply.

    :raises ControlError: when the server cannot be reached or does not answer.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except TimeoutError:
        raise ControlError(f"{path}: no answer in {timeout:.0f}s (a server still loading "
                           "its zones answers once it is ready)") from None
    except OSError as exc:
        hint = (" (is dnsbl serve running, with this --control?)"
                if exc.errno in (errno.ENOENT, errno.ECONNREFUSED) else "")
        raise ControlError(f"cannot reach the server at {path}: "
                           f"{exc.strerror or exc}{hint}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: the server closed the connection without "
                           "an answer") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ControlError(f"{path}: not an answer from dnsbl: {data[:80]!r}")
    return reply
