"""API throughput of ``dnsbl web``: single adds and bulk NDJSON.

    .venv/bin/python benchmarks/bench_web.py [--adds N] [--bulk M] [--runs K]
        [--database URL | --postgres]

In a temporary folder with a fresh SQLite ledger (or ``--database
postgresql://...``, an existing empty database), starts the real
``python -m dnsbl web`` on a free loopback port, makes a token, then:
(``--postgres`` starts a throw-away PostgreSQL cluster on loopback, as the
tests do, with a fresh database per run)

1. N single ``POST /api/v1/listings`` of new addresses, one after the other on
   one keep-alive connection (each is one transaction and publishes the zone
   file it falls in, as ``dnsbl ledger add`` does): adds per second;
2. one ``POST /api/v1/listings/bulk`` of M new addresses (NDJSON, all or
   nothing): listings per second.

Medians over --runs (each on a fresh ledger).

    .venv/bin/python benchmarks/bench_web.py --scrape-listings 1000000

instead fills a fresh ledger with that many live listings (directly, through
the store, in batches of 100,000), starts ``dnsbl web`` over it and times
``GET /metrics``: the first scrape counts the listings by category and source
(one grouped query), the next ones within ``LISTINGS_TTL`` reuse that count.
It also times the grouped query itself, in this process, three times.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = """[ledger]
database = {database}
zone = "rep.example.org"
publish_interval = 0
[ledger.web]
api_rate = 1000000
bulk_body = 268435456
[ledger.categories.spam]
a = "127.0.0.2"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def address(i: int, base: int) -> str:
    # 45.0.0.0/8 upward: outside every special-purpose range the guard holds back.
    value = (base << 24) + i + 1
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


def start_web(config: str) -> tuple[subprocess.Popen[bytes], int]:
    """``dnsbl web`` on a free loopback port, once it accepts connections."""
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "dnsbl", "web", "--config", config,
                            "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                           stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return web, port
        except OSError:
            if time.monotonic() > deadline or web.poll() is not None:
                web.kill()
                raise SystemExit("dnsbl web did not start") from None
            time.sleep(0.1)


