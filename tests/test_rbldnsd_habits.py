"""rbldnsd habits on the real command line: `-b ADDR/PORT`, `-t def:min:max`,
no abbreviated flags; and `dnsbl query`'s exit codes, as scripts rely on them."""

from __future__ import annotations

import pytest

from tests.helpers import needs_ipv6, run_cli

LISTED = ["$TTL 10", ":127.0.0.2:Listed $", "127.0.0.2", "192.0.2.0/24 :3:Botnet"]


@pytest.mark.parametrize("form", ["127.0.0.1/0", "127.0.0.1:0"])
def test_listen_takes_rbldnsd_address_slash_port(process, zone_file, form):
    server = process("--zone", f"bl.test:ip4set:{zone_file(LISTED)}", "--listen", form)
    c = server.wait_listening()
    assert c.host == "127.0.0.1"
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]


@needs_ipv6
@pytest.mark.parametrize("form", ["::1/0", "[::1]/0", "[::1]:0"])
def test_listen_takes_ipv6_slash_port(process, zone_file, form):
    server = process("--zone", f"bl.test:ip4set:{zone_file(LISTED)}", "--listen", form)
    c = server.wait_listening()
    assert c.host == "::1"
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]


@pytest.mark.parametrize("form, needle", [
    ("999.1.1.1/53", "'999.1.1.1' is not an IP address"),
    ("1.2.3/5353", "'1.2.3' is not an IP address"),
    ("127.0.0.1/99999", "port must be 0-65535"),
    ("127.0.0.1/", "port must be 0-65535"),
    ("127.0.0.1/domain", "port must be 0-65535"),
    ("/5353", "no host"),
    ("::1::2/53", "is not an IP address"),
])
def test_bad_listen_form_is_a_usage_error_not_a_lookup(zone_file, form, needle):
    result = run_cli("serve", "--zone", f"bl.test:ip4set:{zone_file(LISTED)}",
                     "--listen", form, "--metrics", "none", "--workers", "1")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert f"bad listen address {form!r}" in line and needle in line


@pytest.mark.parametrize("args, flag", [
    (["serve", "--zone", "bl.test:ip4set:x", "--list", "127.0.0.1:0"], "--list"),
    (["serve", "--zone", "bl.test:ip4set:x", "--work", "1"], "--work"),
    (["check", "--conf", "zones/dnsbl.toml"], "--conf"),
    (["query", "--zon", "bl.test:ip4set:x", "127.0.0.2"], "--zon"),
])
def test_abbreviated_flags_are_refused(args, flag):
    result = run_cli(*args)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert f"unrecognized arguments: {flag}" in line


def _ttl_zone(zone_file) -> tuple[str, str]:
    """A list with $TTL 10 and $SOA/$NS TTLs of 1w; a generic zone with 1w and 5s."""
    listed = zone_file(["$SOA 1w ns.bl.test hostmaster.bl.test 1 1h 15m 1w 5m",
                        "$NS 1w ns.bl.test", *LISTED])
    generic = zone_file(["$TTL 1h", "www 1w A 192.0.2.80", "short 5 A 192.0.2.81",
                         "plain A 192.0.2.82"])
    return listed, generic


def _ttls(c) -> dict[str, int]:
    answers = {}
    for name, qtype in (("2.0.0.127.bl.test", "A"), ("2.0.0.127.bl.test", "TXT"),
                        ("bl.test", "SOA"), ("bl.test", "NS"), ("www.gen.test", "A"),
                        ("short.gen.test", "A"), ("plain.gen.test", "A"),
                        ("1.1.1.1.bl.test", "A")):
        r = c.query(name, qtype)
        rrsets = r.answer or r.authority
        answers[f"{name} {qtype}"] = rrsets[0].ttl
    return answers


