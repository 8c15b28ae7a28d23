"""IPv6 lists: ip6trie and ip6tset (rbldnsd's ip6trie.c, ip6tset.c): their
keys, the index and the lookup."""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence

import pytricia

from dnsbl.datasets.base import ListedDataset, NetworkEntry, Parsed
from dnsbl.zonefile import digits, match_key


class IP6Entry(NetworkEntry):
    """An IPv6 network listed with ``value``, or excluded (``value`` None)."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"{ipaddress.IPv6Address(self.address)}/{self.bits}"


# No dotted quads (::ffff:1.2.3.4): rbldnsd rejects them, so a file that
# loads here loads there.
_IP6_KEY = re.compile(r"[0-9A-Fa-f:]+(?:/[0-9]+)?")


def parse_ip6_key(kind: str, text: str, excluded: bool
                   ) -> tuple[list[tuple[int, int]] | None, str]:
    """rbldnsd IPv6 keys: ``2001:db8::/32``, ``2001:db8::1``, or groups with the
    trailing zero groups left out (``2001:21ab:c000/36``; no length: 16 bits a
    group, so ``2001:20fe:23:41ed`` is a /64). ip6tset takes /64s written as
    four groups, and single addresses as exclusions."""
    m, rest = match_key(_IP6_KEY, text)
    if m is None:
        return None, rest
    address, slash, bits_text = m.group(0).partition("/")
    try:
        if "::" in address or address.count(":") == 7:
            net = int(ipaddress.IPv6Address(address))
            bits = 128
        else:
            groups = address.split(":")
            if not 1 <= len(groups) <= 8 or not all(0 < len(g) <= 4 for g in groups):
                return None, rest
            net = 0
            for group in groups:
                net = net << 16 | int(group, 16)
            net <<= 16 * (8 - len(groups))
            bits = 16 * len(groups)
    except ValueError:
        return None, rest
    if slash:
        if not digits(bits_text) or int(bits_text) > 128:
            return None, rest
        bits = int(bits_text)
    if kind == "ip6tset":
        wanted = 128 if excluded else 64
        if slash or bits != wanted:
            return None, rest
    if net & ((1 << (128 - bits)) - 1):
        return [], rest
    return [(net, bits)], rest


class IP6Dataset(ListedDataset):
    """IPv6 (ip6trie, ip6tset): the longest prefix wins; ``lookup`` takes the
    address packed (16 bytes). ip6tset's /64s and excluded /128s are in the
    same trie: a /128 is more specific than any /64."""

    family = "ip6"

    def __init__(self, parsed: Parsed) -> None:
        super().__init__(parsed)
        self._trie = pytricia.PyTricia(128)
        for net, bits, number in parsed.blocks:
            self._trie.insert(net.to_bytes(16, "big"), bits, parsed.values[number])
        self.exclusions = sum(1 for *_, number in parsed.blocks if not number)
        self.listed = len(parsed.blocks) - self.exclusions
        self.lookup = self._trie.get  # type: ignore[method-assign]
        # The listed networks, each as its address then its prefix length (17
        # bytes), sorted, in one bytes object: 17 bytes an entry, where a
        # list of ints or bytes would cost 60.
        self._listed = _Records(b"".join(sorted(
            net.to_bytes(16, "big") + bytes((bits,))
            for net, bits, number in parsed.blocks if number)), 17)

    @classmethod
    def parse_key(cls, kind: str, text: str, excluded: bool
                  ) -> tuple[list[tuple[int, int]] | None, str]:
        return parse_ip6_key(kind, text, excluded)

    @classmethod
    def describe(cls, key: int, bits: int) -> str:
        return f"{ipaddress.IPv6Address(key)}/{bits}"

    def entries(self) -> Iterator[IP6Entry]:
        for prefix in self._trie:
            network = ipaddress.IPv6Network(prefix)
            yield IP6Entry(int(network.network_address), network.prefixlen, self._trie[prefix])

    def listed_under(self, prefix: int, bits: int) -> bool:
        """Whether addresses in ``prefix``/``bits`` (0 < bits < 128) are listed,
        so the nibble name of that prefix exists (an empty non-terminal,
        RFC 8020): a listed network holds it, or one lies inside it.
        ``0x20010db8 << 96, 32`` is True for data listing ``2001:db8:1::/48``,
        False for data listing only ``2001:db9::/32`` or excluding
        ``2001:db8::/32``. (Exclusions that tile a listed network whole are
        not looked into: such data is odd, and NODATA is still a safe answer.)"""
        start = prefix.to_bytes(16, "big")
        if self._trie.get((start, bits)) is not None:
            return True
        listed = self._listed
        i = bisect_left(listed, start + bytes((bits + 1,)))  # past networks holding it
        if i == len(listed):
            return False
        last = (prefix | ((1 << (128 - bits)) - 1)).to_bytes(16, "big")
        return listed[i][:16] <= last

    def explain(self, ip: bytes) -> str | None:
        return self._trie.get_key(ip) if self._trie.get(ip) is not None else None


class _Records(Sequence[bytes]):
    """Fixed-size records packed in one bytes object, as a sequence that
    ``bisect`` can search (the records sorted)."""

    __slots__ = ("_data", "_size")

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._size = size

    def __len__(self) -> int:
        return len(self._data) // self._size

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        size = self._size
        return self._data[i * size:(i + 1) * size]
