"""Zone transfer from ``dnsbl serve``: AXFR (RFC 5936), IXFR (RFC 1995) from
the differences kept of the last versions, NOTIFY (RFC 1996) when a zone's
serial changes, and TSIG (RFC 8945) on every answer to a signed query.

The transports hand here what is not a plain query (:meth:`Transfers.wants`,
:meth:`Transfers.special`): a transfer question over TCP, a signed message
or an IXFR over UDP. The records are those ``dnsbl export`` writes, the
``bind`` form under a zone's name and the ``rpz`` form under its RPZ origin
(:func:`dnsbl.export.transfer_forms`: each a transfer name of its own, with
its own kept differences and NOTIFYs), from the snapshot being served when
the question came. A transfer's messages are made and packed in a worker thread, a
message at a time, so the event loop keeps answering queries, and each
message waits for the client to read the ones before it, so a client that
stops reading holds one message, not the zone.

When a reload swaps in new data, :meth:`Transfers.stamp` gives each
transferable zone its serial (:mod:`dnsbl.serials`: never back); its RPZ
form is made from the same data and has the same SOA, so the same serial.
Each form of a zone that changed gets its difference from the version
before made off the loop (:mod:`dnsbl.ixfr`, from the entries that changed:
:mod:`dnsbl.ixdiff`), then its secondaries a NOTIFY
(:mod:`dnsbl.notify`). Once the server serves at start-up
(:meth:`Transfers.announce`), and when a zone missing then first loads,
each form's secondaries are told its serial too, as BIND does on a load.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import struct
import termios
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsbl.allowlist import Allowlist
from dnsbl.export import Entries, Record, dataset_entries, packed_records, transfer_forms
from dnsbl.ixdiff import zone_difference
from dnsbl.ixfr import Delta, Digests, History, condensed
from dnsbl.notify import Notifier
from dnsbl.serials import SerialState, newer
from dnsbl.tsig import MARK, Checked, Keys, Signer, unsigned
from dnsbl.wire import CLASS_IN, HEADER_LEN, REFUSED, TYPE_AXFR, TYPE_IXFR, TYPE_SOA, name_to_wire
from dnsbl.zones import ServedZones, Snapshot, Zone

if TYPE_CHECKING:
    from dnsbl.config import ServerConfig, ZoneConfig

#: A transfer's messages are filled to about this size (RFC 5936 allows
#: 65535; smaller ones interleave better with queries on the loop).
MESSAGE_SIZE = 16 * 1024
#: Seconds an IXFR waits for the difference of a change just served (a few
#: entries' takes well under a second; one made from the whole of a 1M-entry
#: zone about 30 s on a slow host) before it gets the whole zone.
DIFFERENCE_WAIT = 120.0
KINDS = ("axfr", "ixfr")
#: ``ixfr``: answered from kept differences; ``axfr``: the whole zone
#: (an IXFR from a serial not kept is answered so, counted ``ixfr``/``full``);
#: ``future``: an IXFR from a serial newer than ours.
RESULTS = ("ok", "full", "uptodate", "future", "toobig", "refused", "notauth", "aborted",
           "failed")

_QR_AA = 0x8400

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Form:
    """A name a transfer may ask for: a zone's own (the ``bind`` form) or its
    RPZ origin; the served zone whose data it is and the config of that."""

    name: str
    wire: bytes
    zone: bytes  # the served zone's name in wire form
    config: ZoneConfig
    #: The records from a snapshot and that zone, its SOA first: what AXFR
    #: sends and what IXFR's differences are made from.
    records: Callable[[Snapshot, Zone, Entries], Iterator[Record]]


def _soa(tail: bytes) -> bytes:
    return b"\xc0\x0c" + tail


def _messages(records: Iterable[bytes], head: bytes, question: bytes,
              sign: Callable[[bytes], bytes] | None) -> Generator[bytes, None, None]:
    """Packed records in messages of about :data:`MESSAGE_SIZE` bytes, signed."""
    body = bytearray()
    count = 0
    for record in records:
        body += record
        count += 1
        if len(body) >= MESSAGE_SIZE:
            message = head + struct.pack(">HHHH", 1, count, 0, 0) + question + bytes(body)
            yield sign(message) if sign is not None else message
            body.clear()
            count = 0
    if count:
        message = head + struct.pack(">HHHH", 1, count, 0, 0) + question + bytes(body)
        yield sign(message) if sign is not None else message


def _axfr(records: Iterator[Record]) -> Iterator[bytes]:
    """The whole zone: its SOA, every other record, its SOA again (RFC 5936)."""
    wires = packed_records(records)
    soa = next(wires)
    yield soa
    yield from wires
    yield soa


def _ixfr(deltas: list[Delta], current: bytes) -> Iterator[bytes]:
    """RFC 1995 section 4: the current SOA; the old SOA and the records
    deleted, the new SOA and the records added, the versions condensed into
    one (section 5); the current SOA."""
    delta = condensed(deltas)
    yield _soa(current)
    yield _soa(delta.old_soa)
    yield from packed_records(delta.deleted)
    yield _soa(delta.new_soa)
    yield from packed_records(delta.added)
    yield _soa(current)


def _fingerprint(zone: Zone, allowlist: Allowlist | None = None) -> str:
    """What tells one version of a zone's data from another, cheaply: the
    data's own serial, and each dataset's files as read (time, size, inode:
    what reloading goes by) and entries; for a zone with an RPZ form, its
    allowlist's files and networks the same way (they are in that form)."""
    parts = [str(zone.soa.serial), str(zone.loaded)]
    parts += [f"{d.family}:{d.signature!r}:{d.listed}" for d in zone.datasets]
    if allowlist is not None and allowlist.files:
        parts.append(f"allowlist:{allowlist.signature!r}:{len(allowlist.networks)}")
    return "|".join(parts)


