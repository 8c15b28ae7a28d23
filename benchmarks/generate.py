"""Generate a realistic rbldnsd IPv4 zone and a matching dnsperf query file.

    .venv/bin/python benchmarks/generate.py --zone-out /tmp/bl.zone --queries-out /tmp/q.txt \\
        [--singles 1000000] [--cidrs 20000] [--exclusions 300] [--type ip4trie|ip4set] \\
        [--hit-ratio 0.5] [--qtypes A=0.8,TXT=0.2] [--queries 100000] [--seed 1] [--sorted]

The zone has single addresses, CIDR blocks of /16 to /30 (mostly /24, as in
real lists), exclusions (``!net/len``) carved out of some blocks, a default
value line and some per-entry values (``:N:text $``, ``:N``, ``:N:`` and bare
text), plus ``$SOA``, ``$NS`` and ``$TTL``. Singles never fall inside a block,
and exclusions are each inside one block, so whether an address is listed is
known exactly: the query file has the requested share of hits (singles and
addresses inside blocks) and misses (random unlisted addresses, some inside the
excluded holes). The same seed gives the same files.

The entries (singles, blocks and exclusions together) come in random order,
as real lists do: exported from databases and feeds, merged, appended.
``--sorted`` writes them as before: singles, then blocks, then exclusions,
each in address order.

Importable: :func:`generate` returns the zone text and the query lines, and
:class:`Zone` answers "is this address listed?" for the generated data.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field

#: Prefix lengths of blocks and their weights: mostly /24, some large allocations.
PREFIX_WEIGHTS = {16: 2, 17: 1, 18: 1, 19: 2, 20: 3, 21: 3, 22: 5, 23: 5, 24: 40,
                  25: 5, 26: 6, 27: 7, 28: 8, 29: 8, 30: 4}
#: Texts of per-entry values; ``$`` is the queried address.
REASONS = ("Botnet C&C $", "Spam source $", "Open proxy $", "Compromised host $",
           "Snowshoe spam range", "Dictionary attack from $", "Phishing host $",
           "Listed by trap network, see https://bl.example.org/lookup?ip=$")
_OCTET = [str(i) for i in range(256)]
#: First octets never listed: 0/8, 10/8 (free for benchmarks to list), 127/8 (but
#: 127.0.0.2, the RFC 5782 test point), and 224/3 (multicast, reserved).
_UNLISTED_FIRST = frozenset([0, 10, 127] + list(range(224, 256)))


def ntoa(ip: int) -> str:
    o = _OCTET
    return f"{o[ip >> 24]}.{o[(ip >> 16) & 255]}.{o[(ip >> 8) & 255]}.{o[ip & 255]}"


def qname(ip: int, zone: str) -> str:
    """The DNSBL question name of ``ip``: reversed octets under ``zone``."""
    o = _OCTET
    return f"{o[ip & 255]}.{o[(ip >> 8) & 255]}.{o[(ip >> 16) & 255]}.{o[ip >> 24]}.{zone}"


@dataclass
class Zone:
    """What was generated: enough to tell listed from unlisted without a trie."""

    name: str
    singles: list[int]  # sorted
    blocks: list[tuple[int, int]]  # (network, bits), sorted, disjoint
    exclusions: list[tuple[int, int]]  # each inside one block, sorted, disjoint
    single_set: set[int] = field(default_factory=set)
    _block_starts: list[int] = field(default_factory=list)
    _excl_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.single_set = set(self.singles)
        self._block_starts = [net for net, _ in self.blocks]
        self._excl_starts = [net for net, _ in self.exclusions]

    @staticmethod
    def _covering(starts: list[int], ranges: list[tuple[int, int]], ip: int) -> int:
        i = bisect_right(starts, ip) - 1
        if i >= 0:
            net, bits = ranges[i]
            if ip < net + (1 << (32 - bits)):
                return i
        return -1

    def in_block(self, ip: int) -> bool:
        return self._covering(self._block_starts, self.blocks, ip) >= 0

    def excluded(self, ip: int) -> bool:
        return self._covering(self._excl_starts, self.exclusions, ip) >= 0

    def listed(self, ip: int) -> bool:
        if ip in self.single_set or ip == 0x7F000002:
            return True
        return self.in_block(ip) and not self.excluded(ip)


def _random_words(rng: random.Random, count: int) -> array:
    """``count`` random 32-bit integers, fast (one getrandbits call)."""
    words = array("I")
    if count:
        words.frombytes(rng.getrandbits(32 * count).to_bytes(4 * count, sys.byteorder))
    return words


def _blocks(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """``count`` disjoint random blocks with prefix lengths drawn from PREFIX_WEIGHTS."""
    lengths, weights = list(PREFIX_WEIGHTS), list(PREFIX_WEIGHTS.values())
    chosen: list[tuple[int, int]] = []
    for _attempt in range(20):
        need = count - len(chosen)
        if need <= 0:
            break
        bits_list = rng.choices(lengths, weights, k=need + need // 10 + 10)
        candidates = set(chosen)
        for bits, word in zip(bits_list, _random_words(rng, len(bits_list)), strict=True):
            if (word >> 24) in _UNLISTED_FIRST:
                continue
            candidates.add((word & (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF, bits))
        # Keep them disjoint: in address order, drop any block touching the previous one
        # (of two blocks that nest or overlap, the first in address order stays).
        kept: list[tuple[int, int]] = []
        end = -1
        for net, bits in sorted(candidates):
            if net > end:
                kept.append((net, bits))
                end = net + (1 << (32 - bits)) - 1
        if len(kept) > count:
            kept = sorted(rng.sample(kept, count))
        chosen = kept
    return chosen


def _exclusions(rng: random.Random, blocks: list[tuple[int, int]], count: int
                ) -> list[tuple[int, int]]:
    """At most one hole per block, in blocks of /28 or larger; 1 to 8 bits longer."""
    eligible = [b for b in blocks if b[1] <= 28]
    out = []
    for net, bits in rng.sample(eligible, min(count, len(eligible))):
        hole_bits = min(32, bits + rng.randint(1, 8))
        offset = rng.randrange(1 << (hole_bits - bits)) << (32 - hole_bits)
        out.append((net + offset, hole_bits))
    return sorted(out)


def _singles(rng: random.Random, count: int, zone_blocks: Zone) -> list[int]:
    """``count`` distinct random addresses outside every block and unlisted range."""
    found: dict[int, None] = {}
    for _attempt in range(20):
        need = count - len(found)
        if need <= 0:
            break
        in_block = zone_blocks.in_block
        for word in _random_words(rng, need + need // 8 + 16):
            if (word >> 24) not in _UNLISTED_FIRST and not in_block(word):
                found[word] = None
    return sorted(list(found)[:count])


def _value_text(rng: random.Random) -> str:
    """A per-entry value, mostly ``:N:text $``."""
    roll = rng.random()
    n = rng.randint(3, 11)
    if roll < 0.80:
        return f":{n}:{rng.choice(REASONS)}"
    if roll < 0.90:
        return f":{n}"  # own A, default TXT
    if roll < 0.95:
        return f":{n}:"  # own A, no TXT
    return rng.choice(REASONS)  # default A, own TXT


def _key(net: int, bits: int, kind: str, rng: random.Random) -> str:
    """How to write a block: CIDR, and for variety the shorter rbldnsd forms."""
    if bits == 32:
        return ntoa(net)
    roll = rng.random()
    if bits == 24 and roll < 0.3:
        return ntoa(net).rsplit(".", 1)[0]  # 10.0.0 = 10.0.0.0/24
    if bits == 16 and roll < 0.3:
        return ".".join(ntoa(net).split(".")[:2])  # 10.1 = 10.1.0.0/16
    if kind == "ip4set" and roll > 0.8:
        return f"{ntoa(net)}-{ntoa(net + (1 << (32 - bits)) - 1)}"  # a range
    return f"{ntoa(net)}/{bits}"


def zone_text(zone: Zone, kind: str, rng: random.Random, single_value_ratio: float,
              block_value_ratio: float, header: str = "", ordered: bool = False) -> str:
    """The rbldnsd data file of ``zone`` as one string: its entries in random
    order, or (``ordered``) singles, blocks, exclusions, each sorted."""
    name = zone.name
    head = [
        f"# {header}" if header else "# generated by benchmarks/generate.py",
        f"$SOA 3600 ns1.{name}. hostmaster.{name}. 0 600 300 604800 300",
        f"$NS 3600 ns1.{name}. ns2.{name}.",
        "$TTL 2100",
        f":127.0.0.2:Listed, see https://{name}/lookup?ip=$",
        "127.0.0.2 :2:RFC 5782 test point",
    ]
    lines = ["# single addresses"]
    singles = zone.singles
    # Per-entry values on a random subset; the rest use the default line.
    with_value = set(rng.sample(range(len(singles)), int(len(singles) * single_value_ratio)))
    for i, ip in enumerate(singles):
        if i in with_value:
            lines.append(f"{ntoa(ip)} {_value_text(rng)}")
        else:
            lines.append(ntoa(ip))
    lines.append("# blocks")
    for net, bits in zone.blocks:
        if rng.random() < block_value_ratio:
            lines.append(f"{_key(net, bits, kind, rng)} {_value_text(rng)}")
        else:
            lines.append(_key(net, bits, kind, rng))
    lines.append("# exclusions")
    for net, bits in zone.exclusions:
        lines.append(f"!{ntoa(net)}/{bits}" if bits < 32 else f"!{ntoa(net)}")
    if not ordered:  # an exclusion holds wherever it stands (rbldnsd): order is free
        lines = [line for line in lines if not line.startswith("#")]
        # A copy of the generator shuffles: the query file is the same either way.
        shuffler = random.Random()
        shuffler.setstate(rng.getstate())
        shuffler.shuffle(lines)
    return "\n".join([*head, *lines, ""])


def parse_qtypes(text: str) -> dict[str, float]:
    """``A=0.8,TXT=0.2`` -> {"A": 0.8, "TXT": 0.2} (weights, need not sum to 1)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        qtype, sep, weight = part.strip().partition("=")
        if not qtype:
            continue
        w = float(weight) if sep else 1.0
        if w < 0:
            raise ValueError(f"negative weight in {part!r}")
        out[qtype.strip().upper()] = w
    if not out or sum(out.values()) <= 0:
        raise ValueError(f"no qtypes in {text!r}")
    return out


