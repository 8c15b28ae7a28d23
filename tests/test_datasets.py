"""IPv6 and domain-name datasets: zone lines -> query -> answer, over real sockets."""

from __future__ import annotations

import ipaddress

import dns.rcode
import pytest

from tests.helpers import NODATA, NX, look, rev, run_cli

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
    assert look(client, rev(address)) == answer


def test_ip6_intermediate_and_malformed_names(zone):
    client = zone(IP6_LINES, "ip6trie")
    full = rev("2001:21ab:c000::5")
    labels = full.split(".")
    for depth in (1, 8, 16, 31):
        assert look(client, ".".join(labels[32 - depth:])) == NODATA  # RFC 8020
    assert look(client, "x." + full) == NX           # 33 labels
    assert look(client, full.replace("5.", "g.", 1)) == NX  # not a nibble
    # Case-insensitive: the same answer as the lowercase name, not NODATA.
    assert look(client, full.upper().replace("BL.TEST", "bl.test")) == (
        ["127.0.1.2"], ["Listed, see http://example.com/lookup?2001:21ab:c000::5"])
    assert look(client, "ab." + ".".join(labels[2:])) == NX  # a two-character label


def test_ip6tset(zone):
    client = zone([":3:Tset $", "2001:20fe:23:41ed", "abac:adab:ad00:42f",
                   "!abac:adab:ad00:42f:face:0f:a:beef", "!abac:adab:ad00:42f::2",
                   "2001:db8::/64", "2001:db9:1:2:3"], "ip6tset")
    assert look(client, rev("2001:20fe:23:41ed::9")) == (
        ["127.0.0.3"], ["Tset 2001:20fe:23:41ed::9"])
    assert look(client, rev("abac:adab:ad00:42f::1")) == (
        ["127.0.0.3"], ["Tset abac:adab:ad00:42f::1"])
    assert look(client, rev("abac:adab:ad00:42f:face:f:a:beef")) == NX
    assert look(client, rev("abac:adab:ad00:42f::2")) == NX
    assert look(client, rev("2001:db8::1")) == NX  # only four-group /64s are keys


def test_ipv4_and_ipv6_data_under_one_zone(serve, zone_file):
    v6 = zone_file([":3:v6 $", "::ffff:7f00:2", "2001:db8::/32"])
    c = serve(f"bl.test:ip4set:{zone_file([':2:v4 $', '127.0.0.2'])}", f"bl.test:ip6trie:{v6}")
    assert look(c, "2.0.0.127.bl.test") == (["127.0.0.2"], ["v4 127.0.0.2"])
    assert look(c, rev("2001:db8::1")) == (["127.0.0.3"], ["v6 2001:db8::1"])
    assert look(c, "1.0.0.127.bl.test") == NX
    assert look(c, "7.bl.test") == NODATA


@pytest.mark.parametrize("address, answer", [
    # IPv4-mapped: the IPv4 data alone answers, $ the IPv4 address (as rbldnsd);
    # the IPv6 data's own ::ffff:7f00:2 entry is not asked.
    ("::ffff:7f00:2", (["127.0.0.2"], ["v4 127.0.0.2"])),
    ("::ffff:a01:203", (["127.0.0.2"], ["v4 10.1.2.3"])),
    ("::ffff:7f00:1", NX),
    # 6to4 (RFC 3056): the IPv4 data and the IPv6 data both answer.
    ("2002:a01:203::1", (["127.0.0.2", "127.0.0.3"], ["v4 10.1.2.3", "v6 2002:a01:203::1"])),
    ("2002:b01:203::1", (["127.0.0.3"], ["v6 2002:b01:203::1"])),
    # IPv4-compatible and other embeddings are plain IPv6 addresses.
    ("::a01:203", NX),
    ("::ffff:0:a01:203", NX),
])
def test_ipv6_names_holding_ipv4_addresses(serve, zone_file, address, answer):
    c = serve(f"bl.test:ip4set:{zone_file([':2:v4 $', '127.0.0.2', '10.0.0.0/8'])}",
              f"bl.test:ip6trie:{zone_file([':3:v6 $', '::ffff:7f00:2', '2002::/16'])}")
    assert look(c, rev(address)) == answer


