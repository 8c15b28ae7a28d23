"""Zones reload on change, over real sockets; bad data never replaces good data."""

from __future__ import annotations

import gzip
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import dns.rcode
import pytest

from dnsbl.config import Listen, ServerConfig, ZoneConfig, parse_zone_spec
from tests.helpers import (
    LISTED,
    ServerThread,
    data,
    scaled,
    stop_all,
    timestamp_line,
    wait_for,
    write,
)


@pytest.fixture
def watched(tmp_path):
    """A server for bl.test over one file, checking it every 0.1 s."""
    started: list[ServerThread] = []

    def _start(lines: list[str], interval: float = 0.1, ratio: float = 0.5, zones=("bl.test",),
               compress: bool = False, path: Path | None = None):
        path = path or tmp_path / "bl.zone"
        write(path, lines, compress=compress)
        config = ServerConfig(
            listen=(Listen("127.0.0.1", 0),), check_interval=interval,
            zones=tuple(ZoneConfig(z, parse_zone_spec(f"{z}:ip4set:{path}").datasets, ratio)
                        for z in zones))
        thread = ServerThread(config)
        started.append(thread)
        return thread, thread.start(), path

    yield _start
    stop_all([thread.stop for thread in started])


@pytest.fixture(params=["inotify", "polling"])
def notice(request, monkeypatch):
    """How changes are noticed: inotify (Linux) besides polling, or polling alone."""
    if request.param == "polling":
        monkeypatch.setattr("dnsbl.watch._libc", lambda: None)
    elif not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux only")
    return request.param


