"""`dnsbl ctl` against real servers (one process, or a supervisor and its
workers) over their control socket."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dnsbl.answer import FAST_PATH
from tests.helpers import LISTED, ROOT, data, free_port, run_cli, write


def ctl(control: Path | None, *args: str, env: dict[str, str] | None = None,
        command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    where = ["--control", str(control)] if control is not None else []
    return subprocess.run(
        (command or []) + [sys.executable, "-m", "dnsbl", "ctl", *where, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})})


@pytest.fixture
def controlled(process, tmp_path):
    """controlled(workers, lines, *args) -> (server, client, zone file, control socket)."""

    def _start(workers: str = "1", lines: list[str] | None = None, *args: str):
        zone = tmp_path / "bl.zone"
        write(zone, lines or data("full", 100))
        control = tmp_path / "run" / "control"
        server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                         "--check-interval", "0", "--workers", workers,
                         "--control", str(control), *args)
        return server, server.wait_listening(), zone, control

    return _start


@pytest.mark.parametrize("workers", ["1", "2"])
def test_status_names_zones_serials_entries_and_workers(controlled, workers):
    server, _client, zone, control = controlled(workers)
    # Made for the server's user alone.
    assert stat.S_IMODE(control.stat().st_mode) == 0o600
    assert stat.S_IMODE(control.parent.stat().st_mode) == 0o700
    result = ctl(control, "status")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"dnsbl pid {server.proc.pid}" in out and f"answering with {FAST_PATH}" in out
    assert "zone bl.test: loaded, serial " in out and "100 entries" in out
    assert f"ip4set {zone}: 100 entries, 1 load(s)" in out
    assert out.count(", answering, 0 restart(s)") == (2 if workers == "2" else 0)
    reply = json.loads(ctl(control, "status", "--json").stdout)
    [entry] = reply["zones"]
    assert (entry["name"], entry["entries"], entry["last_result"]) == ("bl.test", 100, "ok")
    assert entry["serial"] == int(zone.stat().st_mtime)
    assert reply["answering"] == FAST_PATH
    assert (len(reply["workers"]) if reply["workers"] else 1) == int(workers)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_reload_then_accept_shrink_explicitly(controlled, workers):
    server, client, zone, control = controlled(workers)
    write(zone, data("changed", 100))
    result = ctl(control, "reload")
    assert (result.returncode, result.stdout) == (0, "reloaded zone bl.test\n"), result.stderr
    assert client.txt(LISTED) == ["changed"]  # every worker has it once ctl returns
    # A truncated feed: refused, and said so (exit 1).
    write(zone, data("shrunk", 5))
    result = ctl(control, "reload", "BL.Test.")  # a zone name as DNS names go
    assert result.returncode == 1
    assert "would shrink from 100 to 5 entries" in result.stderr
    assert "dnsbl ctl reload --accept-shrink bl.test" in result.stderr
    assert client.txt(LISTED) == ["changed"]
    status = json.loads(ctl(control, "status", "--json").stdout)
    assert "shrink" in status["zones"][0]["last_result"]
    # The query shows what the server answers, not what the files say.
    result = ctl(control, "query", "127.0.0.2")
    assert result.returncode == 0
    assert '"changed"' in result.stdout and "changed since this data loaded" in result.stdout
    # Accepted on request, for that reload only.
    result = ctl(control, "reload", "--accept-shrink", "bl.test")
    assert result.returncode == 0, result.stderr
    assert client.txt(LISTED) == ["shrunk"]
    write(zone, data("full again", 100))
    assert ctl(control, "reload").returncode == 0
    write(zone, data("shrunk again", 5))
    assert ctl(control, "reload").returncode == 1
    assert client.txt(LISTED) == ["full again"]  # guarded again
    # With nothing to rebuild an accept lapses, and says so.
    write(zone, data("full again", 100))
    assert ctl(control, "reload").returncode == 0
    result = ctl(control, "reload", "--accept-shrink", "bl.test")
    assert result.returncode == 1
    assert "nothing to rebuild" in result.stderr
    assert server.proc.poll() is None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_query_answers_from_the_running_server(controlled, workers):
    _server, _client, zone, control = controlled(workers, [":3:Botnet $", "198.51.100.0/24"])
    result = ctl(control, "query", "198.51.100.7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [";; 7.100.51.198.bl.test", "A: NOERROR"]
    assert f"ip4set {zone}:2: 198.51.100.0/24 -> A 127.0.0.3 TXT 'Botnet 198.51.100.7'" \
        in result.stdout
    unlisted = ctl(control, "query", "192.0.2.1")
    assert unlisted.returncode == 1 and "A: NXDOMAIN" in unlisted.stdout
    bad = ctl(control, "query", "999.1.1.1")
    assert (bad.returncode, bad.stderr) == (1, "dnsbl ctl: '999.1.1.1' is not a valid IP "
                                               "address\n")


def test_exit_codes_for_usage_and_an_unreachable_server(controlled, tmp_path):
    _server, _client, _zone, control = controlled()
    assert ctl(control, "reload", "no.such.zone").returncode == 1
    usage = ctl(control, "reload", "--accept-shrink")
    assert usage.returncode == 2 and "needs the ZONE" in usage.stderr
    assert ctl(control, "frobnicate").returncode == 2
    gone = ctl(tmp_path / "nothing-here", "status")
    assert gone.returncode == 3 and "cannot reach the server" in gone.stderr


def test_default_path_is_the_runtime_directory(process, tmp_path, zone_file):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = {"RUNTIME_DIRECTORY": str(runtime)}  # as systemd's RuntimeDirectory= sets it
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", env=env)
    server.wait_listening()
    assert (runtime / "control").is_socket()
    assert "zone bl.test: loaded" in ctl(None, "status", env=env).stdout
    # A second server finds the default place taken: it serves without one.
    other = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                    "--listen", "127.0.0.1:0", env=env)
    other.wait_listening()
    assert any("in use by another dnsbl" in line and "serving without one" in line
               for line in other.log)
    assert ctl(None, "status", env=env).stdout.startswith(f"dnsbl pid {server.proc.pid}")
    assert server.stop() == 0
    assert not (runtime / "control").exists()  # removed on the way out


def test_a_control_path_given_and_in_use_stops_start_up(controlled, zone_file):
    _server, _client, _zone, control = controlled()
    result = subprocess.run(
        [sys.executable, "-m", "dnsbl", "serve", "--zone",
         f"bl.test:ip4set:{zone_file(['127.0.0.2'])}", "--listen", f"127.0.0.1:{free_port()}",
         "--metrics", "none", "--workers", "1", "--control", str(control)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert f"control socket {control} is in use by another dnsbl" in line


def test_control_path_from_the_configuration(process, tmp_path, zone_file):
    config = tmp_path / "dnsbl.toml"
    config.write_text('control = "ctl.sock"\n[[zone]]\nname = "bl.test"\ntype = "ip4set"\n'
                      f'files = ["{zone_file(["127.0.0.2"])}"]\n')
    server = process("--config", str(config), "--listen", "127.0.0.1:0", "--control",
                     str(tmp_path / "ctl.sock"))  # the fixture would say none otherwise
    server.wait_listening()
    result = ctl(None, "--config", str(config), "status")
    assert result.returncode == 0 and "zone bl.test" in result.stdout


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                    reason="needs root and setpriv (util-linux) to be another user")
def test_other_users_are_refused(process, zone_file):
    shared = Path(tempfile.mkdtemp(prefix="dnsbl-ctl-"))
    try:
        shared.chmod(0o755)
        control = shared / "control"
        server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                         "--listen", "127.0.0.1:0", "--control", str(control))
        server.wait_listening()
        nobody = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]
        # The socket's mode keeps them out...
        result = ctl(control, "status", command=nobody)
        assert result.returncode == 3 and "Permission denied" in result.stderr
        # ...and were it opened up, the server checks who asks (SO_PEERCRED).
        control.chmod(0o666)
        result = ctl(control, "status", command=nobody)
        assert result.returncode == 1
        assert "permission denied: uid 65534" in result.stderr
        assert ctl(control, "status").returncode == 0  # root may
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_the_unit_gives_the_default_place():
    """Under systemd the default control socket is /run/dnsbl/control, which
    `dnsbl ctl` run as root finds without options."""
    unit = (ROOT / "systemd" / "dnsbl.service").read_text().splitlines()
    assert "RuntimeDirectory=dnsbl" in unit
    assert "RuntimeDirectoryMode=0700" in unit


def test_help_names_the_commands_and_exit_codes():

    text = " ".join(run_cli("ctl", "--help").stdout.split())
    for word in ("status", "reload", "query", "0 done", "1 the server said no", "2 usage",
                 "3 the server cannot be reached"):
        assert word in text, word
    assert "--accept-shrink" in run_cli("ctl", "reload", "--help").stdout
    assert "--control" in run_cli("serve", "--help").stdout
