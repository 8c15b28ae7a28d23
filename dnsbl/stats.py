"""Plain-int counters bumped on the query path, and the label sets they map to.

Lists of ints indexed by small constants: no locks, no per-query label
lookups. The metrics collector turns them into series at scrape time.
"""

from __future__ import annotations

PROTOS = ("udp", "tcp")
QTYPE_LABELS = ("A", "TXT", "ANY", "SOA", "NS", "AAAA", "MX", "other")
#: Query type number -> index in QTYPE_LABELS (anything else: "other").
QTYPE_INDEX = {1: 0, 16: 1, 255: 2, 6: 3, 2: 4, 28: 5, 15: 6}
OTHER_QTYPE = len(QTYPE_LABELS) - 1
RCODE_LABELS = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
                5: "REFUSED", 16: "BADVERS"}

DROP_SHORT = 0  # shorter than a DNS header
DROP_RESPONSE = 1  # QR=1: a response, never answered (reflection loops)
DROP_ACL = 2  # an ACL says to ignore this client
DROP_SEND = 3  # the kernel would not take the reply (send buffer full)
DROP_REASONS = ("short", "response", "acl", "send")

# Why a query was malformed or not one we serve (general path only: the fast
# path takes well-formed questions alone, so it never counts here).
BAD_COUNTS = 0  # qdcount not 1, or counts claiming records the message does not hold
BAD_QUESTION = 1  # no question, or one cut before its type and class
BAD_NAME = 2  # a label past the end, of a reserved type, or a name over 255 bytes
BAD_POINTER = 3  # compression in the question, or a pointer forward, looping or outside
BAD_EDNS = 4  # OPT repeated, outside the additional section, non-root, or cut
BAD_OPCODE = 5  # an opcode other than QUERY: NOTIMP
BAD_CLASS = 6  # a class other than IN: REFUSED
MALFORMED_REASONS = ("counts", "question", "name", "pointer", "edns", "opcode", "class")

TCP_CAP = 0  # refused at once: max connections open
TCP_IDLE = 1  # closed: nothing asked for the idle timeout
TCP_STALLED = 2  # reset: its answers not read for the idle timeout
TCP_CLOSE_REASONS = ("cap", "idle", "stalled")


class ZoneStats:
    """Counters of one zone; they outlive reloads (ServedZones.swap hands them on)."""

    __slots__ = ("requests", "rcodes", "lookups")

    def __init__(self) -> None:
        #: [proto * len(QTYPE_LABELS) + qtype index]
        self.requests = [0] * (len(PROTOS) * len(QTYPE_LABELS))
        self.rcodes = [0] * 24
        self.lookups = [0, 0]  # listed, not listed


class Stats:
    """Counters of one server: drops, malformed queries, TCP connections closed,
    and queries that fall in no zone."""

    __slots__ = ("dropped", "malformed", "tcp_closed", "unzoned")

    def __init__(self) -> None:
        self.dropped = [0] * len(DROP_REASONS)
        self.malformed = [0] * len(MALFORMED_REASONS)
        self.tcp_closed = [0] * len(TCP_CLOSE_REASONS)
        self.unzoned = ZoneStats()
