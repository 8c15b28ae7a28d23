"""Every setting is checked, from the command line and from TOML: a bad value
is one line naming the setting (and the file) and exit status 2, never a
traceback, and never a server that starts and then misbehaves."""

from __future__ import annotations

import os
import stat

import pytest

from tests.helpers import run_cli

ZONE = '[[zone]]\nname = "bl.test"\ntype = "ip4set"\nfiles = ["bl.zone"]\n'


def one_line_usage_error(result) -> str:
    """The one line a bad setting gets; exit status 2, no traceback."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("flag, value, needle", [
    # inf and nan were accepted, and then every UDP answer was rate-limited
    ("--rrl-rate", "inf", "--rrl-rate must be a rate per second"),
    ("--rrl-rate", "nan", "--rrl-rate must be a rate per second"),
    ("--rrl-rate", "-1", "--rrl-rate must be a rate per second"),
    ("--rrl-rate", "1e400", "--rrl-rate must be a rate per second"),
    ("--check-interval", "inf", "--check-interval must be an interval in seconds"),
    ("--check-interval", "nan", "--check-interval must be an interval in seconds"),
    ("--check-interval", "-1", "--check-interval must be an interval in seconds"),
    # superscript and Arabic-Indic digits pass str.isdigit(); int() refused them
    ("--workers", "¹", "--workers must be a whole number from 0 to 1024, not '¹'"),
    ("--udp-batch", "²", "--udp-batch must be a whole number from 0 to 1024"),
    ("--query-log-sample", "٣", "--query-log-sample must be a whole number from 1 up"),
    ("--query-log-sample", "0", "--query-log-sample must be a whole number from 1 up"),
    ("--ttl", "¹", "--ttl must be a TTL"),
    ("--ttl", "inf", "--ttl must be a TTL"),
    ("--listen", "127.0.0.1:¹", "bad listen address '127.0.0.1:¹'"),
    ("--metrics", "127.0.0.1:¹", "bad listen address '127.0.0.1:¹'"),
])
def test_bad_flag_value_is_one_line_and_exit_2(tmp_path, flag, value, needle):
    zone = tmp_path / "bl.zone"
    zone.write_text("127.0.0.2\n")
    line = one_line_usage_error(run_cli("serve", "--zone", f"bl.test:ip4set:{zone}",
                                        "--metrics", "none", "--listen", "127.0.0.1:0",
                                        flag, value))
    assert line.startswith("dnsbl: ") and needle in line


@pytest.mark.parametrize("toml, needle", [
    ("[rrl]\nrate = inf\n", "[rrl] 'rate' must be a rate per second"),
    ("[rrl]\nrate = nan\n", "[rrl] 'rate' must be a rate per second"),
    ("[rrl]\nrate = 0\n", "[rrl] 'rate' must be a rate per second, more than 0"),
    ('[rrl]\nrate = "¹"\n', "[rrl] 'rate' must be a rate per second"),
    ("[rrl]\nslip = 1.5\n", "[rrl] 'slip' must be a whole number from 0 to 1000, not 1.5"),
    ("[rrl]\nipv4_prefix = 33\n", "[rrl] 'ipv4_prefix' must be a whole number from 1 to 32"),
    ("[rrl]\nexempt = [5]\n", "[rrl] 'exempt' must be a list of networks"),
    ('workers = "¹"\n', "'workers' must be a whole number from 0 to 1024, not '¹'"),
    ("workers = true\n", "'workers' must be a whole number from 0 to 1024, not True"),
    ("tcp_max_connections = 0\n", "'tcp_max_connections' must be a whole number from 1 up"),
    ("metrics_max_connections = 0\n",
     "'metrics_max_connections' must be a whole number from 1 up"),
    ("edns_payload = 100000\n", "'edns_payload' must be a size in bytes"),
    ("check_interval = inf\n", "'check_interval' must be an interval in seconds"),
    ("check_interval = nan\n", "'check_interval' must be an interval in seconds"),
    # was "bad check interval ... 0 disables", and 0 closed every connection at once
    ("tcp_idle_timeout = 0\n", "'tcp_idle_timeout' must be a duration in seconds"),
    ("tcp_idle_timeout = inf\n", "'tcp_idle_timeout' must be a duration in seconds"),
    ('tcp_idle_timeout = "soon"\n', "'tcp_idle_timeout' must be a duration in seconds"),
    ('ttl = "¹"\n', "'ttl' must be a TTL"),
    ("ttl = 1.5\n", "'ttl' must be a TTL"),
    ('listen = ["127.0.0.1:¹"]\n', "bad listen address '127.0.0.1:¹'"),
    ("listen = [5300]\n", "'listen' must be a list of HOST:PORT strings"),
    ("metrics = 9153\n", "'metrics' must be HOST:PORT or \"none\""),
    ("nsid = 5\n", "'nsid' must be ASCII text"),
    ("query_log = []\n", "'query_log' must be a file name"),
    ("zone = 5\n", "'zone' must be [[zone]] tables"),
    ('[[zone]]\nname = "bl.test"\ndatasets = 5\n', "zone #1 (bl.test): 'datasets' must be"),
    ('[[zone]]\nname = "bl.test"\ndatasets = ["x"]\n', "zone #1 (bl.test): 'datasets' must be"),
    ('[[zone]]\nname = "bl.test"\ntype = "ip4set"\nfiles = 5\n',
     "zone #1 (bl.test): 'files' must be a list of file names"),
    ('[[zone]]\nname = 5\ntype = "ip4set"\nfiles = ["x"]\n', "zone #1: 'name' must be"),
    ('[[zone]]\nname = "a..b"\ntype = "ip4set"\nfiles = ["x"]\n',
     "zone #1: bad zone name 'a..b'"),
    # was "bad ttl"
    (ZONE + 'max_data_age = "soon"\n',
     "zone #1 (bl.test): 'max_data_age' must be a duration in seconds"),
    (ZONE + "max_data_age = 0\n", "zone #1 (bl.test): 'max_data_age' must be a duration"),
    (ZONE + "max_data_age = nan\n", "zone #1 (bl.test): 'max_data_age' must be a duration"),
    (ZONE + "min_entries_ratio = nan\n", "'min_entries_ratio' must be a number from 0 to 1"),
    (ZONE + "min_entries_ratio = true\n", "'min_entries_ratio' must be a number from 0 to 1"),
    ("acl = 5\n", "acl: 'files' must be a list of file names"),
])
@pytest.mark.parametrize("command", ["serve", "check"])
def test_bad_toml_value_is_one_line_naming_file_and_setting(tmp_path, command, toml, needle):
    config = tmp_path / "dnsbl.toml"
    config.write_text(toml + ("" if "[[zone]]" in toml or "zone =" in toml else ZONE),
                      encoding="utf-8")
    (tmp_path / "bl.zone").write_text("127.0.0.2\n")
    line = one_line_usage_error(run_cli(command, "--config", str(config)))
    assert line.startswith(f"dnsbl: {config}")
    assert needle in line


def test_a_long_bad_value_is_quoted_short(tmp_path):
    config = tmp_path / "dnsbl.toml"
    config.write_text(f'tcp_idle_timeout = "{"9" * 100_000}x"\n' + ZONE)
    line = one_line_usage_error(run_cli("check", "--config", str(config)))
    assert "'tcp_idle_timeout' must be a duration" in line
    assert "(100001 characters)" in line and len(line) < 300


def test_non_utf8_toml_names_file_and_line(tmp_path):
    config = tmp_path / "dnsbl.toml"
    config.write_bytes(b'ttl = "35m"\nnsid = "fra-\xb9"\n' + ZONE.encode())
    line = one_line_usage_error(run_cli("serve", "--config", str(config)))
    assert line == f"dnsbl: {config}:2: not UTF-8 text (byte 0xb9); TOML files are UTF-8"


def test_a_fifo_as_the_config_file_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "dnsbl.toml"
    os.mkfifo(fifo)
    # Nobody ever writes to it: a blocking open would wait until run_cli's timeout.
    line = one_line_usage_error(run_cli("check", "--config", str(fifo)))
    assert line == f"dnsbl: {fifo}: cannot read: not a regular file"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_good_values_in_every_form_are_taken(tmp_path):
    """Units, strings of ASCII digits and numbers, where each kind allows them."""
    config = tmp_path / "dnsbl.toml"
    config.write_text(
        'ttl = "35m"\ncheck_interval = "0"\ntcp_idle_timeout = "2m"\n'
        'workers = "1"\nedns_payload = "1232"\nmetrics_max_connections = 8\n'
        'metrics = "none"\n[rrl]\nrate = 0.5\nslip = 0\n' + ZONE)
    (tmp_path / "bl.zone").write_text("127.0.0.2\n")
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "bl.test: 1 entries" in result.stdout
