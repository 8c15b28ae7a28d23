"""Domain-name lists: dnset (rbldnsd's dnset.c): its keys (a name, ``*.name``
or ``.name``), the index and the lookup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from dnsbl.datasets.base import ListedDataset, Parsed, parents
from dnsbl.zonefile import Value

#: dnset key modes: the name itself, its subdomains only (*.x), or both (.x).
EXACT, SUBDOMAINS, BOTH = 0, 1, 2


class NameEntry(NamedTuple):
    """A name (``mode`` EXACT) or the names under it (SUBDOMAINS) listed with
    ``value``, or excluded (``value`` None)."""

    name: str
    mode: int
    value: Value | None

    def __str__(self) -> str:
        return ("", "*.", ".")[self.mode] + self.name


# rbldnsd takes a name up to the first blank: "x.test;note" is one name.
_NAME_KEY = re.compile(r"\S+")


def _parse_name_key(text: str) -> tuple[list[tuple[str, int]] | None, str]:
    """dnset keys: ``example.com``, ``*.example.com`` (subdomains only),
    ``.example.com`` (the name and its subdomains); lowercased."""
    m = _NAME_KEY.match(text)
    if m is None:
        return None, text
    name, rest = m.group(0).lower(), text[m.end():]
    mode = EXACT
    if name.startswith("*."):
        name, mode = name[2:], SUBDOMAINS
    elif name.startswith("."):
        name, mode = name[1:], BOTH
    # Empty labels are dropped, as rbldnsd does: "a..b" lists a.b.
    labels = [label for label in name.split(".") if label]
    name = ".".join(labels)
    if not name or len(name) > 253 or any(len(label) > 63 for label in labels):
        return None, rest
    return [(name, mode)], rest


class NameDataset(ListedDataset):
    """Domain names (dnset): an exact name beats a wildcard, a nearer wildcard
    beats a farther one, and an excluded name is not listed. A name listed
    on several lines answers with every value, as in rbldnsd.
    ``lookup`` takes the name relative to the zone, lowercase, as ``str``."""

    family = "name"
    all_values = True

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        # name -> its values, or None when excluded
        exact: dict[str, tuple[Value, ...] | None] = {}
        below: dict[str, tuple[Value, ...] | None] = {}  # "*.x": names under x
        for name, mode, number in parsed.blocks:
            value = parsed.values[number]
            for table, applies in ((exact, mode != SUBDOMAINS), (below, mode != EXACT)):
                if not applies:
                    continue
                if value is None:
                    table[name] = None  # an exclusion wins in any order
                elif name not in table:
                    table[name] = (value,)
                elif (values := table[name]) is not None and value not in values:
                    table[name] = (*values, value)
        self._exact, self._below = exact, below
        # Names with something listed under them exist (RFC 8020): NODATA, not
        # NXDOMAIN. Excluded entries list nothing, so they make nothing exist.
        above = {name for name, values in below.items() if values is not None}
        for table in (exact, below):
            for name, values in table.items():
                if values is not None:
                    above.update(parents(name))
        self._parents = frozenset(above)
        self.exclusions = sum(1 for *_, number in parsed.blocks if not number)
        self.listed = len(parsed.blocks) - self.exclusions

    @classmethod
    def parse_key(cls, kind: str, text: str, excluded: bool
                  ) -> tuple[list[tuple[str, int]] | None, str]:
        return _parse_name_key(text)

    @classmethod
    def describe(cls, key: str, bits: int) -> str:
        return ("", "*.", ".")[bits] + key

    def entries(self) -> Iterator[NameEntry]:
        """Each name exact and each wildcard, once a value (a name listed by
        ``.name`` comes as both)."""
        for table, mode in ((self._exact, EXACT), (self._below, SUBDOMAINS)):
            for name, values in table.items():
                for value in values or (None,):
                    yield NameEntry(name, mode, value)

    def lookup(self, name: str) -> Value | None:  # type: ignore[override]
        found = self.match(name)
        return None if found is None or found[0] is None else found[0][0]

    def match(self, name: str) -> tuple[tuple[Value, ...] | None, str] | None:
        """(values or None if excluded, the entry's name) of the entry deciding
        ``name``, None if none does. The entry's name is what ``$`` stands for
        in its TXT: the wildcard's base for a wildcard match, as in rbldnsd."""
        if name in self._exact:
            return self._exact[name], name
        below = self._below
        if below:
            for parent in parents(name):
                if parent in below:
                    return below[parent], parent
        return None

    def has_children(self, name: str) -> bool:
        """Whether listed names lie under ``name`` (an empty non-terminal): an
        entry below it, or the nearest wildcard above it not an exclusion."""
        if name in self._parents:
            return True
        below = self._below
        if below:
            for parent in parents(name):
                if parent in below:
                    return below[parent] is not None
        return False

    def explain(self, name: str) -> str | None:  # type: ignore[override]
        if self.lookup(name) is None:
            return None
        if name in self._exact:
            return name
        return next(f"*.{p}" for p in parents(name) if p in self._below)
