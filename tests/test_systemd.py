"""systemd integration: sd_notify, socket activation, and the unit files."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    as_systemd_starts,
    ask_from_new_sockets,
    data,
    fields,
    notified,
    receive,
    scaled,
    udp_tcp_sockets,
    write,
)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_notify_ready_reloading_stopping(process, tmp_path, workers):
    with notified(process, tmp_path, "--check-interval", "0", "--workers", workers) as (
            notify, server, client, zone):
        assert "READY=1" in receive(notify, "READY=1")[-1]
        assert client.txt("2.0.0.127.bl.test") == ["one"]
        write(zone, data("two"))
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        server.proc.send_signal(signal.SIGHUP)
        reloading = receive(notify, "RELOADING=1")[-1]
        # Type=notify-reload tells this reload from an earlier one by its time.
        assert before <= int(fields(reloading)["MONOTONIC_USEC"]) <= (
            time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
        after = receive(notify, "READY=1")
        assert not any("RELOADING=1" in m.split("\n") for m in after), after  # said once
        # READY=1 means every process serves the new data: no waiting after it.
        replies = ask_from_new_sockets(client, "2.0.0.127.bl.test", 40)
        assert {b"".join(r.answer[0][0].strings) for r in replies} == {b"two"}
        server.proc.send_signal(signal.SIGTERM)
        receive(notify, "STOPPING=1")
        # That one SIGTERM ends it: stop() now sends none of its own, which a
        # slow host would deliver in the middle of the shutdown.
        assert server.proc.wait(scaled(20)) == 0
        assert server.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_watchdog_pings_while_serving(process, tmp_path, workers):
    with notified(process, tmp_path, "--workers", workers,
                  env={"WATCHDOG_USEC": "200000"}) as (notify, server, client, _):
        receive(notify, "READY=1")
        started = time.monotonic()
        pings = [m for m in receive(notify, "WATCHDOG=1") if "WATCHDOG=1" in m.split("\n")]
        while len(pings) < 4:
            pings += [m for m in receive(notify, "WATCHDOG=1", timeout=2)
                      if "WATCHDOG=1" in m.split("\n")]
        # Every half of WatchdogSec (0.1 s here), not once.
        assert time.monotonic() - started < scaled(5)
        assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
        assert server.stop() == 0


def test_notify_never_waits_for_a_reader_that_fell_behind(tmp_path, monkeypatch):
    """A notify socket nobody reads fills up; sd_notify must then drop the
    message rather than block the event loop (and every query behind it)."""
    from dnsbl import systemd

    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        started = time.monotonic()
        sent = [systemd.notify("WATCHDOG=1") for _ in range(5000)]  # bounded
        assert time.monotonic() - started < scaled(10)
        assert sent[0] and not sent[-1]  # the first went, the queue filled
        assert listener.recv(64) == b"WATCHDOG=1"


def test_socket_activation_uses_the_sockets_it_is_given(process, tmp_path, zone_file):
    udp, tcp = udp_tcp_sockets()
    port = udp.getsockname()[1]
    tcp.listen(16)
    try:
        server = process(
            "--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
            "--listen", "127.0.0.1:1",  # ignored: the inherited sockets win
            command=as_systemd_starts(udp, tcp), pass_fds=(udp.fileno(), tcp.fileno()))
        udp.close()
        tcp.close()
        client = server.wait_listening()
        assert any("(from systemd)" in line for line in server.log), "".join(server.log)
        assert (client.host, client.port) == ("127.0.0.1", port)
        assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
        assert client.query("2.0.0.127.bl.test", tcp=True).answer
    finally:
        udp.close()
        tcp.close()


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def test_unit_has_the_directives_operators_rely_on():
    """Runs everywhere, systemd or not."""
    service = (ROOT / "systemd" / "dnsbl.service").read_text().splitlines()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "DynamicUser=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "MemoryDenyWriteExecute=yes", "WatchdogSec=30",
                 # The query log's writable place under ProtectSystem=strict.
                 "LogsDirectory=dnsbl"):
        assert line in service, line
    socket_unit = (ROOT / "systemd" / "dnsbl.socket").read_text().splitlines()
    for line in ("ListenDatagram=53", "ListenStream=53"):
        assert any(entry.startswith(line) for entry in socket_unit), line
    readme = (ROOT / "README.md").read_text()
    assert "--query-log /var/log/dnsbl/queries.jsonl" in readme


@pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                    reason="systemd-analyze not installed (apt-get install systemd)")
def test_unit_files_verify(tmp_path):
    script = Path(sys.executable).parent / "dnsbl"
    for name in ("dnsbl.service", "dnsbl.socket"):
        text = (ROOT / "systemd" / name).read_text()
        # The unit names an installed path; verify it against this installation.
        (tmp_path / name).write_text(text.replace("/opt/dnsbl/bin/dnsbl", str(script)))
    # Documentation= names our man pages: let man(1) find them where make install puts them.
    for page, section in (("dnsbl.8", "man8"), ("dnsbl.toml.5", "man5")):
        (tmp_path / "man" / section).mkdir(parents=True)
        shutil.copy(ROOT / "docs" / page, tmp_path / "man" / section / page)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *([] if shutil.which("man") else ["--man=no"]),
         str(tmp_path / "dnsbl.service"), str(tmp_path / "dnsbl.socket")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "MANPATH": str(tmp_path / "man")})
    assert result.returncode == 0, result.stderr
    assert "dnsbl" not in result.stderr, result.stderr  # no warnings about our units


def test_sigterm_stops_within_a_second(process, zone_file):
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0")
    server.wait_listening()
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(scaled(5)) == 0
    assert time.monotonic() - started < scaled(1.0)


def test_notify_with_workers_comes_from_the_supervisor_once_all_are_ready(process, tmp_path):
    with notified(process, tmp_path, "--workers", "2") as (notify, server, client, _):
        seen = receive(notify, "READY=1")
        assert client.txt("2.0.0.127.bl.test") == ["one"]
        server.proc.send_signal(signal.SIGTERM)
        seen += receive(notify, "STOPPING=1")
        assert server.proc.wait(scaled(20)) == 0  # that SIGTERM ends it (stop() sends none)
        assert server.stop() == 0
    # One READY (the workers do not speak to systemd), and it came after both loaded.
    assert sum("READY=1" in m.split("\n") for m in seen) == 1
    assert sum(" ready" in line for line in server.log if "worker" in line) == 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_with_nothing_changed_still_says_reloading_then_ready(process, tmp_path,
                                                                     workers):
    # Type=notify-reload sends SIGHUP and waits for RELOADING=1 then READY=1:
    # without them for an unchanged zone, `systemctl reload` would hang.
    with notified(process, tmp_path, "--check-interval", "0", "--workers", workers) as (
            notify, server, client, _):
        receive(notify, "READY=1")
        for _ in range(2):
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            server.proc.send_signal(signal.SIGHUP)
            seen = receive(notify, "READY=1", timeout=5)
            states = [m for m in seen if "RELOADING=1" in m.split("\n")]
            assert len(states) == 1, seen  # once, not once per layer
            assert int(fields(states[0])["MONOTONIC_USEC"]) >= before
            assert seen.index(states[0]) < len(seen) - 1  # READY=1 came after it
        assert client.txt("2.0.0.127.bl.test") == ["one"]
        assert server.stop() == 0


def drain(sock: socket.socket) -> list[str]:
    """Every notification still queued on ``sock``."""
    sock.setblocking(False)
    seen = []
    while True:
        try:
            seen.append(sock.recv(4096).decode())
        except BlockingIOError:
            return seen


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("order", ["reload-then-stop", "stop-then-reload"])
def test_a_stop_meeting_a_reload_ends_cleanly_with_stopping_last(process, tmp_path, workers,
                                                                 order):
    """systemctl stop and reload at once: a reload under way ends (READY=1)
    before STOPPING=1, none starts after it, no task is left pending and
    every worker stops (Python 3.11's wait_for swallowed the stop's cancel)."""
    with notified(process, tmp_path, "--workers", workers) as (notify, server, _client, _):
        receive(notify, "READY=1")
        seen: list[str] = []
        if order == "reload-then-stop":
            server.proc.send_signal(signal.SIGHUP)
            server.proc.send_signal(signal.SIGTERM)
        else:
            server.proc.send_signal(signal.SIGTERM)
            seen = receive(notify, "STOPPING=1")
            server.proc.send_signal(signal.SIGHUP)  # ignored now, not fatal
        assert server.proc.wait(timeout=60) == 0
        seen += drain(notify)
    said = [line for m in seen for line in m.split("\n") if line.endswith("=1")]
    assert said[-1] == "STOPPING=1" and said.count("STOPPING=1") == 1, said
    if "RELOADING=1" in said:
        assert said.index("READY=1", said.index("RELOADING=1")) < said.index("STOPPING=1")
    server.stop()  # it has ended: this reads the rest of its log
    log = "".join(server.log)
    assert "Task was destroyed" not in log and "did not stop" not in log, log
