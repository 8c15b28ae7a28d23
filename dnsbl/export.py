"""Export: a zone as a standard master file (``bind``) or a Response Policy Zone (``rpz``).

Both read a dataset's entries in one place, :func:`_entries`, so the rest
does not depend on how a dataset stores them.

A DNSBL's "most specific entry wins" is not what DNS wildcards do: a name
that exists under a wildcard's owner hides the wildcard from everything
below it. The ``bind`` form therefore writes the entries as a tree
(:func:`_tree_lines`): every name that exists and lies in a listed region gets
a wildcard of its own, and a listed region with a hole in it (an exclusion)
is written child by child instead of as one wildcard. The RPZ form needs no
such care: RPZ's own rule among ``rpz-ip`` triggers is the longest prefix.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from dnsbl.config import ServerConfig
from dnsbl.dataset import Parsed, index_dataset, parse_dataset
from dnsbl.registry import Zone, build_zoneset, dataset_key, dataset_specs
from dnsbl.rpz import RPZ_ACTIONS, RpzPolicy, action_text, rpz_ip_name
from dnsbl.wire import TYPE_A, TYPE_TXT
from dnsbl.zonefile import (
    COMBINED_TYPES,
    EXACT,
    GENERIC_TYPES,
    IP4_TYPES,
    IP6_TYPES,
    NAME_TYPES,
    SUBDOMAINS,
    Value,
)

#: Past this many records an export stops with an error: a /9 written as
#: /16 wildcards is 128 records, but a few misplaced exclusions in big
#: blocks could ask for hundreds of millions.
DEFAULT_MAX_RECORDS = 10_000_000

FORMATS = ("bind", "rpz")
#: The last line of a complete export: standard output is streamed, so a
#: reader of a failed one (exit status 1) can also tell it by this missing.
END = "; end of {}"


class ExportError(Exception):
    """Why a zone cannot be exported, in words a user can act on."""

# -- reading the data -------------------------------------------------------

#: One entry: ("ip4"|"ip6", network int, prefix length, value or None when
#: excluded), ("name", name, EXACT|SUBDOMAINS|both, value or None), or
#: ("record", owner, (type, ttl, rdata)) for a generic dataset's records.
Entry = tuple[str, Any, Any, Any]


def _entries(parsed: Parsed) -> Iterator[Entry]:
    """Every entry of one dataset (not combined), as :data:`Entry` tuples.

    The one place that knows how :class:`~dnsbl.dataset.Parsed` stores them.
    """
    if parsed.kind in GENERIC_TYPES:
        for name, rtype, ttl, rdata in parsed.records:
            yield ("record", name, (rtype, ttl, rdata), None)
        return
    family = ("ip4" if parsed.kind in IP4_TYPES else "ip6" if parsed.kind in IP6_TYPES
              else "name" if parsed.kind in NAME_TYPES else "")
    if not family:
        return  # an ACL decides who asks; it lists nothing
    values = parsed.values
    if parsed.singles:
        keys, numbers = array("I"), array("I")
        keys.frombytes(parsed.singles)
        numbers.frombytes(parsed.numbers)
        for key, number in zip(keys, numbers, strict=True):
            yield (family, key, 32, values[number])
    for key, bits, number in parsed.blocks:
        yield (family, key, bits, values[number])


@dataclass
class Loaded:
    """A zone as an export sees it: the served zone (for SOA, NS, TTL) and
    each dataset's entries with its TTL, under the subzone it answers (``""``:
    the zone itself)."""

    zone: Zone
    ns: tuple[str, ...] = ()
    parts: list[tuple[str, int, Parsed]] = field(default_factory=list)


def load(config: ServerConfig, name: str) -> Loaded:
    """Read the datasets of zone ``name`` once.

    :raises ExportError: for an unknown zone or a file that cannot be loaded.
    """
    from dnsbl.zonefile import ZoneFileError

    wanted = name.lower().rstrip(".")
    zone_config = next((z for z in config.zones if z.name == wanted), None)
    if zone_config is None:
        known = ", ".join(z.name for z in config.zones) or "none"
        raise ExportError(f"no zone {wanted!r} in the configuration (zones: {known})")
    specs = {key: spec for key, spec in dataset_specs(config).items()
             if spec in zone_config.datasets}
    parsed: dict[Any, Parsed] = {}
    try:
        for key, spec in specs.items():
            parsed[key] = parse_dataset(spec.type, spec.files, config.ttl, config.ttl_bounds,
                                        config.limits)
    except ZoneFileError as exc:
        raise ExportError(str(exc)) from None
    parts: list[tuple[str, int, Parsed]] = []
    for spec in zone_config.datasets:
        one = parsed[dataset_key(spec)]
        if one.kind in COMBINED_TYPES:
            for subzones, _name, section in one.sections:
                parts.extend((subzone, section.ttl, section) for subzone in subzones)
        else:
            parts.append(("", one.ttl, one))
    datasets = {key: index_dataset(p) for key, p in parsed.items()}
    only = ServerConfig(zones=(zone_config,), ttl=config.ttl)
    zone = build_zoneset(only, datasets).by_name(wanted)
    assert zone is not None
    ns = zone_config.ns or next((p.ns for p in parsed.values() if p.ns is not None), None)
    return Loaded(zone, ns.names if ns else (), parts)


# -- text of records --------------------------------------------------------

def _quoted(text: bytes) -> str:
    out = []
    for byte in text:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _rdata_text(rtype: int, rdata: bytes) -> tuple[str, str]:
    """(type, text) of a generic dataset's record (A, TXT or MX)."""
    if rtype == TYPE_A:
        return "A", ".".join(map(str, rdata))
    if rtype == TYPE_TXT:
        parts, i = [], 0
        while i < len(rdata):
            parts.append(_quoted(rdata[i + 1:i + 1 + rdata[i]]))
            i += 1 + rdata[i]
        return "TXT", " ".join(parts)
    preference, labels, i = struct.unpack(">H", rdata[:2])[0], [], 2
    while rdata[i]:
        labels.append(rdata[i + 1:i + 1 + rdata[i]].decode("latin-1"))
        i += 1 + rdata[i]
    return "MX", f"{preference} {'.'.join(labels)}."


