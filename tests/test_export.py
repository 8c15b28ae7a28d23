"""dnsbl export: the BIND master file and the RPZ forms of a zone.

The master file is checked by what a user relies on: named-checkzone accepts
it, and BIND, started here on a loopback port with its own configuration and
loading that file, answers a sample of listed, unlisted and excluded
addresses and names as dnsbl does. Skipped where BIND is missing (`.ci/run`
installs bind9).
"""

from __future__ import annotations

import ipaddress
import random
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnsbl.config import Listen, load_config
from dnsbl.rpz import rpz_ip_name
from tests.helpers import NAMED, Named, ServerThread, ask, run_cli, scaled, seen, stop_all

CHECKZONE = shutil.which("named-checkzone")
needs_checkzone = pytest.mark.skipif(
    CHECKZONE is None, reason="named-checkzone not installed (apt-get install bind9-utils)")
needs_named = pytest.mark.skipif(
    NAMED is None, reason="named not installed (apt-get install bind9)")

IP4 = """\
$SOA 3600 ns1.example.org hostmaster.example.org 7 1h 15m 1w 300
$NS 0 ns1.example.org ns2.example.org
$TTL 600
:127.0.0.2:Listed: $
127.0.0.2
198.51.100.7 :3:Botnet controller $
10.0.0.0/8 :4:Big block
!10.1.0.0/16
10.1.2.0/24 :5:Back in
!10.1.2.128/25
10.1.2.200
172.16.0.0/12 :6:Not on a label boundary
!172.16.5.64/26
203.0.113.10-203.0.113.20 :7:
192.0.2.0/27
"""
IP6 = """\
$TTL 600
:127.0.0.2:Listed: $
2001:db8:bad::/48 :3:Botnet controllers
!2001:db8:bad:1::/64
2001:db8:bad:1::7
2001:db8:f00:1
2001:db8:c000::/35 :8:Odd length
"""
NAMES = """\
$SOA 3600 ns1.example.org hostmaster.example.org 7 1h 15m 1w 300
$NS 0 ns1.example.org
$TTL 600
:127.0.1.2:Listed: $
test
.malware.example.net :127.0.1.5:Malware: $
!clean.malware.example.net
*.phish.example.org :127.0.1.4:Phishing: $
deep.a.phish.example.org :127.0.1.6:Deeper
"""
ALLOW = "192.0.2.5\n2001:db8:bad::53/128  # our resolver\n"
CONFIG = """\
ttl = 600
[[zone]]
name = "bl.example.org"
datasets = [{ type = "ip4set", files = ["bl.zone"] }, { type = "ip6trie", files = ["bl6.zone"] }]
[[zone]]
name = "dbl.example.org"
type = "dnset"
files = ["dbl.zone"]
[rpz]
default = "nxdomain"
client = ["127.0.0.8"]
allowlist = ["allow.txt"]
[rpz.actions]
"127.0.0.3" = "drop"
"127.0.0.4" = "cname:walled.example.net"
"127.0.0.5" = "a:192.0.2.80"
"127.0.0.6" = "tcp-only"
"127.0.0.7" = "nodata"
"""

# Addresses whose answers the sample always holds: each entry, each
# exclusion, each edge of a block, and some unlisted ones.
FIXED4 = ["127.0.0.2", "127.0.0.1", "198.51.100.7", "198.51.100.8", "10.0.0.1",
          "10.255.255.255", "10.1.0.1", "10.1.2.1", "10.1.2.127", "10.1.2.128", "10.1.2.200",
          "10.1.3.4", "10.2.3.4", "11.0.0.1", "172.16.0.1", "172.31.255.255", "172.16.5.64",
          "172.16.5.127", "172.16.5.128", "172.32.0.1", "203.0.113.9", "203.0.113.10",
          "203.0.113.20", "203.0.113.21", "192.0.2.0", "192.0.2.31", "192.0.2.32"]
FIXED6 = ["2001:db8:bad::1", "2001:db8:bad:1::1", "2001:db8:bad:1::7", "2001:db8:bad:2::9",
          "2001:db8:badd::1", "2001:db8:f00:1::1", "2001:db8:f00:2::1", "2001:db8:c000::1",
          "2001:db8:dfff:ffff::1", "2001:db8:e000::1", "::ffff:7f00:2"]
NAMES_ASKED = ["test", "invalid", "malware.example.net", "x.malware.example.net",
               "clean.malware.example.net", "y.clean.malware.example.net",
               "phish.example.org", "a.phish.example.org", "deep.a.phish.example.org",
               "z.deep.a.phish.example.org", "b.a.phish.example.org", "example.org"]


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    (tmp_path / "bl.zone").write_text(IP4)
    (tmp_path / "bl6.zone").write_text(IP6)
    (tmp_path / "dbl.zone").write_text(NAMES)
    (tmp_path / "allow.txt").write_text(ALLOW)
    path = tmp_path / "dnsbl.toml"
    path.write_text(CONFIG)
    return path


