"""TSIG (RFC 8945, HMAC-SHA256): the keys of ``[tsig]``, checking a signed
message, signing the replies to it, and the NOTAUTH a bad one gets.

dnspython does the cryptography and the checks of time and MAC; this module
puts what it says into the replies a server sends.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

NOTAUTH = 9
BADSIG, BADKEY, BADTIME = 16, 17, 18  # TSIG error field (RFC 8945 section 5.3)
TSIG_FUDGE = 300  # seconds of clock skew allowed (RFC 8945 section 10)
ALGORITHM = "hmac-sha256"
#: A TSIG record's type and class (250, ANY): what marks a message as maybe signed.
MARK = b"\x00\xfa\x00\xff"


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
        return _with_record(wire, self._name, tsig.to_wire())


def _with_record(wire: bytes, owner: bytes, rdata: bytes) -> bytes:
    """``wire`` with a TSIG record of ``rdata`` added at the end of its additional section."""
    arcount = struct.unpack(">H", wire[10:12])[0] + 1
    return (wire[:10] + struct.pack(">H", arcount) + wire[12:] + owner
            + struct.pack(">HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata))
            + rdata)


@dataclass
class Checked:
    """A message whose TSIG (if any) is good: the message, and the signer
    of the replies to it (None: unsigned)."""

    request: dns.message.Message
    sign: Signer | None

    @property
    def keyname(self) -> dns.name.Name | None:
        return self.request.keyname if self.sign is not None else None


class Keys:
    """The configured keys, by name."""

    def __init__(self, keys: tuple[tuple[str, str], ...]) -> None:
        self.ring = {dns.name.from_text(name): dns.tsig.Key(name, secret, ALGORITHM)
                     for name, secret in keys}

    def key(self, name: str) -> dns.tsig.Key:
        return self.ring[dns.name.from_text(name)]

    def check(self, message: bytes, question: bytes) -> Checked | tuple[int, bytes] | None:
        """``message`` read and its TSIG checked: a :class:`Checked`; a
        signature that is no good: (TSIG error, the NOTAUTH reply saying so);
        a message dnspython cannot read: None."""
        try:
            plain = dns.message.from_wire(message, keyring=False)  # read, not checked
        except dns.exception.DNSException:
            return None
        if plain.tsig is None:
            return Checked(plain, None)
        name = plain.tsig.name
        tsig = plain.tsig[0]
        key = self.ring.get(name)
        if key is None or key.algorithm != tsig.algorithm:
            return BADKEY, notauth(message, question, name, tsig, BADKEY)
        try:
            request = dns.message.from_wire(message, keyring={name: key})
        except dns.tsig.BadTime:
            return BADTIME, notauth(message, question, name, tsig, BADTIME)
        except (dns.tsig.BadSignature, dns.tsig.PeerError, dns.message.UnknownTSIGKey):
            return BADSIG, notauth(message, question, name, tsig, BADSIG)
        except dns.exception.DNSException:
            return None
        assert request.mac is not None
        return Checked(request, Signer(key, request.mac, request.id))


def notauth(message: bytes, question: bytes, name: dns.name.Name, tsig: Any,
            error: int) -> bytes:
    """NOTAUTH with an unsigned TSIG whose error field says why (RFC 8945
    section 5.2: BADKEY and BADSIG replies carry no MAC)."""
    flags = 0x8000 | (message[2] & 0x78) << 8 | NOTAUTH
    reply = message[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + question
    rdata = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, tsig.algorithm, tsig.time_signed, tsig.fudge,
        b"", tsig.original_id, error, b"").to_wire()
    owner = name.to_wire()
    assert owner is not None and rdata is not None  # to_wire() without a file: the bytes
    return _with_record(reply, owner, rdata)


def unsigned(message: bytes, question_end: int) -> bytes:
    """``message`` less its last additional record (the TSIG, which RFC 8945
    puts last), for the query path to answer as any other."""
    counts = struct.unpack(">HHHH", message[4:12])
    pos = question_end
    for _ in range(sum(counts[1:]) - 1):
        pos = _skip_record(message, pos)
    return (message[:10] + struct.pack(">H", counts[3] - 1) + message[12:pos])


def _skip_record(message: bytes, pos: int) -> int:
    while message[pos] and message[pos] & 0xC0 != 0xC0:
        pos += 1 + message[pos]
    pos += 2 if message[pos] & 0xC0 == 0xC0 else 1
    return pos + 10 + struct.unpack(">H", message[pos + 8:pos + 10])[0]

