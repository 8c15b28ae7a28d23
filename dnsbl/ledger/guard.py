"""What publish never lists: special-purpose space, the operator's allowlists,
MISP warninglists, and prefixes wider than a category allows."""

from __future__ import annotations

import bisect
import ipaddress
import json
from collections.abc import Iterable

from dnsbl.allowlist import networks_in
from dnsbl.ledger.config import Category, LedgerConfig
from dnsbl.ledger.model import LedgerError
from dnsbl.zonefile import ZoneFileError

#: The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
#: updates), with the multicast blocks: no reputation list should name them.
SPECIAL_PURPOSE = (
    ("0.0.0.0/8", "this network (RFC 791)"),
    ("10.0.0.0/8", "private-use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122; RFC 5782 test points)"),
    ("169.254.0.0/16", "link local (RFC 3927)"),
    ("172.16.0.0/12", "private-use (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
    ("192.52.193.0/24", "AMT (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private-use (RFC 1918)"),
    ("192.175.48.0/24", "direct delegation AS112 service (RFC 7534)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    ("::/128", "unspecified address (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "IPv4-IPv6 translation (RFC 6052)"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056)"),
    ("2620:4f:8000::/48", "direct delegation AS112 service (RFC 7534)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique-local (RFC 4193)"),
    ("fe80::/10", "link-local unicast (RFC 4291)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)

#: Why the guard holds a listing back, as the ``reason`` label of
#: ``dnsbl_ledger_held_back`` (unknown_category: publish's own, for a
#: category no longer in the configuration).
REASONS = ("never", "too_wide", "special_purpose", "allowlist", "warninglist",
           "unknown_category")
#: The first word of a range's label, to its reason.
_REASON_OF = {"special-purpose": "special_purpose", "allowlist": "allowlist",
              "MISP": "warninglist"}

#: RFC 5782: never listed, whatever --force says.
NEVER = {4: int(ipaddress.IPv4Address("127.0.0.1"))}


class Ranges:
    """Disjoint address ranges of one family with what each is, for overlap tests."""

    def __init__(self, ranges: Iterable[tuple[int, int, str]]) -> None:
        merged: list[list] = []
        for start, end, label in sorted(ranges):
            # Overlapping only: merging adjacent ranges would blame a listing
            # on its neighbour (203.0.114.7 on TEST-NET-3, 203.0.113.0/24).
            if merged and start <= merged[-1][1]:
                last = merged[-1]
                last[1] = max(last[1], end)
                if label not in last[2]:
                    last[2] += f"; {label}"
            else:
                merged.append([start, end, label])
        self._starts = [r[0] for r in merged]
        self._ends = [r[1] for r in merged]
        self._labels = [r[2] for r in merged]

    def overlap(self, start: int, end: int) -> str | None:
        """What an overlapping range is, or None."""
        i = bisect.bisect_right(self._starts, end) - 1
        if i >= 0 and self._ends[i] >= start:
            return self._labels[i]
        return None


class Guard:
    """Decides per listing whether publish may list it."""

    def __init__(self, config: LedgerConfig,
                 allowed: Iterable[tuple[str, int, bytes, bytes, str, str, int]] = ()
                 ) -> None:
        """``allowed``: the ledger's own allowlist (:meth:`Store.allowed`)."""
        found: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for key, family, start, end, why, _who, _at in allowed:
            found[family].append((int.from_bytes(start, "big"), int.from_bytes(end, "big"),
                                  f"allowlist in the ledger: {key} ({why})"))
        for text, label in SPECIAL_PURPOSE:
            _add(found, ipaddress.ip_network(text), f"special-purpose {text}: {label}")
        for path in config.allowlist:
            for network, lineno in _allowlist(path):
                _add(found, network, f"allowlist {path}:{lineno}")
        for path in config.warninglists:
            name, networks = _warninglist(path)
            for network in networks:
                _add(found, network, f"MISP warninglist {name!r} ({network})")
        self._ranges = {family: Ranges(ranges) for family, ranges in found.items()}

    def check(self, family: int, start: bytes, end: bytes, prefixlen: int,
              category: Category, forced: bool) -> str | None:
        """Why this listing must not be published, or None."""
        verdict = self.verdict(family, start, end, prefixlen, category, forced)
        return None if verdict is None else verdict[1]

    def verdict(self, family: int, start: bytes, end: bytes, prefixlen: int,
                category: Category, forced: bool) -> tuple[str, str] | None:
        """(reason, why) this listing must not be published, or None; the reason
        is one of :data:`REASONS`, a label small enough for a metric."""
        low, high = int.from_bytes(start, "big"), int.from_bytes(end, "big")
        if family in NEVER and low <= NEVER[family] <= high:
            return "never", "127.0.0.1 is never listed (RFC 5782)"
        if forced:
            return None
        widest = category.widest_v4 if family == 4 else category.widest_v6
        if prefixlen < widest:
            return "too_wide", f"/{prefixlen} is wider than {category.name} allows (/{widest})"
        label = self._ranges[family].overlap(low, high)
        if label is None:
            return None
        return _REASON_OF[label.split(" ", 1)[0]], label


def _add(found: dict[int, list[tuple[int, int, str]]],
         network: ipaddress.IPv4Network | ipaddress.IPv6Network, label: str) -> None:
    found[network.version].append((int(network.network_address),
                                   int(network.broadcast_address), label))


def _allowlist(path: str) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]]:
    try:
        return networks_in(path)
    except ZoneFileError as exc:
        raise LedgerError(str(exc)) from None


def _warninglist(path: str) -> tuple[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """A MISP warninglist (``{"name": ..., "type": "cidr", "list": [...]}``):
    its name and the addresses and networks in it (names in it are not ours)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the warninglist: {exc.strerror or exc}") \
            from None
    except ValueError as exc:
        raise LedgerError(f"{path}: not a MISP warninglist (bad JSON: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("list"), list):
        raise LedgerError(f"{path}: not a MISP warninglist (no 'list' of values)")
    networks = []
    for value in data["list"]:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            continue  # hostnames and strings: not addresses
    return str(data.get("name", path)), networks