def one_run(folder: str, database: str, adds: int, bulk: int) -> tuple[float, float]:
    config = os.path.join(folder, "dnsbl.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(database=json.dumps(database)))
    dnsbl = [sys.executable, "-m", "dnsbl"]
    token = subprocess.run([*dnsbl, "ledger", "--config", config, "token", "create",
                            "--source", "bench"], capture_output=True, text=True,
                           check=True, cwd=ROOT).stdout.strip()
    web, port = start_web(config)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        for i in range(adds):
            connection.request("POST", "/api/v1/listings", json.dumps(
                {"key": address(i, 45), "category": "spam", "reason": "bench"}), headers)
            reply = connection.getresponse()
            reply.read()
            if reply.status != 201:
                raise SystemExit(f"add {i}: HTTP {reply.status}")
        single = adds / (time.perf_counter() - started)
        body = "\n".join(json.dumps({"key": address(i, 46), "category": "spam",
                                     "reason": "bench"}) for i in range(bulk))
        started = time.perf_counter()
        connection.request("POST", "/api/v1/listings/bulk", body,
                           {**headers, "Content-Type": "application/x-ndjson"})
        reply = connection.getresponse()
        result = json.loads(reply.read())
        if reply.status != 200 or result.get("added") != bulk:
            raise SystemExit(f"bulk: HTTP {reply.status}: {result}")
        bulk_rate = bulk / (time.perf_counter() - started)
        connection.close()
        return single, bulk_rate
    finally:
        web.terminate()
        web.wait(30)


def get(port: int, path: str, token: str = "") -> float:
    """Seconds a GET of ``path`` takes, on a new connection; it must answer 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token
                       else {})
    reply = connection.getresponse()
    reply.read()
    took = time.perf_counter() - started
    connection.close()
    if reply.status != 200:
        raise SystemExit(f"GET {path}: HTTP {reply.status}")
    return took


def scrape(folder: str, database: str, listings: int) -> None:
    """Print the cost of the listings gauge over ``listings`` live listings."""
    sys.path.insert(0, ROOT)
    from dnsbl.ledger.model import Report, now, parse_key
    from dnsbl.ledger.store import open_store

    config = os.path.join(folder, "dnsbl.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(database=json.dumps(database)))
    store = open_store(database)
    started = time.perf_counter()
    at = now()
    for first in range(0, listings, 100_000):
        store.stage(Report(parse_key(address(i, 45)), "spam", f"feed{i % 7}", "bench", at,
                           at + 86400 * 30) for i in range(first, min(first + 100_000,
                                                                     listings)))
        store.merge(at, "bench", "bench fill")
    print(f"filled {listings} listings in {time.perf_counter() - started:.1f} s", flush=True)
    from dnsbl.ledger.access import Access

    token, _ = Access(store).create_token("bench", ("bench",), True, None, "bench", now())
    queries = []
    for _ in range(3):
        started = time.perf_counter()
        groups = store.live_counts(now())
        queries.append(time.perf_counter() - started)
    store.close()
    assert sum(n for _, _, n in groups) == listings, groups
    print(f"the grouped count ({len(groups)} series): "
          + ", ".join(f"{q * 1000:.0f} ms" for q in queries), flush=True)
    web, port = start_web(config)
    try:
        # The first scrape counts; meanwhile, how long does a key's GET wait?
        first: list[float] = []
        counting = threading.Thread(target=lambda: first.append(get(port, "/metrics")))
        counting.start()
        waits = []
        while counting.is_alive():
            waits.append(get(port, "/api/v1/listings/45.0.0.1", token))
        counting.join()
        print(f"during the first scrape ({first[0] * 1000:.0f} ms): {len(waits)} GETs of a "
              f"key, the slowest {max(waits) * 1000:.0f} ms", flush=True)
        times = []
        for _ in range(11):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            started = time.perf_counter()
            connection.request("GET", "/metrics")
            reply = connection.getresponse()
            text = reply.read().decode()
            times.append(time.perf_counter() - started)
            connection.close()
            if reply.status != 200 or 'source="feed0"' not in text:
                raise SystemExit(f"/metrics: HTTP {reply.status}")
        print(f"GET /metrics over {listings} listings, within the reuse time: median "
              f"{statistics.median(times) * 1000:.1f} ms of 11")
    finally:
        web.terminate()
        web.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="postgresql://... (an empty database); "
                                           "default: a fresh SQLite file per run")
    parser.add_argument("--postgres", action="store_true",
                        help="a throw-away PostgreSQL cluster (initdb, pg_ctl), a fresh "
                             "database per run")
    parser.add_argument("--scrape-listings", type=int, metavar="N",
                        help="time GET /metrics over N listings instead")
    args = parser.parse_args()
    cluster = None
    if args.postgres:
        sys.path.insert(0, ROOT)
        from tests.helpers import PostgresServer, postgres_bin

        bin_dir = postgres_bin()
        if bin_dir is None:
            raise SystemExit("--postgres: initdb is not installed (Debian: postgresql)")
        cluster = PostgresServer(bin_dir, free_port())
        cluster.start()
    try:
        run_all(args, cluster)
    finally:
        if cluster is not None:
            cluster.stop()


def run_all(args: argparse.Namespace, cluster: Any) -> None:
    def database(folder: str) -> str:
        if cluster is not None:
            return str(cluster.new_database())
        return str(args.database or os.path.join(folder, "ledger.sqlite"))

    if args.scrape_listings:
        with tempfile.TemporaryDirectory(prefix="dnsbl-bench-web-") as folder:
            scrape(folder, database(folder), args.scrape_listings)
        return
    singles, bulks = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="dnsbl-bench-web-") as folder:
            single, bulk = one_run(folder, database(folder), args.adds, args.bulk)
            print(f"run {run + 1}: {single:.0f} single adds/s, {bulk:.0f} bulk listings/s",
                  flush=True)
            singles.append(single)
            bulks.append(bulk)
    print(f"median ({'PostgreSQL' if cluster or args.database else 'SQLite'}): "
          f"{statistics.median(singles):.0f} single adds/s "
          f"({args.adds} adds), {statistics.median(bulks):.0f} bulk listings/s "
          f"({args.bulk} a request)")


if __name__ == "__main__":
    main()
