"""Answering: the bytes of a query and the zones in, the bytes of the reply out.

This is the hot path. It parses the header and question by hand, decodes the
reversed address straight from the labels, and splices records that were
pre-packed at load time after the question as the client sent it (case and
all, so 0x20 randomisation works). It allocates little, logs nothing and only
bumps plain-int counters.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

from dnsbl.datasets import AclDataset
from dnsbl.stats import (
    BAD_CLASS,
    BAD_COUNTS,
    BAD_EDNS,
    BAD_NAME,
    BAD_OPCODE,
    BAD_POINTER,
    BAD_QUESTION,
    DROP_ACL,
    DROP_REASONS,
    DROP_RESPONSE,
    DROP_SHORT,
    LISTED,
    NOT_LISTED,
    OTHER_QTYPE,
    QTYPE_INDEX,
    QTYPE_LABELS,
    Stats,
    ZoneStats,
)
from dnsbl.wire import (
    AA,
    BADVERS,
    CD,
    CLASS_IN,
    DO,
    FORMERR,
    HEADER_LEN,
    MAX_LABEL,
    MAX_NAME,
    MAX_UDP_PLAIN,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    OPCODE,
    OPTION_NSID,
    POINTER,
    QR,
    RD,
    REFUSED,
    SERVFAIL,
    TC,
    TYPE_A,
    TYPE_ANY,
    TYPE_AXFR,
    TYPE_IXFR,
    TYPE_MAILA,
    TYPE_MAILB,
    TYPE_NS,
    TYPE_OPT,
    TYPE_SOA,
    TYPE_TSIG,
    TYPE_TXT,
    pointer,
)
from dnsbl.zonefile import Value
from dnsbl.zones import Zone, Zones

__all__ = ["DROP_REASONS", "EDNS_PAYLOAD", "FAST_PATH", "FAST_PATHS", "FAST_PATH_WHY", "Edns",
           "Stats", "answer"]

#: The UDP payload size we advertise and accept at most (DNS Flag Day 2020).
EDNS_PAYLOAD = 1232

_COUNTS = struct.Struct(">HHHH")
#: An OPT record's first bytes: the root name and the type.
_OPT_OWNER_TYPE = struct.pack(">BH", 0, TYPE_OPT)


class Edns:
    """What we say in OPT records, pre-packed: our UDP payload size, and the
    NSID (RFC 5001) that tells anycast nodes apart, sent only when asked for."""

    __slots__ = ("payload", "opt", "opt_do", "opts", "badvers")

    def __init__(self, payload: int = EDNS_PAYLOAD, nsid: bytes = b"") -> None:
        self.payload = max(MAX_UDP_PLAIN, min(payload, 65535))
        head = _OPT_OWNER_TYPE + struct.pack(">H", self.payload)
        self.opt = head + b"\x00\x00\x00\x00\x00\x00"
        self.opt_do = with_do(self.opt)
        badvers = head + b"\x01\x00\x00\x00\x00\x00"
        option = struct.pack(">HH", OPTION_NSID, len(nsid)) + nsid
        opt_nsid = (head + b"\x00\x00\x00\x00" + struct.pack(">H", len(option)) + option
                    if nsid else self.opt)
        #: (DO asked, NSID asked) -> the OPT to send, and BADVERS's by DO.
        self.opts = {(do, asked): with_do(opt) if do else opt
                     for asked, opt in ((False, self.opt), (True, opt_nsid))
                     for do in (False, True)}
        self.badvers = (badvers, with_do(badvers))


def with_do(opt: bytes) -> bytes:
    """The OPT record with the DO bit set: RFC 3225 3 says a query's DO bit
    MUST be copied into the response (a validator sends it)."""
    return opt[:7] + bytes((opt[7] | DO,)) + opt[8:]


DEFAULT_EDNS = Edns()
#: Byte of a nibble label -> its value (either case).
_HEX_DIGITS = {ord(c): int(c, 16) for c in "0123456789abcdefABCDEF"}
_TCP_OFFSET = len(QTYPE_LABELS)  # requests counters: UDP first, then TCP
_NOTIFY = 4 << 3  # the opcode, in place in the header's third byte
_META_TYPES = frozenset((TYPE_TSIG, TYPE_IXFR, TYPE_AXFR, TYPE_MAILB, TYPE_MAILA))

# The fast path: the question of almost every query, d.c.b.a.<zone> IN A/TXT/ANY.
# One regex match (in C) splits the four decimal labels, the zone's name and
# the type and class; a zone whose only data is one IPv4 dataset then costs one
# dict lookup, one lookup in the data and one concatenation.
_DECIMAL_LABEL = rb"(\x01\d|\x02\d\d|\x03\d\d\d)"
_REVERSED_V4 = re.compile(_DECIMAL_LABEL * 4 + rb"([^\x00]*\x00)(.{4})", re.S)
#: A decimal label, length byte and all (leading zeros too), to its value.
_OCTETS = {bytes((len(text),)) + text.encode(): value
           for value in range(256) for text in {str(value), f"{value:02d}", f"{value:03d}"}}
#: Type and class bytes -> (query type, its requests counter).
_FAST_QTYPES = {struct.pack(">HH", qtype, CLASS_IN): (qtype, QTYPE_INDEX[qtype])
                for qtype in (TYPE_A, TYPE_TXT, TYPE_ANY)}
#: The flag bits a query the fast path takes has clear: a response, or an opcode other than QUERY.
_NOT_A_QUERY = QR | OPCODE
_POINTERS = [pointer(offset) for offset in range(512)]
# IPv6 addresses holding an IPv4 one, which IPv4 data answers.
_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"  # ::ffff:0:0/96
_SIX_TO_FOUR_PREFIX = b"\x20\x02"  # 2002::/16
#: (the prefix as an int, its length in nibbles)
_V4_EMBEDDINGS = ((0xFFFF, 24), (0x2002, 4))


def answer(data: bytes, zones: Zones, stats: Stats, udp: bool = True,
           edns: Edns = DEFAULT_EDNS, client: str | None = None) -> bytes | None:
    """Answer one DNS message; ``None`` means send nothing.

    ``zones`` maps a zone's lowercase wire name to the zone. Over UDP a reply
    that does not fit the client's limit goes out with TC=1 and no records.
    ``client`` (the source address) matters only to zones with an ACL.
    """
    reply = _fast(data, zones, udp, edns)
    if reply is not None:
        return reply
    # A client the global ACL ignores gets nothing at all, in a zone or not,
    # as from rbldnsd (zones with an ACL never take the fast path).
    global_acl = zones.acl
    if global_acl is not None and client is not None and global_acl.action(client) == "ignore":
        stats.dropped[DROP_ACL] += 1
        return None
    query = _read_question(data, zones, stats, udp, edns, client)
    if not isinstance(query, _Query):
        return query  # nothing, or a reply saying why the question or its OPT is no good
    return _in_zone(query, stats)


class _Query:
    """One question on the general path, read once: what each step of
    answering it and the reply builder need, made by :func:`_new_query` in
    one call (this is per query). Steps fill in the rest."""

    __slots__ = ("data", "question", "qtype", "qclass", "qname", "offsets", "depth",
                 "zone", "counts", "client", "opt", "limit", "acl", "soa_owner", "negative",
                 "looked", "exists")

    data: bytes
    question: bytes  # echoed as sent: 0x20 case and all
    qtype: int
    qclass: int
    qname: bytes  # lowercase
    offsets: list[int]  # where each label of the name starts
    depth: int  # labels in front of the zone's name
    zone: Zone | None
    counts: ZoneStats  # the zone's counters, or the server's for no zone
    client: str | None
    opt: bytes  # the OPT record to send
    limit: int  # the reply's size limit
    # The rest _in_zone sets once the question is not refused: a refusal
    # (much of what reaches the general path) does without them.
    acl: str | Value | None  # what an ACL says to do instead of looking up
    soa_owner: bytes  # a pointer to the zone's name in the question
    negative: bytes  # the SOA for the authority section of NXDOMAIN and NODATA
    looked: bool  # some data was asked about this name
    # Listed names lie below it: NODATA, never NXDOMAIN (RFC 8020), or
    # resolvers doing QNAME minimisation would take the whole subtree for gone.
    exists: bool


_new = object.__new__


def _new_query(data: bytes, end: int, qtype: int, qname: bytes, offsets: list[int], depth: int,
               zone: Zone | None, counts: ZoneStats, client: str | None, opt: bytes,
               limit: int) -> _Query:
    """A :class:`_Query` for the question ending at ``end``. A function, not
    ``__init__``: on CPython 3.11 calling a class whose ``__init__`` is Python
    packs the arguments into a tuple first, a fifth more per query."""
    query = _new(_Query)
    query.data = data
    query.question = data[HEADER_LEN:end]
    query.qtype = qtype
    query.qclass = data[end - 2] << 8 | data[end - 1]
    query.qname = qname
    query.offsets = offsets
    query.depth = depth
    query.zone = zone
    query.counts = counts
    query.client = client
    query.opt = opt
    query.limit = limit
    return query


def _read_question(data: bytes, zones: Zones, stats: Stats, udp: bool, edns: Edns,
                   client: str | None) -> _Query | bytes | None:
    """The header, question and OPT, checked, and the zone the name falls in;
    or what to send instead: nothing (``None``), a header-only reply saying
    why, or the FORMERR or BADVERS that a bad OPT gets."""
    # Untrusted bytes straight from the network: check every length before use.
    n = len(data)
    if n < HEADER_LEN:
        stats.dropped[DROP_SHORT] += 1
        return None
    if data[2] & QR:
        stats.dropped[DROP_RESPONSE] += 1
        return None
    if data[2] & OPCODE:  # an opcode other than QUERY
        # NOTIFY (RFC 1996) is for secondaries: we are the primary of our
        # zones, so a NOTIFY comes from nobody we take zones from.
        return _bare(data, REFUSED if data[2] & OPCODE == _NOTIFY else NOTIMP, stats,
                     BAD_OPCODE)
    if data[4] or data[5] != 1:
        return _bare(data, FORMERR, stats, BAD_COUNTS)
    offsets = []
    pos = HEADER_LEN
    while True:
        if pos >= n:
            return _bare(data, FORMERR, stats, BAD_QUESTION if pos == HEADER_LEN else BAD_NAME)
        length = data[pos]
        if length == 0:
            break
        if length > MAX_LABEL:  # a pointer or reserved label type has no place in a question
            return _bare(data, FORMERR, stats, BAD_POINTER if length >= POINTER else BAD_NAME)
        offsets.append(pos)
        pos += length + 1
    end = pos + 5  # the root label, type and class
    if pos - (HEADER_LEN - 1) > MAX_NAME:
        return _bare(data, FORMERR, stats, BAD_NAME)
    if end > n:
        return _bare(data, FORMERR, stats, BAD_QUESTION)
    # The most specific zone the name falls in: try each suffix, longest first.
    qname = data[HEADER_LEN:pos + 1].lower()
    zone = None
    depth = 0
    for depth, off in enumerate(offsets):  # noqa: B007 (depth is used after the loop)
        zone = zones.get(qname[off - HEADER_LEN:])
        if zone is not None:
            break
    counts = stats.unzoned if zone is None else zone.stats
    qtype = data[pos + 1] << 8 | data[pos + 2]
    counts.requests[QTYPE_INDEX.get(qtype, OTHER_QTYPE) + (0 if udp else _TCP_OFFSET)] += 1
    opt = b""
    limit = MAX_UDP_PLAIN
    if data[6] or data[7] or data[8] or data[9] or data[10] or data[11]:
        opt, limit, rcode = _read_edns(data, end, edns, stats)
        if rcode != NOERROR:
            return _reply(_new_query(data, end, qtype, qname, offsets, depth, zone, counts,
                                     client, opt, limit), rcode)
    return _new_query(data, end, qtype, qname, offsets, depth, zone, counts, client,
                      opt, limit if udp else 65535)


def _read_edns(data: bytes, end: int, edns: Edns, stats: Stats) -> tuple[bytes, int, int]:
    """The OPT to answer with, the size a UDP reply must fit (512 bytes, or
    what EDNS asks up to our payload) and NOERROR; or a bad OPT's FORMERR or
    BADVERS (and no size limit on saying so)."""
    found = _edns(data, end)
    if isinstance(found, int):
        stats.malformed[found] += 1
        return b"", 65535, FORMERR
    if not found:
        return b"", MAX_UDP_PLAIN, NOERROR
    payload, version, nsid, dnssec_ok = found
    if version:
        return edns.badvers[dnssec_ok], 65535, BADVERS
    return edns.opts[dnssec_ok, nsid], max(MAX_UDP_PLAIN, min(payload, edns.payload)), NOERROR


def _in_zone(query: _Query, stats: Stats) -> bytes | None:
    """The answer to a readable question: refused outside our zones, else
    from the zone's data, asked as an IPv4 address, an IPv6 address and a
    domain name in turn (a zone may hold all three)."""
    zone = query.zone
    if query.qclass != CLASS_IN:
        stats.malformed[BAD_CLASS] += 1
        return _reply(query, REFUSED)
    if zone is None:
        return _reply(query, REFUSED)
    if query.qtype in _META_TYPES:
        return _reply(query, NOTIMP)
    client = query.client
    acl = _acl(zone.acls, client) if zone.acls and client is not None else None
    if acl == "ignore":
        stats.dropped[DROP_ACL] += 1
        return None
    if zone.servfail:  # not loaded, or past its $TIMESTAMP expiry (as rbldnsd)
        return _reply(query, SERVFAIL)
    if acl == "refuse":
        return _reply(query, REFUSED)
    query.acl = acl
    query.looked = query.exists = False
    depth = query.depth
    query.soa_owner = owner = _POINTERS[query.offsets[depth + zone.parent_labels]]
    query.negative = owner + zone.neg_soa_tail
    if depth == 0:
        return _apex(query, zone)
    reply = None
    if zone.lookups4:  # IPv4 data: 4.3.2.1.<zone>
        reply = _ipv4(query, zone)
    if reply is None and (zone.lookups6 or zone.lookups4) and depth <= 32:
        reply = _ipv6(query, zone)  # 32 reversed nibbles
    if reply is None and (zone.names or zone.generic):
        reply = _domain(query, zone)
    if reply is not None:
        return reply
    if query.looked:
        query.counts.lookups[NOT_LISTED] += 1
    return _reply(query, NOERROR if query.exists else NXDOMAIN)


def _ipv4(query: _Query, zone: Zone) -> bytes | None:
    """The answer when the name is a reversed IPv4 address (``4.3.2.1``);
    ``None`` when it is not one, or is not listed."""
    data, offsets, depth = query.data, query.offsets, query.depth
    octets = []
    for off in offsets[:depth]:
        label = data[off + 1:off + 1 + data[off]]
        if len(label) > 3 or not label.isdigit():
            return None
        value = int(label)
        if value > 255:
            return None
        octets.append(value)
    if depth != 4:
        query.exists = depth < 4  # 2.1.<zone>: addresses lie below
        return None
    if query.acl is not None:
        return _acl_answer(query, zone)
    ip = bytes((octets[3], octets[2], octets[1], octets[0]))
    hits = [v for lookup in zone.lookups4 if (v := lookup(ip)) is not None]
    if not hits:
        query.looked = True
        return None
    # A dnset of the zone may list the name "2.0.0.127" too: rbldnsd
    # answers with both, each "$" its own entry.
    named, entries = _name_hits(zone, _relative_name(query)) if zone.names else ([], ())
    if named:
        text = b"%d.%d.%d.%d" % (ip[0], ip[1], ip[2], ip[3])
        return _listing(query, zone, hits + named, 0, (text,) * len(hits) + entries)
    return _listing(query, zone, hits, 4, ip)


def _ipv6(query: _Query, zone: Zone) -> bytes | None:
    """The answer when the name is an IPv6 address as 32 reversed nibbles;
    ``None`` when it is not one, or is not listed."""
    data, offsets, depth = query.data, query.offsets, query.depth
    address = 0
    for i, off in enumerate(offsets[:depth]):
        if data[off] != 1 or data[off + 1] not in _HEX_DIGITS:
            return None
        address |= _HEX_DIGITS[data[off + 1]] << (4 * (i + 32 - depth))
    if depth != 32:
        # Not when the name was a whole IPv4 address, looked up above: that
        # answer stands (and is the fast path's), 2.0.0.2 is not "2002::".
        if ((zone.lookups4 and not query.looked and _leads_to_v4(address, depth))
                or any(under(address, 4 * depth) for under in zone.below6)):
            query.exists = True
        return None
    ip = address.to_bytes(16, "big")
    # As rbldnsd: where the zone has IPv4 data, an IPv4-mapped address
    # (::ffff:a.b.c.d) is asked of it alone, and a 6to4 one (2002:a.b.c.d::/48,
    # RFC 3056) of it as well.
    ip4 = None
    if zone.lookups4:
        if ip[:12] == _MAPPED_PREFIX:
            ip4 = ip[12:]
        elif ip[:2] == _SIX_TO_FOUR_PREFIX:
            ip4 = ip[2:6]
    if ip4 is None and not zone.lookups6:
        return None
    if query.acl is not None:
        return _acl_answer(query, zone)
    if ip4 is None:
        hits = [v for lookup in zone.lookups6 if (v := lookup(ip)) is not None]
        if hits:
            return _listing(query, zone, hits, 6, ip)
    else:
        hits, texts = _embedded_v4_hits(zone, ip, ip4)
        if hits:
            return _listing(query, zone, hits, 0, texts)
    query.looked = True
    return None


def _domain(query: _Query, zone: Zone) -> bytes | None:
    """The answer when the name is one of the zone's plain records (``www``)
    or is listed in its dnsets (``badsite.example``); ``None`` when neither."""
    name = _relative_name(query)
    acl = query.acl
    if zone.generic:  # plain records (www, ...) and the names above them
        records = zone.generic.get(name)
        # Hidden from "empty" and "listed" clients, as in rbldnsd; a listed
        # one sees the ACL's answer where the zone has names (any name is a
        # question for them), NODATA elsewhere.
        if records is not None and not (zone.names and isinstance(acl, Value)):
            return _generic(query, {} if acl is not None else records)
        query.exists = query.exists or name in zone.generic_parents
    if zone.names:  # domain names: badsite.example.<zone>
        if acl is not None:
            return _acl_answer(query, zone)
        hits, entries = _name_hits(zone, name)
        if hits:
            return _listing(query, zone, hits, 0, entries)
        query.looked = True
        query.exists = query.exists or any(d.has_children(name) for d in zone.names)
    return None


def _fast_python(data: bytes, zones: dict[bytes, Zone], udp: bool, edns: Edns) -> bytes | None:
    """The common question answered in few steps, or ``None`` for :func:`answer`'s
    general path (which gives the same answer, only slower).

    _fastpath.c is this function compiled: a change here is a change there,
    and tests/test_fastpath.py holds the two to the same bytes."""
    match = _REVERSED_V4.match(data, HEADER_LEN)
    if match is None or data[2] & _NOT_A_QUERY or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None  # not d.c.b.a.<something>, a response, another opcode, odd counts
    zone = zones.get(match[5].lower())
    if zone is None:
        return None
    lookup = zone.fast_lookup
    asked = _FAST_QTYPES.get(match[6])
    if lookup is None or asked is None or zone.servfail:
        return None
    qtype, counter = asked
    end = match.end()
    opt = b""
    limit = MAX_UDP_PLAIN
    if data[10] or data[11]:
        # Only the plain OPT (root owner, version 0, no options); anything else
        # is the general path's to check.
        if (data[10:12] != b"\x00\x01" or data[end:end + 3] != _OPT_OWNER_TYPE
                or data[end + 6:end + 7] != b"\x00" or data[end + 9:end + 11] != b"\x00\x00"):
            return None
        opt = edns.opt_do if data[end + 7] & DO else edns.opt
        limit = max(MAX_UDP_PLAIN, min(data[end + 3] << 8 | data[end + 4], edns.payload))
    octets = _OCTETS
    try:
        ip = bytes((octets[match[4]], octets[match[3]], octets[match[2]], octets[match[1]]))
    except KeyError:  # a label over 255
        return None
    value = lookup(ip)
    if value is None:
        rcode = NXDOMAIN
        records = b""
        an, ns = 0, 1
        authority = _POINTERS[match.start(5)] + zone.neg_soa_tail
    else:
        rcode = NOERROR
        authority = b""
        ns = 0
        if qtype == TYPE_A:
            records = value.a_rr
            an = 1
        else:
            txt = value.txt_rr
            if txt is None:
                if value.txt is None:
                    return None  # no TXT to give: NODATA, rare enough for the general path
                text = (b"%d.%d.%d.%d" % (ip[0], ip[1], ip[2], ip[3])).join(value.txt)[:255]
                txt = value.txt_head + struct.pack(">HB", len(text) + 1, len(text)) + text
            if qtype == TYPE_TXT:
                records, an = txt, 1
            else:
                records, an = value.a_rr + txt, 2
    reply = b"".join((data[:2], bytes((QR | AA | (data[2] & RD), rcode | (data[3] & CD), 0, 1,
                                       0, an, 0, ns, 0, 1 if opt else 0)),
                      data[HEADER_LEN:end], records, authority, opt))
    if udp and len(reply) > limit:
        return None  # truncation is the general path's
    counts = zone.stats
    counts.requests[counter if udp else counter + _TCP_OFFSET] += 1
    counts.lookups[LISTED if value is not None else NOT_LISTED] += 1
    counts.rcodes[rcode] += 1
    return reply


def _relative_name(query: _Query) -> str:
    """The question's name below the zone, lowercase: ``"www.example.com"``."""
    qname, data = query.qname, query.data
    at = HEADER_LEN - 1  # qname starts at the header's end, a label's text after its length
    return b".".join(qname[o - at:o - at + data[o]]
                     for o in query.offsets[:query.depth]).decode("latin-1")


