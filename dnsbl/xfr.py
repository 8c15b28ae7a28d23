"""Zone transfer from ``dnsbl serve``: AXFR (RFC 5936), and IXFR (RFC 1995)
answered as "up to date" or by the whole zone.

The TCP protocol hands a transfer question here (:meth:`Transfers.wants`,
:meth:`Transfers.start`). The records are those ``dnsbl export`` writes, the
``bind`` form under a zone's name and the ``rpz`` form under its RPZ origin
(:func:`dnsbl.export.transfer_forms`), from the snapshot being served when
the question came. They are made and packed into messages in a worker
thread, a message at a time, so the event loop keeps answering queries, and
each message waits for the client to read the ones before it, so a client
that stops reading holds one message, not the zone.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import struct
import termios
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from dnsbl.export import Record, packed_records, transfer_forms
from dnsbl.wire import CLASS_IN, HEADER_LEN, REFUSED, TYPE_AXFR, TYPE_IXFR, TYPE_SOA, name_to_wire
from dnsbl.zones import ServedZones

if TYPE_CHECKING:
    from dnsbl.config import ServerConfig

#: A transfer's messages are filled to about this size (RFC 5936 allows
#: 65535; smaller ones interleave better with queries on the loop).
MESSAGE_SIZE = 16 * 1024
KINDS = ("axfr", "ixfr")
RESULTS = ("ok", "uptodate", "refused", "notauth", "aborted", "failed")
NOTAUTH = 9
TSIG_FUDGE = 300  # seconds of clock skew allowed (RFC 8945 section 10)

_QR_AA = 0x8400


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _question(message: bytes) -> tuple[bytes, int, int, int] | None:
    """(name in wire form, lowercase; qtype; qclass; end of the question) of
    a one-question query, None for anything else."""
    if len(message) < HEADER_LEN + 5 or message[2] & 0x80 or message[4:6] != b"\x00\x01":
        return None
    i = HEADER_LEN
    while i < len(message) and message[i]:
        if message[i] > 63:
            return None  # no compression in a question's name
        i += 1 + message[i]
    if i + 5 > len(message):
        return None
    qtype, qclass = struct.unpack(">HH", message[i + 1:i + 5])
    return message[HEADER_LEN:i + 1].lower(), qtype, qclass, i + 5


def _client_serial(message: bytes, end: int) -> int | None:
    """The serial of the SOA in an IXFR question's authority section."""
    if message[8:10] != b"\x00\x01":
        return None
    i = end
    if i < len(message) and message[i] & 0xC0 == 0xC0:
        i += 2
    else:
        while i < len(message) and message[i]:
            i += 1 + message[i]
        i += 1
    if i + 10 > len(message) or struct.unpack(">H", message[i:i + 2])[0] != TYPE_SOA:
        return None
    rdata = message[i + 10:]
    for _name in range(2):  # mname, rname: uncompressed or a pointer
        j = 0
        while j < len(rdata) and rdata[j] and rdata[j] & 0xC0 != 0xC0:
            j += 1 + rdata[j]
        rdata = rdata[j + (2 if j < len(rdata) and rdata[j] & 0xC0 == 0xC0 else 1):]
    return struct.unpack(">I", rdata[:4])[0] if len(rdata) >= 20 else None


