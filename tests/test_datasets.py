"""IPv6 and domain-name datasets: zone lines -> query -> answer, over real sockets."""

from __future__ import annotations

import ipaddress

import dns.rcode
import pytest

NX = "NXDOMAIN"
NODATA = "NODATA"


def rev6(address: str, zone: str = "bl.test") -> str:
    return ipaddress.ip_address(address).reverse_pointer.replace("ip6.arpa", zone)


def look(client, name: str):
    """NX, NODATA, or (sorted A addresses, sorted TXT strings)."""
    r = client.query(name, "ANY")
    if r.rcode() == dns.rcode.NXDOMAIN:
        return NX
    assert r.rcode() == dns.rcode.NOERROR
    if not r.answer:
        return NODATA
    a = sorted(rd.address for rrset in r.answer if rrset.rdtype == 1 for rd in rrset)
    txt = sorted(b"".join(rd.strings).decode() for rrset in r.answer if rrset.rdtype == 16
                 for rd in rrset)
    return a, txt


IP6_LINES = [
    ":127.0.1.2: Listed, see http://example.com/lookup?$",
    "2001:21ab:c000/36",                                  # trailing zero groups left out
    "2001:21ab:def7:4242 :127.0.1.3: This one smells funny",  # four groups: a /64
    "2605:6001:42::/52",
    "::1",
    "!2605:6001:42::bead",
    "::ffff:7f00:2 :2:RFC 5782 test point",
]


@pytest.mark.parametrize("address, answer", [
    ("2001:21ab:c000::5", (["127.0.1.2"], ["Listed, see http://example.com/lookup?2001:21ab:c000::5"])),
    ("2001:21ab:cfff:ffff::1", (["127.0.1.2"], ["Listed, see http://example.com/lookup?2001:21ab:cfff:ffff::1"])),
    ("2001:21ab:d000::", NX),
    ("2001:21ab:def7:4242:1:2:3:4", (["127.0.1.3"], ["This one smells funny"])),
    ("2001:21ab:def7:4243::", NX),
    ("2605:6001:42:fff::1", (["127.0.1.2"], ["Listed, see http://example.com/lookup?2605:6001:42:fff::1"])),
    ("2605:6001:42::bead", NX),                          # excluded
    ("::1", (["127.0.1.2"], ["Listed, see http://example.com/lookup?::1"])),
    ("::ffff:7f00:2", (["127.0.0.2"], ["RFC 5782 test point"])),
    ("::ffff:7f00:1", NX),
])
def test_ip6trie(zone, address, answer):
    client = zone(IP6_LINES, "ip6trie")
    assert look(client, rev6(address)) == answer


def test_ip6_intermediate_and_malformed_names(zone):
    client = zone(IP6_LINES, "ip6trie")
    full = rev6("2001:21ab:c000::5")
    labels = full.split(".")
    for depth in (1, 8, 16, 31):
        assert look(client, ".".join(labels[32 - depth:])) == NODATA  # RFC 8020
    assert look(client, "x." + full) == NX           # 33 labels
    assert look(client, full.replace("5.", "g.", 1)) == NX  # not a nibble
    assert look(client, full.upper().replace("BL.TEST", "bl.test")) != NX  # case-insensitive
    assert look(client, "ab." + ".".join(labels[2:])) == NX  # a two-character label


def test_ip6tset(zone):
    client = zone([":3:Tset $", "2001:20fe:23:41ed", "abac:adab:ad00:42f",
                   "!abac:adab:ad00:42f:face:0f:a:beef", "!abac:adab:ad00:42f::2",
                   "2001:db8::/64", "2001:db9:1:2:3"], "ip6tset")
    assert look(client, rev6("2001:20fe:23:41ed::9")) == (
        ["127.0.0.3"], ["Tset 2001:20fe:23:41ed::9"])
    assert look(client, rev6("abac:adab:ad00:42f::1")) == (
        ["127.0.0.3"], ["Tset abac:adab:ad00:42f::1"])
    assert look(client, rev6("abac:adab:ad00:42f:face:f:a:beef")) == NX
    assert look(client, rev6("abac:adab:ad00:42f::2")) == NX
    assert look(client, rev6("2001:db8::1")) == NX  # only four-group /64s are keys


def test_ipv4_and_ipv6_data_under_one_zone(serve, zone_file):
    c = serve(f"bl.test:ip4set:{zone_file([':2:v4 $', '127.0.0.2'])}",
              f"bl.test:ip6trie:{zone_file([':2:v6 $', '::ffff:7f00:2'])}")
    assert look(c, "2.0.0.127.bl.test") == (["127.0.0.2"], ["v4 127.0.0.2"])
    assert look(c, rev6("::ffff:7f00:2")) == (["127.0.0.2"], ["v6 ::ffff:7f00:2"])
    assert look(c, "1.0.0.127.bl.test") == NX
    assert look(c, "7.bl.test") == NODATA


DN_LINES = [":2:Domain $ listed", "example.com", "*.wild.test", ".both.test", "!no.both.test",
            "TEST", "bad..name", "deep.a.b.example.org :3:Deep one"]


