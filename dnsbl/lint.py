"""Listings no list should publish: 127.0.0.1, the whole Internet, blocks wider
than the operator expects. Used by `dnsbl check --strict` and at start-up."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from dnsbl import datasets
from dnsbl.datasets.combined import sections
from dnsbl.zonefile import ZoneFileError
from dnsbl.zones import Zone

#: The widest prefix `check --strict` lets an entry have, per family. No one
#: network holds more than an IPv4 /8 (the unit IANA hands to the RIRs), and
#: a /32 is an RIR's standard allocation to one ISP in IPv6: a listing wider
#: is a typo (10.0.0.0/1 for /16) or a decision worth saying out loud.
DEFAULT_MAX_WIDTH4 = 8
DEFAULT_MAX_WIDTH6 = 32

_LOOPBACK = bytes((127, 0, 0, 1))


def lists_loopback(zone: Zone) -> bool:
    """Whether the zone's IPv4 data lists 127.0.0.1, which RFC 5782 (section
    5) says must never be: mail servers probe a list with it and, finding it
    listed, stop trusting the list or reject their own local mail."""
    return zone.loaded and any(lookup(_LOOPBACK) is not None for lookup in zone.lookups4)


def wide_entries(kind: str, paths: Sequence[str], max4: int = DEFAULT_MAX_WIDTH4,
                 max6: int = DEFAULT_MAX_WIDTH6) -> Iterator[str]:
    """``file:line: reason`` for each listed (not excluded) IP block of a
    dataset wider than /max4 or /max6, or the whole address space. Files
    that cannot be read are skipped: loading reports them."""
    reader = datasets.reader(kind, paths)
    try:
        readers = ([(s.kind, s.reader) for s in sections(reader)]
                   if datasets.TYPES[kind].family == "combined" else [(kind, reader)])
        for section_kind, section in readers:
            network_type: type[ipaddress.IPv4Network | ipaddress.IPv6Network]
            answers_for = datasets.TYPES[section_kind].family
            if answers_for == "ip4":
                limit, family, flag, network_type = max4, "IPv4", "--max-width4", \
                    ipaddress.IPv4Network
            elif answers_for == "ip6":
                limit, family, flag, network_type = max6, "IPv6", "--max-width6", \
                    ipaddress.IPv6Network
            else:
                continue
            for key, bits, value, path, lineno in section.entries():
                if value is None or (bits and bits >= limit):
                    continue  # an exclusion narrows a listing: never a problem; 0/0 always is
                network = network_type((key, bits))
                if bits == 0:
                    yield f"{path}:{lineno}: {network} lists the whole {family} Internet"
                else:
                    yield (f"{path}:{lineno}: {network} is wider than /{limit} "
                           f"({flag} allows wider)")
    except ZoneFileError:
        return