def _name_hits(zone: Zone, name: str) -> tuple[list[Value], tuple[bytes, ...]]:
    """The values the zone's dnsets list ``name`` with, and per value the
    entry its ``$`` stands for (a wildcard's base name)."""
    hits: list[Value] = []
    entries: list[bytes] = []
    for dataset in zone.names:
        found = dataset.match(name)
        if found is not None and found[0] is not None:
            listed = found[1].encode("latin-1")
            for listing in found[0]:
                hits.append(listing)
                entries.append(listed)
    return hits, tuple(entries)


def _embedded_v4_hits(zone: Zone, ip: bytes, ip4: bytes) -> tuple[list[Value], tuple[bytes, ...]]:
    """The values for an IPv6 address holding an IPv4 one (``ip4``): the IPv4
    data's, ``$`` the IPv4 address; for 6to4 the IPv6 data's too, ``$`` the
    IPv6 address. (The hits, and per hit what its ``$`` stands for.)"""
    hits = [v for lookup in zone.lookups4 if (v := lookup(ip4)) is not None]
    texts = [b"%d.%d.%d.%d" % (ip4[0], ip4[1], ip4[2], ip4[3])] * len(hits)
    if ip[:12] != _MAPPED_PREFIX:
        found6 = [v for lookup in zone.lookups6 if (v := lookup(ip)) is not None]
        hits += found6
        texts += [ipv6_text(ip).encode()] * len(found6)
    return hits, tuple(texts)