@pytest.mark.parametrize("kind, lines, names", [
    # Nibble names (fewer than 32) exist only where listed addresses lie below.
    ("ip6trie", ["2001:db8::/32", "!2001:db8:5::/48", "3001:db8:1::/48", "3001:db8:1:2::/64"], {
        "2001": NODATA,             # a listed /32 below
        "2001:db8:1": NODATA,       # inside the listed /32
        "2001:db8:5": NX,           # inside it, but excluded
        "3001:db8": NODATA,         # a listed /48 below
        "3001:db8:1:2": NODATA,     # exactly a listed /64
        "3001:db9": NX,
        "8888": NX,                 # also the IPv4 name 8.8.8.8 (there is no IPv4 data)
        "2002": NX,
    }),
    ("ip6tset", ["2001:db8:1:2", "!2001:db8:1:2::7"], {
        "2001:db8": NODATA, "2001:db8:1:2": NODATA, "2001:db9": NX, "9999": NX}),
])
def test_ipv6_intermediate_names_exist_only_above_listed_addresses(zone, kind, lines, names):
    client = zone(lines, kind)
    for prefix, answer in names.items():
        groups = prefix.split(":")
        nibbles = "".join(g.rjust(4, "0") for g in groups)
        assert look(client, ".".join(reversed(nibbles)) + ".bl.test") == answer, prefix


def test_unlisted_ipv4_address_is_nxdomain_in_a_zone_with_ipv6_data(serve, zone_file):
    # 8.8.8.8 is also a name of four IPv6 nibbles: nothing listed under 8888::/16
    # makes it exist. (rbldnsd: NXDOMAIN; the bundled bl.example.org gave NODATA.)
    c = serve(f"bl.test:ip4set:{zone_file([':2:v4 $', '127.0.0.2'])}",
              f"bl.test:ip6trie:{zone_file(['2001:db8::/32', '::ffff:7f00:2'])}")
    assert look(c, "8.8.8.8.bl.test") == NX
    assert look(c, "9.9.9.9.bl.test") == NX
    assert look(c, "2.0.0.127.bl.test") == (["127.0.0.2"], ["v4 127.0.0.2"])
    assert look(c, "8.b.d.0.1.0.0.2.bl.test") == NODATA  # 2001:db8::/32 is listed


def test_name_listed_by_ipv4_data_and_a_dnset_answers_both(serve, zone_file):
    # rbldnsd answers every dataset that lists the name, each $ its own entry.
    c = serve(f"bl.test:ip4set:{zone_file([':2:v4 $', '127.0.0.2', '1.2.3.4'])}",
              f"bl.test:dnset:{zone_file([':3:dn $', '2.0.0.127', '4.3.2.1', '5.5.5.5'])}")
    assert look(c, "2.0.0.127.bl.test") == (["127.0.0.2", "127.0.0.3"],
                                            ["dn 2.0.0.127", "v4 127.0.0.2"])
    assert look(c, "4.3.2.1.bl.test") == (["127.0.0.2", "127.0.0.3"], ["dn 4.3.2.1", "v4 1.2.3.4"])
    assert look(c, "5.5.5.5.bl.test") == (["127.0.0.3"], ["dn 5.5.5.5"])  # the dnset alone
    assert look(c, "3.0.0.127.bl.test") == NX


def test_ipv4_zone_answers_mapped_ipv6_names(serve, zone_file):
    c = serve(f"bl.test:ip4set:{zone_file([':2:v4 $', '127.0.0.2'])}")
    assert look(c, rev("::ffff:7f00:2")) == (["127.0.0.2"], ["v4 127.0.0.2"])
    assert look(c, rev("2001:db8::2")) == NX
    # The names above a mapped address exist (RFC 8020); others do not.
    nibbles = rev("::ffff:7f00:2").split(".")
    assert look(c, ".".join(nibbles[8:])) == NODATA  # ::ffff:0:0/96
    assert look(c, ".".join(nibbles[27:])) == NODATA  # ::/20
    assert look(c, ".".join(["a", *nibbles[28:]])) == NX  # a::/20


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
    ("bad.name", (["127.0.0.2"], ["Domain bad.name listed"])),  # "bad..name", as rbldnsd
])
def test_dnset(zone, name, answer):
    client = zone(DN_LINES, "dnset")
    assert look(client, f"{name}.bl.test") == answer


def test_dnset_bad_name_is_warned(zone_file):
    from dnsbl.datasets import load_dataset

    path = zone_file(["ok.test", "x" * 64 + ".test", "."])
    warnings = [str(w) for w in load_dataset("dnset", [path], 2100).warnings]
    assert warnings == [f"{path}:2: invalid name '{'x' * 64}.test'", f"{path}:3: invalid name '.'"]


