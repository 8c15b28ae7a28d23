"""A single change in an N-entry zone: the IXFR's size, and the time from the
file landing to a BIND secondary answering the new data (dnsbl reloads,
makes the difference, sends NOTIFY; BIND asks for the SOA and an IXFR).

    .venv/bin/python benchmarks/bench_ixfr.py --entries 100000 --changes 3

Starts `dnsbl serve` (one worker) and `named` (a secondary over TSIG) on
free loopback ports, each with its own configuration in a temporary
folder; stops both by PID at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rrset
import dns.tsigkeyring

ZONE = "bl.example.org"
KEY = "xfr.example.org"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
NAMED = shutil.which("named") or "/usr/sbin/named"


def memory(pid: int) -> str:
    """The server's resident memory now and at its peak (Linux), to see
    what the kept digests and the differences cost."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return f"RSS {fields['VmRSS'].strip()}, peak {fields['VmHWM'].strip()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zone_lines(entries: int) -> list[str]:
    rng = random.Random(17)
    addresses = sorted(rng.sample(range(1 << 24, 224 << 24), entries))
    return [f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}\n" for a in addresses]


HEAD = ("$SOA 3600 ns1.example.org hostmaster.example.org 1 1h 15m 1w 300\n"
        "$NS 0 ns1.example.org\n$TTL 600\n:127.0.0.2:Listed: $\n")


def publish(path: Path, lines: list[str]) -> float:
    """Write the zone file as operators do (a rename); when it landed."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as f:
        f.write(HEAD)
        f.writelines(lines)
    os.replace(temporary, path)
    return time.perf_counter()


def ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message | None:
    try:
        return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port,
                             timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return None


def serial(port: int) -> int | None:
    r = ask(port, ZONE, "SOA")
    return r.answer[0][0].serial if r is not None and r.answer else None


def wait(what: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def ixfr_size(port: int, since: int) -> tuple[int, int]:
    """(bytes, records) of a signed IXFR from serial ``since``, read raw."""
    q = dns.message.make_query(ZONE, "IXFR")
    q.authority.append(dns.rrset.from_text(
        f"{ZONE}.", 0, "IN", "SOA", f"ns1.{ZONE}. hostmaster.{ZONE}. {since} 1 1 1 1"))
    q.use_tsig(dns.tsigkeyring.from_text({f"{KEY}.": ("hmac-sha256", SECRET)}),
               algorithm="hmac-sha256")
    wire = q.to_wire()
    size = records = soas = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(struct.pack(">H", len(wire)) + wire)
        stream = sock.makefile("rb")
        current = None
        while True:
            length = struct.unpack(">H", stream.read(2))[0]
            message = dns.message.from_wire(stream.read(length), keyring=False,
                                            one_rr_per_rrset=True)
            size += 2 + length
            for rrset in message.answer:
                records += 1
                if rrset.rdtype == 6:
                    soas += 1
                    current = current or rrset[0].serial
                    # SOA, (old SOA, deleted, new SOA, added)..., SOA: the last is even.
                    if soas > 2 and soas % 2 == 0 and rrset[0].serial == current:
                        return size, records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, bind_port = free_port(), free_port()
        lines = zone_lines(args.entries)
        publish(folder / "bl.zone", lines)
        config = folder / "dnsbl.toml"
        config.write_text(
            f'listen = ["127.0.0.1:{port}"]\nworkers = 1\nmetrics = "none"\n'
            f'control = "none"\ntcp_idle_timeout = 600\n[tsig]\n"{KEY}" = "{SECRET}"\n'
            f'[[zone]]\nname = "{ZONE}"\ntype = "ip4set"\nfiles = ["bl.zone"]\n'
            f'transfer = ["127.0.0.0/8"]\ntransfer_key = "{KEY}"\n'
            f'notify = ["127.0.0.1:{bind_port}"]\n')
        named = folder / "named"
        named.mkdir()
        (named / "named.conf").write_text(f"""\
key "{KEY}" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
options {{ directory "{named}"; pid-file "{named}/named.pid";
    listen-on port {bind_port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
    recursion no; notify no; }};
zone "{ZONE}" {{ type secondary; file "{named}/secondary.db";
    primaries {{ 127.0.0.1 port {port} key "{KEY}"; }}; }};
""")
        server = subprocess.Popen([sys.executable, "-m", "dnsbl", "serve", "--config",
                                   str(config)], stderr=subprocess.DEVNULL)
        bind = None
        try:
            started = time.perf_counter()
            wait("dnsbl to load", lambda: serial(port) is not None, 1200)
            loaded = time.perf_counter() - started
            with open(named / "named.log", "wb") as log:
                bind = subprocess.Popen([NAMED, "-g", "-n", "1", "-c",
                                         str(named / "named.conf")], stdout=log,
                                        stderr=subprocess.STDOUT)
            started = time.perf_counter()
            ours = serial(port)

            def taken() -> bool:
                return serial(bind_port) == ours  # None while it has no zone

            wait("BIND's first transfer", taken, 3600)
            first = time.perf_counter() - started
            print(f"entries {args.entries:,}: dnsbl loaded in {loaded:.1f} s, BIND's AXFR "
                  f"took {first:.1f} s; dnsbl {memory(server.pid)}")
            took, sizes = [], []
            for change in range(args.changes):
                before = serial(port)
                assert before is not None
                address = f"192.0.2.{change + 1}"
                name = ".".join(reversed(address.split("."))) + "." + ZONE
                lines.append(address + "\n")
                landed = publish(folder / "bl.zone", lines)

                def answered(name: str = name) -> bool:
                    r = ask(bind_port, name)
                    return r is not None and bool(r.answer)

                wait("BIND answering the change", answered, 3600)
                took.append(time.perf_counter() - landed)
                sizes.append(ixfr_size(port, before))
                print(f"change {change + 1}: file to BIND answering {took[-1]:.2f} s; "
                      f"IXFR {sizes[-1][0]:,} bytes, {sizes[-1][1]} records; "
                      f"dnsbl {memory(server.pid)}")
            # What BIND says it took each time: the first is the AXFR.
            completed = [line.split("Transfer completed: ", 1)[1] for line in
                         (named / "named.log").read_text(errors="replace").splitlines()
                         if "Transfer completed: " in line]
            print("BIND: " + "; ".join(completed))
            print(f"median: {statistics.median(took):.2f} s from file to secondary; "
                  f"IXFR {statistics.median(s[0] for s in sizes):,} bytes; load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            for proc in (bind, server):
                if proc is not None and proc.poll() is None:
                    os.kill(proc.pid, 15)
                    proc.wait(60)


if __name__ == "__main__":
    main()