def _leads_to_v4(address: int, depth: int) -> bool:
    """Whether the first ``depth`` nibbles (at the top of ``address``) start
    an IPv4-mapped or 6to4 address: a name an IPv4 zone answers below, so
    an empty non-terminal (RFC 8020)."""
    top = address >> (4 * (32 - depth))
    for prefix, nibbles in _V4_EMBEDDINGS:
        if depth <= nibbles:
            if top == prefix >> (4 * (nibbles - depth)):
                return True
        elif top >> (4 * (depth - nibbles)) == prefix:
            return True
    return False


def _acl(acls: tuple[AclDataset, ...], client: str) -> str | Value | None:
    """What the ACLs (global first) say for ``client``: rbldnsd's precedence is
    ignore > refuse > empty > listed (the global one's) > pass (None)."""
    found = [a for acl in acls if (a := acl.action(client)) is not None and a != "pass"]
    if not found:
        return None
    for action in ("ignore", "refuse", "empty"):
        if action in found:
            return action
    return found[0]


def _acl_answer(query: _Query, zone: Zone) -> bytes:
    """A valid question from a client an ACL answers for: "empty" says nothing
    is listed; a value says everything is, with ``$`` the client's address."""
    if isinstance(query.acl, Value):
        return _listing(query, zone, [query.acl], 0, (str(query.client).encode(),))
    query.counts.lookups[NOT_LISTED] += 1
    return _reply(query, NXDOMAIN)