@pytest.mark.parametrize("name, answer", [
    # A name listed twice answers with both values (rbldnsd does).
    ("dup.test", (["127.0.0.7", "127.0.0.8"], ["first", "second"])),
    ("wdup.a.test", (["127.0.0.3", "127.0.0.4"], ["w3", "w4"])),
    # ...unless it is also excluded, in any order.
    ("gone.test", NX),
    # The name runs up to the first blank: ";" is part of it (as in rbldnsd).
    ("semi.test", NX),
    # Below an exclusion nothing is listed: NXDOMAIN, not NODATA.
    ("neg.test", NX),
    ("a.neg.test", NX),
    ("a.x.ex.test", NX),
    ("b.a.x.ex.test", NX),
    ("a.ex.test", (["127.0.0.2"], [])),
])
def test_dnset_duplicates_and_exclusions(zone, name, answer):
    client = zone(["dup.test :7:first", "dup.test :8:second", "*.a.test :3:w3", "*.a.test :4:w4",
                   "gone.test :5:", "!gone.test", "gone.test :6:", "semi.test;comment",
                   "!.neg.test", "*.neg.test", "*.ex.test", "!*.x.ex.test"], "dnset")
    assert look(client, f"{name}.bl.test") == answer


def test_query_explains_ipv6_and_names(zone_file):

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


def ttls(client, name: str, rdtype: str = "A") -> list[int]:
    return [rrset.ttl for rrset in client.query(name, rdtype).answer]


def test_generic_ttl_applies_to_the_lines_after_it(serve, zone_file):
    c = serve(f"g.test:generic:{zone_file(['x A 127.0.0.1', '$TTL 60', 'y A 127.0.0.2', 'y2 30 A 127.0.0.3', 'z 0 TXT zero', '$TTL 0', 'v A 127.0.0.5'])}")  # noqa: E501
    assert ttls(c, "x.g.test") == [2100]        # before any $TTL: the default
    assert ttls(c, "y.g.test") == [60]
    assert ttls(c, "y2.g.test") == [30]         # its own TTL wins
    assert ttls(c, "z.g.test", "TXT") == [60]   # a TTL of 0: the $TTL in force
    assert ttls(c, "v.g.test") == [2100]        # after "$TTL 0": the default again


def test_combined_ttl_per_section_and_line(serve, zone_file):
    c = serve("c.test:combined:" + zone_file([
        "$TTL 500",
        "$DATASET generic g", "x A 127.0.0.1", "$TTL 60", "y A 127.0.0.2", "z 0 TXT zero",
        "$DATASET ip4set f", "$TTL 0", "127.0.0.2",
        "$DATASET ip4set a", "127.0.0.2",
        "$DATASET generic @", "@ A 127.0.0.8", "$TTL 45", "www A 127.0.0.8", "$TTL 99",
    ]))
    assert ttls(c, "x.g.c.test") == [500]       # the common $TTL
    assert ttls(c, "y.g.c.test") == [60]        # the section's, from its line on
    assert ttls(c, "z.g.c.test", "TXT") == [60]
    assert ttls(c, "2.0.0.127.f.c.test") == [2100]  # "$TTL 0": the server default, not 500
    assert ttls(c, "2.0.0.127.a.c.test") == [500]
    assert ttls(c, "c.test") == [500]           # "$TTL 45" comes after "@"
    assert ttls(c, "www.c.test") == [45]        # and the trailing "$TTL 99" changes nothing


def test_generic_records_keep_the_default_soa(serve, zone_file):
    # Without $SOA the zone's own name makes the SOA, whatever names the
    # generic records have.
    c = serve(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
              f"bl.test:generic:{zone_file(['www A 127.0.0.9'])}")
    soa = c.query("bl.test", "SOA").answer[0][0]
    assert (str(soa.mname), str(soa.rname)) == ("bl.test.", "hostmaster.bl.test.")


def test_generic_bad_lines_are_warned(zone_file):
    from dnsbl.datasets import load_dataset

    path = zone_file(GENERIC_LINES + ["www TXT", "mail MX ten mx.ex.com", "a.b A 300.1.1.1"])
    warnings = [str(w) for w in load_dataset("generic", [path], 2100).warnings]
    assert warnings == [
        f"{path}:5: invalid record: unsupported type 'AAAA' (A, TXT and MX are)",
        f"{path}:7: invalid record: expected name [ttl] type value",
        f"{path}:8: invalid record: bad MX value 'ten mx.ex.com': expected preference and host",
        f"{path}:9: invalid record: Octet 300 (> 255) not permitted in '300.1.1.1'",
    ]


