"""Combined datasets (rbldnsd's combined.c): one file of ``$DATASET`` sections,
each a dataset of its own answering under subzones of the zone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from dnsbl.datasets.base import Dataset, Parsed
from dnsbl.zonefile import DatasetReader, Entry, ZoneFileError


class SectionEntry(NamedTuple):
    """A section: the subzones it answers under (``""`` the zone itself), its
    name, and its dataset (whose own entries() lists it)."""

    subzones: tuple[str, ...]
    name: str
    dataset: Dataset


@dataclass
class Section:
    """One ``$DATASET`` section of a combined file."""

    kind: str
    name: str
    subzones: tuple[str, ...]  # "" is the base zone itself ("@")
    reader: DatasetReader


class CombinedDataset(Dataset):
    """A combined file: datasets answering under subzones of the zone (``""``
    is the zone itself), with the zone's $SOA/$NS from its common section."""

    family = "combined"
    combinable = False

    @classmethod
    def read_line(cls, reader: DatasetReader, path: str, lineno: int,
                  line: str) -> Iterator[Entry]:
        # Lines are read by section (collect), never one by one as this.
        raise ZoneFileError(path, lineno, "data before the first $DATASET line", "parse")

    @classmethod
    def collect(cls, reader: DatasetReader, default_ttl: int) -> Parsed:
        from dnsbl.datasets import collect  # the package imports this module
        found = sections(reader)
        # Each section starts from the common $TTL (its reader has it); its
        # own "$TTL 0" means the server's default, not the common one.
        parsed_sections = [(s.subzones, s.name, collect(s.reader, default_ttl))
                           for s in found]
        for _z, _n, section in parsed_sections:
            reader.warnings.merge(section.warnings)
        parsed = cls._parsed(reader, default_ttl, [None], sections=parsed_sections)
        parsed.expires = min((e for e in [reader.expires,
                                          *(p.expires for _z, _n, p in parsed_sections)]
                              if e is not None), default=None)
        return parsed

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        from dnsbl.datasets import index_dataset  # the package imports this module
        self.sections = [(subzones, name, index_dataset(p))
                         for subzones, name, p in parsed.sections]
        for _subzones, _name, dataset in self.sections:
            dataset.mtime = self.mtime  # its file is the combined one
        self.listed = sum(d.listed for *_, d in self.sections if d.family != "acl")
        self.exclusions = sum(d.exclusions for *_, d in self.sections)


    def entries(self) -> Iterator[SectionEntry]:
        for subzones, name, dataset in self.sections:
            yield SectionEntry(subzones, name, dataset)



def sections(reader: DatasetReader) -> list[Section]:
    """A combined dataset's ``$DATASET type[:name] subzone...`` sections, each
    with a reader of its own lines; ``reader`` keeps the common specials
    ($SOA, $NS, $TTL, $n), which the sections start from.

    :raises ZoneFileError: for a section of a type that cannot be combined,
        or data before the first ``$DATASET``.
    """
    sections: list[Section] = []
    current: Section | None = None
    for path in reader.paths:
        for lineno, line in reader.read_file(path):
            first = line[0]
            special = first == "$" or (first in "#:;" and line[1:2] == "$")
            body = (line[1:] if first == "$" else line[2:]) if special else ""
            if special and body.split(None, 1)[:1] in (["DATASET"], ["dataset"]):
                current = _section(reader, path, lineno, body)
                if current is not None:
                    sections.append(current)
                continue
            if current is not None:
                assert current.reader.given is not None
                current.reader.given.append((path, lineno, line))
            elif special:
                reader.special(path, lineno, body)
            elif first not in "#;":
                raise ZoneFileError(path, lineno, "data before the first $DATASET line",
                                    "parse")
    return sections


def _section(reader: DatasetReader, path: str, lineno: int, body: str) -> Section | None:
    words = body.split()[1:]
    if not words:
        reader.warn(path, lineno, "invalid special entry: $DATASET needs a type")
        return None
    kind, _, name = words[0].partition(":")
    # Imported here: the package imports this module to list it among the types.
    from dnsbl.datasets import TYPES
    if kind not in TYPES or not TYPES[kind].combinable:
        raise ZoneFileError(path, lineno, f"$DATASET type {kind!r} cannot be combined", "parse")
    subzones = tuple("" if z == "@" else z.lower().rstrip(".") for z in words[1:])
    if not subzones:
        reader.warn(path, lineno, "no subzones given for this $DATASET: its data is ignored")
    section = DatasetReader(kind, reader.paths, TYPES[kind], reader.limits)
    section.given = []
    # The common section's $TTL and $n apply inside (a common $n wins, as
    # the first definition always does); its $SOA and $NS are the zone's.
    section.ttl = reader.ttl
    section.variables = dict(reader.variables)
    section.base_template = reader.base_template
    return Section(kind, name or kind, subzones, section)
