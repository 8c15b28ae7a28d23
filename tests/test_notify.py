"""NOTIFY as a primary's operator expects it, the way BIND sends it: at
start-up for each transferable form of a zone with the serial it serves
(a change made while the server was down reaches secondaries at once), and
when a zone missing at start-up first loads.

The server runs as a process; the "secondary" is a UDP socket of the test's
that answers each NOTIFY, so the sender stops trying."""

from __future__ import annotations

import os
import signal
import socket
from collections import Counter
from pathlib import Path

import dns.tsigkeyring

from tests.helpers import Process, Told, ask
from tests.test_xfr import DATA, SECRET, rpz_config

KEY = "xfr.example.org"
KEYRING = dns.tsigkeyring.from_text({f"{KEY}.": ("hmac-sha256", SECRET)})
ZONE = "bl.example.org."
ORIGIN = "rpz.bl.example.org."


def notifying(path: Path, secondary: socket.socket) -> Path:
    """The config at ``path`` with the zone's secondaries ``secondary``."""
    target = secondary.getsockname()[1]
    path.write_text(path.read_text().replace(
        "rpz = {", f'notify = ["127.0.0.1:{target}"]\nrpz = {{', 1))
    return path


def serve(process, path: Path, *extra: str) -> tuple[Process, int]:
    server = process("--config", str(path), "--listen", "127.0.0.1:0", "--check-interval", "0",
                     *extra)
    return server, server.wait_listening().port


def test_a_start_notifies_each_form_with_the_serial_it_serves(process, tmp_path, secondary):
    path = notifying(rpz_config(tmp_path, key=KEY), secondary)
    told = Told(secondary, KEYRING)  # signed with the zone's transfer key
    server, port = serve(process, path)
    told.until(lambda t: {(ZONE, 7), (ORIGIN, 7)} <= set(t))
    # Stopped, the data changed meanwhile, started again: the new serial,
    # which secondaries would otherwise learn only at their SOA refresh.
    server.stop()
    (tmp_path / "bl.zone").write_text(DATA + "192.0.2.1\n")
    server, port = serve(process, path)
    told.until(lambda t: {(ZONE, 8), (ORIGIN, 8)} <= set(t))
    assert ask(port, ZONE, "SOA").answer[0][0].serial == 8
    assert ask(port, ORIGIN, "SOA").answer[0][0].serial == 8
    assert Counter(told.told) == {(ZONE, 7): 1, (ORIGIN, 7): 1, (ZONE, 8): 1, (ORIGIN, 8): 1}


def test_a_zone_missing_at_the_start_is_told_when_it_first_loads(process, tmp_path, secondary):
    path = notifying(rpz_config(tmp_path), secondary)
    (tmp_path / "bl.zone").unlink()
    server, port = serve(process, path, "--allow-missing")
    told = Told(secondary)
    # Nothing to tell while it is not loaded. It loads: its NOTIFYs are the first.
    (tmp_path / "bl.zone").write_text(DATA)
    os.kill(server.proc.pid, signal.SIGHUP)  # the server this test started
    assert sorted(told.until(lambda t: len(t) >= 2)) == [(ZONE, 7), (ORIGIN, 7)]
    assert ask(port, ZONE, "SOA").answer[0][0].serial == 7
