"""Ledger benchmark: import, publish and add-to-answer with a big ledger.

    .venv/bin/python benchmarks/bench_ledger.py [--entries N] [--runs K]
        [--database URL]

In a temporary folder, with a configuration like zones/dnsbl.toml (SQLite
there by default; ``--database postgresql://...`` for an existing, empty
PostgreSQL database), each step runs the real ``python -m dnsbl`` as a
child process and records its wall time and peak RSS (wait4):

1. import of an N-line plain list (N distinct /32s, no timestamps);
2. the same import again (every line a repeat report);
3. publish of the N live listings, next to a cold ``dnsbl check`` of the
   zone file it writes (the target: publish within 2x check);
4. with ``dnsbl serve`` running on that ledger (loopback, a free port), a
   single ``ledger add`` of a new address and a ``ledger remove`` of it: the
   time until the server answers accordingly, while a probe asks for a listed
   address 200 times a second and counts queries with no answer within 2 s.

Medians over --runs for steps 1-3 (each run on a fresh ledger); step 4 once
per run on the last ledger.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(*args: str, cwd: str) -> str:
    """Run ``python -m dnsbl ARGS``; its standard output."""
    proc = subprocess.run([sys.executable, "-m", "dnsbl", *args], cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"dnsbl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def measured(*args: str, cwd: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``python -m dnsbl`` child."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "dnsbl", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"dnsbl {' '.join(args)} failed ({proc.returncode}): {err}")
    return seconds, usage.ru_maxrss / 1024


def write_config(folder: str, database: str) -> str:
    config = os.path.join(folder, "dnsbl.toml")
    with open(config, "w") as f:
        f.write(f'listen = ["127.0.0.1:0"]\ncheck_interval = 1\n[ledger]\n'
                f'database = "{database}"\nzone = "rep.example.org"\npublish_interval = 0\n'
                'lookup_url = "https://rep.example.org/lookup?ip=$"\n'
                '[ledger.categories.spam]\na = "127.0.0.2"\nlifetime = "7d"\n')
    return config


def query(sock: socket.socket, port: int, name: str, ident: int) -> bytes | None:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    sock.sendto(struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels
                + b"\x00\x00\x01\x00\x01", ("127.0.0.1", port))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            return None
        if struct.unpack(">H", data[:2])[0] == ident:
            return data
    return None


def listed(reply: bytes | None) -> bool:
    return reply is not None and reply[3] & 0xF == 0 and struct.unpack(">H", reply[6:8])[0] > 0


def name_of(address: str) -> str:
    return ".".join(reversed(address.split("."))) + ".rep.example.org"


def served_change(folder: str, config: str) -> dict[str, float]:
    serve = subprocess.Popen([sys.executable, "-m", "dnsbl", "serve", "--config", config,
                              "--metrics", "none", "--workers", "1"], cwd=folder,
                             stderr=subprocess.PIPE, text=True)
    try:
        port = 0
        assert serve.stderr is not None
        for line in serve.stderr:
            m = re.search(r"listening on udp\+tcp \S+:(\d+)", line)
            if m:
                port = int(m.group(1))
            if line.rstrip().endswith(" INFO ready"):
                break
        threading.Thread(target=lambda: [None for _ in serve.stderr or ()], daemon=True).start()
        lost = [0, 0]
        stop = threading.Event()

        def probe() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                ident = 0
                while not stop.is_set():
                    ident = (ident + 1) & 0xFFFF
                    lost[1] += 1
                    if query(sock, port, name_of("11.0.0.1"), ident) is None:
                        lost[0] += 1
                    time.sleep(0.005)

        prober = threading.Thread(target=probe)
        prober.start()
        figures = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for step, args, want in (
                    ("add", ("add", "203.0.114.1", "--category", "spam", "--source", "bench",
                             "--reason", "bench"), True),
                    ("remove", ("remove", "203.0.114.1", "--reason", "bench"), False)):
                started = time.monotonic()
                child("ledger", "--config", config, *args, cwd=folder)
                ident = 0
                while listed(query(sock, port, name_of("203.0.114.1"), ident)) != want:
                    ident += 1
                    if time.monotonic() - started > 120:
                        raise SystemExit(f"{step} not answered within 120 s")
                    time.sleep(0.02)
                figures[f"{step}_to_answer_s"] = time.monotonic() - started
        stop.set()
        prober.join()
        figures["probe_lost"] = lost[0]
        figures["probe_sent"] = lost[1]
        return figures
    finally:
        serve.terminate()
        serve.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="postgresql://... (default: SQLite in the folder)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as folder:
        feed = os.path.join(folder, "feed.txt")
        with open(feed, "w") as f:
            for i in range(args.entries):
                f.write(f"{11 + i // 65536}.{(i // 256) % 256}.{i % 256}.1\n")
        for run in range(args.runs):
            database = args.database or os.path.join(folder, f"ledger{run}.sqlite")
            shutil.rmtree(os.path.join(folder, "published"), ignore_errors=True)
            if args.database and run:
                import psycopg  # a fresh ledger per run: empty the tables

                with psycopg.connect(args.database, autocommit=True) as db:
                    db.execute("DROP TABLE IF EXISTS listings, removals, audit, allowlist, "
                               "dnsbl_schema")
                    db.execute("DROP FUNCTION IF EXISTS audit_append_only CASCADE")
            config = write_config(folder, database)
            ledger = ("ledger", "--config", config)
            imp = (*ledger, "import", feed, "--format", "plain", "--source", "bench",
                   "--category", "spam", "--no-publish")
            for step, command in (("import", imp), ("import_again", imp),
                                  ("publish", (*ledger, "publish")), ("check", ())):
                if step == "check":  # every file publish wrote, as serve loads them
                    command = ("check", *(arg for path in sorted(glob.glob(os.path.join(
                        folder, "published", "*.zone"))) for arg in (
                            "--zone", f"rep.example.org:combined:{path}")))
                seconds, rss = measured(*command, cwd=folder)
                results.setdefault(f"{step}_s", []).append(seconds)
                results.setdefault(f"{step}_rss_mb", []).append(rss)
                print(f"run {run + 1}: {step} {seconds:.2f} s, peak RSS {rss:.0f} MB",
                      flush=True)
            for key, value in served_change(folder, config).items():
                results.setdefault(key, []).append(value)
                print(f"run {run + 1}: {key} {value:.2f}", flush=True)
    print(f"\nmedians over {args.runs} run(s), {args.entries} entries, "
          f"{'PostgreSQL' if args.database else 'SQLite'}:")
    for key, values in results.items():
        print(f"  {key}: {statistics.median(values):.2f}")
    ratio = statistics.median(results["publish_s"]) / statistics.median(results["check_s"])
    print(f"  publish / check: {ratio:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
