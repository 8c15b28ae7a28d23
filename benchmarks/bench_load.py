"""Load benchmark: dnsperf against the server, comparing settings A B A B.

    .venv/bin/python benchmarks/bench_load.py [--entries N] [--runs K] [--seconds S]
        [--compare metrics|rrl|rbldnsd|batch|workers|none] [--sorted]

Generates a zone (benchmarks/generate.py: N single addresses plus CIDR blocks,
half the queries listed, A=0.8,TXT=0.2), starts ``python -m dnsbl serve`` on
it pinned to CPU 0, and runs ``dnsperf -c 4 -q 100 -l S`` pinned to CPU 1.
``--compare metrics`` alternates the metrics endpoint on and off (scraped
every second while on), ``--compare rrl`` rate limiting on and off: on
with a rate of a million per second and no exemption, so every query takes
the whole token-bucket path (prefix, bucket lookup, refill, spend) and none
is limited (a limited query would be cheaper: no reply), ``--compare
rbldnsd`` rbldnsd (A), dnsbl with its compiled fast path (B) and with the
Python one (C, ``DNSBL_PURE_PYTHON=1``) on the same zone, each on CPU 0,
``--compare batch`` UDP one datagram per system call (A) against recvmmsg
batches (B). dnsbl runs one worker unless compared by
``--compare workers``: 1 worker (A) against ``--workers N`` (B, default 2);
then neither server nor dnsperf is pinned (the workers need the CPUs) and
dnsperf uses 16 sockets, so SO_REUSEPORT has flows to spread. Prints
queries/s, average and max latency, lost queries, the server's CPU time per
answered query (user + system, from /proc, summed over its processes), RSS
(summed likewise), each process's CPU seconds in the run, and per run the
start-up: start to first answer, the CPU it took (the server's and its
reaped parse child's), the server's peak RSS by then (VmHWM, summed over its
live processes) and the parse child's peak (VmHWM polled while it lives); then
the medians with the ratio of each setting to A, run by run.

``--seconds 0`` measures the start-up only (no dnsperf). The zone holds N
singles, N/50 blocks and N/500 exclusions in random order; ``--keep-zone
FILE`` keeps it and ``--zone FILE`` reuses it (10M entries take minutes to
generate).
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import generate  # noqa: E402

SERVER_CPU, CLIENT_CPU = 0, 1
PINNED = True  # off for --compare workers
CLIENTS = 4


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: int) -> list[str]:
    taskset = shutil.which("taskset")
    if not PINNED or not taskset or (os.cpu_count() or 1) < 2:
        return cmd
    return [taskset, "-c", str(cpu), *cmd]


def start_server(zone: str, port: int, extra: list[str],
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    if extra[:1] == ["rbldnsd"]:
        # rbldnsd refuses root: as root it runs as rbldns, chrooted to the zone's folder.
        cmd = ["rbldnsd", "-n", "-b", f"127.0.0.1/{port}", "-c", "0", "-t", "2100"]
        spec = f"bl.example.org:ip4trie:{zone}"
        if os.geteuid() == 0:
            cmd += ["-u", "rbldns", "-r", os.path.dirname(zone)]
            spec = f"bl.example.org:ip4trie:{os.path.basename(zone)}"
        cmd.append(spec)
    else:
        workers = [] if "--workers" in extra else ["--workers", "1"]
        cmd = [sys.executable, "-m", "dnsbl", "serve", "--zone",
               f"bl.example.org:ip4trie:{zone}", "--listen", f"127.0.0.1:{port}",
               "--log-level", "warning", *workers, *extra]
    started = time.monotonic()
    server = subprocess.Popen(pinned(cmd, SERVER_CPU), cwd=os.path.dirname(HERE),
                              stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    # 2.0.0.127.bl.example.org A: what both servers answer once loaded.
    query = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
        bytes((len(label),)) + label.encode()
        for label in "2.0.0.127.bl.example.org".split(".")) + b"\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + 600
    peaks: dict[int, float] = {}  # pid -> its VmHWM seen last: the parse child's is gone after
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.01)  # the resolution of the start-up figure
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit("server exited during start-up")
            s.sendto(query, ("127.0.0.1", port))
            for pid in _tree(server.pid):
                peaks[pid] = max(peaks.get(pid, 0.0), _status_mb(pid, "VmHWM:"))
            try:
                s.recv(512)
            except TimeoutError:
                continue
            server.load_seconds = time.monotonic() - started  # type: ignore[attr-defined]
            # CPU of the whole start-up: the server's own and its reaped
            # children's (the parse), not the wall time a shared host stretches.
            server.load_cpu = load_cpu_seconds(server.pid)  # type: ignore[attr-defined]
            live = set(_tree(server.pid))
            for pid in live:
                peaks[pid] = max(peaks.get(pid, 0.0), _status_mb(pid, "VmHWM:"))
            server.peak_rss = sum(peaks[pid] for pid in live)  # type: ignore[attr-defined]
            gone = [peak for pid, peak in peaks.items() if pid not in live]
            server.parse_peak = max(gone, default=0.0)  # type: ignore[attr-defined]
            return server
    server.kill()
    raise SystemExit("server did not answer within 600 s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (the workers), in MB."""
    return _own_rss_mb(pid) + sum(rss_mb(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children (the workers)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return own + sum(cpu_seconds(child) for child in _children(pid))


def _own_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float:
    """A memory field of /proc/PID/status (VmRSS:, VmHWM:) in MB; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree(pid: int) -> list[int]:
    """``pid`` and every process under it (workers, a parse child)."""
    return [pid, *(p for child in _children(pid) for p in _tree(child))]


def load_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``, its live children, and the children it
    has waited for (cutime, cstime: the parse process once done)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return cpu_seconds(pid) + reaped


def per_process_cpu(pid: int) -> list[float]:
    """CPU seconds of each process of the tree, the server first."""
    return [cpu_seconds(p) - sum(cpu_seconds(c) for c in _children(p)) for p in _tree(pid)]


def dnsperf(port: int, queries: str, seconds: float) -> dict[str, float]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-c", str(CLIENTS),
           "-q", "100",
           "-l", str(seconds), "-t", "2"]
    out = subprocess.run(pinned(cmd, CLIENT_CPU), capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    def number(pattern: str) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else float("nan")
    return {
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "completed": number(r"Queries completed:\s+(\d+)"),
        "lost": number(r"Queries lost:\s+(\d+)"),
        "avg_ms": number(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
        "max_ms": number(r"max ([\d.]+)\)") * 1000,
    }


def scraper(port: int, stop_event: threading.Event) -> None:
    while not stop_event.wait(1.0):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except OSError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--compare", choices=["metrics", "rrl", "rbldnsd", "batch", "workers",
                                              "none"], default="metrics")
    parser.add_argument("--workers", type=int, default=2, help="B of --compare workers")
    parser.add_argument("--sorted", action="store_true",
                        help="the zone's entries sorted (generate.py --sorted), not random order")
    parser.add_argument("--exclusions", type=int, default=None,
                        help="exclusions in the zone (default: entries / 500)")
    parser.add_argument("--zone", metavar="FILE",
                        help="a zone generate.py wrote (with its queries in FILE.queries): "
                        "generating 10M entries takes minutes, so keep it with --keep-zone")
    parser.add_argument("--keep-zone", metavar="FILE",
                        help="write the generated zone to FILE (queries to FILE.queries)")
    args = parser.parse_args()
    if args.seconds == 0:  # start-up only: no dnsperf, no queries/s
        args.seconds = -1.0
    if args.compare == "workers":
        global PINNED, CLIENTS
        PINNED, CLIENTS = False, 16
    if not shutil.which("dnsperf"):
        raise SystemExit("dnsperf not found: apt-get install dnsperf")
    # Byte-compiled, as an installed package is: an editable install under
    # PYTHONDONTWRITEBYTECODE would compile every module at every start.
    compileall.compile_dir(os.path.join(os.path.dirname(HERE), "dnsbl"), quiet=1)
    work = tempfile.mkdtemp(prefix="dnsbl-load-")
    zone, queries = os.path.join(work, "bl.zone"), os.path.join(work, "queries.txt")
    if args.zone:
        shutil.copy(args.zone, zone)
        shutil.copy(args.zone + ".queries", queries)
    else:
        exclusions = args.exclusions if args.exclusions is not None else args.entries // 500
        generate.main(["--zone-out", zone, "--queries-out", queries,
                       "--singles", str(args.entries), "--cidrs", str(max(1, args.entries // 50)),
                       "--exclusions", str(exclusions), "--queries", "200000",
                       *(["--sorted"] if args.sorted else [])])
        if args.keep_zone:
            shutil.copy(zone, args.keep_zone)
            shutil.copy(queries, args.keep_zone + ".queries")
    metrics_port = free_port(socket.SOCK_STREAM)
    # RRL on, at a rate dnsperf does not reach and with nobody exempt: every
    # query pays for the token bucket (an exempt client would skip it), and
    # none is limited (a dropped reply would make the server look faster).
    rrl_config = os.path.join(work, "rrl.toml")
    with open(rrl_config, "w") as f:
        f.write("[rrl]\nrate = 1000000\n")
    off = ["--metrics", "none"]
    pure = {"DNSBL_PURE_PYTHON": "1"}
    # (label, serve arguments, environment) of each setting, A first.
    settings: list[tuple[str, list[str], dict[str, str]]] = {
        "metrics": [("metrics off", off, {}),
                    ("metrics on", ["--metrics", f"127.0.0.1:{metrics_port}"], {})],
        "rrl": [("rrl off", off, {}), ("rrl on", [*off, "--config", rrl_config], {})],
        "rbldnsd": [("rbldnsd", ["rbldnsd"], {}), ("dnsbl compiled", off, {}),
                    ("dnsbl python", off, pure)],
        "batch": [("one at a time", [*off, "--udp-batch", "0"], {}), ("batched", off, {})],
        "workers": [("1 worker", off, {}),
                    (f"{args.workers} workers", [*off, "--workers", str(args.workers)], {})],
        "none": [("A", off, {}), ("B", off, {})],
    }[args.compare]
    labels = [label for label, _extra, _env in settings]
    if args.compare == "rbldnsd":
        os.chmod(work, 0o755)
        os.chmod(zone, 0o644)
    results: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    print(f"{os.path.getsize(zone) / 1e6:.0f} MB zone ({args.entries:,} singles), "
          f"{max(args.seconds, 0):.0f} s per run, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("run | setting | queries/s | avg ms | max ms | lost | CPU µs/query | RSS MB "
          "| start to first answer s | its CPU s | peak RSS MB | parse child peak MB "
          "| CPU s per process")
    try:
        for run in range(args.runs):
            for label, extra, env in settings:
                port = free_port()
                server = start_server(zone, port, extra, env)
                done = threading.Event()
                if args.compare == "metrics" and label == labels[1]:
                    threading.Thread(target=scraper, args=(metrics_port, done),
                                     daemon=True).start()
                try:
                    cpu = cpu_seconds(server.pid)
                    each = per_process_cpu(server.pid)
                    nan = float("nan")
                    result = (dnsperf(port, queries, args.seconds) if args.seconds > 0 else
                              {"qps": nan, "completed": nan, "lost": nan, "avg_ms": nan,
                               "max_ms": nan})
                    cpu = cpu_seconds(server.pid) - cpu
                    # Each process's share of the run: with --workers N, how
                    # evenly the kernel spread the flows over the workers.
                    each = [b - a for a, b in zip(each, per_process_cpu(server.pid),
                                                  strict=False)]
                    result["cpu_us"] = cpu / max(result["completed"], 1) * 1e6
                    result["rss"] = rss_mb(server.pid)
                    result["load"] = server.load_seconds  # type: ignore[attr-defined]
                    result["load_cpu"] = server.load_cpu  # type: ignore[attr-defined]
                    result["peak"] = server.peak_rss  # type: ignore[attr-defined]
                    result["parse_peak"] = server.parse_peak  # type: ignore[attr-defined]
                finally:
                    done.set()
                    stop(server)
                results[label].append(result)
                print(f"{run + 1} | {label} | {result['qps']:.0f} | "
                      f"{result['avg_ms']:.2f} | {result['max_ms']:.1f} | "
                      f"{result['lost']:.0f} | {result['cpu_us']:.1f} | {result['rss']:.0f} | "
                      f"{result['load']:.2f} | {result['load_cpu']:.2f} | "
                      f"{result['peak']:.0f} | {result['parse_peak']:.0f} | "
                      + " ".join(f"{c:.1f}" for c in each), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average now {os.getloadavg()[0]:.2f}")
    a = labels[0]
    for key, what in (("qps", "queries/s"), ("cpu_us", "server CPU µs/query"),
                      ("rss", "RSS MB"), ("load", "start to first answer s"),
                      ("load_cpu", "start-up CPU s"), ("peak", "peak RSS (VmHWM) MB"),
                      ("parse_peak", "parse child peak RSS MB")):
        ma = statistics.median(r[key] for r in results[a])
        print(f"median {what}: " + ", ".join(
            f"{b} {statistics.median(r[key] for r in results[b]):.2f}"
            + ("" if b == a or not ma else
               f" (ratio {statistics.median(r[key] for r in results[b]) / ma:.3f})")
            for b in labels))
    for b in labels[1:]:
        runs = [rb["qps"] / ra["qps"] for ra, rb in zip(results[a], results[b], strict=True)]
        print(f"queries/s ratios {b}/{a} run by run:", ", ".join(f"{p:.3f}" for p in runs),
              f"(median {statistics.median(runs):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
