"""Paired comparison of the general answering path against another revision.

    .venv/bin/python benchmarks/bench_paths.py [--against REV] [--rounds N] [--count N]

Runs two long-lived worker processes, one importing dnsbl from this tree and
one from ``REV`` (``git archive``d into a temporary directory), both serving
the same generated zones. Each round asks both, one after the other in
alternating order, to answer each question ``--count`` times and report the
CPU time per answer
(``time.process_time``: what the process itself spent, which a loaded shared
machine disturbs less than wall time). Prints, per question, the median of
the per-round ratios this tree / REV: 1.00 is no change, above it slower.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

#: Zone name -> [(dataset type, file name, its text)]: a mixed IPv4 and
#: domain zone (never the fast path), an IPv6 one and a domain list.
ZONES = {
    "bl.example.org": [
        ("ip4set", "bl4.zone", ":127.0.0.2:Listed, see https://bl.example.org/?ip=$\n"
                               "127.0.0.2\n10.0.0.0/8\n192.0.2.0/24\n"),
        ("dnset", "bln.zone", ":127.0.0.4:Bad name $\nbad.example\n"),
    ],
    "bl6.example.org": [
        ("ip6trie", "bl6.zone", ":127.0.0.2:Listed $\n2001:db8::/32\n"),
    ],
    "dbl.example.org": [
        ("dnset", "dbl.zone", ":127.0.1.2:Listed domain $\n.test\n.badsite.example\n"
                              "*.spam.example\n"),
    ],
}

#: What is measured: (label, name, type).
QUESTIONS = [
    ("ipv4 mixed zone", "2.0.0.127.bl.example.org", "A"),
    ("name listed", "www.badsite.example.dbl.example.org", "A"),
    ("name nxdomain", "good.example.dbl.example.org", "A"),
    ("apex soa", "dbl.example.org", "SOA"),
    ("refused", "www.example.com", "A"),
    ("ipv6", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl6.example.org",
     "A"),
]


def _worker(zone_dir: str, count: int) -> None:
    """Load the zones with whichever dnsbl is on sys.path, then per line on
    stdin (a question's index) answer it ``count`` times and print the CPU
    seconds per answer."""
    import dnslib

    from dnsbl.answer import Stats, answer
    from dnsbl.config import ServerConfig, ZoneConfig, parse_zone_spec
    try:
        from dnsbl.loader import load_snapshot
    except ImportError:  # revisions before the loader module
        from dnsbl.registry import load_zoneset as load_snapshot  # type: ignore[no-redef]
    configs = []
    for name, datasets in ZONES.items():
        specs = [parse_zone_spec(f"{name}:{kind}:{os.path.join(zone_dir, file)}")
                 for kind, file, _ in datasets]
        configs.append(ZoneConfig(name, tuple(d for s in specs for d in s.datasets)))
    zones = load_snapshot(ServerConfig(zones=tuple(configs))).zones
    stats = Stats()
    packets = [bytes(dnslib.DNSRecord.question(q, t).pack()) for _, q, t in QUESTIONS]
    for packet in packets:  # warm up, and check every question has an answer
        if answer(packet, zones, stats) is None:
            raise SystemExit(f"no answer to {packet!r}")
    clock = time.process_time
    for line in sys.stdin:
        packet = packets[int(line)]
        start = clock()
        for _ in range(count):
            answer(packet, zones, stats)
        print((clock() - start) / count, flush=True)


def _checkout(rev: str, into: str) -> str:
    """The dnsbl package of ``rev``, extracted under ``into``."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "dnsbl"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _start(tree: str, zone_dir: str, count: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=tree)
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", zone_dir,
                             "--count", str(count)], cwd=tree, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _time(worker: subprocess.Popen[str], question: int) -> float:
    """CPU seconds per answer to one question, as the worker measured them."""
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(f"{question}\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise SystemExit("a worker died; see its error above")
    return float(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="3fb0955", help="revision to compare with")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--count", type=int, default=5000, help="answers per question a round")
    parser.add_argument("--worker", metavar="ZONE_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.count)
        return
    with tempfile.TemporaryDirectory() as tmp:
        zone_dir = os.path.join(tmp, "zones")
        os.mkdir(zone_dir)
        for datasets in ZONES.values():
            for _, file, text in datasets:
                with open(os.path.join(zone_dir, file), "w") as f:
                    f.write(text)
        old_tree = _checkout(args.against, os.path.join(tmp, "old"))
        workers = [_start(ROOT, zone_dir, args.count), _start(old_tree, zone_dir, args.count)]
        try:
            ratios: list[list[float]] = [[] for _ in QUESTIONS]
            began = time.monotonic()
            # Each pair back to back, who goes first alternating: the load
            # the other engineers' jobs put on the machine drifts between pairs.
            for n in range(args.rounds):
                for i in range(len(QUESTIONS)):
                    if (n + i) % 2:
                        old = _time(workers[1], i)
                        new = _time(workers[0], i)
                    else:
                        new = _time(workers[0], i)
                        old = _time(workers[1], i)
                    ratios[i].append(new / old)
            print(f"{args.rounds} rounds of {args.count} answers a question, "
                  f"{time.monotonic() - began:.0f} s; this tree / {args.against}, CPU per answer:")
            for (label, _, _), r in zip(QUESTIONS, ratios, strict=True):
                print(f"  {label:16} median {statistics.median(r):.3f}  "
                      f"(min {min(r):.3f}, max {max(r):.3f})")
        finally:
            for worker in workers:
                if worker.stdin is not None:
                    worker.stdin.close()
                worker.wait(timeout=30)


if __name__ == "__main__":
    main()