@pytest.mark.parametrize("how", ["rename", "in place"])
def test_rewritten_file_is_served_within_the_check_interval(watched, notice, how):
    thread, client, path = watched(data("old"))
    assert client.txt(LISTED) == ["old"]
    time.sleep(0.05)  # make sure the mtime can move even on coarse clocks
    write(path, data("new") + ["192.0.2.1"], how)
    waited = wait_for(lambda: client.txt(LISTED) == ["new"])
    assert waited < scaled(2.0)
    assert client.a("1.2.0.192.bl.test") == ["127.0.0.2"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
@pytest.mark.parametrize("how", ["rename", "in place", "through a symlink"])
def test_a_replaced_file_is_noticed_at_once_between_polls(watched, tmp_path, how):
    served = None
    if how == "through a symlink":  # the configured name links to a file elsewhere
        (tmp_path / "feed").mkdir()
        served = tmp_path / "linked.zone"
        served.symlink_to(tmp_path / "feed" / "bl.zone")
    thread, client, path = watched(data("old"), interval=3600, path=served)
    path = path.resolve()
    time.sleep(0.05)
    write(path, data("new"), "in place" if how == "in place" else "rename")
    assert wait_for(lambda: client.txt(LISTED) == ["new"]) < scaled(5.0)  # polling: an hour


def looks(thread: ServerThread) -> list[float]:
    """The times at which the server's reloader looks at the files, from now on."""
    reloader = thread.server.reloader
    checked, changed = [], reloader.changed
    reloader.changed = lambda: checked.append(time.monotonic()) or changed()
    return checked


def test_polling_checks_every_interval(watched, monkeypatch):
    monkeypatch.setattr("dnsbl.watch._libc", lambda: None)
    thread, client, path = watched(data("old"), interval=0.5)
    checked = looks(thread)
    # At 0, 0.5 .. 2.5 s: four checks within 2.7 s (scaled to the host).
    wait_for(lambda: len(checked) >= 4, timeout=2.7, what="four checks")


def _reads_any_file() -> bool:
    """Root (CAP_DAC_OVERRIDE) opens a file of mode 000."""
    with tempfile.NamedTemporaryFile() as f:
        os.chmod(f.name, 0)
        try:
            open(f.name, "rb").close()
        except PermissionError:
            return False
    return True


@pytest.mark.skipif(_reads_any_file(), reason="this user opens any file (root): run as "
                    "another user, or under setpriv --bounding-set -dac_override")
def test_an_unreadable_file_is_tried_again_once_it_opens(watched):
    thread, client, path = watched(data("old"))
    tmp = path.with_name("new.tmp")
    write(tmp, data("new"))
    tmp.chmod(0)
    os.replace(tmp, path)
    status = thread.server.reloader.status[("ip4set", (str(path),))]
    checked = looks(thread)
    wait_for(lambda: status.failures.get("open") == 1)
    seen = len(checked)
    wait_for(lambda: len(checked) >= seen + 3, what="three more checks")
    # Still one failure counted, the old data served.
    assert status.failures == {"open": 1}
    assert client.txt(LISTED) == ["old"]
    path.chmod(0o644)  # changes nothing that is compared: mtime, size, inode
    wait_for(lambda: client.txt(LISTED) == ["new"])


@pytest.mark.parametrize("damage, reason", [
    ("delete", "open"),
    ("truncated gzip", "read"),
    ("garbage", "shrink"),
    ("90% shrunk", "shrink"),
])
def test_bad_new_data_keeps_the_previous_answers(watched, damage, reason):
    thread, client, path = watched(data("good", 100))
    before = client.a("50.0.0.10.bl.test"), client.txt(LISTED)
    if damage == "delete":
        path.unlink()
    elif damage == "truncated gzip":
        path.write_bytes(gzip.compress("\n".join(data("gz", 100)).encode())[:40])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff garbage ###\n" * 200)
    else:
        write(path, data("shrunk", 10))
    key = next(iter(thread.server.reloader.status))
    status = thread.server.reloader.status[key]
    wait_for(lambda: status.failures.get(reason, 0) >= 1)
    assert (client.a("50.0.0.10.bl.test"), client.txt(LISTED)) == before
    assert client.query(LISTED).rcode() == dns.rcode.NOERROR
    # The next good file is picked up.
    write(path, data("fixed", 100))
    wait_for(lambda: client.txt(LISTED) == ["fixed"])
    assert status.failures[reason] == 1  # a broken file is not retried until it changes


def test_shrink_guard_can_be_overridden_or_turned_off(watched):
    thread, client, path = watched(data("big", 100))
    write(path, data("small", 5))
    key = next(iter(thread.server.reloader.status))
    wait_for(lambda: thread.server.reloader.status[key].failures.get("shrink", 0) == 1)
    assert client.txt(LISTED) == ["big"]
    # What `dnsbl ctl reload --accept-shrink bl.test` does.
    result = thread.call(lambda: thread.server.reloader.check_soon("bl.test", True))
    assert result.reloaded == ["bl.test"]
    assert client.txt(LISTED) == ["small"]

    thread2, client2, path2 = watched(data("big", 100), ratio=0.0)
    write(path2, data("empty", 1))
    wait_for(lambda: client2.txt(LISTED) == ["empty"])


def test_dataset_shared_by_two_zones_reloads_once(watched):
    thread, client, path = watched(data("v1"), zones=("a.test", "b.test"))
    write(path, data("v2"))
    wait_for(lambda: client.txt("2.0.0.127.a.test") == ["v2"])
    assert client.txt("2.0.0.127.b.test") == ["v2"]
    [status] = thread.server.reloader.status.values()
    assert status.loads == 2  # the start-up load and one reload


def test_serial_moves_when_data_changes(watched):
    thread, client, path = watched(data("one"))
    first = client.query("bl.test", "SOA").answer[0][0].serial
    os.utime(path, (first - 100, first - 100))  # an older mtime is a change too
    wait_for(lambda: client.query("bl.test", "SOA").answer[0][0].serial == first - 100)


def test_check_once_is_a_step_tests_can_drive(watched):
    thread, client, path = watched(data("before"), interval=0)
    write(path, data("after"))
    time.sleep(0.3)
    assert client.txt(LISTED) == ["before"]  # no polling
    assert thread.check() is True
    assert client.txt(LISTED) == ["after"]
    assert thread.check() is False  # nothing changed since


def test_sighup_reloads_with_polling_disabled(process, tmp_path):
    path = tmp_path / "bl.zone"
    write(path, data("before"))
    server = process("--zone", f"bl.test:ip4set:{path}", "--listen", "127.0.0.1:0",
                     "--check-interval", "0")
    client = server.wait_listening()
    write(path, data("after"))
    time.sleep(1.5)
    assert client.txt(LISTED) == ["before"]
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: client.txt(LISTED) == ["after"]) < scaled(1.0)
    assert server.stop() == 0
    assert any("reloaded zone bl.test: 10 entries" in line for line in server.log)


