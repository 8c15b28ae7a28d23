"""Reload benchmark: latency, losses and memory while a big zone is rebuilt.

    .venv/bin/python benchmarks/bench_reload.py [--entries N] [--runs K] [--load]

Generates (or takes, with --zone) an ip4trie zone of N single addresses plus
CIDR blocks and exclusions (benchmarks/generate.py), times a cold
``dnsbl check`` of it, then starts ``python -m dnsbl serve`` on it (loopback,
a free port, ``--check-interval 1``). A probe process sends queries at a fixed
rate (default 2,000/s, plain UDP socket, one ID per query); every other one
asks for a "flip" address that the zone does not list. Each run:

1. steady state: the probe's latencies for --steady seconds;
2. the zone file is rewritten atomically (temp file + rename) with the flip
   address listed;
3. the rebuild window runs from the rename to one second after the first
   answer showing the flip address listed (so it covers the notice delay, the
   parse in the server's thread, the swap and the release of the old data).

Recorded: rename -> new data served; probe p50/p99/max latency in the window
next to steady state; queries lost (no reply within 2 s; must be 0); server
VmRSS (polled every 50 ms) at steady state and its peak in the window, and
VmHWM. Medians over the runs are printed with the targets: new data within 2x
a cold ``dnsbl check``; rebuild p99 within 10x steady p99; nothing lost.

With --load, ``dnsperf -c 4 -q 100 -Q RATE`` runs throughout as background
load. The server is pinned to CPU 0 and the probe, dnsperf and this script to
CPU 1 (--no-pin to leave placement to the kernel).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate  # noqa: E402

LOST_AFTER = 2.0  # seconds without a reply: lost
SERVER_CPU, CLIENT_CPU = 0, 1
LISTED_PROBE = 0x7F000002  # 127.0.0.2, always listed: readiness check
PEND = -1.0


# -- DNS wire helpers -----------------------------------------------------------------------

_QTYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "ANY": 255}


def question(name: str, qtype: str) -> bytes:
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split("."))
    return wire + b"\x00" + struct.pack(">HH", _QTYPES[qtype.upper()], 1)


def packet(qid: int, q: bytes) -> bytes:
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + q


def ask(port: int, q: bytes, timeout: float = 0.5) -> tuple[int, int] | None:
    """One query; (rcode, ancount) or None on timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet(0x4242, q), ("127.0.0.1", port))
        try:
            data = s.recv(4096)
        except (TimeoutError, OSError):
            return None
    return data[3] & 0x0F, int.from_bytes(data[6:8], "big")


# -- the probe (a separate process, so that this script's own work does not skew it) --------

def probe_main(port: int, normal: list[bytes], flips: list[bytes], rate: float,
               flip_index, first_new, stop, conn, cpu: int | None) -> None:  # noqa: ANN001
    """Send at ``rate``/s until ``stop``; every other query is the current flip question.

    ``first_new[i]`` gets the receive time of the first listed answer for flip i.
    Sends back (send_t, recv_t, kind, rcode, ancount) lists: kind -1 for a normal
    question, else the flip index; recv_t -1 when no reply came.
    """
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    send_t: list[float] = []
    recv_t: list[float] = []
    kinds: list[int] = []
    rcodes: list[int] = []
    ancounts: list[int] = []
    pending: dict[int, int] = {}  # query ID -> record index
    interval = 1.0 / rate
    monotonic, pack = time.monotonic, struct.Struct(">HHHHHH").pack
    seq = 0
    next_t = monotonic()
    deadline = next_t + 3600  # bounded whatever happens to the parent
    n_normal = len(normal)
    while True:
        now = monotonic()
        if now >= next_t:
            if (seq & 255) == 0 and (stop.is_set() or now > deadline):
                break
            qid = seq & 0xFFFF
            if seq & 1:
                kind = flip_index.value
                q = flips[kind]
            else:
                kind = -1
                q = normal[(seq >> 1) % n_normal]
            pending.pop(qid, None)  # 32 s old at 2,000/s: long since lost
            try:
                sock.send(pack(qid, 0, 1, 0, 0, 0) + q)
            except OSError:
                pass  # counted as lost
            pending[qid] = len(send_t)
            send_t.append(monotonic())
            recv_t.append(PEND)
            kinds.append(kind)
            rcodes.append(-1)
            ancounts.append(-1)
            seq += 1
            next_t += interval
            if now - next_t > 0.5:
                next_t = now  # fell far behind (descheduled): no burst to catch up
            continue
        ready, _, _ = select.select([sock], [], [], next_t - now)
        if not ready:
            continue
        while True:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                break
            t = monotonic()
            if len(data) < 12:
                continue
            i = pending.pop(int.from_bytes(data[:2], "big"), None)
            if i is None:
                continue
            recv_t[i] = t
            rcodes[i] = rcode = data[3] & 0x0F
            ancounts[i] = ancount = int.from_bytes(data[6:8], "big")
            kind = kinds[i]
            if kind >= 0 and rcode == 0 and ancount > 0 and first_new[kind] < 0:
                first_new[kind] = t
    sock.close()
    conn.send((send_t, recv_t, kinds, rcodes, ancounts))
    conn.close()


