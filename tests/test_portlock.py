"""Port ownership: a second instance on an address one of ours serves refuses
to start, whatever the number of workers on either side."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, as_systemd_starts, free_port, udp_tcp_sockets


def second_instance(zone: str, listen: str, workers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dnsbl", "serve", "--zone", f"bl.test:ip4set:{zone}",
         "--listen", listen, "--metrics", "none", "--control", "none", "--workers", workers],
        cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def serving(process, zone_file):
    """serving(workers, port=None) -> (server, client, zone file, port): an
    instance on 127.0.0.1:port (a free one by default)."""
    zone = zone_file(["127.0.0.2"])

    def _start(workers: str, port: int | None = None):
        port = port or free_port()
        server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", f"127.0.0.1:{port}",
                         "--workers", workers)
        return server, server.wait_listening(), zone, port

    return _start


@pytest.mark.parametrize(("first", "second"), [("1", "1"), ("2", "2"), ("1", "2"), ("2", "1")])
def test_second_instance_on_our_port_exits_3_with_one_line(serving, first, second):
    server, client, zone, port = serving(first)
    result = second_instance(zone, f"127.0.0.1:{port}", second)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: another dnsbl (pid {server.proc.pid}" in lines[0]
    # The first one still answers every query, alone.
    for _ in range(20):
        assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    assert server.proc.poll() is None


def test_the_wildcard_address_covers_a_specific_one(serving):
    _server, _client, zone, port = serving("2")
    result = second_instance(zone, f"0.0.0.0:{port}", "2")
    assert result.returncode == 3
    assert f"serves 127.0.0.1:{port} (the same port" in result.stderr


def test_the_claim_ends_with_the_process_even_after_kill_9(serving):
    first, _client, _zone, port = serving("1")
    first.proc.send_signal(signal.SIGKILL)  # a process this test started
    first.proc.wait(10)
    _again, client, _zone, _port = serving("2", port)
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]


def test_the_claim_ends_when_a_supervisor_stops(serving):
    first, _client, _zone, port = serving("2")
    assert first.stop() == 0
    _again, client, _zone, _port = serving("2", port)
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]


def test_sockets_from_systemd_are_claimed_too(process, zone_file):
    udp, tcp = udp_tcp_sockets()
    port = udp.getsockname()[1]
    tcp.listen(16)
    try:
        zone = zone_file(["127.0.0.2"])
        server = process("--zone", f"bl.test:ip4set:{zone}", "--workers", "2",
                         command=as_systemd_starts(udp, tcp),
                         pass_fds=(udp.fileno(), tcp.fileno()))
        udp.close()
        tcp.close()
        assert server.wait_listening().a("2.0.0.127.bl.test") == ["127.0.0.2"]
        result = second_instance(zone, f"127.0.0.1:{port}", "2")
        assert result.returncode == 3
        assert f"another dnsbl (pid {server.proc.pid}" in result.stderr
    finally:
        udp.close()
        tcp.close()
