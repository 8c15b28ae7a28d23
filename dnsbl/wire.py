"""DNS wire format pieces, bytes only: names, resource records, constants.

Module-level ints rather than enums keep the hot path free of attribute lookups.
"""

from __future__ import annotations

import struct

# Header layout (RFC 1035 4.1.1): id(2) flags(2) qdcount(2) ancount(2) nscount(2) arcount(2)
HEADER_LEN = 12

QR = 0x80  # in flags byte 0
OPCODE = 0x78  # in flags byte 0: 0 is QUERY
AA = 0x04  # in flags byte 0
TC = 0x02  # in flags byte 0
RD = 0x01  # in flags byte 0
CD = 0x10  # in flags byte 1

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
BADVERS = 16  # extended: 1 in the OPT high bits

TYPE_A = 1
TYPE_NS = 2
TYPE_SOA = 6
TYPE_MX = 15
TYPE_TXT = 16
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_OPT = 41
# Meta types (RFC 6895 3.1): questions about transfers and signatures, not data.
TYPE_TSIG = 250
TYPE_IXFR = 251
TYPE_AXFR = 252
TYPE_MAILB = 253
TYPE_MAILA = 254
TYPE_ANY = 255
CLASS_IN = 1

DO = 0x80  # in an OPT record's TTL, third byte (RFC 3225)
OPTION_NSID = 3  # EDNS option code (RFC 5001)

MAX_LABEL = 63  # bytes in a label; a length byte above it is a pointer or reserved
POINTER = 0xC0  # a length byte at least this starts a compression pointer
MAX_NAME = 255  # bytes in a name, length bytes and root included

#: Answers go to a name that is the question's name: a pointer to offset 12.
QNAME_PTR = b"\xc0\x0c"
MAX_UDP_PLAIN = 512


def name_to_wire(name: str) -> bytes:
    """``"ns1.example.org"`` -> ``b"\\x03ns1\\x07example\\x03org\\x00"`` (root: ``""`` or ``"."``).

    :raises ValueError: for a label over 63 bytes or a name over 255 bytes.
    """
    out = bytearray()
    for label in name.strip(".").split("."):
        if not label:
            continue
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise ValueError(f"label too long in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


def rr_tail(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """Everything of a class-IN record after its owner name."""
    return struct.pack(">HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def txt_rdata(text: bytes) -> bytes:
    """One character-string TXT rdata (text already at most 255 bytes)."""
    return bytes((len(text),)) + text


def soa_rdata(mname: str, rname: str, serial: int, refresh: int, retry: int,
              expire: int, minimum: int) -> bytes:
    return name_to_wire(mname) + name_to_wire(rname) + struct.pack(
        ">IIIII", serial & 0xFFFFFFFF, refresh, retry, expire, minimum
    )


def pointer(offset: int) -> bytes:
    """A compression pointer to ``offset`` in the message."""
    return bytes((0xC0 | offset >> 8, offset & 0xFF))