def _listing(query: _Query, zone: Zone, hits: list[Value], family: int, key: Any) -> bytes:
    """Answer for a listed key: every matching dataset's A and TXT, once each.

    ``$`` in a TXT is the queried address (``key``, packed, family 4 or 6), or
    for names (family 0) the matching entry of each hit (``key[i]``)."""
    query.counts.lookups[LISTED] += 1
    qtype = query.qtype
    records: list[bytes] = []
    if qtype == TYPE_A or qtype == TYPE_ANY:
        for v in hits:
            if v.a_rr not in records:
                records.append(v.a_rr)
    if qtype == TYPE_TXT or qtype == TYPE_ANY:
        listed = None
        for i, v in enumerate(hits):
            rr = v.txt_rr
            if rr is None:
                if v.txt is None:
                    continue
                if not family:
                    listed = key[i]
                elif listed is None:
                    listed = _entry_text(family, key)
                text = listed.join(v.txt)[:255]
                rr = v.txt_head + struct.pack(">HB", len(text) + 1, len(text)) + text
            if rr not in records:
                records.append(rr)
    return _reply(query, NOERROR, records)


def _generic(query: _Query, by_type: dict[int, list[bytes]]) -> bytes:
    """Plain records of one name: those of the asked type (all for ANY), or NODATA."""
    if query.qtype == TYPE_ANY:
        return _reply(query, NOERROR, [rr for rrs in by_type.values() for rr in rrs])
    return _reply(query, NOERROR, by_type.get(query.qtype, []))


