"""UDP in batches: many datagrams per system call, with recvmmsg and sendmmsg.

At tens of thousands of queries a second, a recvfrom, a sendto and an event
loop callback per query cost as much as answering it. Here one readable event
reads up to ``size`` datagrams with one recvmmsg and sends their answers with
one sendmmsg. The standard library has no binding for these two Linux calls,
so they go through ctypes, into buffers allocated once.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import sys
from collections.abc import Callable
from ctypes import POINTER, Structure, c_int, c_size_t, c_uint, c_uint32, c_void_p, sizeof
from functools import partial
from time import monotonic
from typing import TYPE_CHECKING, Any

from dnsbl import answer as answering
from dnsbl.answer import FAST_PATHS, answer
from dnsbl.protocols import Shared, udp_reply
from dnsbl.rrl import limited
from dnsbl.stats import DROP_SEND

if TYPE_CHECKING:
    import asyncio

#: Datagrams read per recvmmsg call.
DEFAULT_BATCH = 32
_ROUNDS = 8  # batches per readable event before TCP and timers get the loop back
_SLOT = 65536  # a datagram of any size fits, so none is ever cut short
_NAME = 28  # sizeof(struct sockaddr_in6), the larger address


class _IOVec(Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


class _MsgHdr(Structure):
    _fields_ = [("msg_name", c_void_p), ("msg_namelen", c_uint32),
                ("msg_iov", POINTER(_IOVec)), ("msg_iovlen", c_size_t),
                ("msg_control", c_void_p), ("msg_controllen", c_size_t), ("msg_flags", c_int)]


class _MMsgHdr(Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", c_uint)]


def _calls() -> tuple[Any, Any] | None:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None


_CALLS = _calls()
#: Whether this system has recvmmsg and sendmmsg.
AVAILABLE = _CALLS is not None
#: BatchedUDP._drain's loop compiled (_fastpath.c's drain), where built: used
#: while the compiled fast path is the one answering (answer._fast) and
#: nothing needs the client's address.
_COMPILED_FAST = FAST_PATHS.get("compiled")
_compiled_drain: Any = None
if _COMPILED_FAST is not None:
    from dnsbl._fastpath import drain as _compiled_drain  # type: ignore[attr-defined,no-redef]

# Where the fields the loop touches sit, in units of the memoryviews below.
_STRIDE_I = sizeof(_MMsgHdr) // 4
_NAMELEN_I = _MsgHdr.msg_namelen.offset // 4
_LEN_I = _MMsgHdr.msg_len.offset // 4
_STRIDE_P = sizeof(_MMsgHdr) // sizeof(c_void_p)
_NAME_P = _MsgHdr.msg_name.offset // sizeof(c_void_p)
_IOV_STRIDE = sizeof(_IOVec) // sizeof(c_void_p)
_IOV_LEN = _IOVec.iov_len.offset // sizeof(c_void_p)


def _address(name: memoryview) -> tuple[str, int]:
    """A sockaddr as Python writes a peer address: (host, port)."""
    port = name[2] << 8 | name[3]
    if int.from_bytes(name[0:2], sys.byteorder) == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24]), port
    return socket.inet_ntop(socket.AF_INET, name[4:8]), port


class BatchedUDP:
    """Answers datagrams on one bound UDP socket, ``size`` per system call."""

    def __init__(self, sock: socket.socket, shared: Shared, size: int = DEFAULT_BATCH) -> None:
        assert _CALLS is not None
        self._sock = sock
        self._fd = sock.fileno()
        self._shared = shared
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        # Anonymous maps: pages cost memory only once a datagram touches them.
        self._inbox = mmap.mmap(-1, size * _SLOT)
        self._outbox = mmap.mmap(-1, size * _SLOT)
        self._names = (ctypes.c_char * (size * _NAME))()
        inbox = ctypes.addressof(ctypes.c_char.from_buffer(self._inbox))
        outbox = ctypes.addressof(ctypes.c_char.from_buffer(self._outbox))
        names = ctypes.addressof(self._names)
        self._in_iov = (_IOVec * size)()
        self._out_iov = (_IOVec * size)()
        self._in = (_MMsgHdr * size)()
        self._out = (_MMsgHdr * size)()
        self._name_at = [names + i * _NAME for i in range(size)]
        for i in range(size):
            self._in_iov[i].iov_base = inbox + i * _SLOT
            self._in_iov[i].iov_len = _SLOT
            self._out_iov[i].iov_base = outbox + i * _SLOT
            for msgs, iov in ((self._in, self._in_iov), (self._out, self._out_iov)):
                header = msgs[i].msg_hdr
                header.msg_name = self._name_at[i]
                header.msg_namelen = _NAME
                header.msg_iov = ctypes.pointer(iov[i])
                header.msg_iovlen = 1
        # Flat views of the headers, so the loop reads and writes fields by index.
        self._in_u32 = memoryview(self._in).cast("B").cast("I")
        self._out_u32 = memoryview(self._out).cast("B").cast("I")
        # "P": pointer-sized, as size_t is on Linux.
        self._out_ptr = memoryview(self._out).cast("B").cast("P")
        self._out_iov_len = memoryview(self._out_iov).cast("B").cast("P")
        self._full_names = memoryview((ctypes.c_uint32 * size)(*[_NAME] * size)).cast("B").cast(
            "I")
        self._inbox_view = memoryview(self._inbox)
        self._outbox_view = memoryview(self._outbox)
        self._names_view = memoryview(self._names).cast("B")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._fd, self._drain)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        self._sock.close()

    def _drain(self) -> None:
        shared = self._shared
        stats, edns = shared.stats, shared.edns
        zoneset = shared.served.current
        if (_compiled_drain is not None and shared.query_log is None and not zoneset.has_acls
                and shared.rrl is None and answering._fast is _COMPILED_FAST):
            # The common case, no Python per round nor per datagram: the
            # whole loop below in C, with the compiled fast path, else
            # answer() (or transfers, _special) for that datagram alone.
            zones = zoneset.zones
            plain = partial(answer, zones=zones, stats=stats, edns=edns)
            not_sent = _compiled_drain(self._fd, self._in, self._size, self._out, _SLOT, zones,
                                       edns, plain if shared.xfr is None else partial(
                                           _special, shared.xfr, plain), _ROUNDS)
            if not_sent:
                stats.dropped[DROP_SEND] += not_sent
            return
        assert _CALLS is not None
        recvmmsg, sendmmsg = _CALLS
        fd, size, msgs_in = self._fd, self._size, self._in
        in_u32, out_u32, out_ptr, out_len = (self._in_u32, self._out_u32, self._out_ptr,
                                             self._out_iov_len)
        inbox, outbox, names, name_at = (self._inbox_view, self._outbox_view, self._names_view,
                                         self._name_at)
        for _ in range(_ROUNDS):
            in_u32[_NAMELEN_I::_STRIDE_I] = self._full_names
            count = recvmmsg(fd, msgs_in, size, socket.MSG_DONTWAIT, None)
            if count <= 0:
                return  # drained (EAGAIN), or an ICMP error for an earlier reply
            zoneset = shared.served.current
            zones = zoneset.zones
            # Only ACLs and the query log need the client's address as text;
            # without them it is never made, and rate limiting reads the raw
            # sockaddr with one clock reading for the batch.
            addressed = shared.query_log is not None or zoneset.has_acls
            rrl = shared.rrl
            now = monotonic() if rrl is not None else 0.0
            sent = 0
            for i in range(count):
                data = bytes(inbox[i * _SLOT:i * _SLOT + in_u32[i * _STRIDE_I + _LEN_I]])
                if addressed:
                    reply = udp_reply(shared, zones, data,
                                      _address(names[i * _NAME:(i + 1) * _NAME]))
                elif shared.xfr is not None and shared.xfr.special(data):
                    reply = shared.xfr.answer(data, None, True, partial(
                        answer, zones=zones, stats=stats, edns=edns))
                else:
                    reply = answer(data, zones, stats, True, edns)
                    if rrl is not None and reply is not None:
                        reply = limited(rrl.check_sockaddr(names[i * _NAME:(i + 1) * _NAME], now),
                                        reply)
                if reply is None:
                    continue
                at = sent * _SLOT
                outbox[at:at + len(reply)] = reply
                out_len[sent * _IOV_STRIDE + _IOV_LEN] = len(reply)
                out_ptr[sent * _STRIDE_P + _NAME_P] = name_at[i]
                out_u32[sent * _STRIDE_I + _NAMELEN_I] = in_u32[i * _STRIDE_I + _NAMELEN_I]
                sent += 1
            if sent:
                self._send(sendmmsg, sent)
            if count < size:
                return

    def _send(self, sendmmsg: Any, count: int) -> None:
        done = 0
        for _ in range(2):  # a full send buffer gets one more try, then the rest is dropped
            result = sendmmsg(self._fd, ctypes.byref(self._out, done * sizeof(_MMsgHdr)),
                              count - done, 0)
            if result > 0:
                done += result
                if done == count:
                    return
            elif ctypes.get_errno() not in (0, errno.EAGAIN):  # not EAGAIN: that datagram cannot go
                done += 1  # (an address the kernel refuses); skip it, send the rest
                if done == count:
                    return
        self._shared.stats.dropped[DROP_SEND] += count - done


def _special(xfr: Any, plain: Callable[[bytes], bytes | None], data: bytes) -> bytes | None:
    """What the compiled path hands back, with transfers on: a signed
    message or an IXFR goes to them (without the client's address, which
    only an IXFR's ACL needs: it gets the current SOA, "ask over TCP")."""
    if xfr.special(data):
        return xfr.answer(data, None, True, plain)  # type: ignore[no-any-return]
    return plain(data)
