"""Export: a zone as a standard master file (``bind``) or a Response Policy Zone (``rpz``).

Both read a dataset's entries in one place, :func:`dataset_entries`, so the rest
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
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from socket import inet_ntoa
from typing import Any, TextIO

from dnsbl.allowlist import Network, allowlist_files
from dnsbl.config import ServerConfig
from dnsbl.datasets import (
    CombinedDataset,
    Dataset,
    GenericDataset,
    IP4Dataset,
    IP6Dataset,
    NameDataset,
)
from dnsbl.datasets.names import EXACT, SUBDOMAINS
from dnsbl.loader import LoadError, load_snapshot
from dnsbl.rpz import TYPE_CNAME, RpzPolicy, action_rdata, rpz_ip_name
from dnsbl.wire import (
    CLASS_IN,
    TYPE_A,
    TYPE_MX,
    TYPE_NS,
    TYPE_SOA,
    TYPE_TXT,
    name_to_wire,
    txt_rdata,
)
from dnsbl.zonefile import MAX_TXT, Value
from dnsbl.zones import Snapshot, Zone

#: Past this many records an export stops with an error: a /9 written as
#: /16 wildcards is 128 records, but a few misplaced exclusions in big
#: blocks could ask for hundreds of millions.
DEFAULT_MAX_RECORDS = 10_000_000

FORMATS = ("bind", "rpz")
TYPE_PRIVATE = 65280  # RFC 6895: private use
#: The last line of a complete export: standard output is streamed, so a
#: reader of a failed one (exit status 1) can also tell it by this missing.
END = "; end of {}"


class ExportError(Exception):
    """Why a zone cannot be exported, in words a user can act on."""

# -- reading the data -------------------------------------------------------

#: One entry: ("ip4"|"ip6", network int, prefix length, value or None when
#: excluded), ("name", name, EXACT|SUBDOMAINS, value or None), or
#: ("record", owner, (type, ttl, rdata), None) for a generic dataset's records.
Entry = tuple[str, Any, Any, Any]

#: One record: owner relative to the origin ("@": the apex), TTL, type, rdata.
Record = tuple[str, int, int, bytes]


def dataset_entries(dataset: Dataset) -> Iterator[Entry]:
    """Every entry of one loaded dataset (not a combined one), as :data:`Entry`."""
    if isinstance(dataset, GenericDataset):
        for record in dataset.entries():
            yield ("record", record.name, (record.rtype, record.ttl, record.rdata), None)
    elif isinstance(dataset, IP4Dataset | IP6Dataset):
        family = dataset.family
        for network in dataset.entries():
            yield (family, network.address, network.bits, network.value)
    elif isinstance(dataset, NameDataset):
        for name in dataset.entries():
            yield ("name", name.name, name.mode, name.value)


def zone_parts(zoneset: Snapshot, zone: Zone) -> list[tuple[str, Dataset]]:
    """The datasets that answer in ``zone``, each with the subzone it answers
    under (``""``: the zone itself; a combined file's sections elsewhere)."""
    parts = [("", d) for d in zone.datasets if not isinstance(d, CombinedDataset)]
    suffix = "." + zone.name
    for sub in zoneset.zones.values():
        if sub.parent_labels and sub.name.endswith(suffix):
            prefix = sub.name[:-len(suffix)]
            if prefix.count(".") + 1 == sub.parent_labels:
                parts += [(prefix, d) for d in sub.datasets
                          if not isinstance(d, CombinedDataset)]
    return parts


def load(config: ServerConfig, name: str, rpz: bool = False) -> tuple[Snapshot, Zone]:
    """Load the datasets of zone ``name`` (and no others); ``rpz``: the
    allowlist of its RPZ form too.

    :raises ExportError: for an unknown zone or a file that cannot be loaded.
    """
    wanted = name.lower().rstrip(".")
    zone_config = next((z for z in config.zones if z.name == wanted), None)
    if zone_config is None:
        known = ", ".join(z.name for z in config.zones) or "none"
        raise ExportError(f"no zone {wanted!r} in the configuration (zones: {known})")
    try:
        zoneset = load_snapshot(replace(config, zones=(zone_config,), global_acl=None),
                                allowlist=allowlist_files(config) if rpz else ())
    except LoadError as exc:
        raise ExportError("; ".join(map(str, exc.errors))) from None
    zone = zoneset.by_name(wanted)
    assert zone is not None
    return zoneset, zone


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


def _name_text(rdata: bytes, i: int) -> tuple[str, int]:
    """The uncompressed name at ``rdata[i:]`` as text, and where it ends."""
    labels = []
    while rdata[i]:
        raw = rdata[i + 1:i + 1 + rdata[i]]
        labels.append("".join(chr(b) if 0x21 <= b < 0x7F and b not in b'.\\"();$@'
                              else f"\\{b:03d}" for b in raw))
        i += 1 + rdata[i]
    return ".".join(labels) + ".", i + 1


_TYPE_NAMES = {TYPE_A: "A", TYPE_NS: "NS", TYPE_CNAME: "CNAME", TYPE_SOA: "SOA",
               TYPE_MX: "MX", TYPE_TXT: "TXT"}


def record_text(record: Record) -> str:
    """A record as a master-file line."""
    owner, ttl, rtype, rdata = record
    kind = _TYPE_NAMES.get(rtype, f"TYPE{rtype}")
    if rtype == TYPE_A:
        text = ".".join(map(str, rdata))
    elif rtype == TYPE_TXT:
        parts, i = [], 0
        while i < len(rdata):
            parts.append(_quoted(rdata[i + 1:i + 1 + rdata[i]]))
            i += 1 + rdata[i]
        text = " ".join(parts)
    elif rtype in (TYPE_NS, TYPE_CNAME):
        text = _name_text(rdata, 0)[0]
    elif rtype == TYPE_MX:
        text = f"{struct.unpack('>H', rdata[:2])[0]} {_name_text(rdata, 2)[0]}"
    elif rtype == TYPE_SOA:
        mname, i = _name_text(rdata, 0)
        rname, i = _name_text(rdata, i)
        text = " ".join([mname, rname, *map(str, struct.unpack(">5I", rdata[i:i + 20]))])
    else:  # RFC 3597
        text = f"\\# {len(rdata)} {rdata.hex()}" if rdata else "\\# 0"
    return f"{owner} {ttl} IN {kind} {text}"


def _apex(zone: Zone) -> Iterator[Record]:
    """The zone's SOA and NS records, as served."""
    for tail in (zone.soa_tail, *zone.ns_tails):
        rtype, _class, ttl, _length = struct.unpack(">HHIH", tail[:10])
        yield ("@", ttl, rtype, tail[10:])
    if not zone.ns_tails:
        # A zone needs an NS; with none in the data, one that needs no glue.
        yield ("@", zone.soa.ttl, TYPE_NS, name_to_wire("localhost"))


# -- bind ---------------------------------------------------------------------

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
    """Name entries on a tree of labels (top label first). ``exact``: values
    of names themselves; ``below``: values of everything strictly under a name."""

    exact: dict[tuple[str, ...], Value | None] = field(default_factory=dict)
    below: dict[tuple[str, ...], Value | None] = field(default_factory=dict)
    text: dict[tuple[str, ...], str] = field(default_factory=dict)  # what $ is at a wildcard
    kids: dict[tuple[str, ...], set[str]] = field(default_factory=dict)

    def add(self, labels: tuple[str, ...], value: Value | None, exact: bool,
            text: str) -> None:
        (self.exact if exact else self.below)[labels] = value
        if not exact:
            self.text[labels] = text
        for depth in range(len(labels)):
            self.kids.setdefault(labels[:depth], set()).add(labels[depth])


def _name_tree(entries: Iterable[tuple[str, int, Value | None]]) -> _Tree:
    tree = _Tree()
    for name, mode, value in entries:
        labels = tuple(reversed(name.split(".")))
        if mode != SUBDOMAINS:
            tree.add(labels, value, True, name)
        if mode != EXACT:
            tree.add(labels, value, False, name)
    return tree


def _records(owner: str, value: Value, ttl: int, text: str) -> Iterator[Record]:
    yield (owner, ttl, TYPE_A, value.a)
    txt = value.text_for(text)
    if txt is not None:
        yield (owner, ttl, TYPE_TXT, txt_rdata(txt))


def _name_records(tree: _Tree, ttl: int, suffix: str, budget: _Budget) -> Iterator[Record]:
    """The records of a name tree with DNSBL meaning in DNS terms."""

    def owner(labels: tuple[str, ...]) -> str:
        name = ".".join(reversed(labels))
        return f"{name}.{suffix}" if name and suffix else name or suffix or "@"

    def walk(node: tuple[str, ...], region: Value | None) -> Iterator[Record]:
        # What the name itself answers: its own entry, else its parent's region.
        value = tree.exact.get(node, region)
        if node and value is not None:
            budget.spend(2, "records")
            yield from _records(owner(node), value, ttl, ".".join(reversed(node)))
        elif value is None and region is not None:
            # An excluded name under a listed wildcard must exist, or the
            # wildcard answers for it; a record of a private type (RFC 6895)
            # makes it exist with no A or TXT: NODATA, not listed.
            budget.spend(1, "records")
            yield (owner(node), ttl, TYPE_PRIVATE, b"")
        region = tree.below.get(node, region)
        if region is not None:
            budget.spend(2, "records")
            star = f"*.{owner(node)}" if owner(node) != "@" else "*"
            yield from _records(star, region, ttl, region_text(node))
        for label in sorted(tree.kids.get(node, ())):
            yield from walk((*node, label), region)

    def region_text(node: tuple[str, ...]) -> str:
        # The entry that made the region: what $ stands for in a wildcard's
        # TXT, since a wildcard cannot name the address asked.
        while node and node not in tree.text:
            node = node[:-1]
        return tree.text.get(node, "")

    yield from walk((), None)


# The IP data is written from a sorted index, streamed: no tree of the zone.
# Every entry is first aligned to whole labels (octets for IPv4, nibbles for
# IPv6: 172.16/12 becomes 16 /16s), so it is one node of the reverse tree,
# and keyed ``network << 8 | level``: sorting the keys puts the nodes in the
# order of a depth-first walk, a node before its descendants, the labels of
# siblings in numeric order. A node's descendants are then a run of the
# index, found by bisection, and the walk holds only the path it is on.

Index = tuple[Sequence[int], list[Value | None]]
BATCH = 2048  # records the walk makes between two resumptions of its path
_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96
_HEX = list("0123456789abcdef")
_DECIMAL = [str(i) for i in range(256)]


@dataclass(frozen=True)
class _Space:
    """An address space as the reverse tree writes it: its width in bits,
    the bits of one label, and the text of an address (the ``$`` of a
    leaf's TXT) and of a network (of a wildcard's)."""

    width: int
    step: int
    labels: list[str]
    address: Callable[[int], str]
    network: Callable[[int, int], str]
    above: int = 0  # prefix bits above the space: 96 for the IPv4-mapped names


def _v4(net: int) -> str:
    return inet_ntoa(net.to_bytes(4, "big"))


def _v6(net: int) -> str:
    return str(ipaddress.IPv6Address(net))


_IP4 = _Space(32, 8, _DECIMAL, _v4, lambda net, bits: f"{_v4(net)}/{bits}")
_IP6 = _Space(128, 4, _HEX, _v6, lambda net, bits: f"{_v6(net)}/{bits}")
#: The IPv4 data under ::ffff:0:0/96, in nibbles: a leaf's $ is the IPv4
#: address (as dnsbl answers), a wildcard's the IPv6 network.
_IP4_MAPPED = _Space(32, 4, _HEX, _v4, lambda net, bits: f"{_v6(_MAPPED | net)}/{96 + bits}",
                     96)


def _ip_index(space: _Space, entries: Iterable[tuple[int, int, Value | None]],
              budget: _Budget) -> Index:
    """The label-aligned entries, sorted, one per node: (keys, values).

    Where two entries land on one node the longer prefix wins, and of equal
    ones the later (DNS has one answer per name; dnsbl the most specific)."""
    width, step = space.width, space.step
    values: list[Value | None] = []
    ranked = []  # key << 40 | original prefix length << 32 | position
    for key, bits, value in entries:
        level = -(-bits // step) * step
        rank = bits << 32 | len(values)
        values.append(value)
        if level == bits:
            ranked.append((key << 8 | level) << 40 | rank)
            continue
        count = 1 << (level - bits)
        if count > 1:
            budget.spend(count, f"{space.network(key, bits)} as /{space.above + level}s")
        for i in range(count):
            ranked.append(((key + (i << (width - level))) << 8 | level) << 40 | rank)
    ranked.sort()
    keys: Any = array("Q") if width == 32 else []
    kept: list[Value | None] = []
    last = -1
    for rank in ranked:
        key = rank >> 40
        if key == last:
            kept[-1] = values[rank & 0xFFFFFFFF]  # ranks ascend: this one wins
        else:
            keys.append(key)
            kept.append(values[rank & 0xFFFFFFFF])
            last = key
    return keys, kept


Walk = Callable[[int, int, str, int, int, "Value | None", str], Iterator[list[Record]]]


def _walker(space: _Space, index: Index, ttl: int, tail: str, budget: _Budget,
            out: list[Record], graft: tuple[int, int, Callable[[str], Iterator[list[Record]]]]
            | None = None) -> Walk:
    """The walk of ``index``'s tree, adding the records with DNSBL meaning in
    DNS terms to ``out`` in the index's order: a node's own records, then
    its wildcard, then its children's. A leaf (a whole address) listed gets
    A and TXT; a node under a listed region gets a wildcard, so names that
    exist below the region's owner still match it; a listed region with an
    exclusion below (a hole) is written child by child instead, so the
    excluded one does not exist. ``graft``: (network, depth, walk) of a node
    whose subtree another walk writes (the IPv4-mapped names).

    The walk hands ``out`` on (yields it) between children once it holds a
    batch: a generator's resumption passes every frame of the path, so it is
    done once a batch, not once a record."""
    keys, values = index
    width, step, label_text, leaf_text = space.width, space.step, space.labels, space.address
    leaf_depth = width // step
    mask = (1 << step) - 1
    # Whether a run of the index holds an exclusion: counts of them up to each position.
    holes = None
    if None in values:
        holes = array("L", [0])
        for value in values:
            holes.append(holes[-1] + (value is None))
    txt_cache: dict[int, bytes] = {}

    def records(owner: str, value: Value, text: str) -> tuple[Record, ...]:
        # A tuple, not a generator: one frame less per record of millions.
        budget.spend(2, "records")
        if value.txt is None:
            return ((owner, ttl, TYPE_A, value.a),)
        if len(value.txt) == 1:  # no "$": the same for every entry
            rdata = txt_cache.get(id(value))
            if rdata is None:
                rdata = txt_cache[id(value)] = txt_rdata(value.txt[0][:MAX_TXT])
        else:
            rdata = txt_rdata(value.text_for(text) or b"")
        return (owner, ttl, TYPE_A, value.a), (owner, ttl, TYPE_TXT, rdata)

    def name_of(net: int, top: int, depth: int, below: str) -> str:
        """The owner (without the suffix) of ``net``'s node at ``depth``,
        from the name ``below`` of its ancestor at ``top``."""
        labels = [label_text[(net >> (width - step * d)) & mask] for d in range(depth, top, -1)]
        if below:
            labels.append(below)
        return ".".join(labels)

    def walk(net: int, depth: int, name: str, lo: int, hi: int, region: Value | None,
             text: str) -> Iterator[list[Record]]:
        # keys[lo:hi]: the node's own entry, if any, then its descendants'.
        level = depth * step
        if lo < hi and keys[lo] == net << 8 | level:
            own = values[lo]
            lo += 1
            if depth == leaf_depth:
                region = own
            else:
                region, text = own, space.network(net, level)
        if depth == leaf_depth:
            if region is not None:
                out.extend(records(name + tail, region, leaf_text(net)))
            return
        if graft is not None and (net, depth) == graft[:2]:
            yield from graft[2](name)
        size = 1 << (width - level - step)  # addresses under a child
        if region is not None and holes is not None and holes[hi] > holes[lo]:
            # A hole: no wildcard here; each child is written on its own, so
            # the excluded one does not exist and its names are NXDOMAIN.
            for label in range(1 << step):
                child = net + label * size
                end = bisect_left(keys, (child + size) << 8, lo, hi)
                yield from walk(child, depth + 1, f"{label_text[label]}.{name}" if name
                                else label_text[label], lo, end, region, text)
                if len(out) >= BATCH:
                    yield out
                lo = end
            return
        if region is not None:
            owner = name + tail if name else tail[1:]
            out.extend(records(f"*.{owner}" if owner else "*", region, text))
        while lo < hi:
            first = keys[lo]
            leaf = first & 0xFF == width
            if leaf and depth + 1 == leaf_depth:
                end = lo + 1  # a whole address right below: no bisection for one entry
            else:
                end = bisect_left(keys, (((first >> 8) & -size) + size) << 8, lo, hi)
            if leaf and end == lo + 1 and (region is None or depth + 1 == leaf_depth):
                # A whole address alone in its run, with nothing to write on
                # the way down (most of a big list): written here, not walked.
                value = values[lo]
                if value is not None:
                    child = first >> 8
                    out.extend(records(name_of(child, depth, leaf_depth, name) + tail, value,
                                       leaf_text(child)))
                    if len(out) >= BATCH:
                        yield out
                lo = end
                continue
            child_depth = depth + 1
            child = (first >> 8) & -size
            if region is None:
                # Nothing is written on the way down to the deepest node
                # that holds the whole run: go there at once.
                common = (first >> 8) ^ (keys[end - 1] >> 8)
                child_depth = min((width - common.bit_length()) // step,
                                  (first & 0xFF) // step)
                child = (first >> 8) & -(1 << (width - child_depth * step))
            yield from walk(child, child_depth, name_of(child, depth, child_depth, name),
                            lo, end, region, text)
            if len(out) >= BATCH:
                yield out
            lo = end

    return walk


def _ip_records(space: _Space, index: Index, ttl: int, suffix: str, budget: _Budget,
                mapped: Index | None = None) -> Iterator[Record]:
    """The records of one family's index (:func:`_walker`); IPv6 with
    ``mapped``, the IPv4 data's index in nibbles, under ::ffff:0:0/96."""
    tail = f".{suffix}" if suffix else ""
    out: list[Record] = []
    graft = None
    if mapped is not None:
        inner = _walker(_IP4_MAPPED, mapped, ttl, tail, budget, out)
        graft = (_MAPPED, 24, lambda name: inner(0, 0, name, 0, len(mapped[0]), None, ""))
    walk = _walker(space, index, ttl, tail, budget, out, graft)
    for batch in walk(0, 0, "", 0, len(index[0]), None, ""):
        yield from batch
        batch.clear()
    yield from out


#: A dataset's entries as the record generators read them: :func:`dataset_entries`,
#: or (for a difference, :mod:`dnsbl.ixdiff`) only those a change touches.
Entries = Callable[[Dataset], Iterable[Entry]]


def bind_records(zoneset: Snapshot, zone: Zone, max_records: int = DEFAULT_MAX_RECORDS,
                 entries_of: Entries = dataset_entries) -> Iterator[Record]:
    """The zone's records as a standard zone, streamed.

    The order, the same on every call for the same data: SOA and NS; the
    records of generic datasets; then per subzone and family (names, IPv4,
    IPv6, in the order the datasets first appear; IPv6 after IPv4 where a
    zone has IPv4 data, for its IPv4-mapped names) a depth-first walk of
    the reverse tree, top label first, siblings in label order (numeric for
    addresses, by text for names), each node's own records (A, then TXT)
    before its wildcard's and before its children's. For the IP families
    that is the order of (network, prefix length) of the node a record is
    at (a leaf: the address and 32 or 128; a wildcard: the node's network
    and length), the IPv4-mapped names at ::ffff:a.b.c.d among the IPv6
    ones, so two versions of a zone can be compared by merging.

    ``entries_of``: where a dataset's entries are read from; the families
    and their TTLs are those of the whole data whatever it gives.

    :raises ExportError: past ``max_records`` records.
    """
    budget = _Budget(max_records)
    yield from _apex(zone)
    # Datasets of one family under one name are written as one tree (DNS has
    # one answer per name; where two list the same key, the later one's).
    families: dict[tuple[str, str], tuple[int, list[Dataset]]] = {}
    for subzone, dataset in zone_parts(zoneset, zone):
        if isinstance(dataset, GenericDataset):
            for _family, key, (rtype, rttl, rdata), _value in entries_of(dataset):
                yield (".".join(x for x in (key, subzone) if x) or "@", rttl, rtype, rdata)
            continue
        first = next(dataset_entries(dataset), None)
        if first is not None:  # (one with no entries does not make a family)
            families.setdefault((subzone, first[0]), (dataset.ttl, []))[1].append(dataset)
    for (subzone, family), (ttl, _listed) in list(families.items()):
        if family == "ip4" and (subzone, "ip6") not in families:
            families[(subzone, "ip6")] = (ttl, [])  # for its IPv4-mapped names

    def entries(subzone: str, family: str) -> Iterator[tuple[Any, Any, Value | None]]:
        for dataset in families.get((subzone, family), (0, []))[1]:
            for _family, key, bits, value in entries_of(dataset):
                yield key, bits, value

    for (subzone, family), (ttl, _datasets) in families.items():
        if family == "name":
            yield from _name_records(_name_tree(entries(subzone, family)), ttl, subzone,
                                     budget)
        elif family == "ip4":
            yield from _ip_records(_IP4, _ip_index(_IP4, entries(subzone, family), budget),
                                   ttl, subzone, budget)
        elif (subzone, "ip4") not in families:
            yield from _ip_records(_IP6, _ip_index(_IP6, entries(subzone, family), budget),
                                   ttl, subzone, budget)
        else:
            # An IPv4-mapped address (::ffff:a.b.c.d) is asked of the IPv4
            # data alone: the IPv6 data's entries in ::ffff:0:0/96 give way
            # to an exclusion of it, under which the IPv4 data is grafted.
            outside = ((key, bits, value) for key, bits, value in entries(subzone, family)
                       if bits < 96 or key >> 32 != 0xFFFF)
            index = _ip_index(_IP6, chain(outside, [(_MAPPED, 96, None)]), budget)
            mapped = _ip_index(_IP4_MAPPED, entries(subzone, "ip4"), budget)
            yield from _ip_records(_IP6, index, ttl, subzone, budget, mapped)


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


def _allowed(zoneset: Snapshot, config: ServerConfig) -> tuple[Network, ...]:
    """The allowlist's networks as the snapshot holds them, read with its data."""
    if zoneset.allowlist is not None:
        return zoneset.allowlist.networks
    if allowlist_files(config):
        raise ExportError(f"the RPZ allowlist ({', '.join(allowlist_files(config))}) "
                          "has not loaded: see the log for why")
    return ()


def _trigger(family: str, key: int, bits: int) -> str:
    """The RPZ draft's name of a network (:func:`dnsbl.rpz.rpz_ip_name`);
    IPv4 without making an object of it, for a list of millions."""
    if family == "ip4":
        return f"{bits}.{key & 0xFF}.{key >> 8 & 0xFF}.{key >> 16 & 0xFF}.{key >> 24}"
    return rpz_ip_name(ipaddress.IPv6Network((key, bits)))


def rpz_records(zoneset: Snapshot, zone: Zone, config: ServerConfig,
                policy: RpzPolicy | None = None, entries_of: Entries = dataset_entries
                ) -> Iterator[Record]:
    """The zone as a Response Policy Zone (owners relative to its origin).

    One record per trigger, in an order that is the same on every call for
    the same data: SOA and NS; ``rpz-ip`` triggers, IPv4 then IPv6, by
    network then prefix length; ``rpz-client-ip`` triggers the same; then
    the name triggers by name. Where two entries make one trigger (two
    datasets list one network, or the allowlist names a listed one), the
    allowlist wins, else the later dataset, as in the ``bind`` form.

    ``entries_of``: where a dataset's entries are read from (as in
    :func:`bind_records`).

    :raises ExportError: for a category the policy names that is not one,
        or a snapshot without the allowlist it needs.
    """
    policy = policy or RpzPolicy()
    actions = {_category_address(config, category, "actions"): action_rdata(action)
               for category, action in policy.actions}
    default = action_rdata(policy.default)
    passthru = action_rdata("passthru")
    by_client = {_category_address(config, category, "client") for category in policy.client}
    ttl = zone.datasets[0].ttl if zone.datasets else zone.soa.ttl
    yield from _apex(zone)
    chosen: list[tuple[int, bytes]] = []  # the action of each entry, in entry order
    ranked: dict[tuple[str, str], list[int]] = {
        (trigger, family): [] for trigger in ("rpz-ip", "rpz-client-ip")
        for family in ("ip4", "ip6")}  # (key << 8 | bits) << 32 | position
    names: dict[str, tuple[int, bytes]] = {}
    for _subzone, dataset in zone_parts(zoneset, zone):
        for family, key, bits, value in entries_of(dataset):
            if family == "record":
                continue
            action = passthru if value is None else actions.get(value.a, default)
            if family == "name":
                if bits != SUBDOMAINS:
                    names[key] = action
                if bits != EXACT:
                    names[f"*.{key}"] = action
                continue
            trigger = "rpz-client-ip" if value is not None and value.a in by_client else "rpz-ip"
            ranked[(trigger, family)].append((key << 8 | bits) << 32 | len(chosen))
            chosen.append(action)
    for network in _allowed(zoneset, config):
        family = f"ip{network.version}"
        ranked[("rpz-ip", family)].append(
            (int(network.network_address) << 8 | network.prefixlen) << 32 | len(chosen))
        chosen.append(passthru)
    for (trigger, family), keys in ranked.items():
        keys.sort()
        for i, rank in enumerate(keys):
            key = rank >> 32
            if i + 1 < len(keys) and keys[i + 1] >> 32 == key:
                continue  # a later entry makes the same trigger: it wins
            yield (f"{_trigger(family, key >> 8, key & 0xFF)}.{trigger}", ttl,
                   *chosen[rank & 0xFFFFFFFF])
        keys.clear()
    for name in sorted(names):
        yield (name, ttl, *names[name])


#: What a transfer sends for a name: the served zone whose data it is, and
#: its records (SOA first) from a snapshot and that zone, the datasets'
#: entries read by the last argument.
Form = tuple[str, Callable[[Snapshot, Zone, Entries], Iterator[Record]]]


def transfer_forms(config: ServerConfig) -> dict[str, Form]:
    """The names a transfer may ask for: each transferable zone in the
    ``bind`` form under its own name, and where it has ``rpz``, its RPZ form
    (the ``[rpz]`` policy) under that origin."""
    forms: dict[str, Form] = {}
    for zone in config.zones:
        if not zone.transfer:
            continue
        forms[zone.name] = (zone.name, lambda s, z, e: bind_records(s, z, 1 << 62, e))
        if zone.rpz is not None:
            forms[zone.rpz] = (zone.name, lambda s, z, e: rpz_records(s, z, config,
                                                                      config.rpz, e))
    return forms


def packed_records(records: Iterable[Record]) -> Iterator[bytes]:
    """Each record as a transfer sends it: the owner's labels ending in a
    pointer to the question's name (the apex, at offset 12), then type,
    class, TTL and rdata. A walk writes the names of a subtree in a row, so
    the wire form of a name is made from its parent's, kept from the names
    before it (a few thousand, forgotten in bulk), not label by label.

    :raises ValueError: for an owner with a label over 63 bytes.
    """
    apex = b"\xc0\x0c"
    names: dict[str, bytes] = {"@": apex, "": apex}
    pack = struct.Struct(">HHIH").pack

    def wire(name: str) -> bytes:
        label, _, parent = name.partition(".")
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            name_to_wire(name)  # says which label is wrong
            raise ValueError(f"empty label in {name!r}")
        above = names.get(parent)
        if above is None:
            above = wire(parent)
        names[name] = done = bytes((len(raw),)) + raw + above
        return done

    last, name = "@", apex
    for owner, ttl, rtype, rdata in records:
        if owner is not last:
            if len(names) > 4096:
                names.clear()
                names.update({"@": apex, "": apex})
            name = names.get(owner) or wire(owner)
            last = owner
        yield name + pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata


def master_file(records: Iterable[Record], origin: str, title: str) -> Iterator[str]:
    """Master-file lines of ``records`` under ``origin``, the last one :data:`END`."""
    yield f"; {title}, exported by dnsbl"
    yield f"$ORIGIN {origin}."
    yield from map(record_text, records)
    yield END.format(origin)


def write(lines: Iterable[str], out: TextIO) -> int:
    """Write ``lines`` each with a line end; how many were written."""
    count = 0
    for line in lines:
        out.write(line)
        out.write("\n")
        count += 1
    return count