COMBINED = [  # the man page's example
    "$NS 1w ns1.ex.com ns2.ex.com",
    "$SOA 1w ns1.ex.com admin.ex.com 0 2h 2h 1w 1h",
    "$DATASET ip4set:proxy proxies @",
    ":2:Open proxy, see http://bl.ex.com/proxy/$",
    "127.0.0.2",
    "127.0.0.10",
    "$DATASET ip4set:relay relays @",
    ":3:Open relay, see http://bl.ex.com/relay/$",
    "127.0.0.2",
    "127.0.2.10",
    "$DATASET ip4set:multihop-relay multihop",
    ":4:Multihop open relay, see http://bl.ex.com/relay/$",
    "127.0.0.2",
    "127.0.9.12",
    "$DATASET generic:common proxies relays multihop @",
    "@ A 127.0.0.8",
    "www A 127.0.0.8",
    "@ MX 10 mx.ex.com",
]


@pytest.mark.parametrize("name, answer", [
    ("2.0.0.127", (["127.0.0.2", "127.0.0.3"], ["Open proxy, see http://bl.ex.com/proxy/127.0.0.2",
                                                "Open relay, see http://bl.ex.com/relay/127.0.0.2"])),
    ("10.0.0.127", (["127.0.0.2"], ["Open proxy, see http://bl.ex.com/proxy/127.0.0.10"])),
    ("12.9.0.127", NX),                      # multihop is not attached to the zone itself
    ("2.0.0.127.proxies", (["127.0.0.2"], ["Open proxy, see http://bl.ex.com/proxy/127.0.0.2"])),
    ("10.2.0.127.proxies", NX),
    ("12.9.0.127.multihop", (["127.0.0.4"],
                             ["Multihop open relay, see http://bl.ex.com/relay/127.0.9.12"])),
    ("www", (["127.0.0.8"], [])),
    ("www.proxies", (["127.0.0.8"], [])),
    ("foo.proxies", NX),
    ("other", NX),
])
def test_combined(serve, zone_file, name, answer):
    client = serve(f"bl.ex.com:combined:{zone_file(COMBINED)}")
    assert look(client, f"{name}.bl.ex.com") == answer


def test_combined_apex_and_subzone_apex(serve, zone_file):
    client = serve(f"bl.ex.com:combined:{zone_file(COMBINED)}")
    soa = client.query("bl.ex.com", "SOA").answer[0]
    assert soa.ttl == 604800 and str(soa[0].mname) == "ns1.ex.com."
    assert client.a("bl.ex.com") == ["127.0.0.8"] == client.a("relays.bl.ex.com")
    for rdtype in ("SOA", "NS"):  # a subzone has none of its own
        r = client.query("proxies.bl.ex.com", rdtype)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        assert str(r.authority[0].name) == "bl.ex.com."
    r = client.query("9.9.9.9.multihop.bl.ex.com")
    assert r.rcode() == dns.rcode.NXDOMAIN and str(r.authority[0].name) == "bl.ex.com."
    assert r.authority[0].ttl == 3600  # min(SOA TTL 1w, minimum 1h)


def test_combined_scoping(serve, zone_file):
    client = serve("bl.x:combined:" + zone_file([
        "$TTL 500", "$SOA 0 ns1.ex.com admin.ex.com 1 2h 2h 1w 1h", "$1 common-one",
        "$DATASET ip4set:a sza @", ":2:A $ $1", "127.0.0.2",
        "$DATASET ip4set:b szb", "$TTL 77", "$1 local-one", "$2 local-two",
        "$SOA 0 nsX.ex.com admin.ex.com 9 1 1 1 1", ":3:B $ $1 $2", "127.0.0.2",
        "$DATASET dnset:d szd", ":5:D $", "*.wild.test",
        "$DATASET ip4tset:h multi.level", "127.0.0.2",
    ]))
    r = client.query("2.0.0.127.sza.bl.x", "TXT")
    assert r.answer[0].ttl == 500  # the common $TTL
    r = client.query("2.0.0.127.szb.bl.x", "TXT")
    assert r.answer[0].ttl == 77  # the section's own $TTL
    assert client.txt("2.0.0.127.szb.bl.x") == ["B 127.0.0.2 common-one local-two"]
    assert client.txt("2.0.0.127.bl.x") == ["A 127.0.0.2 common-one"]
    assert client.query("bl.x", "SOA").answer[0][0].serial == 1  # a section's $SOA is ignored
    assert client.txt("a.b.wild.test.szd.bl.x") == ["D wild.test"]
    assert client.a("2.0.0.127.multi.level.bl.x") == ["127.0.0.2"]
    assert look(client, "multi.level.bl.x") == NODATA


