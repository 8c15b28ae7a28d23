"""Explain an answer: ask the zones in-process and find the data lines behind it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dnslib

from dnsbl.answer import Stats, answer
from dnsbl.registry import Zone, ZoneSet
from dnsbl.zonefile import DatasetReader, Value


@dataclass(frozen=True)
class Match:
    """The data line that decides an address's fate in one dataset."""

    path: str
    lineno: int
    network: ipaddress.IPv4Network
    value: Value | None  # None: an exclusion

    def describe(self, ip: ipaddress.IPv4Address) -> str:
        where = f"{self.path}:{self.lineno}"
        if self.value is None:
            return f"{where}: !{self.network} (excluded)"
        text = self.value.text_for(str(ip))
        txt = "" if text is None else f" TXT {text.decode('latin-1')!r}"
        return f"{where}: {self.network} -> A {ipaddress.IPv4Address(self.value.a)}{txt}"


def query_name(target: str, zoneset: ZoneSet) -> list[str]:
    """The names to ask for ``target``: a name as given, or an address under every zone."""
    try:
        ip = ipaddress.IPv4Address(target)
    except ValueError:
        return [target.rstrip(".")]
    reverse = ".".join(reversed(str(ip).split(".")))
    return [f"{reverse}.{zone.name}" for zone in zoneset.zones.values()]


def ask(name: str, qtype: str, zoneset: ZoneSet) -> dnslib.DNSRecord | None:
    """What the server answers to ``name``/``qtype``, as a parsed message."""
    request = dnslib.DNSRecord.question(name, qtype)
    reply = answer(bytes(request.pack()), zoneset.zones, Stats())
    return None if reply is None else dnslib.DNSRecord.parse(reply)


def find_zone(name: str, zoneset: ZoneSet) -> tuple[Zone, str] | None:
    """The zone ``name`` falls in and the labels in front of it."""
    labels = name.lower().rstrip(".").split(".")
    for i in range(len(labels)):
        zone = zoneset.by_name(".".join(labels[i:]))
        if zone is not None:
            return zone, ".".join(labels[:i])
    return None


def matches(zone: Zone, ip: ipaddress.IPv4Address) -> list[Match | None]:
    """Per dataset of the zone, the line that decides ``ip`` (most specific wins)."""
    key = int(ip)
    out: list[Match | None] = []
    for dataset in zone.datasets:
        reader = DatasetReader(dataset.kind, dataset.paths)
        best: Match | None = None
        for net, bits, value, path, lineno in reader.entries():
            if bits and (key ^ net) >> (32 - bits):
                continue  # does not cover ip
            # As in the index: the longer prefix wins; at the same prefix an
            # exclusion wins, else the later line.
            if best is None or bits > best.network.prefixlen or (
                    bits == best.network.prefixlen and best.value is not None):
                best = Match(path, lineno, ipaddress.IPv4Network((net, bits)), value)
        reader.finish_values()  # TXT templates are complete only now
        out.append(best)
    return out
