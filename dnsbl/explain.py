"""Explain an answer: ask the zones in-process and find the data lines behind it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dnsbl import datasets
from dnsbl.answer import Stats, answer, ipv6_text
from dnsbl.datasets.names import BOTH, EXACT, SUBDOMAINS
from dnsbl.keys import Address, dataset_keys, key_of
from dnsbl.stats import ZoneStats
from dnsbl.zonefile import Value, file_signature
from dnsbl.zones import Snapshot, Zone

if TYPE_CHECKING:
    # Imported in reply_for() only: serving never needs dnslib.
    import dnslib


@dataclass(frozen=True)
class Match:
    """The data line that decides a key's fate in one dataset."""

    path: str
    lineno: int
    entry: str  # as the data file means it: 192.0.2.0/24, 2001:db8::/32, *.example.com
    value: Value | None  # None: an exclusion
    listed: str  # what $ stands for: the queried address, or the entry's name

    def describe(self) -> str:
        where = f"{self.path}:{self.lineno}"
        if self.value is None:
            return f"{where}: !{self.entry} (excluded)"
        text = self.value.text_for(self.listed)
        txt = "" if text is None else f" TXT {text.decode('latin-1')!r}"
        return f"{where}: {self.entry} -> A {ipaddress.IPv4Address(self.value.a)}{txt}"


def target_problem(target: str) -> str | None:
    """Why ``target`` cannot be asked about, or None for an address or a name.

    What looks like an address or a network must be a valid address:
    ``999.1.1.1``, ``1.2.3`` and ``10.0.0.0/8`` are mistakes, not domain names
    (no top-level domain is all digits, and names hold neither ``/`` nor ``:``).
    """
    try:
        ipaddress.ip_address(target)
        return None
    except ValueError:
        pass
    if "/" in target:
        try:
            network = ipaddress.ip_network(target, strict=False)
        except ValueError:
            return f"{target!r} is neither an IP address nor a domain name"
        return (f"{target!r} is a network; ask about one address in it, "
                f"e.g. {network.network_address}")
    if ":" in target or all(c.isdigit() or c == "." for c in target):
        return f"{target!r} is not a valid IP address"
    labels = target.rstrip(".").split(".")
    if len(target.encode()) > 253 or any(not 0 < len(label.encode()) < 64 for label in labels):
        return f"{target!r} is not a valid domain name"
    return None


def query_name(target: str, zoneset: Snapshot) -> list[str]:
    """The names to ask for ``target``: an address (IPv4 or IPv6) reversed under
    every zone; a name as given when it is under a zone, else under every zone
    of domain names (``x.example.net`` -> ``x.example.net.dbl.example.org``)."""
    try:
        ipaddress.ip_address(target)
    except ValueError:
        name = target.rstrip(".")
        if find_zone(name, zoneset) is not None:
            return [name]
        under = [name_under(name, zone.name) for zone in zoneset.zones.values() if zone.names]
        return under or [name]
    return [name_under(target, zone.name) for zone in zoneset.zones.values()]


def name_under(key: str, zone: str) -> str:
    """``("127.0.0.2", "bl.test")`` -> ``"2.0.0.127.bl.test"``; IPv6 as 32 nibbles;
    a domain name as it is."""
    try:
        address = ipaddress.ip_address(key)
    except ValueError:
        return f"{key}.{zone}"
    suffix = ".in-addr.arpa" if address.version == 4 else ".ip6.arpa"
    return f"{address.reverse_pointer.removesuffix(suffix)}.{zone}"


def reply_for(name: str, qtype: str, zoneset: Snapshot) -> dnslib.DNSRecord | None:
    """What the server answers to ``name``/``qtype``, as a parsed message."""
    import dnslib

    request = dnslib.DNSRecord.question(name, qtype)
    reply = answer(bytes(request.pack()), zoneset.zones, Stats())
    return None if reply is None else dnslib.DNSRecord.parse(reply)


def find_zone(name: str, zoneset: Snapshot) -> tuple[Zone, str] | None:
    """The zone ``name`` falls in and the labels in front of it."""
    labels = name.lower().rstrip(".").split(".")
    for i in range(len(labels)):
        zone = zoneset.by_name(".".join(labels[i:]))
        if zone is not None:
            return zone, ".".join(labels[:i])
    return None