def _entry_text(family: int, key: bytes) -> bytes:
    """What ``$`` stands for in a TXT: the queried address."""
    if family == 4:
        return b"%d.%d.%d.%d" % (key[0], key[1], key[2], key[3])
    return ipv6_text(key).encode()


def ipv6_text(packed: bytes) -> str:
    """RFC 5952 text, all hex (``::ffff:7f00:2``, as rbldnsd writes it; newer
    Pythons would write IPv4-mapped addresses dotted)."""
    groups = [f"{int.from_bytes(packed[i:i + 2], 'big'):x}" for i in range(0, 16, 2)]
    best, length, start = -1, 1, -1
    for i, group in enumerate([*groups, "x"]):
        if group == "0":
            start = i if start < 0 else start
        elif start >= 0:
            if i - start > length:
                best, length = start, i - start
            start = -1
    if best < 0:
        return ":".join(groups)
    return ":".join(groups[:best]) + "::" + ":".join(groups[best + length:])


def _apex(query: _Query, zone: Zone) -> bytes:
    """SOA and NS, and the generic records at "@", which a client an ACL
    answers for ("empty" or "listed") does not see, as in rbldnsd."""
    qtype, owner = query.qtype, query.soa_owner
    records = []
    if not zone.parent_labels:  # a combined subzone has no SOA or NS of its own
        if qtype == TYPE_SOA or qtype == TYPE_ANY:
            records.append(owner + zone.soa_tail)
        if qtype == TYPE_NS or qtype == TYPE_ANY:
            records.extend(owner + tail for tail in zone.ns_tails)
    apex = None if query.acl is not None else zone.generic.get("")  # "@" lines of generic datasets
    if apex:
        records.extend(rr for rrs in (apex.values() if qtype == TYPE_ANY
                                      else [apex.get(qtype, [])]) for rr in rrs)
    return _reply(query, NOERROR, records)