def query_addresses(zone: Zone, rng: random.Random, count: int, hit_ratio: float,
                    block_hit_share: float = 0.2, hole_miss_share: float = 0.1
                    ) -> list[tuple[int, bool]]:
    """``count`` (address, listed) pairs, about ``hit_ratio`` of them listed."""
    out: list[tuple[int, bool]] = []
    hits = round(count * hit_ratio)
    singles, blocks, exclusions = zone.singles, zone.blocks, zone.exclusions
    for _ in range(hits):
        if blocks and (not singles or rng.random() < block_hit_share):
            for _try in range(100):
                net, bits = rng.choice(blocks)
                ip = net + rng.randrange(1 << (32 - bits))
                if not zone.excluded(ip):
                    break
            out.append((ip, True))
        elif singles:
            out.append((rng.choice(singles), True))
        else:
            out.append((0x7F000002, True))
    for _ in range(count - hits):
        if exclusions and rng.random() < hole_miss_share:
            net, bits = rng.choice(exclusions)
            out.append((net + rng.randrange(1 << (32 - bits)), False))
            continue
        for _try in range(1000):
            ip = rng.randrange(1 << 24, 224 << 24)
            if not zone.listed(ip):
                break
        out.append((ip, False))
    rng.shuffle(out)
    return out


