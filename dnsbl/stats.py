"""Plain-int counters bumped on the query path, and the label sets they map to.

Lists of ints indexed by small constants: no locks, no per-query label
lookups. The metrics collector turns them into series at scrape time.
"""

from __future__ import annotations

from dnsbl.wire import (
    BADVERS,
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_MX,
    TYPE_NS,
    TYPE_SOA,
    TYPE_TXT,
)


def _label(labels: list[str], label: str) -> int:
    """Append ``label`` to one counter list's labels and return its index: an
    index and its label are written once, side by side, so they cannot drift."""
    labels.append(label)
    return len(labels) - 1


PROTOS = ("udp", "tcp")
#: Query types counted by name, in counter order; any other is "other".
_COUNTED_QTYPES = ((TYPE_A, "A"), (TYPE_TXT, "TXT"), (TYPE_ANY, "ANY"), (TYPE_SOA, "SOA"),
                   (TYPE_NS, "NS"), (TYPE_AAAA, "AAAA"), (TYPE_MX, "MX"))
QTYPE_LABELS = (*(label for _, label in _COUNTED_QTYPES), "other")
#: Query type number -> index in QTYPE_LABELS (anything else: OTHER_QTYPE).
QTYPE_INDEX = {qtype: i for i, (qtype, _) in enumerate(_COUNTED_QTYPES)}
OTHER_QTYPE = len(QTYPE_LABELS) - 1
#: Every rcode the server answers with (its counter index is its number).
RCODE_LABELS = {NOERROR: "NOERROR", FORMERR: "FORMERR", SERVFAIL: "SERVFAIL",
                NXDOMAIN: "NXDOMAIN", NOTIMP: "NOTIMP", REFUSED: "REFUSED", BADVERS: "BADVERS"}

_results: list[str] = []
LISTED = _label(_results, "listed")
NOT_LISTED = _label(_results, "not_listed")
LOOKUP_RESULTS = tuple(_results)

_drops: list[str] = []
DROP_SHORT = _label(_drops, "short")  # shorter than a DNS header
DROP_RESPONSE = _label(_drops, "response")  # QR=1: a response, never answered (reflection loops)
DROP_ACL = _label(_drops, "acl")  # an ACL says to ignore this client
DROP_SEND = _label(_drops, "send")  # the kernel would not take the reply (send buffer full)
DROP_REASONS = tuple(_drops)

# Why a query was malformed or not one we serve (general path only: the fast
# path takes well-formed questions alone, so it never counts here).
_malformed: list[str] = []
# qdcount not 1, or counts claiming records the message does not hold
BAD_COUNTS = _label(_malformed, "counts")
BAD_QUESTION = _label(_malformed, "question")  # no question, or one cut before type and class
# a label past the end, of a reserved type, or a name over 255 bytes
BAD_NAME = _label(_malformed, "name")
# compression in the question, or a pointer forward, looping or outside
BAD_POINTER = _label(_malformed, "pointer")
BAD_EDNS = _label(_malformed, "edns")  # OPT repeated, outside the additional section, non-root, cut
BAD_OPCODE = _label(_malformed, "opcode")  # an opcode other than QUERY: NOTIMP
BAD_CLASS = _label(_malformed, "class")  # a class other than IN: REFUSED
MALFORMED_REASONS = tuple(_malformed)

_closes: list[str] = []
TCP_CAP = _label(_closes, "cap")  # refused at once: max connections open
TCP_IDLE = _label(_closes, "idle")  # closed: nothing asked for the idle timeout
TCP_STALLED = _label(_closes, "stalled")  # reset: its answers not read for the idle timeout
TCP_CLOSE_REASONS = tuple(_closes)


class ZoneStats:
    """Counters of one zone; they outlive reloads (ServedZones.swap hands them on)."""

    __slots__ = ("requests", "rcodes", "lookups")

    def __init__(self) -> None:
        #: [proto * len(QTYPE_LABELS) + qtype index]
        self.requests = [0] * (len(PROTOS) * len(QTYPE_LABELS))
        self.rcodes = [0] * (max(RCODE_LABELS) + 1)
        self.lookups = [0] * len(LOOKUP_RESULTS)


class Stats:
    """Counters of one server: drops, malformed queries, TCP connections closed,
    and queries that fall in no zone."""

    __slots__ = ("dropped", "malformed", "tcp_closed", "unzoned")

    def __init__(self) -> None:
        self.dropped = [0] * len(DROP_REASONS)
        self.malformed = [0] * len(MALFORMED_REASONS)
        self.tcp_closed = [0] * len(TCP_CLOSE_REASONS)
        self.unzoned = ZoneStats()
