"""Served zones: datasets assembled under names into a :class:`Snapshot`, which
:class:`ServedZones` swaps whole when a reload has built a new one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dnsbl.allowlist import Allowlist, served_allowlist_files
from dnsbl.config import DatasetConfig, ServerConfig
from dnsbl.datasets import Dataset
from dnsbl.datasets.acl import AclDataset
from dnsbl.datasets.combined import CombinedDataset
from dnsbl.datasets.generic import GenericDataset
from dnsbl.datasets.ip4 import IP4Dataset
from dnsbl.datasets.ip6 import IP6Dataset
from dnsbl.datasets.names import NameDataset
from dnsbl.stats import ZoneStats
from dnsbl.wire import TYPE_NS, TYPE_SOA, name_to_wire, rr_tail, soa_rdata
from dnsbl.zonefile import NS, SOA, Value, ZoneFileError

#: SOA fields used when no dataset of a zone has a $SOA line. Without a SOA,
#: negative answers cannot be cached, and some public resolvers SERVFAIL.
DEFAULT_SOA_TIMERS = (3600, 600, 604800, 60)  # refresh, retry, expire, minimum


class Zone:
    """One served zone: its name, datasets in order, and pre-packed SOA/NS records.

    A zone whose data could not be loaded (``loaded`` false) or is past its
    $TIMESTAMP expiry answers SERVFAIL (``servfail``), as rbldnsd does.
    """

    __slots__ = ("name", "wire", "parent_labels", "datasets", "lookups4", "lookups6", "below6",
                 "names",
                 "generic", "acls",
                 "generic_parents", "soa", "serial", "soa_tail",
                 "neg_soa_tail", "ns_tails", "expires", "expired", "loaded", "servfail",
                 "stats", "fast_lookup")

    def __init__(self, name: str, datasets: tuple[Dataset, ...], default_ttl: int,
                 loaded: bool = True, parent_labels: int = 0,
                 outer_acls: tuple[AclDataset, ...] = (), soa: SOA | None = None,
                 ns: NS | None = None) -> None:
        self.name = name
        self.loaded = loaded
        #: A subzone of a combined dataset: how many labels up its zone (whose
        #: SOA and NS it uses, and which owns them) starts. 0 for a zone.
        self.parent_labels = parent_labels
        self.stats = ZoneStats()
        self.wire = name_to_wire(name)
        self.datasets = datasets
        # Per family, the lookups the query path calls (IPv4, IPv6, names).
        self.lookups4: tuple[Callable[[bytes], Value | None], ...] = tuple(
            d.lookup for d in datasets if isinstance(d, IP4Dataset))
        self.lookups6: tuple[Callable[[bytes], Value | None], ...] = tuple(
            d.lookup for d in datasets if isinstance(d, IP6Dataset))
        #: Whether an IPv6 dataset lists addresses under a nibble name's prefix.
        self.below6: tuple[Callable[[int, int], bool], ...] = tuple(
            d.listed_under for d in datasets if isinstance(d, IP6Dataset))
        self.names = tuple(d for d in datasets if isinstance(d, NameDataset))
        #: The ACLs that cover the zone from outside (the global one, or a
        #: combined subzone's parent's) first, then the zone's own.
        self.acls: tuple[AclDataset, ...] = outer_acls + tuple(
            d for d in datasets if isinstance(d, AclDataset))[:1]
        # Plain records by name and type, from every generic dataset, and the
        # names above them (which exist: NODATA, not NXDOMAIN).
        self.generic: dict[str, dict[int, list[bytes]]] = {}
        self.generic_parents: frozenset[str] = frozenset()
        for dataset in datasets:
            if isinstance(dataset, GenericDataset):
                for owner, by_type in dataset.records.items():
                    merged = self.generic.setdefault(owner, {})
                    for rtype, rrs in by_type.items():
                        merged.setdefault(rtype, []).extend(
                            rr for rr in rrs if rr not in merged.get(rtype, []))
                self.generic_parents |= dataset.parents
        #: The one IPv4 lookup of a zone where nothing else decides a reversed
        #: address (no IPv6, names, generic records or ACLs): answer.py's fast path.
        self.fast_lookup = (self.lookups4[0] if len(self.lookups4) == 1 and not self.lookups6
                            and not self.names and not self.generic and not self.acls
                            and parent_labels == 0 else None)
        self._pack_soa_ns(datasets, default_ttl, soa, ns)
        expiries = [d.expires for d in datasets if d.expires is not None]
        self.expires = min(expiries) if expiries else None
        self.expired = False
        self.check_expiry(time.time())

    def _pack_soa_ns(self, datasets: tuple[Dataset, ...], default_ttl: int, soa: SOA | None,
                     ns: NS | None) -> None:
        """The zone's SOA and NS records: the configuration's, else the data's,
        else a SOA made up (serial: the newest file's mtime)."""
        name = self.name
        soa = soa or next((d.soa for d in datasets if d.soa is not None), None)
        ns = ns or next((d.ns for d in datasets if d.ns is not None), None)
        ttl = datasets[0].ttl if datasets else default_ttl
        newest = int(max((d.mtime for d in datasets), default=0))
        if soa is None:
            mname = ns.names[0] if ns and ns.names else name
            soa = SOA(ttl, mname, f"hostmaster.{name}", 0, *DEFAULT_SOA_TIMERS)
        if soa.ttl == 0:
            soa = replace(soa, ttl=ttl)
        if soa.serial == 0:
            soa = replace(soa, serial=newest)
        self._pack_soa(soa)
        ns_ttl = (ns.ttl or ttl) if ns else ttl
        self.ns_tails = tuple(
            rr_tail(TYPE_NS, ns_ttl, name_to_wire(n)) for n in (ns.names if ns else ()))

    def _pack_soa(self, soa: SOA) -> None:
        self.soa = soa
        self.serial = soa.serial
        rdata = soa_rdata(soa.mname, soa.rname, soa.serial, soa.refresh, soa.retry,
                          soa.expire, soa.minimum)
        self.soa_tail = rr_tail(TYPE_SOA, soa.ttl, rdata)
        # RFC 2308 section 5: the negative TTL is min(SOA TTL, SOA MINIMUM).
        self.neg_soa_tail = rr_tail(TYPE_SOA, min(soa.ttl, soa.minimum), rdata)

    def set_serial(self, serial: int) -> None:
        """Answer with ``serial`` in the SOA (the transfer state's, which
        never goes back); before the zone is served, never after."""
        if serial != self.serial:
            self._pack_soa(replace(self.soa, serial=serial))

    def check_expiry(self, now: float) -> bool:
        """Mark the zone expired once a $TIMESTAMP expiry has passed; True if it changed."""
        expired = self.expires is not None and now > self.expires
        changed = expired != self.expired
        self.expired = expired
        self.servfail = expired or not self.loaded
        return changed

    @property
    def entries(self) -> int:
        return sum(d.listed for d in self.datasets if d.family not in ("acl", "combined"))


DatasetKey = tuple[str, tuple[str, ...]]


class Zones(dict[bytes, Zone]):
    """Zones by the lowercase wire form of their names, with the global ACL,
    which covers names outside every zone too (an ignored client gets nothing)."""

    acl: AclDataset | None = None


@dataclass
class Snapshot:
    """Every zone, keyed by the lowercase wire form of the name, and the datasets
    they were built from. Built whole, then left alone while it is served: a
    reload builds a new one rather than changing this one."""

    zones: Zones = field(default_factory=Zones)
    datasets: dict[DatasetKey, Dataset] = field(default_factory=dict)
    #: The networks the RPZ forms write as rpz-passthru, read with the data;
    #: None while the allowlist files named have not loaded.
    allowlist: Allowlist | None = None
    #: Some zone has an ACL, so answering needs the client's address.
    has_acls: bool = False

    def by_name(self, name: str) -> Zone | None:
        return self.zones.get(name_to_wire(name.rstrip(".").lower()))

    def warnings(self) -> list[ZoneFileError]:
        return [w for d in self.datasets.values() for w in d.warnings]

    def warnings_not_kept(self) -> int:
        """Warnings past the first :data:`~dnsbl.zonefile.MAX_WARNINGS` of a dataset."""
        return sum(getattr(d.warnings, "dropped", 0) for d in self.datasets.values())


def dataset_key(spec: DatasetConfig) -> DatasetKey:
    return (spec.type, spec.files)


def build_snapshot(config: ServerConfig, datasets: dict[DatasetKey, Dataset],
                   allowlist: Allowlist | None = None) -> Snapshot:
    """Assemble every configured zone from loaded datasets; a zone missing one of
    its datasets is there but not loaded (SERVFAIL), and so is an RPZ form
    while the ``allowlist`` it needs has not loaded."""
    zoneset = Snapshot(datasets=dict(datasets), allowlist=allowlist)
    rpz_ready = allowlist is not None or not served_allowlist_files(config)
    global_acl: tuple[AclDataset, ...] = ()
    if config.global_acl is not None:
        acl = datasets.get(dataset_key(config.global_acl))
        if isinstance(acl, AclDataset):
            global_acl = (acl,)
            zoneset.zones.acl = acl
    for zone in config.zones:
        keys = [dataset_key(d) for d in zone.datasets]
        if not all(k in datasets for k in keys):
            built = Zone(zone.name, (), config.ttl, loaded=False, outer_acls=global_acl,
                         soa=zone.soa, ns=zone.ns)
            zoneset.zones[built.wire] = built
            if zone.rpz is not None:
                zoneset.zones[name_to_wire(zone.rpz)] = rpz_apex(zone.rpz, built, rpz_ready)
            continue
        members, subzones = _expand([datasets[k] for k in keys])
        built = Zone(zone.name, members, config.ttl, outer_acls=global_acl, soa=zone.soa,
                     ns=zone.ns)
        zoneset.zones[built.wire] = built
        if zone.rpz is not None:
            zoneset.zones[name_to_wire(zone.rpz)] = rpz_apex(zone.rpz, built, rpz_ready)
        for prefix, sub_members in subzones.items():
            subzone = Zone(f"{prefix}.{zone.name}", sub_members, config.ttl,
                           parent_labels=prefix.count(".") + 1, outer_acls=built.acls,
                           soa=zone.soa, ns=zone.ns)
            zoneset.zones.setdefault(subzone.wire, subzone)
    zoneset.has_acls = bool(global_acl) or any(zone.acls for zone in zoneset.zones.values())
    return zoneset


def rpz_apex(origin: str, zone: Zone, ready: bool = True) -> Zone:
    """The zone's RPZ form as queries see it: the zone's SOA and NS at
    ``origin`` (a secondary asks the SOA before it transfers), nothing
    below it; the triggers are for transfer only (dnsbl.xfr). Not
    ``ready``: its allowlist has not loaded, so it answers SERVFAIL."""
    apex = Zone(origin, (), zone.soa.ttl, loaded=zone.loaded and ready, outer_acls=zone.acls)
    apex.soa, apex.serial = zone.soa, zone.serial
    apex.soa_tail, apex.neg_soa_tail, apex.ns_tails = (zone.soa_tail, zone.neg_soa_tail,
                                                       zone.ns_tails)
    apex.check_expiry(time.time())
    return apex


def _expand(members: list[Dataset]) -> tuple[tuple[Dataset, ...], dict[str, tuple[Dataset, ...]]]:
    """A zone's datasets with combined ones opened up: the sections attached to
    the zone itself join it; the others make subzones. Each keeps the combined
    dataset first, for the zone's $SOA, $NS and expiry."""
    own: list[Dataset] = []
    subzones: dict[str, list[Dataset]] = {}
    for dataset in members:
        own.append(dataset)
        if isinstance(dataset, CombinedDataset):
            for prefixes, _name, section in dataset.sections:
                for prefix in prefixes:
                    if prefix:
                        subzones.setdefault(prefix, [dataset]).append(section)
                    else:
                        own.append(section)
    return tuple(own), {prefix: tuple(ds) for prefix, ds in subzones.items()}


class ServedZones:
    """Holds the snapshot being served. Swapping is one assignment, so a query sees
    the old zones or the new ones, never a mix."""

    __slots__ = ("current", "_stamp")

    def __init__(self, zoneset: Snapshot,
                 stamp: Callable[[Snapshot, Snapshot | None], None] | None = None) -> None:
        #: Sets serials on a snapshot about to be served, given the one served
        #: before (None at start): dnsbl.xfr's transfer state.
        self._stamp = stamp
        if stamp is not None:
            stamp(zoneset, None)
        self.current = zoneset

    def swap(self, zoneset: Snapshot) -> None:
        # Counters belong to the zone name, not to one load of its data.
        for wire, zone in zoneset.zones.items():
            old = self.current.zones.get(wire)
            if old is not None:
                zone.stats = old.stats
        if self._stamp is not None:
            self._stamp(zoneset, self.current)
        self.current = zoneset
