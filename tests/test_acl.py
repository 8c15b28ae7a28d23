"""ACLs: what a client may ask, seen from distinct loopback source addresses."""

from __future__ import annotations

import dns.exception
import dns.rcode
import pytest

from tests.helpers import needs_ipv6, wait_for, write

DATA = ["$SOA 0 ns1.bl.test admin.bl.test 1 2h 2h 1w 1h", ":2:Listed $", "127.0.0.2"]
GENERIC = ["www A 127.0.0.8"]
ACL = [
    "127.0.0.2 :ignore",
    "127.0.0.3 :refuse",
    "127.0.0.4 :empty",
    "127.0.0.5 :pass",
    "127.0.0.6 :127.255.255.254:Open resolver $",
    "127.0.0.7",              # no action and no default line: ignore
    "127.0.0.8 :IGNORE",      # keywords in any case
    "127.0.1.0/24 :refuse",
    "127.0.1.6 :pass",        # the longest prefix wins
    "::1 :127.255.255.250:v6 client $",
]
LISTED, UNLISTED = "2.0.0.127.bl.test", "3.0.0.127.bl.test"


def seen_from(client, source: str, name: str, rdtype: str = "A"):
    """What ``source`` gets: "silence", an rcode name, or (rcode, answers)."""
    r = client.ask_or_silence(name, rdtype, source)
    if r is None:
        return "silence"
    values = sorted(rd.to_text() for rrset in r.answer for rd in rrset)
    return (dns.rcode.to_text(r.rcode()), values) if values else dns.rcode.to_text(r.rcode())


@pytest.fixture
def guarded(serve, zone_file):
    return serve(f"bl.test:ip4set:{zone_file(DATA)}", f"bl.test:generic:{zone_file(GENERIC)}",
                 f"bl.test:acl:{zone_file(ACL)}", f"other.test:ip4set:{zone_file(DATA)}")


@pytest.mark.parametrize("source, listed, unlisted, soa, www", [
    ("127.0.0.1", ("NOERROR", ["127.0.0.2"]), "NXDOMAIN", "NOERROR", ("NOERROR", ["127.0.0.8"])),
    ("127.0.0.2", "silence", "silence", "silence", "silence"),
    ("127.0.0.3", "REFUSED", "REFUSED", "REFUSED", "REFUSED"),
    ("127.0.0.4", "NXDOMAIN", "NXDOMAIN", "NOERROR", "NOERROR"),   # www hidden: NODATA
    ("127.0.0.5", ("NOERROR", ["127.0.0.2"]), "NXDOMAIN", "NOERROR", ("NOERROR", ["127.0.0.8"])),
    ("127.0.0.6", ("NOERROR", ["127.255.255.254"]), ("NOERROR", ["127.255.255.254"]), "NOERROR",
     "NOERROR"),
    ("127.0.0.7", "silence", "silence", "silence", "silence"),
    ("127.0.0.8", "silence", "silence", "silence", "silence"),
    ("127.0.1.1", "REFUSED", "REFUSED", "REFUSED", "REFUSED"),
    ("127.0.1.6", ("NOERROR", ["127.0.0.2"]), "NXDOMAIN", "NOERROR", ("NOERROR", ["127.0.0.8"])),
])
def test_zone_acl_actions(guarded, source, listed, unlisted, soa, www):
    c = guarded
    assert seen_from(c, source, LISTED) == listed
    assert seen_from(c, source, UNLISTED) == unlisted
    got_soa = seen_from(c, source, "bl.test", "SOA")
    assert (got_soa if isinstance(got_soa, str) else got_soa[0]) == soa
    assert seen_from(c, source, "www.bl.test") == www
    # Zones without an ACL are not affected.
    assert seen_from(c, source, LISTED.replace("bl", "other")) == ("NOERROR", ["127.0.0.2"])


def test_listed_acl_value_names_the_client(guarded):
    assert seen_from(guarded, "127.0.0.6", UNLISTED, "TXT") == (
        "NOERROR", ['"Open resolver 127.0.0.6"'])
    assert seen_from(guarded, "127.0.0.6", "9.bl.test") == "NOERROR"  # still NODATA


@needs_ipv6
def test_ipv6_client(serve, zone_file):
    from dnsbl.config import Listen

    c = serve(f"bl.test:ip4set:{zone_file(DATA)}", f"bl.test:acl:{zone_file(ACL)}",
              listen=(Listen("::1", 0),))
    assert seen_from(c, "::1", UNLISTED, "TXT") == ("NOERROR", ['"v6 client ::1"'])


GLOBAL = ["127.0.0.2 :refuse", "127.0.0.3 :127.0.0.100:global $", "127.0.0.4 :empty",
          "127.0.0.5 :pass", "127.0.0.7 :127.0.0.100:global $", "127.0.0.8 :pass",
          "127.0.0.11 :refuse"]
ZONE = ["127.0.0.2 :ignore", "127.0.0.3 :empty", "127.0.0.4 :127.0.0.200:zone $",
        "127.0.0.5 :refuse", "127.0.0.7 :127.0.0.200:zone $", "127.0.0.8 :127.0.0.200:zone $"]