@pytest.mark.parametrize("name, answer", [
    ("example.com", (["127.0.0.2"], ["Domain example.com listed"])),
    ("EXAMPLE.com", (["127.0.0.2"], ["Domain example.com listed"])),
    ("www.example.com", NX),                 # not a wildcard entry
    # $ is the entry: for a wildcard, its base (as rbldnsd does)
    ("x.wild.test", (["127.0.0.2"], ["Domain wild.test listed"])),
    ("y.x.wild.test", (["127.0.0.2"], ["Domain wild.test listed"])),
    ("wild.test", NODATA),                   # *.x lists only names under x
    ("both.test", (["127.0.0.2"], ["Domain both.test listed"])),
    ("a.both.test", (["127.0.0.2"], ["Domain both.test listed"])),
    ("no.both.test", NODATA),                # excluded
    ("test", (["127.0.0.2"], ["Domain test listed"])),   # RFC 5782 TEST
    ("invalid", NX),                         # RFC 5782 INVALID
    ("deep.a.b.example.org", (["127.0.0.3"], ["Deep one"])),
    ("a.b.example.org", NODATA),             # empty non-terminals (RFC 8020)
    ("org", NODATA),
    ("c.a.b.example.org", NX),
])
def test_dnset(zone, name, answer):
    client = zone(DN_LINES, "dnset")
    assert look(client, f"{name}.bl.test") == answer


def test_dnset_bad_name_is_warned(zone_file):
    from dnsbl.dataset import load_dataset

    path = zone_file(DN_LINES)
    warnings = [str(w) for w in load_dataset("dnset", [path], 2100).warnings]
    assert warnings == [f"{path}:7: invalid name 'bad..name'"]


def test_query_explains_ipv6_and_names(zone_file):
    from tests.conftest import run_cli

    v6 = zone_file(IP6_LINES)
    out = run_cli("query", "--zone", f"bl.test:ip6trie:{v6}", "2605:6001:42::bead").stdout
    assert "NXDOMAIN" in out and f"{v6}:6: !2605:6001:42::bead/128 (excluded)" in out
    out = run_cli("query", "--zone", f"bl.test:ip6trie:{v6}", "2001:21ab:c000::5").stdout
    assert f"{v6}:2: 2001:21ab:c000::/36 -> A 127.0.1.2" in out
    names = zone_file(DN_LINES)
    out = run_cli("query", "--zone", f"dbl.test:dnset:{names}", "a.both.test.dbl.test").stdout
    assert f"{names}:4: .both.test -> A 127.0.0.2 TXT 'Domain both.test listed'" in out


GENERIC_LINES = ["@ A 127.0.0.8", "@ MX 10 mx.ex.com", "www 3000 A 127.0.0.8",
                 'about TXT "ex.com combined blocklist"', "bad AAAA ::1", "x.y.z A 192.0.2.1"]


def test_generic_records(serve, zone_file):
    import dns.rdatatype

    generic = zone_file(GENERIC_LINES)
    data = zone_file(["$SOA 0 ns.ex.com hm.ex.com 7 1h 1h 1w 60", "127.0.0.2"])
    c = serve(f"bl.test:ip4set:{data}", f"bl.test:generic:{generic}")
    assert c.a("bl.test") == ["127.0.0.8"]
    mx = c.query("bl.test", "MX").answer[0]
    assert [(rd.preference, str(rd.exchange)) for rd in mx] == [(10, "mx.ex.com.")]
    apex_any = {dns.rdatatype.to_text(r.rdtype) for r in c.query("bl.test", "ANY").answer}
    assert apex_any == {"SOA", "A", "MX"}
    r = c.query("www.bl.test", "A")
    assert [rd.address for rd in r.answer[0]] == ["127.0.0.8"] and r.answer[0].ttl == 3000
    assert look(c, "www.bl.test").__class__ is tuple
    r = c.query("www.bl.test", "TXT")  # the name exists, not with that type
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
    assert c.txt("about.bl.test") == ["ex.com combined blocklist"]
    assert c.a("x.y.z.bl.test") == ["192.0.2.1"]
    assert look(c, "y.z.bl.test") == NODATA   # above a name with records
    assert look(c, "nope.bl.test") == NX
    assert c.a("2.0.0.127.bl.test") == ["127.0.0.2"]  # the list still answers


def test_generic_bad_lines_are_warned(zone_file):
    from dnsbl.dataset import load_dataset

    path = zone_file(GENERIC_LINES + ["www TXT", "mail MX ten mx.ex.com", "a.b A 300.1.1.1"])
    warnings = [str(w) for w in load_dataset("generic", [path], 2100).warnings]
    assert warnings == [
        f"{path}:5: invalid record: unsupported type 'AAAA' (A, TXT and MX are)",
        f"{path}:7: invalid record: expected name [ttl] type value",
        f"{path}:8: invalid record: bad MX value 'ten mx.ex.com': expected preference and host",
        f"{path}:9: invalid record: Octet 300 (> 255) not permitted in '300.1.1.1'",
    ]