def matches(zone: Zone, key: Address | str) -> list[Match | None]:
    """Per dataset of the zone, the line that decides ``key`` (as the index does:
    the most specific entry wins; at the same one an exclusion, else the later)."""
    out: list[Match | None] = []
    for pair in dataset_keys(zone, key):
        if pair is None:
            out.append(None)
            continue
        dataset, wanted = pair
        reader = datasets.reader(dataset.kind, dataset.paths)
        best: Match | None = None
        best_rank = -1
        for entry, bits, value, path, lineno in reader.entries():
            rank = _rank(wanted, entry, bits)
            if rank < 0:
                continue
            if rank > best_rank or (rank == best_rank and best is not None
                                    and best.value is not None):
                listed = entry if isinstance(wanted, str) else _address_text(wanted)
                best = Match(path, lineno, _entry(wanted, entry, bits), value, listed)
                best_rank = rank
        reader.finish_values()  # TXT templates are complete only now
        out.append(best)
    return out


def _address_text(address: Address) -> str:
    return str(address) if address.version == 4 else ipv6_text(address.packed)


def _rank(key: Address | str, entry: object, bits: int) -> int:
    """How specific ``entry`` is for ``key`` (bigger wins); -1 if it does not match."""
    if isinstance(key, str):
        assert isinstance(entry, str)
        if key == entry and bits != SUBDOMAINS:
            return 1000  # an exact name beats any wildcard
        if key.endswith("." + entry) and bits != EXACT:
            return entry.count(".") + 1  # the nearer wildcard wins
        return -1
    assert isinstance(entry, int)
    width = key.max_prefixlen
    if bits and (int(key) ^ entry) >> (width - bits):
        return -1
    return bits


def _entry(key: Address | str, entry: object, bits: int) -> str:
    if isinstance(key, str):
        return {EXACT: "", SUBDOMAINS: "*.", BOTH: "."}[bits] + str(entry)
    assert isinstance(entry, int)
    network = (ipaddress.IPv4Network((entry, bits)) if key.version == 4
               else ipaddress.IPv6Network((entry, bits)))
    return str(network)



Replies = list[tuple[str, dict[str, "dnslib.DNSRecord | None"]]]


def replies(target: str, zoneset: Snapshot) -> Replies:
    """The A and TXT answers for ``target``, per name asked (see :func:`query_name`),
    counted nowhere: asking a running server's zones must not show in its
    metrics. On the event loop of that server, so no query of its interleaves."""
    names = query_name(target, zoneset)
    counters = [(zone, zone.stats) for zone in zoneset.zones.values()]
    try:
        for zone, _ in counters:
            zone.stats = ZoneStats()
        return [(name, {qtype: reply_for(name, qtype, zoneset) for qtype in ("A", "TXT")})
                for name in names]
    finally:
        for zone, stats in counters:
            zone.stats = stats


def report(answers: Replies, zoneset: Snapshot) -> tuple[list[str], bool]:
    """What ``dnsbl query`` prints for these answers, as lines, and whether an
    A was answered under some zone (listed). The data lines come from the
    files, unless they changed since ``zoneset`` loaded them (a refused
    reload, say): then none is shown, since it would not be the one that
    answers. Reads whole files: not on an event loop."""
    import dnslib

    lines: list[str] = []
    listed = False
    for name, by_type in answers:
        lines.append(f";; {name}")
        for qtype, reply in by_type.items():
            if reply is None:
                lines.append(f"{qtype}: no reply")
                continue
            lines.append(f"{qtype}: {dnslib.RCODE.get(reply.header.rcode)}")
            lines.extend(f"  {rr.toZone()}" for rr in reply.rr)
            listed = listed or (qtype == "A" and bool(reply.rr))
        located = find_zone(name, zoneset)
        if located is None:
            lines.append("  not under any served zone")
            continue
        zone, prefix = located
        if not prefix:
            lines.append(f"  the apex of zone {zone.name}")
            continue
        unchanged = [d.signature == tuple(file_signature(p) for p in d.paths)
                     for d in zone.datasets]
        found = matches(zone, key_of(prefix)) if all(unchanged) else [None] * len(unchanged)
        for dataset, match, same in zip(zone.datasets, found, unchanged, strict=True):
            files = ",".join(dataset.paths)
            what = (match.describe() if match else f"{files}: no entry") if same else (
                f"{files}: changed since this data loaded; the line behind it is not shown")
            lines.append(f"  {dataset.kind} {what}")
    return lines, listed
