"""--workers N: processes sharing the port, reloading together, summed metrics,
restarted when they crash, all stopped by one SIGTERM."""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import threading
import time

import dns.message
import dns.rcode
import pytest

from tests.helpers import (
    ask_from_new_sockets,
    data,
    fetch,
    notified,
    receive,
    samples,
    value,
    wait_for,
    write,
)


def worker_pids(log: list[str]) -> dict[int, int]:
    return {int(m[1]): int(m[2]) for line in log
            if (m := re.search(r"worker (\d+) started \(pid (\d+)\)", line))}


def start(process, tmp_path, *extra: str):
    zone = tmp_path / "bl.zone"
    write(zone, data("one"))
    server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                     "--metrics", "127.0.0.1:0", "--workers", "2", *extra)
    return server, server.wait_listening(), zone


def test_workers_share_the_port_reload_together_and_sum_metrics(process, tmp_path):
    server, client, zone = start(process, tmp_path, "--check-interval", "0")
    assert sorted(worker_pids(server.log)) == [1, 2]
    sent: list[int] = []
    replies = ask_from_new_sockets(client, "2.0.0.127.bl.test", 200, sent)
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in replies)
    found = samples(server.metrics_port)
    # 200 distinct source ports: both workers answered some; /metrics is the sum
    # (of every datagram sent: 200, and any sent again after a loss).
    assert value(found, "dnsbl_dns_requests_total", zone="bl.test", qtype="TXT",
                 proto="udp") == len(sent)
    assert value(found, "dnsbl_workers") == 2
    assert value(found, "dnsbl_zone_entries", zone="bl.test") == 10
    # SIGHUP to the supervisor reaches every worker.
    write(zone, data("two"))
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: all(b"".join(r.answer[0][0].strings) == b"two"
                         for r in ask_from_new_sockets(client, "2.0.0.127.bl.test", 40)),
             timeout=10)
    assert fetch(server.metrics_port, "/readyz")[0] == 200


@pytest.mark.slow
def test_crashed_worker_is_restarted(process, tmp_path):
    server, client, _ = start(process, tmp_path)
    pids = worker_pids(server.log)
    os.kill(pids[1], signal.SIGKILL)  # a worker this test's server started
    wait_for(lambda: value(samples(server.metrics_port), "dnsbl_worker_restarts_total") == 1,
             timeout=15)
    wait_for(lambda: fetch(server.metrics_port, "/readyz")[0] == 200, timeout=15)
    replies = ask_from_new_sockets(client, "2.0.0.127.bl.test", 100)
    assert all(r.answer for r in replies)
    assert value(samples(server.metrics_port), "dnsbl_workers") == 2


def test_sigterm_stops_every_worker(process, tmp_path):
    server, _, _ = start(process, tmp_path)
    pids = worker_pids(server.log)
    assert server.stop() == 0
    for pid in pids.values():
        try:
            os.kill(pid, 0)  # signal 0 only asks whether it exists
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker pid {pid} still runs after the supervisor stopped")


