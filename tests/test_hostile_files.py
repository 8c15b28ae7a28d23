"""Hostile zone files: none can freeze, crash or blind the server (issue #13).

A FIFO, a device or a socket in place of a zone, a byte the parser did not
foresee, an exception, a parse that grows or hangs: each is one failed load
of that dataset, counted under its reason, named by /readyz, while every
other zone keeps reloading and the previous data keeps serving. The parse
runs in a child process that dies with its parent and holds no socket.

Faults are injected with tests/hooks/sitecustomize.py (test-only code, put
on PYTHONPATH), so the real server process and its real children run them.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dns.rcode
import pytest

from tests.helpers import (
    ROOT,
    ask_from_new_sockets,
    data,
    fetch,
    fields,
    free_port,
    notified,
    receive,
    run_cli,
    samples,
    value,
    wait_for,
    write,
)

HOOKS = ROOT / "tests" / "hooks"
A_LISTED = "2.0.0.127.a.test"
B_LISTED = "2.0.0.127.b.test"
#: Seconds for what takes a moment on an idle machine; generous for a busy one.
SLOW = 30.0


def fault_env(action: str, marker: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HOOKS), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "DNSBL_TEST_PARSE_FAULT": f"{action}:{marker}"}


def failures(port: int, path: Path, reason: str) -> float:
    return value(samples(port), "dnsbl_dataset_reload_failures_total",
                 dataset=f"ip4set:{path}", reason=reason)


def two_zones(process, tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
              command: list[str] | None = None):
    """A server for a.test and b.test, one file each, checked every 0.1 s,
    with metrics: (server, client, a's file, b's file)."""
    a, b = tmp_path / "a.zone", tmp_path / "b.zone"
    write(a, data("a-one"))
    write(b, data("b-one"))
    server = process("--zone", f"a.test:ip4set:{a}", "--zone", f"b.test:ip4set:{b}",
                     "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                     "--check-interval", "0.1", *extra, env=env, command=command)
    return server, server.wait_listening(timeout=SLOW), a, b


def still_serving(server, client, a_txt: str, b_txt: str) -> None:
    """UDP, TCP and HTTP all answer, with the data expected."""
    assert client.txt(A_LISTED) == [a_txt]
    assert client.txt(B_LISTED) == [b_txt]
    reply = client.query(B_LISTED, "TXT", tcp=True)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert fetch(server.metrics_port, "/healthz")[0] == 200


def b_keeps_reloading(client, b: Path, text: str) -> None:
    """b.test serves ``text`` from every worker (queries from 20 source ports)."""
    write(b, data(text))
    wait_for(lambda: {b"".join(r.answer[0][0].strings)
                      for r in ask_from_new_sockets(client, B_LISTED, 20)} == {text.encode()},
             timeout=SLOW)


def replace_with_fifo(path: Path, mode: int = 0o644) -> None:
    fifo = path.with_name(path.name + ".fifo")
    os.mkfifo(fifo, mode)
    os.chmod(fifo, mode)  # past the umask
    os.replace(fifo, path)


def not_ready_for(port: int, text: str) -> bool:
    status, _, body = fetch(port, "/readyz")
    return status == 503 and text in body


# -- only regular files are read ---------------------------------------------------------------

def test_check_and_query_refuse_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "a.zone"
    os.mkfifo(fifo)
    for command, status in ((("check",), 1), (("query", "127.0.0.2"), 2)):
        done = run_cli(*command, "--zone", f"a.test:ip4set:{fifo}")
        assert done.returncode == status
        said = done.stdout + done.stderr
        assert f"{fifo}: not a regular file (FIFO)" in said
        assert "Traceback" not in said


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_fifo_at_start_up_is_one_line_not_a_hang(tmp_path, workers):
    fifo = tmp_path / "a.zone"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "dnsbl", "serve", "--zone", f"a.test:ip4set:{fifo}",
         "--listen", "127.0.0.1:0", "--metrics", "none", "--workers", workers],
        cwd=ROOT, capture_output=True, text=True, timeout=SLOW)
    assert done.returncode == 3
    assert f"{fifo}: not a regular file (FIFO)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_fifo_with_allow_missing_serves_the_other_zones(process, tmp_path, workers):
    fifo, b = tmp_path / "a.zone", tmp_path / "b.zone"
    os.mkfifo(fifo)
    write(b, data("b-one"))
    server = process("--zone", f"a.test:ip4set:{fifo}", "--zone", f"b.test:ip4set:{b}",
                     "--listen", "127.0.0.1:0", "--allow-missing", "--workers", workers)
    client = server.wait_listening(timeout=SLOW)
    assert client.txt(B_LISTED) == ["b-one"]
    assert client.query(A_LISTED).rcode() == dns.rcode.SERVFAIL
    assert any(f"{fifo}: not a regular file (FIFO)" in line for line in server.log)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_fifo_at_reload_is_one_failure_and_other_zones_reload(process, tmp_path, workers):
    server, client, a, b = two_zones(process, tmp_path, "--workers", workers)
    replace_with_fifo(a)
    once = int(workers)  # each worker loads for itself; /metrics is their sum
    wait_for(lambda: failures(server.metrics_port, a, "not_regular") == once, timeout=SLOW)
    assert not_ready_for(server.metrics_port, f"ip4set:{a}: last load failed (not_regular")
    still_serving(server, client, "a-one", "b-one")
    b_keeps_reloading(client, b, "b-two")
    # Not tried again in a loop: the FIFO has not changed.
    assert failures(server.metrics_port, a, "not_regular") == once
    write(a, data("a-two"))
    wait_for(lambda: client.txt(A_LISTED) == ["a-two"], timeout=SLOW)
    wait_for(lambda: fetch(server.metrics_port, "/readyz")[0] == 200, timeout=SLOW)
    assert server.stop() == 0


def _unprivileged() -> list[str] | None:
    """A command prefix that runs a process without the file-permission
    capabilities root has (as the systemd unit's user); [] when this user
    has none already; None when that cannot be arranged here."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def _opens_mode_000(prefix: list[str], tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    probe.chmod(0)
    done = subprocess.run([*prefix, sys.executable, "-c",
                           f"open({str(probe)!r}, 'rb')"], capture_output=True)
    return done.returncode == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_fifo_permission_fix_sequence_without_privileges(process, tmp_path, workers):
    """`mkfifo -m 000 f && mv f a.zone; chmod 644 a.zone`, against a server
    that cannot open a mode-000 file: it froze the whole server."""
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("needs setpriv (util-linux) to drop root's file-permission capabilities")
    if _opens_mode_000(prefix, tmp_path):
        pytest.skip("this process opens a mode-000 file even without CAP_DAC_OVERRIDE")
    server, client, a, b = two_zones(process, tmp_path, "--workers", workers,
                                     command=prefix)
    replace_with_fifo(a, 0)
    once = int(workers)  # each worker loads for itself; /metrics is their sum
    # It cannot be opened, and what it is says more than why: not a regular file.
    wait_for(lambda: failures(server.metrics_port, a, "not_regular") == once, timeout=SLOW)
    still_serving(server, client, "a-one", "b-one")
    a.chmod(0o644)  # now it would open, and block a plain open() for ever
    b_keeps_reloading(client, b, "b-two")  # a check ran since
    still_serving(server, client, "a-one", "b-two")
    assert failures(server.metrics_port, a, "not_regular") == once
    assert failures(server.metrics_port, a, "open") == 0
    port = server.port
    assert server.stop() == 0  # SIGTERM is heard
    # Nothing left holding the port: a new server there gets every query.
    again = process("--zone", f"b.test:ip4set:{b}", "--listen", f"127.0.0.1:{port}",
                    "--workers", workers)
    client = again.wait_listening(timeout=SLOW)
    replies = ask_from_new_sockets(client, B_LISTED, 40)
    assert {b"".join(r.answer[0][0].strings) for r in replies} == {b"b-two"}


# -- no file can stop the server ---------------------------------------------------------------

SUPERSCRIPT = b"1.2.3.4 :\xb9:x\n"  # "¹" passes str.isdigit(); int() refuses it


def test_superscript_byte_at_start_up_serves_the_good_lines(process, tmp_path):
    z = tmp_path / "z"
    z.write_bytes(SUPERSCRIPT + b"127.0.0.2\n")
    server = process("--zone", f"s.test:ip4set:{z}", "--listen", "127.0.0.1:0",
                     "--allow-missing")
    client = server.wait_listening(timeout=SLOW)
    assert client.a("2.0.0.127.s.test") == ["127.0.0.2"]
    assert client.a("4.3.2.1.s.test") == []  # the bad line is skipped
    assert any(f"{z}:1: invalid A value" in line for line in server.log)
    done = run_cli("check", "--zone", f"s.test:ip4set:{z}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: {z}:1: invalid A value" in done.stdout
    done = run_cli("query", "1.2.3.4", "--zone", f"s.test:ip4set:{z}")
    assert done.returncode == 1 and "A: NXDOMAIN" in done.stdout  # 1: listed nowhere


def test_superscript_byte_at_reload_skips_the_line_and_b_reloads(process, tmp_path):
    server, client, a, b = two_zones(process, tmp_path)
    with open(a, "ab") as f:
        f.write(SUPERSCRIPT + b"10.9.9.9\n")
    wait_for(lambda: client.a("9.9.9.10.a.test") == ["127.0.0.2"], timeout=SLOW)
    b_keeps_reloading(client, b, "b-two")
    found = samples(server.metrics_port)
    assert sum(v for (name, labels), v in found.items()
               if name == "dnsbl_dataset_reload_failures_total") == 0
    assert fetch(server.metrics_port, "/readyz")[0] == 200
    assert server.stop() == 0
    assert any(f"{a}:12: invalid A value" in line for line in server.log)
    assert not any("Traceback" in line for line in server.log)


def test_an_exception_in_the_parse_is_one_counted_failure(process, tmp_path):
    marker = tmp_path / "fault"
    server, client, a, b = two_zones(process, tmp_path, env=fault_env("raise", marker))
    marker.write_text(a.name)
    write(a, data("a-two"))
    wait_for(lambda: failures(server.metrics_port, a, "parse") == 1, timeout=SLOW)
    assert not_ready_for(server.metrics_port, "last load failed (parse")
    still_serving(server, client, "a-one", "b-one")
    b_keeps_reloading(client, b, "b-two")
    assert failures(server.metrics_port, a, "parse") == 1  # retried when it changes only
    marker.unlink()
    server.proc.send_signal(signal.SIGHUP)  # SIGHUP tries again what failed
    wait_for(lambda: client.txt(A_LISTED) == ["a-two"], timeout=SLOW)
    assert server.stop() == 0
    said = [line for line in server.log if "RuntimeError: injected fault" in line]
    assert len(said) == 1, said  # logged once
    assert not any("Traceback" in line for line in server.log)


def test_an_exception_in_the_parse_at_start_up(process, tmp_path):
    marker = tmp_path / "fault"
    a, b = tmp_path / "a.zone", tmp_path / "b.zone"
    write(a, data("a-one"))
    write(b, data("b-one"))
    marker.write_text(a.name)
    server = process("--zone", f"a.test:ip4set:{a}", "--zone", f"b.test:ip4set:{b}",
                     "--listen", "127.0.0.1:0", "--allow-missing",
                     env=fault_env("raise", marker))
    client = server.wait_listening(timeout=SLOW)
    assert client.txt(B_LISTED) == ["b-one"]
    assert client.query(A_LISTED).rcode() == dns.rcode.SERVFAIL
    assert server.stop() == 0
    assert not any("Traceback" in line for line in server.log)
    assert any(f"{a}: cannot be loaded: RuntimeError: injected fault" in line
               for line in server.log)


# -- bounded memory and time -------------------------------------------------------------------

def limits_config(tmp_path: Path, **limits: object) -> Path:
    config = tmp_path / "dnsbl.toml"
    config.write_text("[limits]\n" + "".join(
        f"{key} = {value!r}\n".replace("'", '"') for key, value in limits.items()))
    return config


def big_unsorted(path: Path, count: int) -> None:
    """``count`` addresses in an order that needs sorting, each with its own TXT."""
    step = 7919  # a prime: every address once, out of order
    path.write_text("".join(f"10.{(i * step) % count >> 16 & 255}.{(i * step) % count >> 8 & 255}"
                            f".{(i * step) % count & 255} :2:entry {i}\n"
                            for i in range(count)))


def test_a_parse_over_its_memory_limit_fails_that_load_only(process, tmp_path):
    config = limits_config(tmp_path, parse_memory="48M")
    server, client, a, b = two_zones(process, tmp_path, "--config", str(config))
    big_unsorted(a.with_name("a.tmp"), 400_000)
    os.replace(a.with_name("a.tmp"), a)
    wait_for(lambda: failures(server.metrics_port, a, "memory") == 1, timeout=SLOW * 2)
    assert not_ready_for(server.metrics_port, "ran out of memory")
    still_serving(server, client, "a-one", "b-one")
    b_keeps_reloading(client, b, "b-two")
    assert server.stop() == 0


def test_a_parse_over_its_time_limit_is_killed(process, tmp_path):
    marker = tmp_path / "fault"
    config = limits_config(tmp_path, parse_timeout=1)
    server, client, a, b = two_zones(process, tmp_path, "--config", str(config),
                                     env=fault_env("hang", marker))
    marker.write_text(a.name)
    write(a, data("a-two"))
    wait_for(lambda: failures(server.metrics_port, a, "timeout") == 1, timeout=SLOW)
    [pid] = [int(p.read_text()) for p in tmp_path.glob("fault.*")]
    wait_for(lambda: gone(pid), timeout=SLOW)
    still_serving(server, client, "a-one", "b-one")
    b_keeps_reloading(client, b, "b-two")
    assert server.stop() == 0


@pytest.mark.parametrize("limit, lines, reason", [
    ({"max_file_size": "64K"}, 20_000, "over the limit of 65536 bytes"),
    ({"max_entries": 100}, 200, "more than 100 entries"),
])
@pytest.mark.parametrize("compress", [False, True])
def test_size_and_entry_limits(tmp_path, limit, lines, reason, compress):
    zone = tmp_path / "z.zone"
    write(zone, [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(lines)],
          compress=compress)
    done = run_cli("check", "--config", str(limits_config(tmp_path, **limit)),
                   "--zone", f"z.test:ip4set:{zone}")
    assert done.returncode == 1
    assert reason in done.stdout and "Traceback" not in done.stderr


def test_repeated_lines_cost_one_entry_and_few_warnings(tmp_path):
    zone = tmp_path / "z.zone"
    zone.write_bytes(b"127.0.0.2\n" + b"1.2.3.4\n" * 200_000)
    done = run_cli("check", "--zone", f"z.test:ip4set:{zone}")
    out = done.stdout.splitlines()
    assert "z.test: 2 entries, serial" in done.stdout
    assert len([line for line in out if "duplicate entry" in line]) == 1000
    assert "error: 198999 more problem(s) like those, not listed" in out


# -- health tells the truth --------------------------------------------------------------------

def test_a_worker_hung_in_loading_is_unhealthy(process, tmp_path):
    marker = tmp_path / "fault"
    a = tmp_path / "a.zone"
    write(a, data("a-one"))
    marker.write_text(a.name)
    metrics = free_port()
    process("--zone", f"a.test:ip4set:{a}", "--listen", "127.0.0.1:0", "--workers", "2",
            "--metrics", f"127.0.0.1:{metrics}", env=fault_env("hang", marker))
    wait_for(lambda: len(list(tmp_path.glob("fault.*"))) == 2, timeout=SLOW)

    def unhealthy() -> bool:
        try:
            status, _, body = fetch(metrics, "/healthz")
        except OSError:
            return False
        return status == 503 and "loading" in body

    wait_for(unhealthy, timeout=SLOW)


def test_ready_follows_reloading_with_the_failure_in_status(process, tmp_path):
    with notified(process, tmp_path, "--check-interval", "0") as (notify, server, client, zone):
        receive(notify, "READY=1", timeout=SLOW)
        replace_with_fifo(zone)
        server.proc.send_signal(signal.SIGHUP)
        receive(notify, "RELOADING=1", timeout=SLOW)
        ready = receive(notify, "READY=1", timeout=SLOW)[-1]
        assert "not a regular file (FIFO)" in fields(ready)["STATUS"]
        assert client.txt("2.0.0.127.bl.test") == ["one"]


# -- children die with their parent ------------------------------------------------------------

def gone(pid: int) -> bool:
    """Ended (a zombie, which holds nothing, counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopped_during_load_leaves_no_child_and_the_port_free(process, tmp_path, workers, sig):
    marker = tmp_path / "fault"
    a = tmp_path / "a.zone"
    write(a, data("a-one"))
    marker.write_text(a.name)
    port = free_port()
    server = process("--zone", f"a.test:ip4set:{a}", "--listen", f"127.0.0.1:{port}",
                     "--workers", workers, env=fault_env("hang", marker))
    wait_for(lambda: len(list(tmp_path.glob("fault.*"))) == int(workers), timeout=SLOW)
    children = [int(p.read_text()) for p in tmp_path.glob("fault.*")]
    server.proc.send_signal(sig)
    server.proc.wait(SLOW)
    wait_for(lambda: all(map(gone, children)), timeout=SLOW)
    # At once, on the same port: it binds, and every query reaches it.
    again = process("--zone", f"a.test:ip4set:{a}", "--listen", f"127.0.0.1:{port}",
                    "--workers", workers)
    client = again.wait_listening(timeout=SLOW)
    replies = ask_from_new_sockets(client, A_LISTED, 40)
    assert {b"".join(r.answer[0][0].strings) for r in replies} == {b"a-one"}


def test_gzip_inflation_is_bounded_at_reload(process, tmp_path):
    config = limits_config(tmp_path, max_file_size="1M")
    server, client, a, b = two_zones(process, tmp_path, "--config", str(config))
    a.with_name("a.tmp").write_bytes(gzip.compress(b"10.0.0.1\n" * 400_000))  # 3.6 MB
    assert a.with_name("a.tmp").stat().st_size < 1 << 20
    os.replace(a.with_name("a.tmp"), a)
    wait_for(lambda: failures(server.metrics_port, a, "size") == 1, timeout=SLOW)
    still_serving(server, client, "a-one", "b-one")
    assert server.stop() == 0
