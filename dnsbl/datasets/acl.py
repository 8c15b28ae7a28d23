"""Access control: acl (rbldnsd's acl.c), an action per client network."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytricia

from dnsbl.datasets.base import Counter, Dataset, Parsed, prepack
from dnsbl.datasets.ip4 import parse_ip4_key
from dnsbl.datasets.ip6 import parse_ip6_key
from dnsbl.zonefile import DatasetReader, Entry, Value, first_word

#: ACL actions besides "answer as listed with this A+TXT" (a Value), by the
#: keywords rbldnsd reads for them (``blackhole`` is its other name for ignore).
ACL_ACTIONS = {"ignore": "ignore", "blackhole": "ignore", "refuse": "refuse",
               "empty": "empty", "pass": "pass"}


class AclEntry(NamedTuple):
    """A client network (packed address, prefix length) and its action: a
    name of :data:`ACL_ACTIONS` or the Value every answer gets."""

    address: bytes
    bits: int
    action: str | Value


class AclDataset(Dataset):
    """Which clients may ask: ``action(client_address)`` -> ``"ignore"``,
    ``"refuse"``, ``"empty"``, ``"pass"`` or a Value (answer every valid
    question as listed with it), for the longest matching network; None when
    no network matches (the same as pass)."""

    family = "acl"
    zone_records = False
    combinable = False

    @classmethod
    def read_line(cls, reader: DatasetReader, path: str, lineno: int,
                  line: str) -> Iterator[Entry]:
        """``CIDR [:action | :A:TXT | TXT]`` (IPv4 or IPv6) -> (packed network,
        bits, action name or Value, file, line). A bare entry takes the default
        line's action, or ignore when there is none, as in rbldnsd."""
        default_line = line[0] in ":=" and line[1:2] != ":"  # not "::1"
        if default_line:
            action = _acl_action(line)
            if action is not None:
                reader.acl_default = action
            elif line[0] == ":":
                value = reader.value(path, lineno, line, reader.acl_value_default)
                if value is not None:
                    reader.acl_default = reader.acl_value_default = value
            else:
                reader.warn(path, lineno, f"invalid ACL keyword {line!r}")
            return
        keys, rest = (parse_ip6_key("ip6trie", line, False) if ":" in line.split()[0]
                      else parse_ip4_key("ip4trie", line))
        if not keys:
            what = "invalid address" if keys is None else "invalid range (non-zero host part)"
            reader.warn(path, lineno, f"{what} {first_word(line)!r}")
            return
        rest = rest.strip()
        result: str | Value | None
        if not rest or rest[0] in "#;":
            result = reader.acl_default
        elif rest[0] == "=" and _acl_action(rest) is None:
            reader.warn(path, lineno, f"invalid ACL keyword {rest!r}")
            return
        else:
            result = _acl_action(rest) or reader.value(path, lineno, rest,
                                                       reader.acl_value_default)
            if result is None:
                return
        width = 16 if ":" in line.split()[0] else 4
        for net, bits in keys:
            yield (net.to_bytes(width, "big"), bits, result, path, lineno)  # type: ignore[misc]

    @classmethod
    def collect(cls, reader: DatasetReader, default_ttl: int) -> Parsed:
        count = Counter(reader)
        rules: dict[tuple[bytes, int], Any] = {}
        for key, bits, action, path, lineno in reader.entries():
            count.one(path, lineno)
            rules[(key, bits)] = action  # the later line for the same network
        reader.finish_values()
        return cls._parsed(reader, default_ttl, [None],
                           blocks=[(key, bits, action) for (key, bits), action in rules.items()])

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        prepack([a for *_, a in parsed.blocks if isinstance(a, Value)], parsed.ttl)
        self._v4 = pytricia.PyTricia(32)
        self._v6 = pytricia.PyTricia(128)
        for key, bits, action in parsed.blocks:
            (self._v4 if len(key) == 4 else self._v6).insert(key, bits, action)
        self.listed = len(parsed.blocks)

    def entries(self) -> Iterator[AclEntry]:
        for trie in (self._v4, self._v6):
            for prefix in trie:
                network = ipaddress.ip_network(prefix)
                yield AclEntry(network.network_address.packed, network.prefixlen,
                               trie[prefix])

    def action(self, client: str) -> str | Value | None:
        try:
            return (self._v6 if ":" in client else self._v4).get(client)
        except ValueError:  # not an address (a UNIX socket peer): no rule applies
            return None



def _acl_action(text: str) -> str | None:
    """``:ignore`` / ``=refuse`` / ``:blackhole`` ... (any case, ended by a
    blank, a colon or the line) -> the action; None for anything else."""
    if text[:1] not in (":", "="):
        return None
    word = text[1:].replace(":", " ").replace("#", " ").replace(";", " ").split(None, 1)
    return ACL_ACTIONS.get(word[0].lower()) if word and text[1:2].isalpha() else None
