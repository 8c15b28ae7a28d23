"""One instance per listen address: a lock held for as long as we serve it.

The workers of one instance share each port with SO_REUSEPORT, but the kernel
lets any process of the same user join them, and then splits the traffic
between the two instances. So before binding, each address is claimed: an
abstract Unix socket named after it (``@dnsbl:listen:127.0.0.1:5300``).

Why an abstract socket rather than a lock file (BIND) or a pid file (NSD): its
name lives in the network namespace, exactly where ports do, so it needs no
writable directory (``ProtectSystem=strict``), cannot disagree between two
runtime directories (a service's and a shell's), and the kernel frees it when
the process ends however it ends (``kill -9`` included): it is never stale. A
second instance connects to it and learns who holds it (SO_PEERCRED). The
sockets are not inherited, so a worker never holds its supervisor's claim.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

_PREFIX = "dnsbl:listen:"
#: struct ucred: pid, uid, gid.
_UCRED = struct.Struct("3i")


class Held(Exception):
    """Another instance serves the address; the message says which."""


class PortLock:
    """The addresses this instance has claimed; :meth:`release` gives them up."""

    def __init__(self) -> None:
        self._held: dict[str, socket.socket] = {}

    def take(self, host: str, port: int) -> None:
        """Claim ``host:port`` (port 0: nothing to claim yet).

        :raises Held: naming the instance that serves it.
        """
        address = _canonical(host, port)
        if port == 0 or address is None:
            return  # a name that does not resolve fails at bind(), with its own message
        name = f"{address}:{port}"
        if name in self._held:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind("\0" + _PREFIX + name)
            sock.listen(8)  # only for others to connect and ask who we are
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise Held(_who(name, name)) from None
            return  # no Unix sockets here (a sandbox): bind() stays the only guard
        self._held[name] = sock
        # A wildcard address holds every address of its family on that port.
        ip = ipaddress.ip_address(address)
        wildcard = f"{'::' if ip.version == 6 else '0.0.0.0'}:{port}"
        others = [wildcard] if not ip.is_unspecified else [
            n for n in _claimed() if n != name and n.endswith(f":{port}")
            and (":" in n.rpartition(":")[0]) == (ip.version == 6)]
        for other in others:
            holder = _peer(other)
            if holder is not None:
                self.release(name)
                raise Held(_who(name, other, holder))

    def release(self, name: str | None = None) -> None:
        """Give up one claim (``"127.0.0.1:5300"``) or, without a name, all."""
        for key in [name] if name else list(self._held):
            sock = self._held.pop(key, None)
            if sock is not None:
                sock.close()


def _canonical(host: str, port: int) -> str | None:
    """The address ``host`` binds to, written one way (``::1``, not ``0::1``)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        info = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except OSError:
        return None
    return str(ipaddress.ip_address(info[0][4][0])) if info else None


def _peer(name: str) -> tuple[int, int] | None:
    """(pid, uid) of the process holding the claim ``name``; None if nobody does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect("\0" + _PREFIX + name)
            pid, uid, _gid = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        except OSError:
            return None
    return pid, uid


def _who(name: str, held: str, holder: tuple[int, int] | None = None) -> str:
    holder = holder or _peer(held)
    by = f"pid {holder[0]}, uid {holder[1]}" if holder else "a process that just ended"
    overlap = "" if held == name else " (the same port: one address covers the other)"
    return (f"cannot listen on {name}: another dnsbl ({by}) serves {held}{overlap}; "
            "stop it, or give this one another --listen")


def _claimed() -> list[str]:
    """Every address claimed in this network namespace, from /proc/net/unix."""
    try:
        with open("/proc/net/unix", encoding="ascii", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    marker = "@" + _PREFIX
    return [fields[-1][len(marker):] for fields in (line.split() for line in lines[1:])
            if fields and fields[-1].startswith(marker)]
