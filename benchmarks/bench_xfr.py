"""Zone transfer: AXFR time and bytes of an N-entry zone, the size of its
RPZ export, and the p99 latency of UDP queries with and without a transfer
under way.

    .venv/bin/python benchmarks/bench_xfr.py --entries 200000

Starts `dnsbl serve` (one worker) on a free loopback port with a generated
ip4set zone of single addresses; stops it by PID at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query

ZONE = "bl.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_zone(folder: Path, entries: int, port: int) -> Path:
    rng = random.Random(17)
    addresses = sorted(rng.sample(range(1 << 24, 224 << 24), entries))
    with open(folder / "bl.zone", "w") as f:
        f.write("$SOA 3600 ns1.example.org hostmaster.example.org 1 1h 15m 1w 300\n"
                "$NS 0 ns1.example.org\n$TTL 600\n:127.0.0.2:Listed: $\n")
        f.writelines(f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}\n" for a in addresses)
    config = folder / "dnsbl.toml"
    config.write_text(f'listen = ["127.0.0.1:{port}"]\nworkers = 1\nmetrics = "none"\n'
                      f'control = "none"\ntcp_idle_timeout = 60\n[[zone]]\nname = "{ZONE}"\n'
                      f'type = "ip4set"\nfiles = ["bl.zone"]\ntransfer = ["127.0.0.0/8"]\n')
    return config


def axfr(port: int) -> tuple[float, int, int]:
    """(seconds, bytes, records) of one AXFR, read as fast as the socket gives it."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    query = dns.message.make_query(ZONE, "AXFR").to_wire()
    sock.sendall(struct.pack(">H", len(query)) + query)
    stream = sock.makefile("rb")
    size = records = 0
    soa = b"\xc0\x0c\x00\x06\x00\x01"  # the apex SOA: first and last record
    seen = 0
    while seen < 2:
        length = struct.unpack(">H", stream.read(2))[0]
        wire = stream.read(length)
        size += 2 + length
        records += struct.unpack(">H", wire[6:8])[0]
        seen += wire.count(soa)
    sock.close()
    return time.perf_counter() - started, size, records


def latencies(port: int, seconds: float) -> list[float]:
    out = []
    rng = random.Random(3)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        q = dns.message.make_query(f"{rng.randrange(256)}.1.2.10.{ZONE}", "A")
        started = time.perf_counter()
        dns.query.udp(q, "127.0.0.1", port=port, timeout=5)
        out.append(time.perf_counter() - started)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_zone(Path(tmp), args.entries, port)
        server = subprocess.Popen([sys.executable, "-m", "dnsbl", "serve", "--config",
                                   str(config)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1",
                                  port=port, timeout=0.5)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
            quiet = latencies(port, args.seconds)
            result: list[tuple[float, int, int]] = []
            transfer = threading.Thread(target=lambda: result.append(axfr(port)))
            transfer.start()
            busy = []
            while transfer.is_alive():
                busy += latencies(port, 0.5)
            transfer.join()
            took, size, records = result[0]
            started = time.perf_counter()
            rpz = subprocess.run([sys.executable, "-m", "dnsbl", "export", "--config",
                                  str(config), ZONE, "--format", "rpz"],
                                 capture_output=True, check=True).stdout
            rpz_seconds = time.perf_counter() - started
        finally:
            os.kill(server.pid, 15)
            server.wait(30)
    print(f"entries {args.entries}: AXFR {took:.1f} s, {size:,} bytes, {records:,} records")
    print(f"RPZ export: {rpz_seconds:.1f} s, {len(rpz):,} bytes")
    print(f"UDP p99 without a transfer {p99(quiet):.2f} ms ({len(quiet)} queries), "
          f"during it {p99(busy):.2f} ms ({len(busy)} queries)")


if __name__ == "__main__":
    main()