def test_ttl_def_min_max_clamps_the_data_as_rbldnsd(process, zone_file):
    listed, generic = _ttl_zone(zone_file)
    server = process("--zone", f"bl.test:ip4set:{listed}", "--zone", f"gen.test:generic:{generic}",
                     "--listen", "127.0.0.1:0", "--ttl", "35m:1m:1d")
    ttls = _ttls(server.wait_listening())
    assert ttls == {
        "2.0.0.127.bl.test A": 60,  # $TTL 10, raised to the minimum
        "2.0.0.127.bl.test TXT": 60,
        "bl.test SOA": 86400,  # $SOA 1w, lowered to the maximum
        "bl.test NS": 86400,
        "www.gen.test A": 86400,
        "short.gen.test A": 60,
        "plain.gen.test A": 3600,  # $TTL 1h is within the bounds
        # The negative TTL: min(SOA TTL, SOA minimum); the minimum field is
        # not clamped, as in rbldnsd.
        "1.1.1.1.bl.test A": 300,
    }


def test_ttl_bounds_in_the_config_file_and_empty_parts(process, zone_file, tmp_path):
    listed, generic = _ttl_zone(zone_file)
    config = tmp_path / "dnsbl.toml"
    config.write_text(f'ttl = "35m:1m:1d"\n[[zone]]\nname = "bl.test"\ntype = "ip4set"\n'
                      f'files = ["{listed}"]\n[[zone]]\nname = "gen.test"\ntype = "generic"\n'
                      f'files = ["{generic}"]\n')
    # An empty part keeps the file's value: only the maximum changes here.
    server = process("--config", str(config), "--listen", "127.0.0.1:0", "--ttl", "::2h")
    ttls = _ttls(server.wait_listening())
    assert ttls["2.0.0.127.bl.test A"] == 60
    assert ttls["bl.test SOA"] == 7200
    assert ttls["www.gen.test A"] == 7200


def test_without_bounds_the_data_ttls_stand(process, zone_file):
    listed, generic = _ttl_zone(zone_file)
    server = process("--zone", f"bl.test:ip4set:{listed}", "--zone", f"gen.test:generic:{generic}",
                     "--listen", "127.0.0.1:0", "--ttl", "35m")
    ttls = _ttls(server.wait_listening())
    assert ttls["2.0.0.127.bl.test A"] == 10
    assert ttls["bl.test SOA"] == 604800
    assert ttls["short.gen.test A"] == 5


@pytest.mark.parametrize("ttl, needle", [
    ("0", "must have a default TTL over 0"),
    ("0:1m:1d", "must have a default TTL over 0"),
    ("1m:2m", "must have MIN <= DEFAULT <= MAX (a bound of 0 is none), not '1m:2m'"),
    ("1d::1h", "must have MIN <= DEFAULT <= MAX"),
    (":1h:1m", "must have MIN <= DEFAULT <= MAX"),
    ("1m:1x", "must be a TTL in whole seconds, or with a unit (35m, 1h, 2d, 1w), at most "
              "4294967295, not '1x'"),
    ("1:2:3:4", "must be DEFAULT[:MIN[:MAX]] (e.g. 35m or 35m:1m:1d), not '1:2:3:4'"),
])
def test_bad_ttl_is_a_usage_error(zone_file, tmp_path, ttl, needle):
    path = zone_file(LISTED)
    result = run_cli("serve", "--zone", f"bl.test:ip4set:{path}", "--ttl", ttl)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("dnsbl: --ttl must ") and needle in line
    config = tmp_path / "dnsbl.toml"
    value = ttl if ttl == "0" else f'"{ttl}"'
    config.write_text(f'ttl = {value}\n[[zone]]\nname = "bl.test"\ntype = "ip4set"\n'
                      f'files = ["{path}"]\n')
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: 'ttl' must " in result.stderr
    assert needle.split(", not")[0] in result.stderr


# dnsbl query: 0 listed somewhere, 1 listed nowhere, 2 cannot be asked.

