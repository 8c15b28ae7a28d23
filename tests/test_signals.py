"""rbldnsd's signals: SIGHUP reloads, SIGUSR1 logs the statistics, SIGUSR2 logs
and resets them; neither of the last two changes the data or stops the server.
And the reload lines operators read: nothing changed, recovered."""

from __future__ import annotations

import re
import signal

import pytest

from tests.helpers import LISTED, ask_from_new_sockets, data, write


def start(process, tmp_path, workers: str, *extra: str):
    zone = tmp_path / "bl.zone"
    write(zone, data("full", 100))
    server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                     "--workers", workers, *extra)
    return server, server.wait_listening(), zone


def queries(lines: list[str]) -> list[int]:
    """The query counts of bl.test in these statistics lines."""
    return [int(m[1]) for line in lines if (m := re.search(r"bl\.test: (\d+) queries", line))]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_usr1_logs_statistics_usr2_resets_them_and_neither_touches_data(
        process, tmp_path, workers):
    server, client, zone = start(process, tmp_path, workers, "--check-interval", "0.1")
    replies = ask_from_new_sockets(client, LISTED, 30)  # TXT, from 30 source ports
    assert all(r.answer for r in replies)
    # A truncated file is refused; SIGUSR1 must not let it in (it once did).
    write(zone, data("shrunk", 5))
    server.wait_log("would shrink from 100 to 5 entries", timeout=30)
    mark = len(server.log)
    server.proc.send_signal(signal.SIGUSR1)
    lines = server.wait_log("zone bl.test:", int(workers), mark, timeout=30)
    assert sum(queries(lines)) == 30  # each worker its share
    assert all("since start" in line and "100 entries" in line for line in lines)
    assert client.txt(LISTED) == ["full"]
    # SIGUSR2: logged, then reset: the next SIGUSR1 counts from there.
    mark = len(server.log)
    server.proc.send_signal(signal.SIGUSR2)
    lines = server.wait_log("zone bl.test:", int(workers), mark, timeout=30)
    assert sum(queries(lines)) == 31  # and the TXT just asked
    server.wait_log("statistics reset", int(workers), mark, timeout=30)
    mark = len(server.log)
    server.proc.send_signal(signal.SIGUSR1)
    lines = server.wait_log("zone bl.test:", int(workers), mark, timeout=30)
    assert queries(lines) == [0] * int(workers)
    assert all("since the last reset" in line for line in lines)
    assert client.txt(LISTED) == ["full"]
    assert server.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_with_nothing_changed_logs_one_line(process, tmp_path, workers):
    server, client, _zone = start(process, tmp_path, workers, "--check-interval", "0")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("SIGHUP: no zone file changed", timeout=30)
    assert client.txt(LISTED) == ["full"]
    assert server.stop() == 0
    assert sum("no zone file changed" in line for line in server.log) == 1


def test_a_reload_that_recovers_says_after_how_many_failures(process, tmp_path):
    server, client, zone = start(process, tmp_path, "1", "--check-interval", "0.1")
    for count in (5, 6):
        write(zone, data("shrunk", count))
        server.wait_log(f"would shrink from 100 to {count} entries", timeout=30)
    write(zone, data("fixed", 100))
    [line] = server.wait_log("reloaded zone bl.test", timeout=30)
    assert line.rstrip().endswith("recovered after 2 failed loads"), line
    assert client.txt(LISTED) == ["fixed"]