def _edns(data: bytes, pos: int) -> tuple[int, int, bool, bool] | tuple[()] | int:
    """Walk the sections after the question: (payload, version, NSID asked, DO)
    of the one OPT, ``()`` when there is none, or why the message is malformed
    (a ``BAD_*`` reason; OPT appearing twice is one)."""
    counts = _COUNTS.unpack_from(data, 4)
    n = len(data)
    found: tuple[int, int, bool, bool] | tuple[()] = ()
    good: set[int] = set()  # offsets known to start a well-formed name
    for section, count in enumerate(counts[1:], 1):
        for _ in range(count):
            start = pos
            while True:  # owner name
                if pos >= n:
                    return BAD_COUNTS if pos == start else BAD_NAME
                length = data[pos]
                if length >= POINTER:
                    # RFC 1035 4.1.4: a pointer names a prior occurrence. Follow it, each
                    # hop before the last, so a loop or junk is FORMERR; offsets where a
                    # good name starts are remembered, so each byte is walked once.
                    at, back, walked = pos, start, []
                    while at not in good:
                        if at >= n:
                            return BAD_POINTER
                        step = data[at]
                        walked.append(at)
                        if len(walked) > 255:  # more hops than a 255-byte name has
                            return BAD_POINTER
                        if step >= POINTER:
                            if at + 1 >= n:
                                return BAD_POINTER
                            at = (step & 0x3F) << 8 | data[at + 1]
                            if at >= back:
                                return BAD_POINTER
                            back = at
                        elif step > MAX_LABEL:
                            return BAD_NAME
                        elif step == 0:
                            break
                        else:
                            at += step + 1
                    good.update(walked)
                    pos += 2
                    break
                if length > MAX_LABEL:
                    return BAD_NAME
                pos += length + 1
                if length == 0:
                    break
            if pos + 10 > n:  # a record cut short: an OPT's is an EDNS fault
                return BAD_EDNS if data[pos:pos + 2] == _OPT_OWNER_TYPE[1:] else BAD_COUNTS
            # An OPT's class is the sender's UDP payload size (RFC 6891 6.1.2).
            rtype, rclass, ttl, rdlen = struct.unpack_from(">HHIH", data, pos)
            pos += 10 + rdlen
            if pos > n:
                return BAD_EDNS if rtype == TYPE_OPT else BAD_COUNTS
            if rtype == TYPE_OPT:
                if section != 3 or found or data[start] != 0:
                    return BAD_EDNS
                at = pos - rdlen  # the options must fill the rdata exactly (RFC 6891 6.1.2)
                nsid = False
                while at < pos:
                    if at + 4 > pos:
                        return BAD_EDNS
                    nsid = nsid or (data[at] << 8 | data[at + 1]) == OPTION_NSID
                    at += 4 + (data[at + 2] << 8 | data[at + 3])
                if at != pos:
                    return BAD_EDNS
                found = (rclass, (ttl >> 16) & 0xFF, nsid, bool(ttl & DO << 8))
    return found