class Signer:
    """Signs the messages of one answer with the request's TSIG key
    (RFC 8945 section 5.3; a transfer's messages each sign on from the last)."""

    def __init__(self, key: dns.tsig.Key, request_mac: bytes, query_id: int) -> None:
        self._key = key
        name = key.name.to_wire()
        assert name is not None  # to_wire() without a file returns the bytes
        self._name = name
        self._mac: bytes | None = request_mac
        self._ctx: Any = None
        self._id = query_id

    def __call__(self, wire: bytes) -> bytes:
        template = dns.rdtypes.ANY.TSIG.TSIG(
            dns.rdataclass.ANY, dns.rdatatype.TSIG, self._key.algorithm, 0, TSIG_FUDGE, b"",
            self._id, 0, b"")
        tsig, self._ctx = dns.tsig.sign(wire, self._key, template, int(time.time()),
                                        self._mac, self._ctx, True)
        rdata = tsig.to_wire()
        arcount = struct.unpack(">H", wire[10:12])[0] + 1
        return (wire[:10] + struct.pack(">H", arcount) + wire[12:] + self._name
                + struct.pack(">HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata))
                + rdata)


def _messages(records: Iterator[Record], head: bytes, question: bytes,
              sign: Callable[[bytes], bytes] | None) -> Generator[bytes, None, None]:
    """The transfer's messages: the zone's records, its SOA first and last."""
    wires = packed_records(records)
    soa = next(wires)
    body = bytearray(soa)
    count = 1
    for wire in wires:
        body += wire
        count += 1
        if len(body) >= MESSAGE_SIZE:
            message = head + struct.pack(">HHHH", 1, count, 0, 0) + question + bytes(body)
            yield sign(message) if sign is not None else message
            body.clear()
            count = 0
    body += soa
    message = head + struct.pack(">HHHH", 1, count + 1, 0, 0) + question + bytes(body)
    yield sign(message) if sign is not None else message


class Transfers:
    """Which zones may be transferred by whom, the transfers' counts, and
    the task of each transfer under way."""

    def __init__(self, config: ServerConfig, served: ServedZones) -> None:
        self._served = served
        # Each name a transfer may ask for: the zone whose data it is, its records.
        forms = transfer_forms(config)
        self._forms = {name_to_wire(name): (name, name_to_wire(zone), records)
                       for name, (zone, records) in forms.items()}
        by_zone = {z.name: z for z in config.zones}
        self._allow: dict[bytes, list[Network]] = {
            name_to_wire(name): [ipaddress.ip_network(n) for n in by_zone[zone].transfer]
            for name, (zone, _records) in forms.items()}
        self._keyring = {dns.name.from_text(name): dns.tsig.Key(name, secret, "hmac-sha256")
                         for name, secret in config.tsig_keys}
        #: The key a zone's transfers must be signed with.
        self._required = {name_to_wire(name): dns.name.from_text(key)
                          for name, (zone, _records) in forms.items()
                          if (key := by_zone[zone].transfer_key)}
        #: (zone, kind, result) -> count
        self.counts: dict[tuple[str, str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Per connection sending a zone: the bytes not yet read at the last look.
        self._unread: dict[Any, int] = {}

    def wants(self, message: bytes) -> bool:
        """Whether ``message`` asks for a zone transfer."""
        found = _question(message)
        return found is not None and found[1] in (TYPE_AXFR, TYPE_IXFR)

    def _count(self, zone: str, kind: str, result: str) -> None:
        key = (zone, kind, result)
        self.counts[key] = self.counts.get(key, 0) + 1

    def _allowed(self, name: bytes, client: str | None) -> bool:
        networks = self._allow.get(name)
        if not networks or client is None:
            return False
        try:
            address = ipaddress.ip_address(client.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    def start(self, connection: Any, message: bytes, client: str | None) -> bytes | None:
        """Begin the transfer ``message`` asks for on ``connection`` (a TCP
        protocol with ``transfer_done()``); the reply to send at once instead
        (a refusal, or an IXFR's "up to date"), or None when a task sends it."""
        found = _question(message)
        assert found is not None
        name, qtype, qclass, end = found
        kind = "axfr" if qtype == TYPE_AXFR else "ixfr"
        snapshot = self._served.current
        label, served, records = self._forms.get(name, ("", name, None))
        zone = snapshot.zones.get(served)
        if zone is not None and zone.wire == name:
            label = zone.name  # (counted under its name even when not transferable)
        question = message[HEADER_LEN:end]
        head = message[:2] + struct.pack(">H", _QR_AA | (message[2] & 0x79) << 8)
        sign: Signer | None = None
        if message[10:12] != b"\x00\x00" or name in self._required:
            # Signed, or must be: dnspython checks the TSIG (RFC 8945).
            try:
                request = dns.message.from_wire(message, keyring=self._keyring)
            except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadTime,
                    dns.tsig.PeerError):
                self._count(label, kind, "notauth")
                return self._refusal(message, question, NOTAUTH)
            except dns.exception.DNSException:
                self._count(label, kind, "refused")
                return self._refusal(message, question, REFUSED)
            required = self._required.get(name)
            if request.had_tsig and request.keyname is not None and request.mac is not None:
                sign = Signer(self._keyring[request.keyname], request.mac, request.id)
            if required is not None and request.keyname != required:
                self._count(label, kind, "refused")  # unsigned, or by another key
                return self._refusal(message, question, REFUSED, sign)
        if (qclass != CLASS_IN or zone is None or zone.wire != served or records is None
                or not self._allowed(name, client) or zone.servfail):
            self._count(label, kind, "refused")
            return self._refusal(message, question, REFUSED, sign)
        if kind == "ixfr" and _client_serial(message, end) == zone.serial:
            # RFC 1995 section 4: the client is current; one SOA says so.
            self._count(label, kind, "uptodate")
            soa = b"\xc0\x0c" + zone.soa_tail
            reply = head + struct.pack(">HHHH", 1, 1, 0, 0) + question + soa
            return sign(reply) if sign is not None else reply
        # Without kept versions an IXFR is answered by the whole zone
        # (RFC 1995 section 4 allows it); a serial from the future too.
        task = asyncio.get_running_loop().create_task(
            self._send(connection, _messages(records(snapshot, zone), head, question, sign),
                       label, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        connection.transfer_started(task)
        return None

    @staticmethod
    def _refusal(message: bytes, question: bytes, rcode: int,
                 sign: Signer | None = None) -> bytes:
        flags = 0x8000 | (message[2] & 0x79) << 8 | rcode
        reply = message[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + question
        return sign(reply) if sign is not None else reply

    async def _send(self, connection: Any, messages: Generator[bytes, None, None], label: str,
                    kind: str) -> None:
        result = "failed"
        try:
            while True:
                message = await asyncio.to_thread(next, messages, None)
                if message is None:
                    result = "ok"
                    break
                if not await connection.send_transfer(message):
                    result = "aborted"
                    break
        except asyncio.CancelledError:
            result = "aborted"
            raise
        finally:
            try:
                messages.close()
            except ValueError:  # still running in its thread: it ends with it
                pass
            self._count(label, kind, result)
            self.forget(connection.transport)
            connection.transfer_done()

    def moving(self, transport: Any) -> bool:
        """Whether a connection sending a zone made progress since the last
        look: its next message is being made (nothing waits to be sent), or
        the client read some of what waits, in our buffer or the kernel's.
        A slow secondary drains megabytes of socket buffer for longer than
        the idle timeout without our own buffer ever emptying."""
        unread = transport.get_write_buffer_size()
        if not unread:
            self._unread.pop(transport, None)
            return True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # bytes the kernel holds that the peer has not acknowledged (Linux)
                unread += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                         b"\0\0\0\0"))[0]
            except OSError:
                pass
        before = self._unread.get(transport)
        self._unread[transport] = unread
        return before is None or unread < before

    def forget(self, transport: Any) -> None:
        self._unread.pop(transport, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - ending anyway
                pass
