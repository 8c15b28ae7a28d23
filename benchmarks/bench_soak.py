"""Soak: a zone renamed into place every few seconds for minutes, queried throughout.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 5] [--every 5] [--entries 100000]
                                              [--workers 1]

Starts ``python -m dnsbl serve`` on loopback (a free port, ``--check-interval
1``, no metrics) over one ip4set zone of --entries addresses, then for
--minutes (bounded) renames a new version of the file into place every
--every seconds, while a client thread keeps queries in flight over UDP
(batches of 64, one ID each; a query with no reply within 2 s is lost).

At each rename it prints one row of the series: seconds since start, the
version now being written, the version served (TXT of 127.0.0.2), the
resident memory (VmRSS) and open descriptors of the server and its
children (workers and parse processes, summed), and queries sent and lost
so far. A leak shows as RSS or fds that keep growing after the first rows;
nothing may be lost. The summary gives both series' first, last and max, and
the loss count.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_load import stop  # noqa: E402

ZONE = "soak.test"
LOST_AFTER = 2.0  # seconds without a reply: lost
BATCH = 64


def question(name: str, qtype: int) -> bytes:
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return wire + b"\x00" + struct.pack(">HH", qtype, 1)


LISTED_TXT = question(f"2.0.0.127.{ZONE}", 16)


def write_version(path: str, version: int, entries: int) -> None:
    """Version ``version`` of the zone, written to a temporary file and renamed."""
    lines = [f":2:v{version}", "127.0.0.2"]
    lines += [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1, entries)]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def served_version(port: int) -> int | None:
    """The version the server answers now (TXT of 127.0.0.2), None if no answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(LOST_AFTER)
        s.sendto(struct.pack(">HHHHHH", 0x5150, 0, 1, 0, 0, 0) + LISTED_TXT, ("127.0.0.1", port))
        try:
            reply = s.recv(4096)
        except TimeoutError:
            return None
    m = re.search(rb"v(\d+)", reply[12 + len(LISTED_TXT):])
    return int(m.group(1)) if m else None


class Load(threading.Thread):
    """Queries in flight until stopped: batches of BATCH, each answered or lost."""

    def __init__(self, port: int, entries: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.entries = entries
        self.sent = 0
        self.lost = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", self.port))
            qid = 0
            while not self.stop.is_set():
                waiting = set()
                for _ in range(BATCH):
                    qid = (qid + 1) & 0xFFFF
                    i = qid % self.entries
                    name = f"{i & 255}.{i >> 8 & 255}.{i >> 16 & 255}.10.{ZONE}"
                    s.send(struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + question(name, 1))
                    waiting.add(qid)
                self.sent += BATCH
                deadline = time.monotonic() + LOST_AFTER
                while waiting and (left := deadline - time.monotonic()) > 0:
                    s.settimeout(left)
                    try:
                        reply = s.recv(4096)
                    except TimeoutError:
                        break
                    except ConnectionRefusedError:  # the server is gone
                        return
                    waiting.discard(struct.unpack(">H", reply[:2])[0])
                self.lost += len(waiting)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return pids


def rss_and_fds(pid: int) -> tuple[float, int]:
    """MiB resident and descriptors open, summed over the process tree."""
    rss, fds = 0, 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
            rss += int(m.group(1)) if m else 0
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:  # it ended meanwhile
            continue
    return rss / 1024, fds


def start(path: str, workers: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dnsbl", "serve", "--zone", f"{ZONE}:ip4set:{path}",
         "--listen", "127.0.0.1:0", "--metrics", "none", "--workers", str(workers),
         "--check-interval", "1", "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # With --log-level warning nothing is said once ready: find the port by asking.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
        for port in _listening(proc.pid):
            if served_version(port) is not None:
                return proc, port
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer within 120 s")


def _listening(pid: int) -> list[int]:
    """UDP ports the process tree has bound on 127.0.0.1."""
    inodes = set()
    for p in tree(pid):
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                target = os.readlink(f"/proc/{p}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = []
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            address, inode = fields[1], fields[9]
            if inode in inodes and address.startswith("0100007F:"):
                ports.append(int(address.split(":")[1], 16))
    return ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between renames")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "soak.zone")
        write_version(path, 0, args.entries)
        proc, port = start(path, args.workers)
        load = Load(port, args.entries)
        load.start()
        began = time.monotonic()
        rows = []
        print(f"{'t(s)':>6} {'written':>7} {'served':>6} {'RSS MiB':>8} {'fds':>4} "
              f"{'sent':>10} {'lost':>5}", flush=True)
        try:
            version = 0
            end = began + 60 * args.minutes
            while time.monotonic() < end and proc.poll() is None:
                version += 1
                write_version(path, version, args.entries)
                rss, fds = rss_and_fds(proc.pid)
                row = (time.monotonic() - began, version, served_version(port), rss, fds,
                       load.sent, load.lost)
                rows.append(row)
                print(f"{row[0]:6.0f} {row[1]:7d} {row[2] if row[2] is not None else '-':>6} "
                      f"{row[3]:8.1f} {row[4]:4d} {row[5]:10d} {row[6]:5d}", flush=True)
                time.sleep(max(0.0, began + version * args.every - time.monotonic()))
        finally:
            load.stop.set()
            load.join(LOST_AFTER * 2)
            stop(proc)
        if not rows:
            raise SystemExit("no samples")
        rss = [r[3] for r in rows]
        fds = [r[4] for r in rows]
        settled = [r[3] for r in rows if r[0] >= 20] or rss[-1:]
        print(f"RSS MiB: first {rss[0]:.1f}, last {rss[-1]:.1f}, max {max(rss):.1f}; "
              f"from 20 s on: min {min(settled):.1f}, max {max(settled):.1f}")
        print(f"fds: first {fds[0]}, last {fds[-1]}, max {max(fds)}")
        print(f"queries: {load.sent} sent, {load.lost} lost; {len(rows)} renames; "
              f"server exit status {proc.returncode}")


if __name__ == "__main__":
    main()