def _bare(data: bytes, rcode: int, stats: Stats, reason: int) -> bytes:
    """A header-only reply, for a question we could not read (``reason``: why)."""
    stats.malformed[reason] += 1
    stats.unzoned.rcodes[rcode] += 1
    return data[:2] + bytes((QR | (data[2] & (OPCODE | RD)), rcode | (data[3] & CD))) + bytes(8)


def _reply(query: _Query, rcode: int, records: Sequence[bytes] = ()) -> bytes:
    """The reply: header, the question as asked, the answer, our OPT; past the
    size limit, only the header (TC=1), the question and the OPT.

    A data answer (NOERROR, NXDOMAIN) is authoritative: ``records``, or none
    and the zone's SOA (NODATA or NXDOMAIN). Any other ``rcode`` (a refusal
    or a failure) says only that. One builder, not two: this is per query."""
    query.counts.rcodes[rcode] += 1
    data, opt = query.data, query.opt
    arcount = 1 if opt else 0
    if rcode == NOERROR or rcode == NXDOMAIN:
        aa = AA
        if records:
            counts = _COUNTS.pack(1, len(records), 0, arcount)
            body = b"".join(records)
        else:
            counts = _COUNTS.pack(1, 0, 1, arcount)
            body = query.negative
    else:
        rcode &= 0x0F  # extended (BADVERS): the OPT carries the upper bits
        aa = AA if rcode == NOERROR else 0  # BADVERS keeps the AA it has always had
        counts = _COUNTS.pack(1, 0, 0, arcount)
        body = b""
    flags = bytes((QR | aa | (data[2] & (OPCODE | RD)), rcode | (data[3] & CD)))
    reply = data[:2] + flags + counts + query.question + body + opt
    if len(reply) > query.limit:
        flags = bytes((flags[0] | TC, flags[1]))
        reply = data[:2] + flags + _COUNTS.pack(1, 0, 0, arcount) + query.question + opt
    return reply