@pytest.mark.parametrize("source, in_zone, elsewhere", [
    ("127.0.0.2", "silence", "REFUSED"),                          # ignore > refuse
    ("127.0.0.3", "NXDOMAIN", ("NOERROR", ["127.0.0.100"])),     # empty > listed
    ("127.0.0.4", "NXDOMAIN", "NXDOMAIN"),
    ("127.0.0.5", "REFUSED", "NXDOMAIN"),                         # refuse > pass
    ("127.0.0.7", ("NOERROR", ["127.0.0.100"]), ("NOERROR", ["127.0.0.100"])),  # global's
    ("127.0.0.8", ("NOERROR", ["127.0.0.200"]), "NXDOMAIN"),
    ("127.0.0.11", "REFUSED", "REFUSED"),
])
def test_global_and_zone_acl_precedence(serve, zone_file, source, in_zone, elsewhere):
    c = serve(f"bl.test:ip4set:{zone_file(DATA)}", f"bl.test:acl:{zone_file(ZONE)}",
              f":acl:{zone_file(GLOBAL)}", f"other.test:ip4set:{zone_file(DATA)}")
    assert seen_from(c, source, UNLISTED) == in_zone
    assert seen_from(c, source, UNLISTED.replace("bl", "other")) == elsewhere


def test_acl_reloads_like_any_zone_file(tmp_path, serve):
    data, acl = tmp_path / "data", tmp_path / "acl"
    write(data, DATA)
    write(acl, ["127.0.0.5 :pass"])
    client = serve(f"bl.test:ip4set:{data}", f"bl.test:acl:{acl}", check_interval=0.1)
    assert seen_from(client, "127.0.0.5", LISTED) == ("NOERROR", ["127.0.0.2"])
    write(acl, ["127.0.0.5 :refuse"])
    wait_for(lambda: seen_from(client, "127.0.0.5", LISTED) == "REFUSED")


def test_acl_bad_lines_are_warned(zone_file):
    from dnsbl.datasets import load_dataset

    path = zone_file(["!127.0.1.5", "127.0.0.14-127.0.0.15", "$SOA 0 a b 1 1 1 1 1",
                      "127.0.0.0/24 :refuse"])
    dataset = load_dataset("acl", [path], 2100)
    assert [str(w) for w in dataset.warnings] == [
        f"{path}:1: invalid address '!127.0.1.5'",
        f"{path}:2: invalid address '127.0.0.14-127.0.0.15'",
        f"{path}:3: invalid special entry: $SOA has no place in an acl dataset",
    ]
    assert dataset.action("127.0.0.9") == "refuse"


DEFAULTED = ["$TTL 77", ":127.0.0.50:deflt $", "127.0.0.2", "127.0.0.3 :9",
             "127.0.0.4 some txt $", ":refuse", "127.0.0.5", "127.0.0.6 :10",
             "127.0.0.7 :blackhole", "127.0.0.8 =empty"]


@pytest.mark.parametrize("source, a, txt", [
    ("127.0.0.2", ("NOERROR", ["127.0.0.50"]), ("NOERROR", ['"deflt 127.0.0.2"'])),
    # A partial value fills in from the default line, as in rbldnsd.
    ("127.0.0.3", ("NOERROR", ["127.0.0.9"]), ("NOERROR", ['"deflt 127.0.0.3"'])),
    ("127.0.0.4", ("NOERROR", ["127.0.0.50"]), ("NOERROR", ['"some txt 127.0.0.4"'])),
    # An action default line sets what bare entries do, not what values fill in.
    ("127.0.0.5", "REFUSED", "REFUSED"),
    ("127.0.0.6", ("NOERROR", ["127.0.0.10"]), ("NOERROR", ['"deflt 127.0.0.6"'])),
    ("127.0.0.7", "silence", "silence"),   # rbldnsd's other name for ignore
    ("127.0.0.8", "NXDOMAIN", "NXDOMAIN"),  # =keyword, the other spelling
])
def test_acl_default_line_and_keywords(serve, zone_file, source, a, txt):
    c = serve(f"bl.test:ip4set:{zone_file(DATA)}", f"bl.test:acl:{zone_file(DEFAULTED)}")
    assert seen_from(c, source, UNLISTED) == a
    assert seen_from(c, source, UNLISTED, "TXT") == txt


def test_acl_hides_apex_records_and_answers_names(serve, zone_file):
    gen = zone_file(["@ A 127.0.0.8", "www A 127.0.0.8"])
    acl = zone_file(["127.0.0.4 :empty", "127.0.0.6 :127.255.255.254:Open resolver $"])
    c = serve(f"bl.test:ip4set:{zone_file(DATA)}", f"bl.test:generic:{gen}", f"bl.test:acl:{acl}",
              f"dn.test:dnset:{zone_file(['listed.example'])}", f"dn.test:generic:{gen}",
              f"dn.test:acl:{acl}")
    assert seen_from(c, "127.0.0.1", "bl.test") == ("NOERROR", ["127.0.0.8"])
    for source in ("127.0.0.4", "127.0.0.6"):  # the apex's records are hidden too
        assert seen_from(c, source, "bl.test") == "NOERROR"
        assert seen_from(c, source, "dn.test") == "NOERROR"
        assert seen_from(c, source, "bl.test", "SOA")[0] == "NOERROR"  # SOA still answered
    # In a zone of names every name is a question: a listed client gets the
    # ACL's answer even where a generic record is; an empty one sees NODATA.
    assert seen_from(c, "127.0.0.6", "www.dn.test") == ("NOERROR", ["127.255.255.254"])
    assert seen_from(c, "127.0.0.4", "www.dn.test") == "NOERROR"
    assert seen_from(c, "127.0.0.6", "www.bl.test") == "NOERROR"


def test_global_ignore_covers_names_outside_every_zone(serve, zone_file):
    c = serve(f"bl.test:ip4set:{zone_file(DATA)}",
              f":acl:{zone_file(['127.0.0.2 :ignore', '127.0.0.3 :refuse'])}")
    assert seen_from(c, "127.0.0.2", "foo.nozone") == "silence"
    assert seen_from(c, "127.0.0.2", "version.bind", "TXT") == "silence"
    assert seen_from(c, "127.0.0.3", "foo.nozone") == "REFUSED"
    assert seen_from(c, "127.0.0.1", "foo.nozone") == "REFUSED"