def export(config: Path, zone: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("export", "--config", str(config), zone, *extra)


def exported(config: Path, zone: str, *extra: str) -> Path:
    out = config.parent / f"{zone}.{'rpz' if 'rpz' in extra else 'db'}"
    done = export(config, zone, "--output", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return out


@needs_checkzone
@pytest.mark.parametrize("zone,origin,form", [
    ("bl.example.org", "bl.example.org", "bind"),
    ("dbl.example.org", "dbl.example.org", "bind"),
    ("bl.example.org", "rpz.bl.example.org", "rpz"),
    ("dbl.example.org", "rpz.dbl.example.org", "rpz"),
])
def test_named_checkzone_accepts_the_export(configured, zone, origin, form):
    path = exported(configured, zone, "--format", form)
    assert CHECKZONE is not None
    check = subprocess.run([CHECKZONE, "-k", "fail", "-i", "full", origin, str(path)],
                           capture_output=True, text=True, timeout=scaled(60))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "loaded serial 7" in check.stdout


def test_the_bundled_zones_export(tmp_path):
    root = Path(__file__).resolve().parent.parent
    for zone in ("bl.example.org", "dbl.example.org"):
        done = run_cli("export", "--config", str(root / "zones" / "dnsbl.toml"), zone)
        assert done.returncode == 0, done.stderr
        assert f"$ORIGIN {zone}." in done.stdout
        assert done.stdout.endswith(f"; end of {zone}\n")


def sample4(rng: random.Random) -> list[str]:
    blocks = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "172.16.0.0/12", "172.16.5.0/24",
              "203.0.113.0/24", "192.0.2.0/24", "198.51.100.0/24", "11.0.0.0/8"]
    out = list(FIXED4)
    for block in blocks:
        net = ipaddress.ip_network(block)
        out += [str(net[rng.randrange(net.num_addresses)]) for _ in range(12)]
    return out


def sample6(rng: random.Random) -> list[str]:
    blocks = ["2001:db8:bad::/48", "2001:db8:bad:1::/64", "2001:db8:f00::/48",
              "2001:db8:c000::/34"]
    out = list(FIXED6)
    for block in blocks:
        net = ipaddress.ip_network(block)
        out += [str(net[rng.randrange(net.num_addresses)]) for _ in range(12)]
    return out


@pytest.fixture
def both(configured, tmp_path):
    """(dnsbl port, named port): the same data served by dnsbl and by BIND from the export."""
    files = {zone: exported(configured, zone) for zone in ("bl.example.org",
                                                             "dbl.example.org")}
    config = load_config(str(configured))
    thread = ServerThread(replace(config, listen=(Listen("127.0.0.1", 0),)))
    ours = thread.start()
    named = Named(tmp_path, files)
    try:
        named.start()
        yield ours.port, named.port
    finally:
        stop_all([named.stop, thread.stop])


@needs_named
def test_bind_loading_the_export_answers_as_dnsbl(both):
    ours, bind = both
    rng = random.Random(17)
    names = [ipaddress.ip_address(a).reverse_pointer.rsplit(".", 2)[0] + ".bl.example.org"
             for a in sample4(rng) + sample6(rng)]
    names += [f"{n}.dbl.example.org" for n in NAMES_ASKED]
    compared = listed = 0
    for name in names:
        expect = seen(ask(ours, name, "A"), "A")
        got = seen(ask(bind, name, "A"), "A")
        assert got == expect, name
        compared += 1
        listed += expect[0] == "listed"
    assert compared > 150 and 40 < listed < compared - 40  # both kinds in the sample
    # Exact entries carry their own TXT, with $ filled in.
    for name in ("7.100.51.198.bl.example.org", "200.2.1.10.bl.example.org",
                 "x.malware.example.net.dbl.example.org"):
        assert seen(ask(bind, name, "TXT"), "TXT") == seen(ask(ours, name, "TXT"), "TXT")
    # Unlisted addresses are NXDOMAIN from both, with the zone's SOA.
    for name in ("1.0.0.127.bl.example.org", "130.2.1.10.bl.example.org"):
        for port in (ours, bind):
            r = ask(port, name, "A")
            assert r.rcode() == dns.rcode.NXDOMAIN, (port, name)


def test_past_the_record_cap_the_export_stops_with_a_clear_error(configured):
    done = export(configured, "bl.example.org", "--max-records", "100")
    assert done.returncode == 1
    assert "more than 100 records" in done.stderr
    assert "--max-records" in done.stderr
    assert "; end of" not in done.stdout  # streamed: what a reader can tell it by


def test_an_unknown_zone_is_named(configured):
    done = export(configured, "nope.example.org")
    assert done.returncode == 1
    assert "no zone 'nope.example.org'" in done.stderr
    assert "bl.example.org" in done.stderr


def test_a_bad_allowlist_line_fails_the_rpz_export_by_file_and_line(configured):
    allow = configured.parent / "allow.txt"
    allow.write_text(ALLOW + "192.0.2.300\n")
    done = export(configured, "bl.example.org", "--format", "rpz")
    assert done.returncode == 1
    assert f"{allow}:3: bad address '192.0.2.300'" in done.stderr
    assert "; end of" not in done.stdout
    # The bind form has no allowlist in it: it exports as before.
    assert export(configured, "bl.example.org").returncode == 0


def test_a_failed_export_leaves_no_output_file(configured):
    out = configured.parent / "out.db"
    done = export(configured, "bl.example.org", "--max-records", "100", "--output", str(out))
    assert done.returncode == 1
    assert not out.exists()
    assert [p.name for p in configured.parent.iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("network,name", [
    ("1.2.3.4/32", "32.4.3.2.1"),
    ("10.0.0.0/8", "8.0.0.0.10"),
    ("2001:db8::/32", "32.zz.db8.2001"),
    ("2001:db8:0:1::7/128", "128.7.zz.1.0.db8.2001"),
    ("2001:db8:1:2:3:4:5:6/128", "128.6.5.4.3.2.1.db8.2001"),
])
def test_rpz_trigger_names_follow_the_draft(network, name):
    assert rpz_ip_name(ipaddress.ip_network(network)) == name


def test_rpz_actions_per_category_exclusions_and_allowlist(configured):
    done = export(configured, "bl.example.org", "--format", "rpz")
    assert done.returncode == 0, done.stderr
    lines = {" ".join(line.split()[:1] + line.split()[3:]) for line in done.stdout.splitlines()
             if not line.startswith((";", "$"))}
    assert "32.2.0.0.127.rpz-ip CNAME ." in lines  # the default: NXDOMAIN
    assert "32.7.100.51.198.rpz-ip CNAME rpz-drop." in lines
    assert "8.0.0.0.10.rpz-ip CNAME walled.example.net." in lines  # walled garden
    assert "24.0.2.1.10.rpz-ip A 192.0.2.80" in lines  # local data
    assert "12.0.0.16.172.rpz-ip CNAME rpz-tcp-only." in lines  # any prefix length
    assert "32.10.113.0.203.rpz-ip CNAME *." not in lines  # ranges become CIDRs
    assert "31.10.113.0.203.rpz-ip CNAME *." in lines  # NODATA
    assert "16.0.0.1.10.rpz-ip CNAME rpz-passthru." in lines  # exclusions
    assert "26.64.5.16.172.rpz-ip CNAME rpz-passthru." in lines
    assert "64.zz.1.bad.db8.2001.rpz-ip CNAME rpz-passthru." in lines
    assert "32.5.2.0.192.rpz-ip CNAME rpz-passthru." in lines  # the allowlist
    assert "128.53.zz.bad.db8.2001.rpz-ip CNAME rpz-passthru." in lines
    assert "35.zz.c000.db8.2001.rpz-client-ip CNAME ." in lines  # a client category
    assert "@ SOA ns1.example.org. hostmaster.example.org. 7 3600 900 604800 300" in lines
    assert done.stdout.count("$ORIGIN rpz.bl.example.org.") == 1


def test_rpz_origin_and_name_triggers(configured):
    done = export(configured, "dbl.example.org", "--format", "rpz", "--origin", "dbl.rpz")
    assert done.returncode == 0, done.stderr
    lines = {" ".join(line.split()[:1] + line.split()[3:]) for line in done.stdout.splitlines()}
    assert "$ORIGIN dbl.rpz." in done.stdout
    assert "malware.example.net CNAME walled.example.net." not in lines
    assert "malware.example.net CNAME ." in lines
    assert "*.malware.example.net CNAME ." in lines
    assert "clean.malware.example.net CNAME rpz-passthru." in lines
    assert "*.phish.example.org CNAME ." in lines


def test_a_bad_rpz_action_is_a_configuration_error(configured):
    configured.write_text(CONFIG.replace('"drop"', '"explode"'))
    done = export(configured, "bl.example.org", "--format", "rpz")
    assert done.returncode == 2
    assert "[rpz]: actions.127.0.0.3: unknown action 'explode'" in done.stderr


def _random_ip4_lines(rng: random.Random, count: int) -> list[str]:
    """Entries of every kind in a few small regions, so they overlap: single
    addresses, blocks aligned or not, ranges, exclusions, values with "$"."""
    lines = []
    for _ in range(count):
        base = rng.choice([10 << 24, 10 << 24 | 1 << 16, 172 << 24 | 16 << 16, 192 << 24])
        address = base | rng.randrange(1 << 12)
        text = ipaddress.IPv4Address(address)
        kind = rng.random()
        value = rng.choice(["", " :3:Botnet $", " :4:", " :127.0.0.5:Fixed text"])
        if kind < 0.5:
            lines.append(f"{text}{value}")
        elif kind < 0.8:
            bits = rng.choice([8, 12, 16, 20, 23, 24, 25, 28, 31])
            net = ipaddress.IPv4Network((address, bits), strict=False)
            lines.append(f"{net}{value}")
        elif kind < 0.9:
            lines.append(f"{text}-{ipaddress.IPv4Address(address + rng.randrange(40))}{value}")
        else:
            bits = rng.choice([16, 22, 24, 27, 32])
            lines.append(f"!{ipaddress.IPv4Network((address, bits), strict=False)}")
    return lines


def _random_ip6_lines(rng: random.Random, count: int) -> list[str]:
    lines = []
    for _ in range(count):
        address = 0x20010DB8 << 96 | rng.randrange(1 << 20) << 76 | rng.randrange(1 << 8)
        bits = rng.choice([32, 35, 48, 64, 65, 127, 128])
        net = ipaddress.IPv6Network((address, bits), strict=False)
        lines.append(f"{'!' if rng.random() < 0.2 else ''}{net}"
                     f"{rng.choice(['', ' :3:Six $'])}")
    return lines


@pytest.mark.parametrize("seed", range(6))
def test_streamed_records_are_those_of_the_label_tree(tmp_path, seed):
    """The streaming generator writes, record for record and in the same
    order, what the label tree it replaced wrote (tests/export_oracle.py)."""
    from dnsbl.export import bind_records, load
    from tests import export_oracle

    rng = random.Random(seed)
    head = "$SOA 3600 ns1.example.org hostmaster.example.org 7 1h 15m 1w 300\n" \
           "$TTL 600\n:127.0.0.2:Listed: $\n"
    (tmp_path / "a.zone").write_text(head + "\n".join(_random_ip4_lines(rng, 300)) + "\n")
    (tmp_path / "b.zone").write_text(":127.0.0.9:Second\n"
                                     + "\n".join(_random_ip4_lines(rng, 60)) + "\n")
    (tmp_path / "c.zone").write_text(":127.0.0.2:Six\n"
                                     + "\n".join(_random_ip6_lines(rng, 120)) + "\n")
    (tmp_path / "dnsbl.toml").write_text(
        'ttl = 600\n[[zone]]\nname = "bl.example.org"\ndatasets = ['
        '{ type = "ip4set", files = ["a.zone"] }, { type = "ip4trie", files = ["b.zone"] }, '
        '{ type = "ip6trie", files = ["c.zone"] }]\n')
    config = load_config(str(tmp_path / "dnsbl.toml"))
    zoneset, zone = load(config, "bl.example.org")
    streamed = list(bind_records(zoneset, zone, max_records=1 << 62))
    assert streamed == list(export_oracle.bind_records(zoneset, zone))
    assert len(streamed) > 1000  # the data made a zone worth comparing


def test_rpz_has_one_record_per_trigger_and_the_allowlist_wins(configured):
    """A resolver rejects a zone with two CNAMEs at one name: where the
    allowlist names a listed address, or two datasets list one, one is kept."""
    (configured.parent / "allow.txt").write_text(ALLOW + "198.51.100.7\n")
    (configured.parent / "bl6.zone").write_text(IP6 + "2001:db8:bad::/48 :7:Again\n")
    done = export(configured, "bl.example.org", "--format", "rpz")
    assert done.returncode == 0, done.stderr
    owners = [line.split()[0] for line in done.stdout.splitlines()
              if not line.startswith((";", "$", "@"))]
    assert len(owners) == len(set(owners))
    lines = {" ".join(line.split()[:1] + line.split()[3:]) for line in done.stdout.splitlines()}
    assert "32.7.100.51.198.rpz-ip CNAME rpz-passthru." in lines
    assert "48.zz.bad.db8.2001.rpz-ip CNAME *." in lines  # the later line's category 7
    ip4 = [o for o in owners if o.endswith(".rpz-ip") and o.count(".") == 5
           and o.split(".")[1].isdigit()]
    assert ip4 == sorted(ip4, key=lambda o: (ipaddress.ip_address(
        ".".join(reversed(o.split(".")[1:5]))), int(o.split(".")[0])))