def _soa_rrset(name: str, zone: Zone) -> dns.rrset.RRset:
    """The SOA a NOTIFY for ``name`` (the zone or its RPZ origin) carries."""
    rtype, _class, ttl, length = struct.unpack(">HHIH", zone.soa_tail[:10])
    rdata = dns.rdata.from_wire(dns.rdataclass.IN, rtype, zone.soa_tail, 10, length)
    return dns.rrset.from_rdata(dns.name.from_text(name), ttl, rdata)


class Transfers:
    """The transferable zones: who may transfer them, their serials and kept
    differences, the NOTIFYs to their secondaries, the TSIG keys; the counts
    of each, and the task of each transfer under way."""

    def __init__(self, config: ServerConfig) -> None:
        #: What is served; set by the server once it has made it.
        self.served: ServedZones | None = None
        self._zones = {name_to_wire(z.name): z for z in config.zones if z.transfer}
        by_zone = {z.name: z for z in config.zones}
        #: Each name a transfer may ask for (a zone's, an RPZ origin) -> its form.
        self._forms = {name_to_wire(name): _Form(name, name_to_wire(name), name_to_wire(zone),
                                                 by_zone[zone], records)
                       for name, (zone, records) in transfer_forms(config).items()}
        self._allow: dict[bytes, list[Network]] = {
            wire: [ipaddress.ip_network(n) for n in form.config.transfer]
            for wire, form in self._forms.items()}
        self.keys = Keys(config.tsig_keys)
        #: The key a form's transfers must be signed with (its zone's).
        self._required = {wire: dns.name.from_text(form.config.transfer_key)
                          for wire, form in self._forms.items() if form.config.transfer_key}
        self._serials = SerialState(config.state_dir)
        self._edns_payload = config.edns_payload
        self._history = {wire: History(form.config.ixfr_versions)
                         for wire, form in self._forms.items()}
        #: The digests of each form's records at a serial: the next difference's start.
        self._digests: dict[bytes, tuple[int, Digests]] = {}
        self.notifier = Notifier()
        #: (zone, kind, result) -> count
        self.counts: dict[tuple[str, str, str], int] = {}
        #: Signed queries outside transfers, by result: ok, badkey, badsig, badtime.
        self.tsig_counts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._following: asyncio.Task[None] | None = None  # the last change being followed
        #: Per connection sending a zone: the bytes not yet read at the last look.
        self._unread: dict[Any, int] = {}

    # -- serials, differences and NOTIFY, as new data is served --------------------

    def stamp(self, new: Snapshot, old: Snapshot | None) -> None:
        """Give each transferable zone of ``new`` its serial, before it is
        served; where it changed from ``old``, make the difference and tell
        the secondaries (in a task, in the order of the changes)."""
        for wire, config in self._zones.items():
            zone = new.zones.get(wire)
            if zone is None or not zone.loaded:
                continue
            before = old.zones.get(wire) if old is not None else None
            # The RPZ form's passthrus are data of the zone's too, versioned with it.
            allowlist = new.allowlist if config.rpz else None
            if (old is not None and before is not None and before.loaded
                    and len(before.datasets) == len(zone.datasets)
                    and all(a is b for a, b in zip(before.datasets, zone.datasets, strict=True))
                    and (allowlist is old.allowlist or not config.rpz)):
                serial = before.serial  # rebuilt for another zone's sake: the same data
            else:
                serial = self._serials.serial(config.name, _fingerprint(zone, allowlist),
                                              zone.serial)
            zone.set_serial(serial)
            suffix = "." + config.name
            for sub in new.zones.values():  # a combined file's subzones share the SOA
                if sub.parent_labels and sub.name.endswith(suffix):
                    sub.set_serial(serial)
            for form in self._forms.values():  # and the RPZ origin's apex answers it
                apex = new.zones.get(form.wire) if form.zone == wire else None
                if apex is not None and apex is not zone:
                    apex.set_serial(serial)
            if old is None:
                continue  # told once served: announce()
            if before is not None and before.loaded:
                if serial != before.serial:
                    for form in self._forms.values():  # the zone's own, its RPZ form
                        if form.zone == wire:
                            self._follow(form, old, before, new, zone)
            else:  # loaded for the first time since the start: told, as at the start
                self._tell(wire, new)

    def announce(self) -> None:
        """Tell the secondaries of each zone being served its serial, as BIND
        does when it loads a zone: a start may follow changes made while the
        server was down, which they would otherwise see only at their next
        SOA refresh. Called once the zones are served, so a secondary that
        asks at once is answered."""
        assert self.served is not None
        for wire in self._zones:
            self._tell(wire, self.served.current)

    def _tell(self, wire: bytes, snapshot: Snapshot) -> None:
        """NOTIFY for each transferable form of the zone ``wire`` in ``snapshot``."""
        zone = snapshot.zones.get(wire)
        if zone is None or not zone.loaded or zone.servfail:
            return
        for form in self._forms.values():
            apex = snapshot.zones.get(form.wire)
            if form.zone == wire and apex is not None and not apex.servfail:
                self._notify(form, zone)

    def _notify(self, form: _Form, zone: Zone) -> None:
        config = form.config
        if config.notify:
            key = self.keys.key(config.transfer_key) if config.transfer_key else None
            self.notifier.notify(form.name, _soa_rrset(form.name, zone), config.notify, key)

    def _follow(self, form: _Form, old: Snapshot, before: Zone, new: Snapshot,
                zone: Zone) -> None:
        previous = self._following
        task = asyncio.get_running_loop().create_task(
            self._changed(previous, form, old, before, new, zone))
        self._following = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _changed(self, previous: asyncio.Task[None] | None, form: _Form, old: Snapshot,
                       before: Zone, new: Snapshot, zone: Zone) -> None:
        if previous is not None:  # differences are kept in the order of the versions
            await asyncio.gather(previous, return_exceptions=True)
        config = form.config
        history = self._history[form.wire]
        if config.ixfr_versions:
            kept = self._digests.pop(form.wire, None)
            known = kept[1] if kept is not None and kept[0] == before.serial else None
            try:
                found = await asyncio.to_thread(zone_difference, form.records, old, before,
                                                new, zone, known)
            except Exception:  # noqa: BLE001 - the zone is served anyway; IXFR falls back
                log.exception("zone %s: cannot make the difference from serial %d to %d",
                              form.name, before.serial, zone.serial)
                found = None
            if found is None:
                history.clear()
                log.info("zone %s: serial %d, no difference kept (too big, or none could be "
                         "made): IXFR from before it gets the whole zone", form.name,
                         zone.serial)
            else:
                deleted, added, digests = found
                if digests is not None:
                    self._digests[form.wire] = (zone.serial, digests)
                history.add(Delta(before.serial, before.soa_tail, zone.serial, zone.soa_tail,
                                  tuple(deleted), tuple(added)))
                log.info("zone %s: serial %d -> %d: %d records deleted, %d added", form.name,
                         before.serial, zone.serial, len(deleted), len(added))
        self._notify(form, zone)

    def kept(self, zone: str) -> list[int]:
        """The serials of ``zone`` (a zone's name or an RPZ origin) an IXFR
        is answered from with differences."""
        history = self._history.get(name_to_wire(zone))
        return history.serials() if history is not None else []

    # -- questions -----------------------------------------------------------------

    def wants(self, message: bytes) -> bool:
        """Whether ``message`` asks for a zone transfer (over TCP)."""
        found = _question(message)
        return found is not None and found[1] in (TYPE_AXFR, TYPE_IXFR)

    @staticmethod
    def special(message: bytes) -> bool:
        """Whether a message that is no transfer is for :meth:`answer` rather
        than the query path: it may be signed, or asks IXFR (over UDP). A test
        of bytes, as it is made of every query when transfers are on."""
        return MARK in message or b"\x00\xfb\x00\x01" in message

    def answer(self, message: bytes, client: str | None, udp: bool,
               plain: Callable[[bytes], bytes | None]) -> bytes | None:
        """The reply to a message :meth:`special` picked: an IXFR over UDP
        from the kept differences, or a signed query answered by ``plain``
        (the query path) and the reply signed; a bad signature's NOTAUTH."""
        found = _question(message)
        if found is None:
            return plain(message)  # the query path says what is wrong with it
        name, qtype, _qclass, end = found
        if qtype == TYPE_IXFR and udp:
            return self._udp_ixfr(message, client)
        if MARK not in message:
            return plain(message)
        checked = self.keys.check(message, message[HEADER_LEN:end])
        if checked is None:
            return plain(message)
        if isinstance(checked, tuple):
            self._count_tsig({16: "badsig", 17: "badkey", 18: "badtime"}[checked[0]])
            return checked[1]
        if checked.sign is None:
            return plain(message)  # looked signed, is not
        self._count_tsig("ok")
        answered = plain(unsigned(message, end))
        return checked.sign(answered) if answered is not None else None

    def _count_tsig(self, result: str) -> None:
        self.tsig_counts[result] = self.tsig_counts.get(result, 0) + 1

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

    def _granted(self, message: bytes, client: str | None,
                 soa_only: bool = False) -> _Granted | bytes:
        """Who asks what, checked (ACL, key): what to answer from, or the
        refusal. ``soa_only``: only the current SOA will be sent, which is
        no secret, so the ACL is not asked."""
        found = _question(message)
        assert found is not None
        name, qtype, qclass, end = found
        kind = "axfr" if qtype == TYPE_AXFR else "ixfr"
        assert self.served is not None
        snapshot = self.served.current
        form = self._forms.get(name)
        served = form.zone if form is not None else name  # an RPZ origin: its zone's data
        zone = snapshot.zones.get(served)
        if form is not None:
            label = form.name
        else:  # counted under its name even when not transferable
            label = zone.name if zone is not None and zone.wire == name else ""
        question = message[HEADER_LEN:end]
        sign: Signer | None = None
        required = self._required.get(name)
        if MARK in message or required is not None:
            checked = self.keys.check(message, question)
            if isinstance(checked, tuple):
                self._count(label, kind, "notauth")
                return checked[1]
            if not isinstance(checked, Checked):
                self._count(label, kind, "refused")
                return _refusal(message, question, REFUSED)
            sign = checked.sign
            if required is not None and checked.keyname != required:
                self._count(label, kind, "refused")  # unsigned, or by another key
                return _refusal(message, question, REFUSED, sign)
        if (qclass != CLASS_IN or zone is None or zone.wire != served
                or not (soa_only or self._allowed(name, client)) or zone.servfail
                or snapshot.zones[name].servfail):  # an RPZ form whose allowlist is missing
            self._count(label, kind, "refused")
            return _refusal(message, question, REFUSED, sign)
        head = message[:2] + struct.pack(">H", _QR_AA | (message[2] & 0x79) << 8)
        serial = _client_serial(message, end) if kind == "ixfr" else None
        return _Granted(snapshot, zone, name, label, kind, head, question, sign, serial)

    def _short(self, granted: _Granted) -> bytes | None:
        """An IXFR answered by one SOA, the current one: the client's serial
        is ours (RFC 1995 section 4: up to date) or newer than ours, which
        RFC 1995 leaves open and BIND answers so too: the client keeps what it
        has, and we count it, for a primary whose serial went back is broken.
        None: the client needs data."""
        zone = granted.zone
        if granted.kind != "ixfr" or granted.serial is None:
            return None
        if granted.serial == zone.serial:
            result = "uptodate"
        elif newer(granted.serial, zone.serial):
            result = "future"
        else:
            return None
        self._count(granted.label, "ixfr", result)
        return granted.reply([_soa(zone.soa_tail)])

    def _deltas(self, granted: _Granted) -> list[Delta] | None:
        if granted.kind != "ixfr" or granted.serial is None:
            return None
        history = self._history.get(granted.name)
        return history.since(granted.serial, granted.zone.serial) if history is not None else None

    def _udp_ixfr(self, message: bytes, client: str | None) -> bytes:
        """RFC 1995 section 2: over UDP the differences if they fit in 512
        bytes, else the current SOA alone (the client then asks over TCP)."""
        granted = self._granted(message, client, soa_only=client is None)
        if isinstance(granted, bytes):
            return granted
        short = self._short(granted)
        if short is not None:
            return short
        limit, opt = self._udp_limit(message)
        deltas = self._deltas(granted) if client is not None else None
        # Made here, on the loop: only differences that may fit (12 bytes a record or more).
        if deltas is not None and sum(d.size for d in deltas) < limit // 12:
            reply = granted.reply(list(_ixfr(deltas, granted.zone.soa_tail)), opt)
            if len(reply) <= limit:
                self._count(granted.label, "ixfr", "ok")
                return reply
        self._count(granted.label, "ixfr", "toobig")
        return granted.reply([_soa(granted.zone.soa_tail)], opt)

    def _udp_limit(self, message: bytes) -> tuple[int, bytes]:
        """The size a UDP reply must fit (512, or what EDNS asks up to our
        payload), and the OPT record to answer an EDNS query with."""
        try:
            request = dns.message.from_wire(message, keyring=False)
        except dns.exception.DNSException:
            return 512, b""
        if request.edns < 0:
            return 512, b""
        payload = max(512, min(request.payload, self._edns_payload))
        return payload, b"\x00" + struct.pack(">HHIH", 41, self._edns_payload, 0, 0)

    def start(self, connection: Any, message: bytes, client: str | None) -> bytes | None:
        """Begin the transfer ``message`` asks for on ``connection`` (a TCP
        protocol with ``transfer_done()``); the reply to send at once instead
        (a refusal, or an IXFR's one SOA), or None when a task sends it."""
        granted = self._granted(message, client)
        if isinstance(granted, bytes):
            return granted
        short = self._short(granted)
        if short is not None:
            return short
        task = asyncio.get_running_loop().create_task(self._transfer(connection, granted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        connection.transfer_started(task)
        return None

    async def _transfer(self, connection: Any, granted: _Granted) -> None:
        following = self._following
        if granted.kind == "ixfr" and following is not None and not following.done():
            # Just after a change its difference is still being made: wait
            # for it (as BIND's journal is written before the new serial is
            # served) rather than send the whole zone, up to a bound.
            await asyncio.wait({following}, timeout=DIFFERENCE_WAIT)
        deltas = self._deltas(granted)
        if deltas is not None:
            records: Iterable[bytes] = _ixfr(deltas, granted.zone.soa_tail)
            result = "ok"
        else:
            # The serial is not kept (too old, or never ours), or an AXFR:
            # the whole zone (RFC 1995 section 4 allows it for an IXFR).
            form = self._forms[granted.name]  # (the ACL let it through: it has one)
            records = _axfr(form.records(granted.snapshot, granted.zone, dataset_entries))
            result = "ok" if granted.kind == "axfr" else "full"
        messages = _messages(records, granted.head, granted.question, granted.sign)
        await self._send(connection, messages, granted.label, granted.kind, result)

    async def _send(self, connection: Any, messages: Generator[bytes, None, None], label: str,
                    kind: str, done: str) -> None:
        result = "failed"
        try:
            while True:
                message = await asyncio.to_thread(next, messages, None)
                if message is None:
                    result = done
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
        await self.notifier.close()


@dataclass
class _Granted:
    """A transfer question that may be answered, and what from."""

    snapshot: Snapshot
    zone: Zone  # the served zone whose data it is
    name: bytes  # the transfer name asked for: the zone's, or its RPZ origin
    label: str
    kind: str
    head: bytes
    question: bytes
    sign: Signer | None
    serial: int | None  # an IXFR's: the client's

    def reply(self, records: list[bytes], opt: bytes = b"") -> bytes:
        """One message holding ``records`` (and ``opt``, an OPT record), signed."""
        message = (self.head + struct.pack(">HHHH", 1, len(records), 0, 1 if opt else 0)
                   + self.question + b"".join(records) + opt)
        return self.sign(message) if self.sign is not None else message


def _refusal(message: bytes, question: bytes, rcode: int, sign: Signer | None = None) -> bytes:
    flags = 0x8000 | (message[2] & 0x79) << 8 | rcode
    reply = message[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + question
    return sign(reply) if sign is not None else reply
