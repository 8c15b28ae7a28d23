"""systemd integration without a dependency: sd_notify and socket activation.

Both are small, documented protocols (sd_notify(3), sd_listen_fds(3)): a
datagram to ``$NOTIFY_SOCKET``, and inherited descriptors from fd 3 on when
``$LISTEN_PID`` is this process.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: The first descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False when not run by
    systemd, or when its queue is full.

    ``RELOADING=1`` goes with the time it was sent (``MONOTONIC_USEC=``), which
    ``Type=notify-reload`` needs to tell this reload from an earlier one.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if "RELOADING=1" in state.split("\n"):
        state += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never wait: a reader that fell behind must not stall the event
            # loop (and the queries) behind a full queue; the message is lost.
            sock.setblocking(False)
            sock.connect(address)
            sock.send(state.encode())
    except OSError:
        return False
    return True


@contextmanager
def reloading(send: Callable[[str], object] = notify,
              status: Callable[[], str] = lambda: "serving") -> Iterator[None]:
    """``RELOADING=1`` now, and ``READY=1`` when the block ends, however it
    ends, with ``STATUS=`` what ``status()`` says then (a failed load)."""
    send("RELOADING=1")
    try:
        yield
    finally:
        try:
            line = " ".join(status().split())  # one line, as STATUS= is
        except Exception:  # noqa: BLE001 - READY=1 must be sent whatever happens
            line = "serving"
        send(f"READY=1\nSTATUS={line}")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), if systemd wants them."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def listen_sockets() -> list[socket.socket]:
    """Sockets handed over by systemd socket activation, [] when there are none.

    The environment variables are removed so that child processes do not take
    them for their own.
    """
    pid = os.environ.get("LISTEN_PID")
    count = os.environ.get("LISTEN_FDS")
    if not pid or not count or pid != str(os.getpid()) or not count.isdigit():
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise OSError(exc.errno, f"LISTEN_FDS: descriptor {fd} is not a socket") from None
        sock.setblocking(False)
        sockets.append(sock)
    return sockets