@pytest.mark.slow
def test_sighup_tries_again_what_failed_before(process, tmp_path):
    """Data stamped a little in the future is refused; once that time has come,
    the unchanged file loads on SIGHUP (polling waits for a change)."""
    path = tmp_path / "bl.zone"
    write(path, data("before"))
    server = process("--zone", f"bl.test:ip4set:{path}", "--listen", "127.0.0.1:0",
                     "--check-interval", "0.1")
    client = server.wait_listening()
    # Far enough ahead for this host to notice the file first; a whole second:
    # the stamp has no fraction.
    due = math.ceil(time.time() + scaled(3))
    stamp = time.strftime("%Y:%m:%d:%H:%M:%S", time.gmtime(due))
    write(path, [f"$TIMESTAMP {stamp}"] + data("after"))
    server.wait_log("$TIMESTAMP is in the future")
    assert time.time() < due, "refused only once its time had come: a slow host"
    time.sleep(max(0.0, due - time.time()) + 1.2)  # its time comes, and polls pass
    assert client.txt(LISTED) == ["before"]  # refused, and not tried again by polling
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: client.txt(LISTED) == ["after"]) < scaled(2.0)
    assert server.stop() == 0
    assert any("$TIMESTAMP is in the future" in line for line in server.log)


def test_missing_zone_at_start_with_allow_missing(process, tmp_path, zone_file):
    path = tmp_path / "later.zone"
    good = zone_file(["127.0.0.2"])
    server = process("--zone", f"late.test:ip4set:{path}", "--zone", f"ok.test:ip4set:{good}",
                     "--listen", "127.0.0.1:0", "--allow-missing", "--check-interval", "0.1")
    client = server.wait_listening()
    assert client.query("2.0.0.127.late.test").rcode() == dns.rcode.SERVFAIL
    assert client.a("2.0.0.127.ok.test") == ["127.0.0.2"]
    write(path, data("arrived"))
    wait_for(lambda: client.query("2.0.0.127.late.test").rcode() == dns.rcode.NOERROR)
    assert client.txt(LISTED.replace("bl", "late")) == ["arrived"]


@pytest.mark.slow
def test_queries_during_reloads_are_all_answered_consistently(watched):
    """A steady stream of queries across several reloads: every one answered, each
    answer wholly from one generation, generations never going backwards."""
    generations = 6

    def generation(g: int) -> list[str]:
        return [f":{g + 2}:generation {g}", "127.0.0.2"] + [
            f"10.{i}.0.0/16" for i in range(1, 200)]

    thread, client, path = watched(generation(0))
    seen, written, deadline = 0, 0, time.monotonic() + scaled(30.0)
    asked = answered = 0
    next_write = time.monotonic() + 0.8
    # Until every generation was served and 600 questions were asked, however
    # long this host takes (bounded).
    while (seen < generations - 1 or asked <= 600) and time.monotonic() < deadline:
        if written < generations - 1 and time.monotonic() >= next_write:
            written += 1
            write(path, generation(written))
            next_write = time.monotonic() + 0.8
        name = LISTED if asked % 2 else f"{asked % 250}.0.{asked % 199 + 1}.10.bl.test"
        r = client.query(name, "ANY", timeout=scaled(3))  # raises on a lost query (one try)
        asked += 1
        assert r.rcode() == dns.rcode.NOERROR, r
        [a] = [rd.address for rrset in r.answer if rrset.rdtype == 1 for rd in rrset]
        [txt] = [b"".join(rd.strings).decode() for rrset in r.answer if rrset.rdtype == 16
                 for rd in rrset]
        g = int(a.rsplit(".", 1)[1]) - 2
        assert txt == f"generation {g}"  # A and TXT from the same data
        assert seen <= g <= written  # never older than what was already served
        seen = g
        answered += 1
        time.sleep(0.003)  # a few hundred queries a second
    assert answered == asked > 600
    assert seen == generations - 1  # every reload was seen through


def test_file_changed_while_read_is_refused_with_advice(tmp_path):
    from dnsbl.datasets import reader
    from dnsbl.zonefile import ZoneFileError

    path = tmp_path / "bl.zone"
    write(path, data("x", 50))
    entries = reader("ip4set", [str(path)]).entries()
    next(entries)
    with open(path, "a") as f:  # a writer appending as we read
        f.write("192.0.2.1\n")
    with pytest.raises(ZoneFileError) as exc:
        list(entries)
    assert exc.value.reason == "changed"
    assert "write to a temporary file and rename it" in str(exc.value)


def test_timestamp_expiry_turns_to_servfail_and_fresh_data_recovers(watched):
    thread, client, path = watched([timestamp_line(expires_in=2)] + data("expiring"))
    assert client.txt(LISTED) == ["expiring"]
    wait_for(lambda: client.query(LISTED).rcode() == dns.rcode.SERVFAIL)
    write(path, data("fresh"))
    wait_for(lambda: client.query(LISTED).rcode() == dns.rcode.NOERROR)
    assert client.txt(LISTED) == ["fresh"]
