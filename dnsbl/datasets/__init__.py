"""Dataset types: one module per type, each holding how its lines read, its
index and its lookup, as rbldnsd keeps one file per type.

The interface (:class:`~dnsbl.datasets.base.Dataset`), for whoever adds a
type or reads one out (an export, a zone transfer):

- ``TYPES[name]`` is the class of the type a configuration names
  (``ip4set`` ... ``combined``); ``cls.family`` says what it answers for
  ("ip4", "ip6", "name", "generic", "acl", "combined").
- Reading (in the parsing process): ``cls.read_line(reader, path, lineno,
  line)`` and ``cls.read_block(...)`` read its entry lines for a
  :class:`~dnsbl.zonefile.DatasetReader`, which does the rest (files,
  specials, values); ``cls.collect(reader, default_ttl)`` gathers them into
  a picklable :class:`~dnsbl.datasets.base.Parsed`.
- Indexing (in the serving process): ``cls(parsed)``.
- ``dataset.entries()`` yields every entry as a named tuple of its module:
  :class:`~dnsbl.datasets.ip4.IP4Entry` and
  :class:`~dnsbl.datasets.ip6.IP6Entry` (address as int, bits, value),
  :class:`~dnsbl.datasets.names.NameEntry` (name, mode, value) with
  ``value`` None for an exclusion;
  :class:`~dnsbl.datasets.generic.RecordEntry` (name, rtype, ttl, rdata),
  :class:`~dnsbl.datasets.acl.AclEntry` (packed address, bits, action),
  :class:`~dnsbl.datasets.combined.SectionEntry` (subzones, name, dataset).
  ``str()`` of a listed entry is its key as a data file writes it.
- Lists (ip4, ip6, names) are :class:`~dnsbl.datasets.base.ListedDataset`:
  ``lookup(key)`` (packed address, or the name relative to the zone) gives
  the :class:`~dnsbl.zonefile.Value` that answers or None, and
  ``explain(key)`` the entry that decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from dnsbl.datasets.acl import AclDataset
from dnsbl.datasets.base import Dataset, ListedDataset, Parsed, prepack
from dnsbl.datasets.combined import CombinedDataset
from dnsbl.datasets.generic import GenericDataset
from dnsbl.datasets.ip4 import IP4Dataset
from dnsbl.datasets.ip6 import IP6Dataset
from dnsbl.datasets.names import NameDataset
from dnsbl.zonefile import DatasetReader, Limits

__all__ = ["TYPES", "AclDataset", "CombinedDataset", "Dataset", "GenericDataset", "IP4Dataset",
           "IP6Dataset", "ListedDataset", "NameDataset", "Parsed", "clamp_ttl", "index_dataset",
           "load_dataset", "parse_dataset", "reader"]

#: Every dataset type by the name a configuration gives it.
TYPES: dict[str, type[Dataset]] = {
    "ip4set": IP4Dataset, "ip4tset": IP4Dataset, "ip4trie": IP4Dataset,
    "ip6trie": IP6Dataset, "ip6tset": IP6Dataset,
    "dnset": NameDataset,
    "generic": GenericDataset,
    "acl": AclDataset,
    "combined": CombinedDataset,
}


def reader(kind: str, paths: Sequence[str], limits: Limits | None = None) -> DatasetReader:
    """A reader of the files of a dataset of type ``kind``."""
    if kind not in TYPES:
        raise ValueError(f"unknown dataset type {kind!r}")
    return DatasetReader(kind, paths, TYPES[kind], limits)


def collect(found: DatasetReader, default_ttl: int) -> Parsed:
    """What ``found`` reads, in the compact form (a seam for fault tests)."""
    return TYPES[found.kind].collect(found, default_ttl)


def parse_dataset(kind: str, paths: Sequence[str], default_ttl: int,
                  ttl_bounds: tuple[int, int] = (0, 0), limits: Limits | None = None) -> Parsed:
    """Read one dataset's files; the TTLs they give are clamped into
    ``ttl_bounds`` (rbldnsd's ``-t def:min:max``).

    :raises ZoneFileError: when a file cannot be loaded at all, or is past
        one of ``limits``; bad lines are in the result's ``warnings`` instead.
    """
    parsed = collect(reader(kind, paths, limits), default_ttl)
    if ttl_bounds != (0, 0):
        _clamp(parsed, ttl_bounds)
    return parsed


def index_dataset(parsed: Parsed) -> Dataset:
    """Index what :func:`parse_dataset` read, and pre-pack its answers."""
    prepack(parsed.values, parsed.ttl)
    return TYPES[parsed.kind](parsed)


def load_dataset(kind: str, paths: Sequence[str], default_ttl: int,
                 ttl_bounds: tuple[int, int] = (0, 0), limits: Limits | None = None) -> Dataset:
    """Read and index one dataset in this process.

    :raises ZoneFileError: when a file cannot be loaded at all.
    """
    return index_dataset(parse_dataset(kind, paths, default_ttl, ttl_bounds, limits))


def _clamp(parsed: Parsed, bounds: tuple[int, int]) -> None:
    """Clamp what rbldnsd clamps: $TTL, generic records' TTLs, the $SOA and
    $NS TTLs (not the SOA's minimum field, the negative TTL). The default TTL
    lies within the bounds already (the configuration checks it)."""
    parsed.ttl = clamp_ttl(parsed.ttl, bounds)
    parsed.records = [(name, rtype, clamp_ttl(ttl, bounds), rdata)
                      for name, rtype, ttl, rdata in parsed.records]
    if parsed.soa is not None:
        parsed.soa = replace(parsed.soa, ttl=clamp_ttl(parsed.soa.ttl, bounds))
    if parsed.ns is not None:
        parsed.ns = replace(parsed.ns, ttl=clamp_ttl(parsed.ns.ttl, bounds))
    for _subzones, _name, section in parsed.sections:
        _clamp(section, bounds)


def clamp_ttl(ttl: int, bounds: tuple[int, int]) -> int:
    """A TTL from the data within ``(min, max)`` (0: no bound), as rbldnsd's
    ``-t``; 0 stays 0, which means "the default" wherever the data says it."""
    low, high = bounds
    if not ttl:
        return ttl
    if low and ttl < low:
        return low
    if high and ttl > high:
        return high
    return ttl