def generate(singles: int = 1_000_000, cidrs: int = 20_000, exclusions: int = 300,
             kind: str = "ip4trie", name: str = "bl.example.org", seed: int = 1,
             single_value_ratio: float = 0.02, block_value_ratio: float = 0.3,
             queries: int = 100_000, hit_ratio: float = 0.5,
             qtypes: dict[str, float] | None = None, ordered: bool = False
             ) -> tuple[Zone, str, list[str]]:
    """Generate a zone; returns (what it lists, the data file text, dnsperf lines).
    The entries come in random order, or sorted with ``ordered``."""
    if kind not in ("ip4trie", "ip4set"):
        raise ValueError(f"unsupported dataset type {kind!r}")
    if not 0.0 <= hit_ratio <= 1.0:
        raise ValueError("hit ratio must be within 0..1")
    qtypes = qtypes or {"A": 0.8, "TXT": 0.2}
    rng = random.Random(seed)
    name = name.rstrip(".").lower()
    blocks = _blocks(rng, cidrs)
    holes = _exclusions(rng, blocks, exclusions)
    zone = Zone(name, [], blocks, holes)
    zone = Zone(name, _singles(rng, singles, zone), blocks, holes)
    header = (f"generated by benchmarks/generate.py: seed {seed}, {len(zone.singles)} singles, "
              f"{len(blocks)} blocks, {len(holes)} exclusions, type {kind}, "
              f"{'sorted' if ordered else 'random order'}")
    text = zone_text(zone, kind, rng, single_value_ratio, block_value_ratio, header, ordered)
    types, weights = list(qtypes), list(qtypes.values())
    addresses = query_addresses(zone, rng, queries, hit_ratio)
    chosen = rng.choices(types, weights, k=len(addresses))
    lines = [f"{qname(ip, name)} {qtype}"
             for (ip, _listed), qtype in zip(addresses, chosen, strict=True)]
    return zone, text, lines


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="latin-1") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone-out", required=True, metavar="FILE", help="rbldnsd data file")
    parser.add_argument("--queries-out", metavar="FILE", help="dnsperf datafile (NAME TYPE)")
    parser.add_argument("--singles", type=int, default=1_000_000,
                        help="single IPv4 addresses (default 1,000,000)")
    parser.add_argument("--cidrs", type=int, default=20_000,
                        help="CIDR blocks /16../30 (default 20,000)")
    parser.add_argument("--exclusions", type=int, default=300,
                        help="!exclusions carved out of blocks (default 300)")
    parser.add_argument("--type", dest="kind", choices=("ip4trie", "ip4set"), default="ip4trie",
                        help="dataset type to write for (ip4set adds a-b ranges); default ip4trie")
    parser.add_argument("--name", default="bl.example.org", help="zone name (default %(default)s)")
    parser.add_argument("--value-ratio", type=float, default=0.02,
                        help="share of singles with their own value (default 0.02)")
    parser.add_argument("--block-value-ratio", type=float, default=0.3,
                        help="share of blocks with their own value (default 0.3)")
    parser.add_argument("--queries", type=int, default=100_000,
                        help="lines in the query file (default 100,000)")
    parser.add_argument("--hit-ratio", type=float, default=0.5,
                        help="share of queries for listed addresses (default 0.5)")
    parser.add_argument("--qtypes", default="A=0.8,TXT=0.2", type=parse_qtypes,
                        help="qtype mix of the query file (default A=0.8,TXT=0.2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sorted", action="store_true",
                        help="entries sorted (singles, blocks, exclusions), not in random order")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    zone, text, lines = generate(
        singles=args.singles, cidrs=args.cidrs, exclusions=args.exclusions, kind=args.kind,
        name=args.name, seed=args.seed, single_value_ratio=args.value_ratio,
        block_value_ratio=args.block_value_ratio,
        queries=args.queries if args.queries_out else 0, hit_ratio=args.hit_ratio,
        qtypes=args.qtypes, ordered=args.sorted)
    write_atomic(args.zone_out, text)
    if args.queries_out:
        write_atomic(args.queries_out, "\n".join(lines) + "\n" if lines else "")
    print(f"{args.zone_out}: {len(zone.singles)} singles, {len(zone.blocks)} blocks, "
          f"{len(zone.exclusions)} exclusions ({args.kind}, "
          f"{'sorted' if args.sorted else 'random order'}, {len(text) / 1e6:.1f} MB)"
          + (f"; {args.queries_out}: {len(lines)} queries" if args.queries_out else "")
          + f"; {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
