"""Zone transfer: AXFR of a generated zone in its DNSBL form and in its RPZ
form (time, bytes, records, the server's memory growth), and the p99
latency of UDP queries with no transfer and during each.

    .venv/bin/python benchmarks/bench_xfr.py --singles 1000000 [--seconds 5]

The zone is benchmarks/generate.py's (singles, blocks, exclusions, in
random order) as an ip4set. `dnsbl serve` (one worker) serves it on a free
loopback port with its RPZ form at rpz.ZONE; it is stopped by PID at the
end. Each AXFR is read by a client in a process of its own, as fast as the
socket gives it (records counted, not parsed), so the query loop here does
not share an interpreter lock with it. The load average is printed with
the figures: on a shared machine they are only as good as it was quiet.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate  # noqa: E402

ZONE = "bl.example.org"
RPZ = f"rpz.{ZONE}"

READER = """
import socket, struct, sys, time
import dns.message
started = time.perf_counter()
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=600)
query = dns.message.make_query(sys.argv[2], "AXFR").to_wire()
sock.sendall(struct.pack(">H", len(query)) + query)
stream = sock.makefile("rb")
size = records = soas = 0
while soas < 2:
    length, = struct.unpack(">H", stream.read(2))
    wire = stream.read(length)
    size += 2 + length
    if wire[3] & 0x0F:
        sys.exit(f"rcode {wire[3] & 0x0F}")
    records += struct.unpack(">H", wire[6:8])[0]
    soas += wire.count(b"\\xc0\\x0c\\x00\\x06\\x00\\x01")  # the apex SOA: first and last
print(time.perf_counter() - started, size, records)
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_zone(folder: Path, singles: int, port: int) -> tuple[Path, list[str]]:
    """The configuration, and names to ask (listed and not)."""
    listed, text, _queries = generate.generate(singles=singles, kind="ip4set", name=ZONE,
                                               queries=0)
    (folder / "bl.zone").write_text(text)
    config = folder / "dnsbl.toml"
    config.write_text(f'listen = ["127.0.0.1:{port}"]\nworkers = 1\nmetrics = "none"\n'
                      f'control = "none"\ntcp_idle_timeout = 120\n[[zone]]\nname = "{ZONE}"\n'
                      f'type = "ip4set"\nfiles = ["bl.zone"]\ntransfer = ["127.0.0.0/8"]\n'
                      f'rpz = {{ origin = "{RPZ}" }}\n')
    rng = random.Random(3)
    names = [".".join(reversed(socket.inet_ntoa(a.to_bytes(4, "big")).split("."))) + f".{ZONE}"
             for a in rng.sample(listed.singles, min(500, len(listed.singles)))]
    names += [f"{rng.randrange(256)}.{rng.randrange(256)}.0.240.{ZONE}" for _ in range(500)]
    return config, names


def rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (the worker)."""
    total = 0
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def latencies(port: int, names: list[str], seconds: float) -> list[float]:
    out = []
    rng = random.Random(len(names))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        q = dns.message.make_query(rng.choice(names), "A")
        started = time.perf_counter()
        dns.query.udp(q, "127.0.0.1", port=port, timeout=5)
        out.append(time.perf_counter() - started)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000


def transfer(port: int, zone: str, server: int, names: list[str]
             ) -> tuple[float, int, int, int, list[float]]:
    """(seconds, bytes, records, RSS growth, query latencies meanwhile) of one AXFR."""
    before = rss(server)
    peak = before
    reader = subprocess.Popen([sys.executable, "-c", READER, str(port), zone],
                              stdout=subprocess.PIPE, text=True)
    busy: list[float] = []
    while reader.poll() is None:
        busy += latencies(port, names, 0.25)
        peak = max(peak, rss(server))
    out, _ = reader.communicate()
    if reader.returncode != 0:
        raise SystemExit(f"AXFR of {zone} failed")
    took, size, records = out.split()
    return float(took), int(size), int(records), peak - before, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="of queries with no transfer (default %(default)s)")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config, names = write_zone(Path(tmp), args.singles, port)
        server = subprocess.Popen([sys.executable, "-m", "dnsbl", "serve", "--config",
                                   str(config)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1",
                                  port=port, timeout=0.5)
                    break
                except Exception:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
            quiet = latencies(port, names, args.seconds)
            rows = [(zone, *transfer(port, zone, server.pid, names)) for zone in (ZONE, RPZ)]
            quiet_rss = rss(server.pid)
        finally:
            os.kill(server.pid, 15)
            server.wait(30)
    print(f"generate.py --singles {args.singles} (random order, ip4set); load average "
          f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after; server RSS "
          f"{quiet_rss / 2**20:.0f} MiB")
    print(f"UDP p99 with no transfer: {p99(quiet):.2f} ms ({len(quiet)} queries)")
    for zone, took, size, records, grown, busy in rows:
        print(f"AXFR {zone}: {took:.1f} s, {size:,} bytes, {records:,} records, "
              f"{records / took:,.0f} records/s, RSS +{grown / 2**20:.0f} MiB; "
              f"UDP p99 meanwhile {p99(busy):.2f} ms ({len(busy)} queries)")


if __name__ == "__main__":
    main()
