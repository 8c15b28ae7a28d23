"""The `dnsbl` command as an operator runs it: a real process, real sockets."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.rcode
import pytest

from dnsbl import __version__
from tests.helpers import ROOT, needs_ipv6, receive, run_cli, scaled


def test_help_documents_every_subcommand_and_flag():
    top = run_cli("--help")
    assert top.returncode == 0
    for word in ("serve", "check", "query"):
        assert word in top.stdout
    serve = run_cli("serve", "--help").stdout
    for flag in ("--listen", "--zone", "--config", "--ttl", "--log-level"):
        assert flag in serve
    assert "--zone" in run_cli("check", "--help").stdout
    assert "IP-or-NAME" in run_cli("query", "--help").stdout


@pytest.mark.parametrize("command", ["serve", "check", "query"])
def test_zone_help_names_every_dataset_type(command):
    text = " ".join(run_cli(command, "--help").stdout.split())
    for kind in ("ip4set", "ip4tset", "ip4trie", "ip6trie", "ip6tset", "dnset", "generic",
                 "acl", "combined"):
        assert f"{kind}," in text or f"{kind})" in text, kind


def test_python_dash_m_and_console_script_agree():
    script = Path(sys.executable).parent / "dnsbl"
    if not script.exists():
        pytest.skip("the dnsbl console script is not installed beside this Python")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout == run_cli("--version").stdout


@pytest.mark.parametrize("args, needle", [
    (["serve", "--bogus"], "unrecognized arguments: --bogus"),
    (["serve", "--zone", "bl.test:ip4set"], "expected NAME:TYPE:FILE"),
    (["serve", "--zone", "bl.test:nosuchtype:x.zone"], "unknown dataset type 'nosuchtype'"),
    (["serve", "--zone", "bl.test:ip4set:x", "--listen", "127.0.0.1:99999"], "port must be"),
    (["serve", "--config", "/nonexistent/dnsbl.toml"], "/nonexistent/dnsbl.toml: cannot read"),
    (["serve"], "no zones"),
    (["serve", "--zone", "bl.test:ip4set:x", "--ttl", "soon"], "--ttl must be a TTL"),
    (["serve", "--zone", "bl.test:ip4set:x", "--workers", "-1"],
     "--workers must be a whole number from 0 to 1024"),
    (["serve", "--zone", "bl.test:ip4set:x", "--udp-batch", "many"],
     "--udp-batch must be a whole number from 0 to 1024"),
])
def test_bad_usage_is_one_clear_line(args, needle):
    result = run_cli(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("setting, needle", [
    ('soa = "3600 ns.example"', "expected $SOA ttl origin person serial"),
    ('soa = "1h ns.example hm.example 4294967296 1h 1h 1h 1h"', "bad serial"),
    ('ns = "3600"', "expected $NS ttl nameserver"),
    ('ns = ["bad..name"]', "bad domain name"),
])
def test_bad_soa_or_ns_in_the_config_is_one_clear_line(tmp_path, setting, needle):
    config = tmp_path / "dnsbl.toml"
    config.write_text(f'[[zone]]\nname = "bl.test"\ntype = "ip4set"\nfiles = ["x"]\n{setting}\n')
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: zone #1 (bl.test): " in result.stderr and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_missing_zone_file_is_one_line(tmp_path, workers):
    missing = tmp_path / "missing.zone"
    result = run_cli("serve", "--zone", f"bl.test:ip4set:{missing}", "--listen", "127.0.0.1:0",
                     "--metrics", "none", "--workers", workers)
    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert f"{missing}: cannot open: No such file or directory" in line
    assert "--allow-missing" in line  # and what to do about it


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unbindable_port_is_one_line(zone_file, workers):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_cli("serve", "--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                         "--listen", f"127.0.0.1:{port}", "--metrics", "none",
                         "--workers", workers)
    assert result.returncode == 3
    [line] = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line


def test_serve_bundled_zones_like_make_run(process):
    server = process("--config", "zones/dnsbl.toml", "--listen", "127.0.0.1:0")
    c = server.wait_listening()
    assert c.a("2.0.0.127.bl.example.org") == ["127.0.0.2"]
    [txt] = c.txt("2.0.0.127.bl.example.org")
    assert "127.0.0.2" in txt
    assert c.query("1.0.0.127.bl.example.org").rcode() == dns.rcode.NXDOMAIN
    v6 = "2.0.0.0.0.0.f.7.f.f.f.f" + ".0" * 20 + ".bl.example.org"
    assert c.a(v6) == ["127.0.0.2"]
    assert c.query(v6.replace("2.", "1.", 1)).rcode() == dns.rcode.NXDOMAIN
    assert c.a("test.dbl.example.org") == ["127.0.1.2"]
    assert c.query("invalid.dbl.example.org").rcode() == dns.rcode.NXDOMAIN
    assert c.a("malware.example.net.dbl.example.org") == ["127.0.1.5"]
    assert server.stop() == 0
    assert any("stopped" in line for line in server.log)


def test_config_file_and_flags_over_it(process, tmp_path, zone_file):
    zone_file(["127.0.0.2", "192.0.2.0/24 :3:"], name="bl.zone")
    other = zone_file(["198.51.100.0/24"], name="other.zone")
    config = tmp_path / "dnsbl.toml"
    config.write_text(
        'listen = ["127.0.0.1:1"]\n'  # replaced by --listen below
        'ttl = 120\n'
        '[[zone]]\nname = "bl.test"\ntype = "ip4set"\nfiles = ["bl.zone"]\n'
        '[[zone]]\nname = "zen.test"\n'
        'datasets = [{ type = "ip4trie", files = ["bl.zone"] },'
        ' { type = "ip4set", files = ["other.zone"] }]\n'
    )
    server = process("--config", str(config), "--listen", "127.0.0.1:0", "--ttl", "77")
    c = server.wait_listening()
    r = c.query("5.2.0.192.bl.test")
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.3"]
    assert r.answer[0].ttl == 77
    assert c.a("5.100.51.198.zen.test") == ["127.0.0.2"]
    assert c.a("2.0.0.127.zen.test") == ["127.0.0.2"]
    assert other  # both files were served under zen.test


def test_bad_config_names_file_and_problem(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[zone]]\nname = "bl.test"\ntype = "ip4set"\nfiles = ["a"]\ncolour = 1\n')
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: zone #1: unknown setting(s): colour" in result.stderr


def test_check_reports_counts_and_problems(zone_file):
    path = zone_file([
        "127.0.0.2",
        "10.0.0.0/8",
        "!10.1.0.0/16",
        "10.0.0.0/33",
        "192.0.2.1/24",
        "not-an-address",
        "1.2.3.4 :999:bad A",
    ])
    result = run_cli("check", "--zone", f"bl.test:ip4trie:{path}")
    assert result.returncode == 1
    out = result.stdout
    assert "bl.test: 2 entries" in out
    assert "1 exclusions" in out
    assert f"{path}:4: invalid address '10.0.0.0/33'" in out
    assert f"{path}:5: invalid range (non-zero host part) '192.0.2.1/24'" in out
    assert f"{path}:6: invalid address 'not-an-address'" in out
    assert f"{path}:7: invalid A value '999'" in out
    assert "4 problem(s)" in out


def test_check_clean_zone_exits_zero_and_warns_on_127_0_0_1(zone_file):
    clean = run_cli("check", "--config", "zones/dnsbl.toml")
    assert clean.returncode == 0, clean.stdout
    assert "0 problem(s)" in clean.stdout
    bad = run_cli("check", "--zone", f"bl.test:ip4set:{zone_file(['127.0.0.0/24'])}")
    assert "127.0.0.1 is listed; RFC 5782 says it must never be" in bad.stdout
    assert "note: bl.test: 127.0.0.2" not in bad.stdout
    bad6 = run_cli("check", "--zone", f"bl.test:ip6trie:{zone_file(['::ffff:7f00:0/120'])}")
    assert "::ffff:7f00:1 is listed; RFC 5782 says it must never be" in bad6.stdout
    names = run_cli("check", "--zone", f"dbl.test:dnset:{zone_file(['.invalid'])}")
    assert "invalid is listed; RFC 5782 says it must never be" in names.stdout
    assert "test is not listed; RFC 5782 asks lists to list it" in names.stdout


def test_check_missing_file_is_an_error(tmp_path):
    result = run_cli("check", "--zone", f"bl.test:ip4set:{tmp_path / 'nope'}")
    assert result.returncode == 1
    assert f"{tmp_path / 'nope'}: cannot open" in result.stdout


def test_query_explains_the_matching_line(zone_file):
    path = zone_file([":127.0.0.2:Listed $", "10.0.0.0/8", "!10.1.0.0/16",
                      "10.2.3.4 :5:Single host $"])
    spec = f"bl.test:ip4set:{path}"
    out = run_cli("query", "--zone", spec, "10.2.3.4").stdout
    assert "4.3.2.10.bl.test" in out
    assert "127.0.0.5" in out and "Single host 10.2.3.4" in out
    assert f"{path}:4: 10.2.3.4/32 -> A 127.0.0.5 TXT 'Single host 10.2.3.4'" in out
    out = run_cli("query", "--zone", spec, "10.1.9.9").stdout
    assert "NXDOMAIN" in out
    assert f"{path}:3: !10.1.0.0/16 (excluded)" in out
    out = run_cli("query", "--zone", spec, "9.9.9.10.bl.test").stdout
    assert f"{path}:2: 10.0.0.0/8" in out and "Listed 10.9.9.9" in out
    out = run_cli("query", "--zone", spec, "9.9.9.11.bl.test").stdout
    assert "NXDOMAIN" in out and "no entry" in out


def test_readme_quick_start_mentions_both_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "dig @127.0.0.1 -p 5300 2.0.0.127.bl.example.org" in readme


def test_query_with_a_missing_file_says_so_and_fails(tmp_path, zone_file):
    missing = tmp_path / "missing.zone"
    good = zone_file(["127.0.0.2"])
    result = run_cli("query", "--zone", f"bl.test:ip4set:{missing}",
                     "--zone", f"ok.test:ip4set:{good}", "127.0.0.2")
    assert result.returncode == 2  # an error outweighs a listing, as in grep
    assert f"error: {missing}: cannot open: No such file or directory" in result.stderr
    assert "A: SERVFAIL" in result.stdout  # what a server missing that data answers
    assert "2.0.0.127.ok.test" in result.stdout  # the other zone is still explained


def test_query_output_cut_short_by_a_pipe_is_no_error(zone_file):
    """`dnsbl query ... | head -1`: the reader leaves early; no traceback."""
    spec = f"bl.test:ip4set:{zone_file(['127.0.0.2'])}"
    with subprocess.Popen([sys.executable, "-m", "dnsbl", "query", "--zone", spec, "127.0.0.2"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the command writes a byte
        err = proc.stderr.read().decode()
        assert proc.wait(30) == 0  # listed, whoever reads the output
    assert err == ""


@needs_ipv6
def test_ipv6_listen_address_from_the_command_line_answers_udp_and_tcp(process, zone_file):
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "[::1]:0")
    c = server.wait_listening()
    assert c.host == "::1"
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    assert c.query("2.0.0.127.bl.test", tcp=True).answer


def test_stdlib_loop_serves_when_uvloop_cannot_be_imported(process, zone_file, tmp_path):
    (tmp_path / "uvloop.py").write_text("raise ImportError('uvloop is not installed here')\n")
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                     env={"PYTHONPATH": str(tmp_path)})
    c = server.wait_listening()
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    assert c.query("2.0.0.127.bl.test", tcp=True).answer
    scrape = urllib.request.urlopen(
        f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=scaled(5)).read().decode()
    assert 'loop="asyncio"' in scrape


def test_check_counts_every_type_and_combined_subzones(zone_file):
    names = zone_file(["test", "*.a.test", "!b.a.test"])
    v6 = zone_file(["::ffff:7f00:2", "2001:db8::/32", "!2001:db8:1::/48"])
    combined = zone_file([
        "$DATASET ip4set:p proxies @", "127.0.0.2", "10.0.0.1",
        "$DATASET dnset:d names", "test", "example.com",
        "$DATASET ip6trie:s six", "2001:db8::/32",
        "$DATASET ip4trie:m multihop", "127.0.0.1", "10.0.0.0/8"])
    result = run_cli("check", "--zone", f"dn.test:dnset:{names}", "--zone",
                     f"six.test:ip6trie:{v6}", "--zone", f"c.test:combined:{combined}")
    out = result.stdout
    assert f"  dnset {names}: 2 entries, 1 exclusions" in out
    assert f"  ip6trie {v6}: 2 entries, 1 exclusions" in out
    assert f"  ip4set {combined}: 2 entries" in out  # attached to the zone itself
    for sub, kind, count in (("names", "dnset", 2), ("six", "ip6trie", 1),
                             ("multihop", "ip4trie", 2)):
        at = out.index(f"  subzone {sub}.c.test:")
        assert f"    {kind} {combined}: {count} entries" in out[at:], sub
    # RFC 5782 test points are checked in subzones too.
    assert "warning: multihop.c.test: 127.0.0.1 is listed" in out
    assert "note: six.c.test: ::ffff:7f00:2 is not listed" in out
    assert "test is not listed" not in out


def test_query_tries_a_bare_domain_under_every_name_zone(zone_file):
    dbl = zone_file([".malware.example.net :5:Malware $"])
    other = zone_file(["x.malware.example.net :6:Other"])
    out = run_cli("query", "--zone", f"dbl.test:dnset:{dbl}", "--zone",
                  f"bl.test:ip4set:{zone_file(['127.0.0.2'])}", "--zone",
                  f"two.test:dnset:{other}", "x.malware.example.net").stdout
    assert ";; x.malware.example.net.dbl.test" in out
    assert ";; x.malware.example.net.two.test" in out
    assert "x.malware.example.net.bl.test" not in out  # not a zone of names
    assert f"{dbl}:1: .malware.example.net -> A 127.0.0.5 TXT 'Malware malware.example.net'" in out
    assert f"{other}:1: x.malware.example.net -> A 127.0.0.6" in out
    assert "not under any served zone" not in out


LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_text_log_is_one_line_per_event_from_a_start_line_to_stopped(process, zone_file,
                                                                    workers):
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--workers", workers)
    server.wait_listening()
    assert server.stop() == 0
    lines = "".join(server.log).splitlines()
    assert all(LINE.match(line) for line in lines), lines  # no continuation lines
    assert lines[0].endswith(f" INFO dnsbl {__version__} starting (pid {server.proc.pid}"
                             + (", 2 workers)" if workers == "2" else ")"))
    assert lines[-1].endswith(" INFO stopped")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_json_log_is_one_object_per_line(process, zone_file, workers):
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2', 'bad-line'])}",
                     "--listen", "127.0.0.1:0", "--log-format", "json", "--workers", workers)
    assert server.proc.stderr is not None
    for line in server.proc.stderr:  # bounded: the process fixture stops it at the end
        server.log.append(line)
        if json.loads(line)["message"] == "ready":
            break
    assert server.stop() == 0
    entries = [json.loads(line) for line in "".join(server.log).splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert entries[0]["message"].startswith(f"dnsbl {__version__} starting")
    assert entries[0]["level"] == "info"
    bad = [e for e in entries if "invalid address 'bad-line'" in e["message"]]
    assert len(bad) == int(workers) and {e["level"] for e in bad} == {"warning"}
    assert entries[-1]["message"] == "stopped"


def test_log_level_warning_hides_info(process, tmp_path, zone_file):

    notify_path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2', 'bad-line'])}",
                         "--listen", "127.0.0.1:0", "--log-level", "warning",
                         env={"NOTIFY_SOCKET": notify_path})
        receive(notify, "READY=1")
        assert server.stop() == 0
    lines = "".join(server.log).splitlines()
    assert len(lines) == 1 and " WARNING " in lines[0] and "bad-line" in lines[0], lines


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_stops_gracefully(process, zone_file, workers):
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--workers", workers)
    client = server.wait_listening()
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    server.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert server.proc.wait(timeout=scaled(10)) == 0
    server.stop()
    assert "".join(server.log).rstrip().endswith(" INFO stopped")
    assert "Traceback" not in "".join(server.log)


def test_a_huge_line_is_logged_cut_short(process, tmp_path):
    """A 100 MB line with no newline was logged whole in its warning."""
    zone = tmp_path / "bl.zone"
    size = 5_000_000
    zone.write_text("127.0.0.2\n" + "a" * size)
    server = process("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0")
    client = server.wait_listening()
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]  # the rest loads
    assert server.stop() == 0
    [warning] = [line for line in "".join(server.log).splitlines() if f"{zone}:2:" in line]
    assert re.search(r"invalid address 'a+\.\.\. \(\d+ characters\)$", warning), warning
    assert len(warning) < 300
    checked = subprocess.run([sys.executable, "-m", "dnsbl", "check", "--zone",
                              f"bl.test:ip4set:{zone}"], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
    assert max(map(len, checked.stdout.splitlines())) < 300