FastPath = Callable[[bytes, dict[bytes, Zone], bool, Edns], "bytes | None"]


def _compiled() -> FastPath | None:
    """_fastpath.c's fast path, or ``None`` where it was not built (no
    compiler at install time): then the Python one serves, answering the same."""
    try:
        from dnsbl import _fastpath  # type: ignore[attr-defined]
    except ImportError:
        return None
    _fastpath.configure(QTYPE_INDEX[TYPE_A], QTYPE_INDEX[TYPE_TXT], QTYPE_INDEX[TYPE_ANY],
                        _TCP_OFFSET)
    fast: FastPath = _fastpath.fast
    return fast


#: The fast paths this install has, by name ("compiled" where it was built).
FAST_PATHS: dict[str, FastPath] = {"python": _fast_python}
if (_built := _compiled()) is not None:
    FAST_PATHS["compiled"] = _built
#: The one that serves: the compiled one where built, unless DNSBL_PURE_PYTHON=1
#: asks for the Python one (to compare them, or to rule the extension out).
FAST_PATH = ("compiled" if "compiled" in FAST_PATHS
             and os.environ.get("DNSBL_PURE_PYTHON", "") in ("", "0") else "python")
_fast = FAST_PATHS[FAST_PATH]
#: Why the Python one serves, for the line serve logs at start-up.
FAST_PATH_WHY = ""
if FAST_PATH == "python":
    FAST_PATH_WHY = (" (DNSBL_PURE_PYTHON=1)" if "compiled" in FAST_PATHS
                     else " (the compiled one was not built: no C compiler at install time?)")