# -- server memory --------------------------------------------------------------------------

class RSSPoller(threading.Thread):
    """Samples (time, VmRSS kB, VmHWM kB) of a process every ``period`` seconds."""

    def __init__(self, pid: int, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        path = f"/proc/{self.pid}/status"
        while not self._halt.wait(self.period):
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                return
            rss = re.search(r"VmRSS:\s+(\d+)", text)
            hwm = re.search(r"VmHWM:\s+(\d+)", text)
            if rss and hwm:
                self.samples.append((time.monotonic(), int(rss[1]), int(hwm[1])))

    def stop(self) -> None:
        self._halt.set()
        self.join(1)

    def between(self, t0: float, t1: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if t0 <= s[0] < t1]


# -- measurement ----------------------------------------------------------------------------

@dataclass
class Window:
    sent: int
    lost: int
    p50: float  # ms
    p99: float
    max: float
    latencies: list[float]


def window(records: tuple, t0: float, t1: float) -> Window:
    send_t, recv_t = records[0], records[1]
    lat, lost = [], 0
    for s, r in zip(send_t, recv_t, strict=True):
        if t0 <= s < t1:
            if r < 0 or r - s > LOST_AFTER:
                lost += 1
            else:
                lat.append((r - s) * 1e3)
    lat.sort()
    if not lat:
        return Window(0, lost, float("nan"), float("nan"), float("nan"), [])
    return Window(len(lat) + lost, lost, pct(lat, 50), pct(lat, 99), lat[-1], lat)


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        t.bind(("127.0.0.1", port))  # the server binds TCP on the same port
    return port


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def timed_check(args: argparse.Namespace, zone_spec: str, env: dict) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of one cold `dnsbl check`."""
    cmd = pinned([sys.executable, "-m", "dnsbl", "check", "--zone", zone_spec],
                 SERVER_CPU if args.pin else None)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=args.src, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"dnsbl check failed with status {proc.returncode}")
    return elapsed, usage.ru_maxrss


def wait_ready(port: int, server: subprocess.Popen, timeout: float) -> float:
    q = question(generate.qname(LISTED_PROBE, "bl.example.org"), "A")
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.poll() is not None:
            raise SystemExit(f"server exited with status {server.returncode}")
        if ask(port, q, 0.2) is not None:
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"server not answering after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def fmt(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def _dump(path: str, records: tuple, runs: list[dict]) -> None:
    zero = runs[0]["t_rename"]
    with open(path, "w") as f:
        f.write("# marks: " + "; ".join(
            f"run {i + 1}: steady {r['t_s0'] - zero:.3f}..{r['t_s1'] - zero:.3f} rename "
            f"{r['t_rename'] - zero:.3f} new {r['t_new'] - zero:.3f}"
            for i, r in enumerate(runs)) + "\n")
        f.write("send_s,latency_ms,kind,rcode,ancount\n")
        for s, r, k, rc, an in zip(*records, strict=True):
            lat = f"{(r - s) * 1e3:.3f}" if r >= 0 else ""
            f.write(f"{s - zero:.6f},{lat},{k},{rc},{an}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000,
                        help="single addresses in the generated zone (default 1,000,000)")
    parser.add_argument("--cidrs", type=int, default=None,
                        help="CIDR blocks (default: min(20,000, entries/50))")
    parser.add_argument("--zone", metavar="FILE",
                        help="take this ip4trie file instead of generating one (it is copied; "
                             "10.255.0.0/16 must be unlisted)")
    parser.add_argument("--runs", type=int, default=5, help="rebuilds measured (default 5)")
    parser.add_argument("--steady", type=float, default=5.0,
                        help="seconds of steady state before each rebuild (default 5)")
    parser.add_argument("--rate", type=float, default=2000.0,
                        help="probe queries per second (default 2,000; half are the flip name)")
    parser.add_argument("--load", action="store_true", help="run dnsperf as background load")
    parser.add_argument("--load-rate", type=int, default=5000,
                        help="dnsperf -Q with --load (default 5,000 queries/s)")
    parser.add_argument("--check-runs", type=int, default=3,
                        help="cold `dnsbl check` timings (default 3)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server to CPU 0 and the clients to CPU 1")
    parser.add_argument("--src", default=os.path.dirname(HERE),
                        help="directory holding the dnsbl package to run (default: this "
                             "checkout)")
    parser.add_argument("--rebuild-timeout", type=float, default=300.0,
                        help="give up waiting for new data after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--dump", metavar="FILE",
                        help="write every probe query (send, receive, kind, rcode) and the run "
                             "marks as CSV, times relative to the first rename, for diagnosis")
    args = parser.parse_args()
    if args.pin and (os.cpu_count() or 1) < 2:
        args.pin = False
    workdir = tempfile.mkdtemp(prefix="bench_reload.")
    env = {**os.environ, "PYTHONPATH": args.src, "PYTHONUNBUFFERED": "1"}
    zone_name = "bl.example.org"
    zone_path = os.path.join(workdir, "bl.zone")
    queries_path = os.path.join(workdir, "queries.txt")
    procs: list[subprocess.Popen] = []
    try:
        return _run(args, workdir, env, zone_name, zone_path, queries_path, procs)
    finally:
        for proc in procs:
            stop_process(proc, signal.SIGKILL if proc.poll() is None else signal.SIGTERM)
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: str, env: dict, zone_name: str, zone_path: str,
         queries_path: str, procs: list[subprocess.Popen]) -> int:
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    if args.pin:
        os.sched_setaffinity(0, {CLIENT_CPU})
    # -- the data ---------------------------------------------------------------------------
    started = time.monotonic()
    if args.zone:
        with open(args.zone, encoding="latin-1") as f:
            base = f.read()
        query_lines = [f"{generate.qname(ip, zone_name)} {t}"
                       for ip, t in ((0x0A000001 + i * 7919, "A") for i in range(1000))]
        desc = f"{args.zone}"
    else:
        cidrs = args.cidrs if args.cidrs is not None else min(20_000, args.entries // 50)
        _zone, base, query_lines = generate.generate(
            singles=args.entries, cidrs=cidrs, exclusions=min(300, cidrs // 10), kind="ip4trie",
            name=zone_name, queries=100_000, hit_ratio=0.5, qtypes={"A": 0.8, "TXT": 0.2})
        desc = (f"generated: {len(_zone.singles):,} singles + {len(_zone.blocks):,} CIDRs + "
                f"{len(_zone.exclusions)} exclusions, ip4trie")
    if not base.endswith("\n"):
        base += "\n"
    # The flip addresses: 10.255.<run>.1, never listed by generate.py.
    flip_ips = [0x0AFF0001 + (i << 8) for i in range(args.runs)]
    flip_names = [generate.qname(ip, zone_name) for ip in flip_ips]
    query_lines = [q for q in query_lines if q.split()[0] not in flip_names]
    generate.write_atomic(zone_path, base)
    generate.write_atomic(queries_path, "\n".join(query_lines) + "\n")
    say(f"zone {desc}, {len(base) / 1e6:.1f} MB, written in {time.monotonic() - started:.1f}s")

    # -- cold check -------------------------------------------------------------------------
    zone_spec = f"{zone_name}:ip4trie:{zone_path}"
    checks = []
    for i in range(args.check_runs):
        checks.append(timed_check(args, zone_spec, env))
        say(f"cold check {i + 1}/{args.check_runs}: {checks[-1][0]:.2f}s, "
            f"peak RSS {checks[-1][1] / 1024:.0f} MB")
    check_s = statistics.median(c[0] for c in checks)
    check_rss = statistics.median(c[1] for c in checks)

    # -- the server -------------------------------------------------------------------------
    port = free_port()
    log_path = os.path.join(workdir, "server.log")
    log_file = open(log_path, "w")
    server = subprocess.Popen(
        # One worker: the rebuild of one server is measured (the default, a
        # worker per CPU, would run two parses on the one pinned CPU).
        pinned([sys.executable, "-m", "dnsbl", "serve", "--zone", zone_spec, "--listen",
                f"127.0.0.1:{port}", "--check-interval", "1", "--workers", "1",
                "--metrics", f"127.0.0.1:{free_port()}"],
               SERVER_CPU if args.pin else None),
        cwd=args.src, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    procs.append(server)
    load_s = wait_ready(port, server, timeout=max(120.0, 20 * check_s))
    say(f"server pid {server.pid} on 127.0.0.1:{port}, answering after {load_s:.1f}s")
    rss = RSSPoller(server.pid)
    rss.start()
    for name in flip_names:
        if ask(port, question(name, "A")) != (3, 0):
            raise SystemExit(f"{name} should be NXDOMAIN before the test")

    dnsperf = None
    if args.load:
        if not shutil.which("dnsperf"):
            raise SystemExit("--load needs dnsperf")
        dnsperf = subprocess.Popen(
            pinned(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries_path,
                    "-c", "4", "-q", "100", "-Q", str(args.load_rate), "-l", "3600"],
                   CLIENT_CPU if args.pin else None),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(dnsperf)
        say(f"dnsperf -c 4 -q 100 -Q {args.load_rate} running as background load")

    # -- the probe --------------------------------------------------------------------------
    ctx = mp.get_context("fork")
    flip_index = ctx.Value("i", 0, lock=False)
    first_new = ctx.Array("d", [-1.0] * args.runs, lock=False)
    stop = ctx.Event()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    normal = [question(*line.split()) for line in query_lines[:20_000]]
    flips = [question(name, "A") for name in flip_names]
    probe = ctx.Process(target=probe_main, args=(
        port, normal, flips, args.rate, flip_index, first_new, stop, child_conn,
        CLIENT_CPU if args.pin else None), daemon=True)
    probe.start()
    time.sleep(1.0)  # warm up

    runs = []
    try:
        for r in range(args.runs):
            flip_index.value = r
            t_s0 = time.monotonic()
            time.sleep(args.steady)
            t_s1 = time.monotonic()
            text = base + f"{generate.ntoa(flip_ips[r])} :3:bench_reload run {r + 1} $\n"
            t_w0 = time.monotonic()
            generate.write_atomic(zone_path, text)
            t_rename = time.monotonic()
            deadline = t_rename + args.rebuild_timeout
            while first_new[r] < 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {r + 1}: no new data after {args.rebuild_timeout}s")
                if server.poll() is not None:
                    raise SystemExit(f"server exited with status {server.returncode}")
                time.sleep(0.01)
            t_new = first_new[r]
            t_end = t_new + 1.0
            time.sleep(max(0.0, t_end - time.monotonic()) + 2.0)  # settle before next steady
            runs.append(dict(t_s0=t_s0, t_s1=t_s1, t_rename=t_rename, t_new=t_new,
                             t_end=t_end, write_s=t_rename - t_w0))
            say(f"run {r + 1}/{args.runs}: new data {t_new - t_rename:.2f}s after the rename")
    finally:
        stop.set()
        records = parent_conn.recv() if parent_conn.poll(10) else None
        probe.join(5)
        if probe.is_alive():
            probe.kill()
        rss.stop()
        dnsperf_out = ""
        if dnsperf is not None:
            stop_process(dnsperf, signal.SIGINT)
            dnsperf_out = dnsperf.stdout.read() if dnsperf.stdout else ""
        stop_process(server)
        log_file.close()
    if records is None:
        raise SystemExit("the probe sent no records")

    # -- figures ----------------------------------------------------------------------------
    with open(log_path) as f:
        log_text = f.read()
    parse_s = [float(m) for m in re.findall(r"reloaded zone \S+: \d+ entries, .*?, ([\d.]+)s,",
                                            log_text)]
    rows = []
    all_rebuild_lat: list[float] = []
    for i, run in enumerate(runs):
        steady = window(records, run["t_s0"], run["t_s1"])
        rebuild = window(records, run["t_rename"], run["t_end"])
        all_rebuild_lat += rebuild.latencies
        steady_rss = [s[1] for s in rss.between(run["t_s0"], run["t_s1"])]
        rebuild_rss = rss.between(run["t_rename"], run["t_end"])
        rows.append(dict(
            new=run["t_new"] - run["t_rename"],
            parse=parse_s[i] if i < len(parse_s) else float("nan"),
            s_p50=steady.p50, s_p99=steady.p99, s_max=steady.max,
            r_p50=rebuild.p50, r_p99=rebuild.p99, r_max=rebuild.max,
            r_sent=rebuild.sent, lost=steady.lost + rebuild.lost,
            rss_steady=statistics.median(steady_rss) / 1024 if steady_rss else float("nan"),
            rss_peak=max(s[1] for s in rebuild_rss) / 1024 if rebuild_rss else float("nan"),
            hwm=rebuild_rss[-1][2] / 1024 if rebuild_rss else float("nan"),
        ))
    if args.dump:
        _dump(args.dump, records, runs)
    total_lost = sum(1 for s, r in zip(records[0], records[1], strict=True)
                     if s < runs[-1]["t_end"] and (r < 0 or r - s > LOST_AFTER))
    total_sent = sum(1 for s in records[0] if s < runs[-1]["t_end"])

    def med(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print()
    print(f"bench_reload: {desc}; {len(base) / 1e6:.1f} MB; {os.cpu_count()} CPUs; "
          f"Python {sys.version.split()[0]}")
    print(f"probe {args.rate:.0f} q/s (half the flip name), steady {args.steady:.0f}s per run, "
          f"{args.runs} runs; " + (f"dnsperf load {args.load_rate} q/s; " if args.load else
                                   "no background load; ")
          + ("server on CPU 0, clients on CPU 1" if args.pin else "no pinning"))
    print(f"cold `dnsbl check`: {check_s:.2f}s (median of {len(checks)}), peak RSS "
          f"{check_rss / 1024:.0f} MB; server start to first answer {load_s:.1f}s")
    print()
    head = ("run", "new data s", "parse s", "steady p50/p99/max ms", "rebuild p50/p99/max ms",
            "rebuild q", "lost", "RSS steady MB", "RSS peak MB", "VmHWM MB")
    print(" | ".join(head))
    for i, row in enumerate(rows + [None]):
        if row is None:
            label, row = "median", {k: med(k) for k in rows[0]}
        else:
            label = str(i + 1)
        print(" | ".join([
            label, fmt(row["new"]), fmt(row["parse"]),
            f"{fmt(row['s_p50'])}/{fmt(row['s_p99'])}/{fmt(row['s_max'])}",
            f"{fmt(row['r_p50'])}/{fmt(row['r_p99'])}/{fmt(row['r_max'])}",
            f"{row['r_sent']:.0f}", f"{row['lost']:.0f}", fmt(row["rss_steady"], 0),
            fmt(row["rss_peak"], 0), fmt(row["hwm"], 0)]))
    print()
    buckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
    hist, lo = [], 0.0
    for hi in buckets:
        hist.append(f"<{hi}ms: {sum(1 for x in all_rebuild_lat if lo <= x < hi)}")
        lo = hi
    print("rebuild-window latencies, all runs: " + ", ".join(hist))
    ratio = med("r_p99") / med("s_p99")
    targets = [
        ("new data within 2x cold check", f"{med('new'):.2f}s vs {2 * check_s:.2f}s",
         med("new") <= 2 * check_s),
        ("rebuild p99 within 10x steady p99",
         f"{med('r_p99'):.2f}ms vs {10 * med('s_p99'):.2f}ms ({ratio:.0f}x)", ratio <= 10),
        ("no query lost", f"{total_lost} of {total_sent}", total_lost == 0),
    ]
    for label, figures, ok in targets:
        print(f"target: {label}: {figures}: {'PASS' if ok else 'FAIL'}")
    if dnsperf_out:
        keep = [ln.strip() for ln in dnsperf_out.splitlines()
                if re.search(r"Queries (sent|completed|lost)|Queries per second|"
                             r"Average Latency|Latency StdDev", ln)]
        print("dnsperf: " + "; ".join(keep))
    return 0 if all(ok for _, _, ok in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