def _apex_lines(loaded: Loaded, origin: str) -> list[str]:
    zone = loaded.zone
    soa = zone.soa
    ns_ttl = zone.datasets[0].ttl if zone.datasets else soa.ttl
    # A zone needs an NS; with none in the data, one that needs no glue.
    names = loaded.ns or ("localhost",)
    lines = [f"$ORIGIN {origin}.",
             f"@ {soa.ttl} IN SOA {_fq(soa.mname)} {_fq(soa.rname)} {soa.serial} "
             f"{soa.refresh} {soa.retry} {soa.expire} {soa.minimum}"]
    lines += [f"@ {ns_ttl} IN NS {_fq(n)}" for n in names]
    return lines


def _fq(name: str) -> str:
    return name if name.endswith(".") else name + "."


# -- bind ---------------------------------------------------------------------

def _ip_text(family: str, key: int) -> str:
    if family == "ip4":
        return str(ipaddress.IPv4Address(key))
    return str(ipaddress.IPv6Address(key))


def _ip_labels(family: str, key: int, bits: int) -> tuple[str, ...]:
    """The labels of an octet (nibble) aligned network, top first: 10.1/16 -> ("10", "1")."""
    if family == "ip4":
        return tuple(str((key >> (24 - 8 * i)) & 0xFF) for i in range(bits // 8))
    return tuple(format((key >> (124 - 4 * i)) & 0xF, "x") for i in range(bits // 4))


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def spend(self, count: int, what: str) -> None:
        self.left -= count
        if self.left < 0:
            raise ExportError(f"more than {self.limit} records ({what}); a master file "
                              "cannot hold this data compactly: raise --max-records, or "
                              "serve it by zone transfer instead")


@dataclass
class _Tree:
    """Entries on a tree of labels (top label first). ``exact``: values of
    names themselves; ``below``: values of everything strictly under a name."""

    leaf_depth: int  # IPv4: 4 labels, IPv6: 32; names: 0 (no leaves)
    fanout: tuple[str, ...] = ()
    exact: dict[tuple[str, ...], Value | None] = field(default_factory=dict)
    below: dict[tuple[str, ...], Value | None] = field(default_factory=dict)
    text: dict[tuple[str, ...], str] = field(default_factory=dict)  # what $ is at a wildcard
    kids: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    holes: set[tuple[str, ...]] = field(default_factory=set)  # an exclusion strictly below
    mapped: bool = False  # ::ffff:0:0/96 holds the IPv4 data: $ is the IPv4 address

    def add(self, labels: tuple[str, ...], value: Value | None, exact: bool,
            text: str) -> None:
        (self.exact if exact else self.below)[labels] = value
        if not exact:
            self.text[labels] = text
        for depth in range(len(labels)):
            self.kids.setdefault(labels[:depth], set()).add(labels[depth])
            if value is None:
                self.holes.add(labels[:depth])


def _ip_tree(family: str, entries: list[tuple[int, int, Value | None]],
             budget: _Budget) -> _Tree:
    width, step = (32, 8) if family == "ip4" else (128, 4)
    tree = _Tree(width // step, tuple(str(i) for i in range(256)) if family == "ip4"
                 else tuple("0123456789abcdef"))
    # Aligned to whole labels; a longer prefix is written later, so it wins.
    for key, bits, value in sorted(entries, key=lambda e: e[1]):
        level = -(-bits // step) * step
        count = 1 << (level - bits)
        if count > 1:
            budget.spend(count, f"{_ip_text(family, key)}/{bits} as /{level}s")
        for i in range(count):
            net = key + (i << (width - level))
            labels = _ip_labels(family, net, level)
            tree.add(labels, value, level == width, f"{_ip_text(family, net)}/{level}")
    return tree


def _name_tree(entries: list[tuple[str, int, Value | None]]) -> _Tree:
    tree = _Tree(0)
    for name, mode, value in entries:
        labels = tuple(reversed(name.split(".")))
        if mode != SUBDOMAINS:
            tree.add(labels, value, True, name)
        if mode != EXACT:
            tree.add(labels, value, False, name)
    return tree


def _records(owner: str, value: Value, ttl: int, text: str) -> list[str]:
    lines = [f"{owner} {ttl} IN A {'.'.join(map(str, value.a))}"]
    txt = value.text_for(text)
    if txt is not None:
        lines.append(f"{owner} {ttl} IN TXT {_quoted(txt)}")
    return lines


def _tree_lines(tree: _Tree, top: tuple[str, ...], ttl: int, suffix: str, ip: bool,
                budget: _Budget) -> Iterator[str]:
    """The records of the tree under ``top`` with DNSBL meaning in DNS terms."""

    def owner(labels: tuple[str, ...]) -> str:
        name = ".".join(reversed(labels))
        return f"{name}.{suffix}" if name and suffix else name or suffix or "@"

    def walk(node: tuple[str, ...], region: Value | None) -> Iterator[str]:
        # What the name itself answers: its own entry, else its parent's region.
        value = tree.exact.get(node, region)
        if node and value is not None and (not ip or len(node) == tree.leaf_depth):
            budget.spend(2, "records")
            text = node_text(node)
            yield from _records(owner(node), value, ttl, text)
        elif not ip and value is None and region is not None:
            # An excluded name under a listed wildcard must exist, or the
            # wildcard answers for it; a record of a private type (RFC 6895)
            # makes it exist with no A or TXT: NODATA, not listed.
            budget.spend(1, "records")
            yield f"{owner(node)} {ttl} IN TYPE65280 \\# 0"
        if ip and len(node) == tree.leaf_depth:
            return
        region = tree.below.get(node, region)
        kids = tree.kids.get(node, set())
        if ip and region is not None and node in tree.holes:
            # A hole: no wildcard here; each child is written on its own, so
            # the excluded one does not exist and its names are NXDOMAIN.
            for label in tree.fanout:
                yield from walk((*node, label), region)
            return
        if region is not None:
            budget.spend(2, "records")
            star = f"*.{owner(node)}" if owner(node) != "@" else "*"
            yield from _records(star, region, ttl, region_text(node))
        for label in sorted(kids, key=sort_key):
            yield from walk((*node, label), region)

    def node_text(node: tuple[str, ...]) -> str:
        if not ip:
            return ".".join(reversed(node))
        if tree.leaf_depth == 4:
            return ".".join(node)
        address = int("".join(node), 16)
        if tree.mapped and address >> 32 == 0xFFFF:
            return str(ipaddress.IPv4Address(address & 0xFFFFFFFF))
        return str(ipaddress.IPv6Address(address))

    def region_text(node: tuple[str, ...]) -> str:
        # The entry that made the region: what $ stands for in a wildcard's
        # TXT, since a wildcard cannot name the address asked.
        while node and node not in tree.text:
            node = node[:-1]
        return tree.text.get(node, "")

    def sort_key(label: str) -> Any:
        return int(label) if tree.leaf_depth == 4 else label

    yield from walk(top, None)


def bind_lines(loaded: Loaded, max_records: int = DEFAULT_MAX_RECORDS) -> Iterator[str]:
    """The zone as master-file lines (no line ends)."""
    zone = loaded.zone
    budget = _Budget(max_records)
    yield f"; {zone.name}, exported by dnsbl; serial {zone.soa.serial}"
    yield from _apex_lines(loaded, zone.name)
    # Datasets of one family under one name are written as one tree (DNS has
    # one answer per name; where two list the same key, the later one's).
    families: dict[tuple[str, str], tuple[int, list[Any]]] = {}
    for subzone, ttl, parsed in loaded.parts:
        for family, key, bits, value in _entries(parsed):
            if family == "record":
                rtype, rttl, rdata = bits
                kind, text = _rdata_text(rtype, rdata)
                where = ".".join(x for x in (key, subzone) if x) or "@"
                yield f"{where} {rttl} IN {kind} {text}"
                continue
            families.setdefault((subzone, family), (ttl, []))[1].append((key, bits, value))
    for (subzone, family), (ttl, entries) in families.items():
        mapped = False
        if family == "ip6" and (subzone, "ip4") in families:
            entries = _mapped(entries, families[(subzone, "ip4")][1])
            mapped = True
        elif family == "ip4" and (subzone, "ip6") not in families:
            families[(subzone, "ip6")] = (ttl, [])  # for its IPv4-mapped names
        if family == "name":
            tree = _name_tree(entries)
        else:
            tree = _ip_tree(family, entries, budget)
            tree.mapped = mapped
        yield from _tree_lines(tree, (), ttl, subzone, family != "name", budget)
    yield END.format(zone.name)


_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96


def _mapped(entries6: list[Any], entries4: list[Any]) -> list[Any]:
    """The IPv6 entries as dnsbl answers them in a zone with IPv4 data: an
    IPv4-mapped address (::ffff:a.b.c.d) is asked of the IPv4 data alone."""
    outside = [(key, bits, value) for key, bits, value in entries6
               if bits < 96 or key >> 32 != 0xFFFF]
    return [*outside, (_MAPPED, 96, None),
            *((_MAPPED | key, 96 + bits, value) for key, bits, value in entries4)]


# -- rpz ----------------------------------------------------------------------

def _category_address(config: ServerConfig, category: str, where: str) -> bytes:
    """The A value (packed) of a category named by the ledger's name or by its address."""
    by_name = {c.name: c.a for c in (config.ledger.categories if config.ledger else ())}
    try:
        return ipaddress.IPv4Address(by_name.get(category, category)).packed
    except ValueError:
        raise ExportError(f"[rpz] {where}: {category!r} is neither a ledger category "
                          f"({', '.join(by_name) or 'none configured'}) nor an address"
                          ) from None


def _allowed(config: ServerConfig, policy: RpzPolicy) -> Iterator[
        ipaddress.IPv4Network | ipaddress.IPv6Network]:
    from dnsbl.ledger.guard import _allowlist
    from dnsbl.ledger.model import LedgerError

    files = [*policy.allowlist, *(config.ledger.allowlist if config.ledger else ())]
    for path in files:
        try:
            for network, _lineno in _allowlist(path):
                yield network
        except LedgerError as exc:
            raise ExportError(str(exc)) from None


def rpz_lines(loaded: Loaded, config: ServerConfig, origin: str,
              policy: RpzPolicy | None = None) -> Iterator[str]:
    """The zone as an RPZ master file under ``origin``."""
    policy = policy or RpzPolicy()
    actions = {_category_address(config, category, "actions"): action
               for category, action in policy.actions}
    by_client = {_category_address(config, category, "client") for category in policy.client}
    zone = loaded.zone
    ttl = zone.datasets[0].ttl if zone.datasets else zone.soa.ttl
    yield f"; RPZ of {zone.name}, exported by dnsbl; serial {zone.soa.serial}"
    yield from _apex_lines(loaded, origin)
    passthru = RPZ_ACTIONS["passthru"]
    for _subzone, _ttl, parsed in loaded.parts:
        for family, key, bits, value in _entries(parsed):
            if family == "record":
                continue
            if family == "name":
                action = passthru if value is None else action_text(
                    actions.get(value.a, policy.default))
                if bits != SUBDOMAINS:
                    yield f"{key} {ttl} IN {action}"
                if bits != EXACT:
                    yield f"*.{key} {ttl} IN {action}"
                continue
            network = ipaddress.ip_network((key, bits))
            trigger = "rpz-ip"
            if value is None:
                action = passthru
            else:
                action = action_text(actions.get(value.a, policy.default))
                if value.a in by_client:
                    trigger = "rpz-client-ip"
            yield f"{rpz_ip_name(network)}.{trigger} {ttl} IN {action}"
    for network in _allowed(config, policy):
        yield f"{rpz_ip_name(network)}.rpz-ip {ttl} IN {passthru}"
    yield END.format(origin)


def write(lines: Iterable[str], out: TextIO) -> int:
    """Write ``lines`` each with a line end; how many were written."""
    count = 0
    for line in lines:
        out.write(line)
        out.write("\n")
        count += 1
    return count
