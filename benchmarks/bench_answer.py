"""Micro-benchmark of answer() alone on canned packets: no sockets, no loop.

    .venv/bin/python benchmarks/bench_answer.py [--entries N] [--seconds S]

Prints answers per second and microseconds per answer for listed, unlisted
and TXT questions against a generated ip4trie zone, and what the per-query
metrics counting costs next to them.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import dnslib  # noqa: E402

from dnsbl.answer import Stats, answer  # noqa: E402
from dnsbl.config import ServerConfig, parse_zone_spec  # noqa: E402
from dnsbl.loader import load_snapshot  # noqa: E402
from dnsbl.stats import ZoneStats  # noqa: E402


def _zone(entries: int, rng: random.Random) -> tuple[str, list[int]]:
    fd, path = tempfile.mkstemp(suffix=".zone")
    listed = rng.sample(range(1 << 24, 224 << 24), entries)
    with os.fdopen(fd, "w") as f:
        f.write(":127.0.0.2:Listed, see https://bl.example.org/?ip=$\n")
        for ip in listed:
            f.write(f"{ipaddress.IPv4Address(ip)}\n")
    return path, listed


def _packet(ip: int, qtype: str) -> bytes:
    name = ipaddress.IPv4Address(ip).reverse_pointer.replace("in-addr.arpa", "bl.example.org")
    return bytes(dnslib.DNSRecord.question(name, qtype).pack())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    path, listed = _zone(args.entries, rng)
    try:
        zones = load_snapshot(ServerConfig(
            zones=(parse_zone_spec(f"bl.example.org:ip4trie:{path}"),))).zones
    finally:
        os.unlink(path)
    cases = {
        "listed A": [_packet(ip, "A") for ip in rng.sample(listed, 1000)],
        "unlisted A": [_packet(rng.randrange(224 << 24, 240 << 24), "A") for _ in range(1000)],
        "listed TXT": [_packet(ip, "TXT") for ip in rng.sample(listed, 1000)],
    }
    stats = Stats()
    per_answer: dict[str, float] = {}
    for label, packets in cases.items():
        rates = []
        for _ in range(args.runs):
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                for p in packets:
                    answer(p, zones, stats)
                done += len(packets)
            rates.append(done / (time.perf_counter() - start))
        median = statistics.median(rates)
        per_answer[label] = 1e6 / median
        print(f"{label:12s} {median:10.0f} answers/s  {1e6 / median:6.2f} us/answer "
              f"(median of {args.runs})")
    _counting(args, per_answer["listed A"])


def _counting(args: argparse.Namespace, listed_us: float) -> None:
    """What the metrics cost a query: the fast path's three plain-int increments
    (answer.py ``_fast``), timed alone less an empty loop's time; the collector
    turns them into series at scrape time only."""
    counts = ZoneStats()
    requests, lookups, rcodes = counts.requests, counts.lookups, counts.rcodes

    def counting(n: int) -> None:
        for _ in range(n):
            requests[0] += 1
            lookups[0] += 1
            rcodes[0] += 1

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    ns = {}
    for label, loop in (("counting", counting), ("empty", empty)):
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            loop(1_000_000)
            times.append(time.perf_counter() - start)
        ns[label] = statistics.median(times) * 1e3  # ns per iteration
    cost = ns["counting"] - ns["empty"]
    print(f"metrics: {cost:.0f} ns of counting per answer, {cost / (listed_us * 1000):.1%} "
          f"of a listed A answer (median of {args.runs})")

if __name__ == "__main__":
    main()