@pytest.fixture
def zones(zone_file) -> list[str]:
    return ["--zone", f"bl.test:ip4set:{zone_file(LISTED)}",
            "--zone", f"dbl.test:dnset:{zone_file(['.bad.example', 'test'])}"]


@pytest.mark.parametrize("target, status", [
    ("127.0.0.2", 0), ("192.0.2.9", 0), ("192.0.3.9", 1), ("::1", 1),
    ("x.bad.example", 0), ("good.example", 1), ("2.0.0.127.bl.test", 0),
    ("3.0.0.127.bl.test", 1), ("x.bad.example.dbl.test", 0),
])
def test_query_exit_status_says_whether_listed(zones, target, status):
    result = run_cli("query", *zones, target)
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(";; ")


@pytest.mark.parametrize("target, needle", [
    ("999.1.1.1", "'999.1.1.1' is not a valid IP address"),
    ("1.2.3", "'1.2.3' is not a valid IP address"),
    ("10.0.0.0/8", "'10.0.0.0/8' is a network; ask about one address in it, e.g. 10.0.0.0"),
    ("2001:db8::/32", "is a network"),
    ("2001:db8:::1", "is not a valid IP address"),
    ("10.0.0.0/33", "is neither an IP address nor a domain name"),
    ("bad..example", "is not a valid domain name"),
])
def test_query_of_something_that_is_not_an_address_is_one_line_exit_2(zones, target, needle):
    result = run_cli("query", *zones, target)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"dnsbl: {needle}\n" or (
        len(result.stderr.splitlines()) == 1 and needle in result.stderr)


def test_query_of_a_name_under_no_zone_is_exit_2(zone_file):
    result = run_cli("query", "--zone", f"bl.test:ip4set:{zone_file(LISTED)}", "example.com")
    assert result.returncode == 2
    assert "not under any served zone" in result.stdout


def test_query_with_data_that_did_not_load_is_exit_2_even_if_listed_elsewhere(zone_file,
                                                                              tmp_path):
    result = run_cli("query", "--zone", f"bl.test:ip4set:{tmp_path / 'missing'}",
                     "--zone", f"ok.test:ip4set:{zone_file(LISTED)}", "127.0.0.2")
    assert result.returncode == 2
    assert "cannot open" in result.stderr
    assert "127.0.0.2" in result.stdout  # still shown


# dnsbl check --strict, and the warning at start-up.

def test_check_strict_fails_on_loopback_whole_internet_and_wide_entries(zone_file):
    v4 = zone_file(["127.0.0.2", "127.0.0.1", "10.0.0.0/7", "!0.0.0.0/6",
                    "0.0.0.0-255.255.255.255", "11.0.0.0/8"], "v4.zone")
    v6 = zone_file(["::ffff:7f00:2", "::/0", "2001:db8::/31", "2001:db9::/32"], "v6.zone")
    zones = ("--zone", f"bl.test:ip4set:{v4}", "--zone", f"six.test:ip6trie:{v6}")
    lenient = run_cli("check", *zones)
    assert lenient.returncode == 0, lenient.stdout
    assert "warning: bl.test: 127.0.0.1 is listed; RFC 5782 says it must never be" \
        in lenient.stdout
    strict = run_cli("check", "--strict", *zones)
    assert strict.returncode == 1
    out = strict.stdout
    assert "error: bl.test: 127.0.0.1 is listed; RFC 5782 says it must never be" in out
    assert f"error: {v4}:3: 10.0.0.0/7 is wider than /8 (--max-width4 allows wider)" in out
    assert f"error: {v4}:5: 0.0.0.0/0 lists the whole IPv4 Internet" in out
    assert f"error: {v6}:2: ::/0 lists the whole IPv6 Internet" in out
    assert f"error: {v6}:3: 2001:db8::/31 is wider than /32 (--max-width6 allows wider)" in out
    assert "11.0.0.0/8" not in out and "2001:db9::/32" not in out  # at the limit: fine
    assert "0.0.0.0/6" not in out  # an exclusion, however wide, lists nothing
    assert "6 problem(s)" in out
    wider = run_cli("check", "--strict", "--max-width4", "/6", "--max-width6", "16", *zones)
    assert "10.0.0.0/7" not in wider.stdout and "2001:db8::/31" not in wider.stdout
    assert "lists the whole IPv4 Internet" in wider.stdout  # 0/0 fails whatever the width


