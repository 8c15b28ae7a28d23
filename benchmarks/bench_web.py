"""API throughput of ``dnsbl web``: single adds and bulk NDJSON.

    .venv/bin/python benchmarks/bench_web.py [--adds N] [--bulk M] [--runs K]
        [--database URL]

In a temporary folder with a fresh SQLite ledger (or ``--database
postgresql://...``, an existing empty database), starts the real
``python -m dnsbl web`` on a free loopback port, makes a token, then:

1. N single ``POST /api/v1/listings`` of new addresses, one after the other on
   one keep-alive connection (each is one transaction and publishes the zone
   file it falls in, as ``dnsbl ledger add`` does): adds per second;
2. one ``POST /api/v1/listings/bulk`` of M new addresses (NDJSON, all or
   nothing): listings per second.

Medians over --runs (each on a fresh ledger).
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
import time

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


def one_run(folder: str, database: str, adds: int, bulk: int) -> tuple[float, float]:
    config = os.path.join(folder, "dnsbl.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(database=json.dumps(database)))
    dnsbl = [sys.executable, "-m", "dnsbl"]
    token = subprocess.run([*dnsbl, "ledger", "--config", config, "token", "create",
                            "--source", "bench"], capture_output=True, text=True,
                           check=True, cwd=ROOT).stdout.strip()
    port = free_port()
    web = subprocess.Popen([*dnsbl, "web", "--config", config, "--listen",
                            f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise SystemExit("dnsbl web did not start") from None
                time.sleep(0.1)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="postgresql://... (an empty database); "
                                           "default: a fresh SQLite file per run")
    args = parser.parse_args()
    singles, bulks = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="dnsbl-bench-web-") as folder:
            database = args.database or os.path.join(folder, "ledger.sqlite")
            single, bulk = one_run(folder, database, args.adds, args.bulk)
            print(f"run {run + 1}: {single:.0f} single adds/s, {bulk:.0f} bulk listings/s",
                  flush=True)
            singles.append(single)
            bulks.append(bulk)
    print(f"median: {statistics.median(singles):.0f} single adds/s "
          f"({args.adds} adds), {statistics.median(bulks):.0f} bulk listings/s "
          f"({args.bulk} a request)")


if __name__ == "__main__":
    main()