@pytest.mark.slow
def test_a_worker_that_cannot_load_stops_start_up_with_one_error(process, tmp_path):
    # A file that opens but cannot be read: found by the workers, not before.
    zone = tmp_path / "bl.zone.gz"
    zone.write_bytes(gzip.compress(b"127.0.0.2\n" * 1000)[:30])
    server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                     "--workers", "2")
    assert server.proc.wait(timeout=30) == 3
    server.stop()
    errors = [line for line in "".join(server.log).splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors  # said once by the supervisor, not by each worker
    assert f"cannot start: {zone}:1: read failed" in errors[0]
    assert "stopped" not in "".join(server.log)


class Pings:
    """Counts WATCHDOG=1 datagrams on ``notify``, read by a thread as they come:
    a queue left unread fills, and then the sender's next one would block."""

    def __init__(self, notify: socket.socket) -> None:
        self.times: list[float] = []
        self._notify = notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self._notify.settimeout(0.05)
        while not self._stop.is_set():
            try:
                message = self._notify.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:  # closed under it: the test has ended
                return
            if "WATCHDOG=1" in message.split("\n"):
                self.times.append(time.monotonic())

    def since(self, when: float) -> int:
        return sum(1 for t in list(self.times) if t >= when)

    def wait(self, count: int, within: float) -> None:
        """Until ``count`` more pings came; fails after ``within`` (scaled)."""
        now = time.monotonic()
        wait_for(lambda: self.since(now) >= count, within, what=f"{count} WATCHDOG=1 pings")

    def during(self, seconds: float) -> int:
        """Pings in the next ``seconds``: for showing there are none."""
        since = time.monotonic()
        time.sleep(seconds)
        return self.since(since)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.slow
def test_a_stopped_worker_is_unhealthy_and_holds_back_the_watchdog(process, tmp_path,
                                                                  cleanup):

    with notified(process, tmp_path, "--workers", "2", "--metrics", "127.0.0.1:0",
                  env={"WATCHDOG_USEC": "200000"}) as (notify, server, client, _):
        receive(notify, "READY=1")
        pings = Pings(notify)
        cleanup.callback(pings.close)
        pings.wait(3, within=1.5)  # every 0.1 s
        pids = worker_pids(server.log)
        os.kill(pids[1], signal.SIGSTOP)  # a worker this test's server started
        try:
            stopped = time.monotonic()
            wait_for(lambda: fetch(server.metrics_port, "/healthz")[0] == 503, timeout=5)
            status, _, body = fetch(server.metrics_port, "/healthz")
            assert status == 503 and "worker 1: has not answered" in body
            status, _, body = fetch(server.metrics_port, "/readyz")
            assert status == 503 and "worker 1: has not answered" in body
            # The scrape no longer waits for it, and counts only the one answering.
            asked = time.monotonic()
            assert value(samples(server.metrics_port), "dnsbl_workers") == 1
            assert time.monotonic() - asked < 1.9  # not the 2 s a reply may take
            # No WATCHDOG=1 while it does not answer: systemd's watchdog can act.
            assert pings.during(1.0) == 0
            assert time.monotonic() - stopped < 8  # all before the supervisor kills it
        finally:
            os.kill(pids[1], signal.SIGCONT)
        wait_for(lambda: fetch(server.metrics_port, "/healthz")[0] == 200, timeout=5)
        assert fetch(server.metrics_port, "/readyz")[0] == 200
        found = samples(server.metrics_port)
        assert value(found, "dnsbl_workers") == 2
        assert value(found, "dnsbl_worker_restarts_total") == 0  # it came back by itself
        pings.wait(3, within=1.5)  # pinging again
        pings.close()
        assert all(r.answer for r in ask_from_new_sockets(client, "2.0.0.127.bl.test", 20))
        assert server.stop() == 0


@pytest.mark.slow
def test_a_worker_silent_for_long_is_killed_and_restarted(process, tmp_path):
    server, client, _ = start(process, tmp_path)
    pids = worker_pids(server.log)
    os.kill(pids[2], signal.SIGSTOP)  # a worker this test's server started
    try:
        wait_for(lambda: value(samples(server.metrics_port), "dnsbl_worker_restarts_total") == 1,
                 timeout=20)
    finally:
        try:
            os.kill(pids[2], signal.SIGCONT)
        except ProcessLookupError:
            pass  # killed, as it should be
    wait_for(lambda: fetch(server.metrics_port, "/readyz")[0] == 200, timeout=15)
    assert value(samples(server.metrics_port), "dnsbl_workers") == 2
    # Its queued queries and new ones are answered by the worker started in its place.
    assert all(r.answer for r in ask_from_new_sockets(client, "2.0.0.127.bl.test", 40))
    with pytest.raises(ProcessLookupError):
        os.kill(pids[2], 0)  # signal 0 only asks whether it exists
    assert server.stop() == 0
    assert any(f"worker 2 (pid {pids[2]}) has not answered for" in line
               and "killing it" in line for line in server.log)


def test_the_supervisor_folds_each_series_by_its_rule(process, tmp_path, cleanup):
    """Over HTTP with 2 workers on different data: counts and connections are
    summed, serial and entries are the lowest worker's, data age the oldest's."""
    soa = "$SOA 60 ns.bl.test. hostmaster.bl.test. {} 3600 600 86400 60"
    zone = tmp_path / "bl.zone"
    write(zone, [soa.format(1), *data("one", 10)])
    hour_ago = time.time() - 3600
    os.utime(zone, (hour_ago, hour_ago))
    config = tmp_path / "dnsbl.toml"
    # Connections stay open while the test counts them, however slow the host.
    config.write_text(f'tcp_idle_timeout = 600\n[[zone]]\nname = "bl.test"\ntype = "ip4set"\n'
                      f'files = ["{zone}"]\n')
    # No file checks: a worker keeps the data it loaded until told.
    server = process("--config", str(config), "--listen", "127.0.0.1:0", "--metrics",
                     "127.0.0.1:0", "--workers", "2", "--check-interval", "0")
    client = server.wait_listening()
    write(zone, [soa.format(2), *data("two", 20)])
    # Worker 1, restarted, loads the new data; worker 2 still serves the old.
    os.kill(worker_pids(server.log)[1], signal.SIGKILL)  # a worker this test's server started
    wait_for(lambda: value(samples(server.metrics_port), "dnsbl_worker_restarts_total") == 1,
             timeout=15)
    wait_for(lambda: fetch(server.metrics_port, "/readyz")[0] == 200, timeout=15)
    serials = {r.authority[0][0].serial
               for r in ask_from_new_sockets(client, "9.9.9.9.bl.test", 40)}
    assert serials == {1, 2}  # both answer, each from its own data
    found = samples(server.metrics_port)
    assert value(found, "dnsbl_zone_soa_serial", zone="bl.test") == 1  # min
    assert value(found, "dnsbl_zone_entries", zone="bl.test") == 10  # min
    dataset = f"ip4set:{zone}"
    assert value(found, "dnsbl_dataset_entries", dataset=dataset) == 10  # min
    assert value(found, "dnsbl_dataset_data_age_seconds", dataset=dataset) >= 3600  # max
    assert value(found, "dnsbl_dataset_reloads_total", dataset=dataset) == 2  # sum: one each
    # 16 connections from distinct ports are spread over both: the gauge is their sum.
    for _ in range(16):
        cleanup.enter_context(socket.create_connection((client.host, client.port)))
    wait_for(lambda: value(samples(server.metrics_port), "dnsbl_tcp_connections") == 16,
             timeout=10, what="16 TCP connections counted")