def test_check_strict_passes_the_bundled_zones_and_refuses_bad_widths():
    result = run_cli("check", "--strict", "--config", "zones/dnsbl.toml")
    assert result.returncode == 0, result.stdout
    assert "0 problem(s)" in result.stdout
    for width in ("/33", "x", "-1"):
        bad = run_cli("check", "--strict", "--max-width4", width, "--config", "zones/dnsbl.toml")
        assert bad.returncode == 2
        assert "expected a prefix length /0 to /32" in bad.stderr


def test_serve_warns_at_load_when_127_0_0_1_is_listed(process, zone_file):
    server = process("--zone", f"bad.test:ip4trie:{zone_file(['127.0.0.0/8'])}",
                     "--zone", f"good.test:ip4set:{zone_file(LISTED)}",
                     "--listen", "127.0.0.1:0")
    c = server.wait_listening()
    assert c.a("1.0.0.127.bad.test") == ["127.0.0.2"]  # served all the same
    warned = [line for line in server.log if "lists 127.0.0.1" in line]
    assert len(warned) == 1, server.log
    assert " WARNING zone bad.test lists 127.0.0.1, which RFC 5782 says must never be" \
        in warned[0]


# dnsbl from-rbldnsd: an rbldnsd command line as TOML that dnsbl serves.

def test_from_rbldnsd_prints_a_configuration_that_serves_the_same(process, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "bl.zone").write_text("\n".join(LISTED) + "\n")
    (data / "xbl.zone").write_text("192.0.2.128/25 :4:XBL\n")
    (data / "acl.zone").write_text("0/0 :pass\n")
    result = run_cli("from-rbldnsd", "-n", "-u", "rbldns", "-r", str(tmp_path), "-w", "data",
                     "-b", "127.0.0.1/0", "-t", "35m:1m:1d", "-c", "2m", "-e",
                     "bl.test:ip4set:bl.zone", "zen.test:ip4set:bl.zone",
                     "zen.test:ip4trie:xbl.zone", ":acl:acl.zone")
    assert result.returncode == 0, result.stderr
    toml = result.stdout
    assert "# -u rbldns: dnsbl never switches user" in toml
    assert "# -e: a CIDR with host bits set is always skipped" in toml
    assert 'ttl = "35m:1m:1d"' in toml and "check_interval = 120" in toml
    config = tmp_path / "dnsbl.toml"
    config.write_text(toml)
    assert run_cli("check", "--strict", "--config", str(config)).returncode == 0
    c = process("--config", str(config)).wait_listening()
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]
    assert c.a("200.2.0.192.zen.test") == ["127.0.0.3", "127.0.0.4"]  # both datasets
    assert c.query("2.0.0.127.bl.test").answer[0].ttl == 60  # $TTL 10 clamped to -t's min


@pytest.mark.parametrize("args, needle", [
    (["-b", "127.0.0.1/53"], "no zones"),
    (["-Z", "x.test:ip4set:a"], "option -Z not recognized"),
    (["-t", "0", "x.test:ip4set:a"], "-t must have a default TTL over 0"),
    (["-b", "999.1.1.1/53", "x.test:ip4set:a"], "'999.1.1.1' is not an IP address"),
    (["x.test:nosuch:a"], "unknown dataset type 'nosuch'"),
])
def test_from_rbldnsd_refuses_what_rbldnsd_or_dnsbl_would(args, needle):
    result = run_cli("from-rbldnsd", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert needle in line