@pytest.mark.parametrize("lines, error", [
    (["$DATASET foo:x sub", "127.0.0.2"], "$DATASET type 'foo' cannot be combined"),
    (["$DATASET combined:x sub"], "$DATASET type 'combined' cannot be combined"),
    (["$DATASET acl:x sub"], "$DATASET type 'acl' cannot be combined"),
    (["127.0.0.2", "$DATASET ip4set sub"], "data before the first $DATASET line"),
])
def test_combined_fatal_errors(zone_file, lines, error):
    from dnsbl.datasets import load_dataset
    from dnsbl.zonefile import ZoneFileError

    path = zone_file(lines)
    with pytest.raises(ZoneFileError) as exc:
        load_dataset("combined", [path], 2100)
    assert str(exc.value).endswith(error) and str(exc.value).startswith(f"{path}:")


def test_combined_section_without_subzones_is_warned(zone_file):
    from dnsbl.datasets import load_dataset

    path = zone_file(["$DATASET ip4set", "127.0.0.2", "$DATASET ip4set:ok @", "bad line"])
    warnings = [str(w) for w in load_dataset("combined", [path], 2100).warnings]
    assert warnings == [f"{path}:1: no subzones given for this $DATASET: its data is ignored",
                        f"{path}:4: invalid address 'bad'"]


def _listed(entry) -> tuple:
    """An entry of a list as (key as written, A, TXT as written); None, None
    for an exclusion."""
    value = entry.value
    return (str(entry), None if value is None else str(ipaddress.IPv4Address(value.a)),
            None if value is None else value.raw)


@pytest.mark.parametrize("kind, lines, want", [
    ("ip4set", [":3:txt $", "192.0.2.1", "10.0.0.0/8 :4:four", "!10.1.0.0/16", "!192.0.2.9"],
     {("192.0.2.1/32", "127.0.0.3", "txt $"), ("10.0.0.0/8", "127.0.0.4", "four"),
      ("10.1.0.0/16", None, None), ("192.0.2.9/32", None, None)}),
    ("ip4tset", [":5:one $", "192.0.2.1", "192.0.2.2 :6:ignored"],
     {("192.0.2.1/32", "127.0.0.5", "one $"), ("192.0.2.2/32", "127.0.0.5", "one $")}),
    ("ip6trie", ["2001:db8::/32 :3:six", "!2001:db8::1"],
     {("2001:db8::/32", "127.0.0.3", "six"), ("2001:db8::1/128", None, None)}),
    ("dnset", ["example.com :5:x", "*.w.test", "!no.w.test", ".both.test"],
     {("example.com", "127.0.0.5", "x"), ("*.w.test", "127.0.0.2", None),
      ("no.w.test", None, None), ("both.test", "127.0.0.2", None),
      ("*.both.test", "127.0.0.2", None)}),
])
def test_entries_give_every_key_with_its_value(zone_file, kind, lines, want):
    # What an export writes: every listed key with its value, exclusions too.
    from dnsbl.datasets import load_dataset

    entries = list(load_dataset(kind, [zone_file(lines)], 2100).entries())
    assert all(hasattr(entry, "_fields") for entry in entries)  # named tuples
    assert {_listed(entry) for entry in entries} == want
    assert len(entries) == len(want)


def test_entries_of_generic_acl_and_combined(zone_file):
    from dnsbl.datasets import load_dataset
    from dnsbl.datasets.acl import AclEntry
    from dnsbl.datasets.generic import RecordEntry

    generic = load_dataset("generic", [zone_file(["@ 60 TXT hello", "www A 192.0.2.1"])], 2100)
    assert sorted(generic.entries()) == [
        RecordEntry("", 16, 60, b"\x05hello"), RecordEntry("www", 1, 2100, b"\xc0\x00\x02\x01")]
    acl = load_dataset("acl", [zone_file(["192.0.2.0/24 :refuse", "2001:db8::/32"])], 2100)
    assert list(acl.entries()) == [
        AclEntry(bytes((192, 0, 2, 0)), 24, "refuse"),
        AclEntry(ipaddress.IPv6Address("2001:db8::").packed, 32, "ignore")]
    combined = load_dataset("combined", [zone_file(
        ["$DATASET ip4set:mine @ sub", "192.0.2.1", "$DATASET dnset names", "x.test"])], 2100)
    sections = list(combined.entries())
    assert [(s.subzones, s.name, s.dataset.kind) for s in sections] == [
        (("", "sub"), "mine", "ip4set"), (("names",), "dnset", "dnset")]
    assert [str(e) for e in sections[0].dataset.entries()] == ["192.0.2.1/32"]
