"""rbldnsd data-file syntax (ip4set / ip4tset / ip4trie): zone lines -> query -> answer.

Every case is served by a real server and asked over UDP with dnspython. The expected
answers follow what the real rbldnsd does with the same lines, except where this server
deliberately differs: one value per exact prefix (the later one, with a warning) and an
exclusion beating a listing of the same prefix, longest-prefix matching in ip4set too,
years past 2038 in $TIMESTAMP, and a default apex SOA.

Warnings are checked by location (``file:line: ``) and by the phrase rbldnsd logs.
"""

from __future__ import annotations

import bisect
import calendar
import gzip
import ipaddress
import os
import time
from array import array
from unittest import mock

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbl.config import ServerConfig, merge_zones, parse_zone_spec
from dnsbl.datasets import ip4, load_dataset, parse_dataset
from dnsbl.loader import LoadError, load_snapshot
from dnsbl.zonefile import ZoneFileError
from tests.helpers import NX, look, rev

SET_TRIE = ["ip4set", "ip4trie"]


def warnings_of(kind: str, *paths: str) -> list[str]:
    return [str(w) for w in load_dataset(kind, list(paths), 2100).warnings]


def check_warnings(got: list[str], path: str, expected: list[tuple[int, str]]) -> None:
    """One warning per expected (line, phrase), in order, located at path:line."""
    assert len(got) == len(expected), got
    for text, (line, phrase) in zip(got, expected, strict=True):
        prefix = f"{path}:{line}: "
        assert text.startswith(prefix) and phrase in text[len(prefix):], (text, prefix, phrase)


@pytest.fixture
def bl(serve, zone_file):
    """bl(lines, kind) -> (client for bl.test, file path, warnings of that file)."""

    def _bl(lines: list[str], kind: str = "ip4set"):
        path = zone_file(lines)
        return serve(f"bl.test:{kind}:{path}"), path, warnings_of(kind, path)

    return _bl


def year_stamp(seconds: float) -> str:
    return time.strftime("%Y:%m:%d:%H:%M:%S", time.gmtime(seconds))


# -- 1/2. key forms ----------------------------------------------------------------------

HIT = (["127.0.0.3"], ["hit"])

# key, addresses listed, addresses not listed, ip4set result, ip4trie result.
# A result is None (accepted) or the rbldnsd warning; a rejected key lists nothing.
BAD = "invalid address"
HOST = "invalid range (non-zero host part)"
KEY_FORMS = [
    ("1.2.3.4", ["1.2.3.4"], ["1.2.3.5", "1.2.3.3"], None, None),
    ("10.0.0", ["10.0.0.0", "10.0.0.255"], ["10.0.1.0", "9.255.255.255"], None, None),
    ("10.1/16", ["10.1.0.0", "10.1.255.255"], ["10.2.0.0", "10.0.255.255"], None, None),
    ("10.2.0.0/16", ["10.2.5.5"], ["10.3.0.0"], None, None),
    ("11/8", ["11.0.0.0", "11.255.255.255"], ["12.0.0.0"], None, None),
    ("1.2.3.4/32", ["1.2.3.4"], ["1.2.3.5"], None, None),
    ("1.2.3.04", ["1.2.3.4"], ["1.2.3.5"], None, None),
    ("012.1.1.1", ["12.1.1.1"], ["10.1.1.1"], None, None),  # decimal, not octal
    ("10.3.0.0-10.3.1.255", ["10.3.0.0", "10.3.1.255"], ["10.3.2.0", "10.2.255.255"], None, BAD),
    ("10.4.0.1-10.4.0.9", ["10.4.0.1", "10.4.0.9"], ["10.4.0.0", "10.4.0.10"], None, BAD),
    ("10.5.1-10.5.3", ["10.5.1.0", "10.5.3.255"], ["10.5.0.255", "10.5.4.0"], None, BAD),
    ("10.6.16-31", ["10.6.16.0", "10.6.31.255"], ["10.6.15.255", "10.6.32.0"], None, BAD),
    ("10.2-10.3", ["10.2.0.0", "10.3.255.255"], ["10.1.255.255", "10.4.0.0"], None, BAD),
    ("1.2.3.4-1.2.3.4", ["1.2.3.4"], ["1.2.3.3", "1.2.3.5"], None, BAD),
    ("10.9.0.0-10.9.0.0", ["10.9.0.0"], ["10.9.0.1"], None, BAD),
    ("11", [], ["11.0.0.0", "11.0.0.11"], BAD, BAD),
    ("127-127.0.0", [], ["127.0.0.0", "127.0.0.1"], BAD, BAD),
    ("10.1.2-10.1.3.255", [], ["10.1.2.0", "10.1.3.255"], BAD, BAD),
    ("10.0.0.5-3", [], ["10.0.0.3", "10.0.0.4", "10.0.0.5"], BAD, BAD),
    ("1.2.3.4.5", [], ["1.2.3.4", "2.3.4.5"], BAD, BAD),
    ("300.1.1.1", [], ["44.1.1.1", "1.1.1.1"], BAD, BAD),
    ("10.10.0.0/33", [], ["10.10.0.0"], BAD, BAD),
    ("10.5.0.0/24x", [], ["10.5.0.0"], BAD, BAD),
    ("10.6.0.0/ 24", [], ["10.6.0.0"], BAD, BAD),
    ("1.2.3.4/", [], ["1.2.3.4"], BAD, BAD),
    ("10.8.0.0/16/8", [], ["10.8.0.0"], BAD, BAD),
    ("1.2.3.4,1.2.3.5", [], ["1.2.3.4", "1.2.3.5"], BAD, BAD),
    ("10.7.0.1/24", [], ["10.7.0.0", "10.7.0.1", "10.7.0.255"], HOST, HOST),  # not masked
    ("10.8/12", [], ["10.8.0.0", "10.0.0.0"], HOST, HOST),
    ("10.9.0.0/7", [], ["10.9.0.0", "10.8.0.0"], HOST, HOST),
    ("10.4.0.0/8", [], ["10.4.0.0", "10.0.0.0"], HOST, HOST),
    ("1.2.3.4/0", [], ["1.2.3.4", "0.0.0.0"], BAD, HOST),
    ("0/0", ["0.0.0.0", "1.2.3.4", "255.255.255.255"], [], BAD, None),
]


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("key, listed, unlisted, set_result, trie_result", KEY_FORMS,
                         ids=[k[0] for k in KEY_FORMS])
def test_key_forms(bl, kind, key, listed, unlisted, set_result, trie_result):
    client, path, warnings = bl([":127.0.0.2:dflt", f"{key} :3:hit"], kind)
    result = set_result if kind == "ip4set" else trie_result
    if result is None:
        check_warnings(warnings, path, [])
    else:  # the line is dropped
        check_warnings(warnings, path, [(2, f"{result} '{key.split()[0]}'")])
        listed, unlisted = [], listed + unlisted
    assert {ip: look(client, ip) for ip in listed + unlisted} == {
        **{ip: HIT for ip in listed}, **{ip: NX for ip in unlisted}}


@pytest.mark.parametrize("kind, line, ip, answer", [
    # Only the first word is the key; the rest of the line is the entry's text.
    ("ip4set", "10.7.0.0 /24 :3:hit", "10.7.0.0", (["127.0.0.2"], ["/24 :3:hit"])),
    ("ip4set", "10.7.0.0 /24 :3:hit", "10.7.0.1", NX),
    ("ip4set", "1.2.3.4 - 1.2.3.5 :3:hit", "1.2.3.4", (["127.0.0.2"], ["- 1.2.3.5 :3:hit"])),
    ("ip4set", "1.2.3.4 - 1.2.3.5 :3:hit", "1.2.3.5", NX),
    *[(kind, line, ip, answer) for kind in SET_TRIE for line, ip, answer in [
        ("1.2.3.4:3:x", "1.2.3.4", (["127.0.0.3"], ["x"])),
        ("1.2.3.7#nospace", "1.2.3.7", (["127.0.0.2"], ["dflt"])),
        ("1.2.3.8;nospace", "1.2.3.8", (["127.0.0.2"], ["dflt"])),
    ]],
])
def test_key_followed_by_other_text(bl, kind, line, ip, answer):
    client, path, warnings = bl([":127.0.0.2:dflt", line], kind)
    assert look(client, ip) == answer
    check_warnings(warnings, path, [])


# -- 3. ip4tset --------------------------------------------------------------------------

def test_ip4tset_one_value_first_default_wins_and_plain_addresses_only(bl):
    client, path, warnings = bl([
        ":2:first",
        ":3:second",
        "1.2.3.4",
        "1.2.3.5 :4:custom",
        "1.2.3.8 some text",
        "1.2.3.9 # c",
        "1.2.3.10:5:x",
        "10.0.0.0/24",
        "10.0.1",
        "!1.2.3.7",
        "1.2.3.7",
    ], "ip4tset")
    first = (["127.0.0.2"], ["first"])
    for ip in ["1.2.3.4", "1.2.3.5", "1.2.3.8", "1.2.3.9", "1.2.3.10", "1.2.3.7"]:
        assert look(client, ip) == first, ip
    for ip in ["10.0.0.0", "10.0.0.1", "10.0.1.0", "1.2.3.6"]:
        assert look(client, ip) is NX, ip
    # rbldnsd says "invalid address" for the "!" line too; only its location is checked.
    check_warnings(warnings, path, [(8, "invalid address '10.0.0.0/24'"),
                                    (9, "invalid address '10.0.1'"), (10, "")])


@pytest.mark.parametrize("lines, answer", [
    (["1.2.3.4"], (["127.0.0.2"], [])),
    ([":127.0.0.5:Tset $ listed", "1.2.3.4"], (["127.0.0.5"], ["Tset 1.2.3.4 listed"])),
])
def test_ip4tset_default_value(bl, lines, answer):
    client, _, _ = bl(lines, "ip4tset")
    assert look(client, "1.2.3.4") == answer
    assert look(client, "1.2.3.5") is NX


# -- 4. values ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("entry, a, txt", [
    ("1.2.3.1", "127.0.0.2", ["Listed 1.2.3.1"]),
    ("1.2.3.5 :5", "127.0.0.5", ["Listed 1.2.3.5"]),       # the default TXT is kept
    ("1.2.3.6 :6:", "127.0.0.6", []),
    ("1.2.3.7 :7:text", "127.0.0.7", ["text"]),
    ("1.2.3.8 text here", "127.0.0.2", ["text here"]),
    ("1.2.3.9 :2:", "127.0.0.2", []),
    ("1.2.3.14 :8:  spaced text  ", "127.0.0.8", ["spaced text"]),
    ("1.2.3.15:9:nospace", "127.0.0.9", ["nospace"]),
    ("1.2.3.16 :1.2:x", "1.0.0.2", ["x"]),                 # inet_aton style
    ("1.2.3.17 :1.2.3.4:", "1.2.3.4", []),
    ("1.2.3.18 :1.2.3:y", "1.2.0.3", ["y"]),
])
def test_entry_values(bl, kind, entry, a, txt):
    client, path, warnings = bl([":127.0.0.2:Listed $", entry], kind)
    ip = entry.split()[0].split(":")[0]
    assert look(client, ip) == ([a], txt)
    check_warnings(warnings, path, [])


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("value, phrase", [
    (":abc:x", "invalid A"),            # rbldnsd: "invalid A RR"
    (":127.0.0.300:x", "invalid A"),
    (":256:x", "invalid A"),
    (":0:x", "invalid A"),
    (":2 text", ""),                    # rbldnsd: "unrecognized value for an entry"
    (":3 # c", ""),
])
def test_invalid_value_drops_the_line(bl, kind, value, phrase):
    client, path, warnings = bl(["1.2.3.3", f"1.2.3.4 {value}", "1.2.3.5"], kind)
    assert look(client, "1.2.3.4") is NX
    assert look(client, "1.2.3.5") == (["127.0.0.2"], [])  # loading went on
    check_warnings(warnings, path, [(2, phrase)])


@pytest.mark.parametrize("lines, answers", [
    # No default line: A 127.0.0.2, no TXT.
    (["1.2.3.4", "1.2.3.5 :5"], {"1.2.3.4": (["127.0.0.2"], []), "1.2.3.5": (["127.0.0.5"], [])}),
    ([":5", "1.2.3.4"], {"1.2.3.4": (["127.0.0.5"], [])}),
    ([":5:", "1.2.3.4", "1.2.3.6 :6"], {"1.2.3.4": (["127.0.0.5"], []),
                                        "1.2.3.6": (["127.0.0.6"], [])}),
    # An invalid default line is dropped; the previous default stays in force.
    ([":3:good", ":256:x", "1.2.3.4"], {"1.2.3.4": (["127.0.0.3"], ["good"])}),
    # A default line applies to the lines after it only.
    (["1.2.3.3", ":4:later", "1.2.3.4"], {"1.2.3.3": (["127.0.0.2"], []),
                                          "1.2.3.4": (["127.0.0.4"], ["later"])}),
    ([":3:one", "1.2.3.3", ":4:two", "1.2.3.4"], {"1.2.3.3": (["127.0.0.3"], ["one"]),
                                                  "1.2.3.4": (["127.0.0.4"], ["two"])}),
    # A default line with only an A value has no TXT: it does not keep the
    # TXT of the default line before it, and entries after it have none.
    ([":127.0.0.3:old $", "1.2.3.1", ":4", "1.2.3.2", "1.2.3.3 :5"],
     {"1.2.3.1": (["127.0.0.3"], ["old 1.2.3.1"]), "1.2.3.2": (["127.0.0.4"], []),
      "1.2.3.3": (["127.0.0.5"], [])}),
    ([":127.0.0.3:old $", ":127.0.0.4", "1.2.3.2"], {"1.2.3.2": (["127.0.0.4"], [])}),
    # ... and under a $= template the entry stands in for $=, as for no text.
    ([":127.0.0.3:old $", ":4", "1.2.3.21", "$= BASE[$=]"],
     {"1.2.3.21": (["127.0.0.4"], ["BASE[1.2.3.21]"])}),
])
@pytest.mark.parametrize("kind", SET_TRIE)
def test_default_value_line(bl, kind, lines, answers):
    client, path, warnings = bl(lines, kind)
    assert {ip: look(client, ip) for ip in answers} == answers
    check_warnings(warnings, path, [(n, "invalid A") for n, line in enumerate(lines, 1)
                                    if line == ":256:x"])


@pytest.mark.parametrize("kind", SET_TRIE)
def test_default_value_does_not_carry_into_the_next_file(serve, zone_file, kind):
    a = zone_file([":3:first", "1.2.3.4"])
    b = zone_file(["1.2.3.5"])
    client = serve(f"bl.test:{kind}:{a},{b}")
    assert look(client, "1.2.3.4") == (["127.0.0.3"], ["first"])
    assert look(client, "1.2.3.5") == (["127.0.0.2"], [])


# -- 4. substitution ---------------------------------------------------------------------

SUBSTITUTIONS = [  # entry text, TXT for 1.2.3.<n>  ("@" stands for the queried address)
    ("a$b", "a@b"),
    ("a$$b", "a$b"),
    ("a$1b", "avarb"),
    ("a$9b", "a$9b"),        # undefined: kept literally
    ("p$0q", "p$0q"),
    ("a$$$$b", "a$$b"),
    ("end$", "end@"),
    ("$$", "$"),
    ("$1$1$", "varvar@"),
]


@pytest.mark.parametrize("kind", SET_TRIE)
def test_txt_substitution(bl, kind):
    entries = [f"1.2.3.{n} {text}" for n, (text, _) in enumerate(SUBSTITUTIONS, 20)]
    client, path, warnings = bl(["$1 var", *entries, "10.0.0.0/8 range $"], kind)
    for n, (_, expected) in enumerate(SUBSTITUTIONS, 20):
        ip = f"1.2.3.{n}"
        assert look(client, ip) == (["127.0.0.2"], [expected.replace("@", ip)])
    # "$" is the queried address, even for a block.
    assert look(client, "10.1.2.3") == (["127.0.0.2"], ["range 10.1.2.3"])
    check_warnings(warnings, path, [])


@pytest.mark.parametrize("lines, txt, warned", [
    (["$1 first", "$1 second", "1.2.3.4 v=$1"], "v=first", []),   # the first $1 wins
    (["$0 zero", "1.2.3.4 z$0"], "zzero", []),
    (["$=", "1.2.3.4 plain $"], "plain 1.2.3.4", [1]),
    (["$ 1 x", "1.2.3.4 a$1b"], "a$1b", [1]),
])
def test_variable_definitions(bl, lines, txt, warned):
    client, path, warnings = bl(lines)
    assert look(client, "1.2.3.4") == (["127.0.0.2"], [txt])
    check_warnings(warnings, path, [(n, "special entry") for n in warned])


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("first, second, txt", [
    # $n and $= are dataset-wide: a definition in a later file applies to earlier ones.
    (["1.2.3.4 v=$1"], ["$1 late"], "v=late"),
    (["1.2.3.4 r1"], ["$= B[$=]"], "B[r1]"),
])
def test_definitions_span_the_files_of_a_dataset(serve, zone_file, kind, first, second, txt):
    client = serve(f"bl.test:{kind}:{zone_file(first)},{zone_file(second)}")
    assert look(client, "1.2.3.4") == (["127.0.0.2"], [txt])


# -- 5. base template --------------------------------------------------------------------

BASE = "$= See http://x/bl?$= ($) for details"


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("lines, entry, a, txt", [
    ([BASE], "1.2.3.2 r123", "127.0.0.2", "See http://x/bl?r123 (1.2.3.2) for details"),
    ([BASE], "1.2.3.3", "127.0.0.2", "See http://x/bl?1.2.3.3 (1.2.3.3) for details"),
    ([BASE], "1.2.3.4 =Other $", "127.0.0.2", "Other 1.2.3.4"),
    ([BASE], "1.2.3.5 :3:", "127.0.0.3", "See http://x/bl?1.2.3.5 (1.2.3.5) for details"),
    ([BASE], "1.2.3.6 :4:r456", "127.0.0.4", "See http://x/bl?r456 (1.2.3.6) for details"),
    ([BASE], "1.2.3.7 :5", "127.0.0.5", "See http://x/bl?1.2.3.7 (1.2.3.7) for details"),
    ([":2:deftext", "$= BASE[$=]"], "1.2.3.3", "127.0.0.2", "BASE[deftext]"),
    ([":2:deftext", "$= BASE[$=]"], "1.2.3.6 =", "127.0.0.2", None),
    # The entry text put in for $= is not expanded; the template's own $, $$, $n are.
    (["$1 one", "$= [$1|$=|$|$$|$2]"], "1.2.3.1 a$1$$", "127.0.0.2",
     "[one|a$1$$|1.2.3.1|$|$2]"),
    (["$1 one", "$= B[$=]"], "1.2.3.2 txt $1", "127.0.0.2", "B[txt $1]"),
    (["$1 one", "$= B[$=]"], "1.2.3.3 =c$1$", "127.0.0.2", "cone1.2.3.3"),
])
def test_base_template(bl, kind, lines, entry, a, txt):
    client, path, warnings = bl([*lines, entry], kind)
    ip = entry.split()[0]
    assert look(client, ip) == ([a], [] if txt is None else [txt])
    check_warnings(warnings, path, [])


# -- 6. comments -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("line, answer", [
    ("1.2.3.4 # comment", (["127.0.0.2"], ["dflt"])),
    ("1.2.3.5 ; comment", (["127.0.0.2"], ["dflt"])),
    ("1.2.3.6 :2:text # not a comment?", (["127.0.0.2"], ["text # not a comment?"])),
    ("1.2.3.9 text ; semi", (["127.0.0.2"], ["text ; semi"])),
    ("1.2.3.12 :3:#hash", (["127.0.0.3"], ["#hash"])),
    ("1.2.3.13 :3 # c", NX),
])
def test_inline_comments(bl, kind, line, answer):
    client, path, warnings = bl([":2:dflt", "# 1.2.3.0/24 :9:commented out",
                                 "; 1.2.3.0/24 :9:commented out", line], kind)
    assert look(client, line.split()[0]) == answer
    assert look(client, "1.2.3.1") is NX
    check_warnings(warnings, path, [] if answer != NX else [(4, "")])


# -- 7. exclusions, duplicates, nesting --------------------------------------------------

LISTED = (["127.0.0.2"], [])


EXCLUSIONS = [
    (["10.0.0.0/8", "!10.1.2.3", "!10.2.0.0/16"],
     {"10.1.2.3": NX, "10.1.2.4": LISTED, "10.2.5.5": NX, "10.3.0.0": LISTED}),
    (["!10.1.2.3", "!10.2.0.0/16", "10.0.0.0/8"],   # order is irrelevant
     {"10.1.2.3": NX, "10.1.2.4": LISTED, "10.2.5.5": NX, "10.3.0.0": LISTED}),
    (["!10.0.0.0/8", "10.1.2.3", "10.2.0.0/16"],    # listings inside an excluded block
     {"10.1.2.3": LISTED, "10.1.2.4": NX, "10.2.0.1": LISTED}),
    (["10.0.0.0/10", "!10.16.0.0/12"],
     {"10.16.0.1": NX, "10.31.255.255": NX, "10.15.255.255": LISTED, "10.32.0.0": LISTED}),
    # An exclusion of exactly a listed prefix wins, whichever comes first.
    (["10.5.0.0/16", "!10.5.0.0/16"], {"10.5.1.1": NX}),
    (["!10.5.0.0/16", "10.5.0.0/16"], {"10.5.1.1": NX}),
    (["1.2.3.4", "!1.2.3.4"], {"1.2.3.4": NX}),
    (["!1.2.3.5", "1.2.3.5"], {"1.2.3.5": NX}),
]


@pytest.mark.parametrize("kind, lines, answers", [
    *[(kind, *case) for kind in SET_TRIE for case in EXCLUSIONS],
    ("ip4set", ["!10.5.1.0-10.5.1.255", "10.5.0.0/16"], {"10.5.1.7": NX, "10.5.2.7": LISTED}),
    ("ip4set", ["10.5.0.0/16", "!10.5.1.128-10.5.2.127"],
     {"10.5.1.127": LISTED, "10.5.1.128": NX, "10.5.2.127": NX, "10.5.2.128": LISTED}),
])
def test_exclusions(bl, kind, lines, answers):
    client, _, _ = bl(lines, kind)
    assert {ip: look(client, ip) for ip in answers} == answers


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("lines, ip, answer, warned", [
    (["1.2.3.4 :2:first", "1.2.3.4 :3:second"], "1.2.3.4",
     (["127.0.0.3"], ["second"]), [(2, "duplicate entry 1.2.3.4/32, the later value is used")]),
    (["10.7.0.0/16 :2:a", "10.7.0.0/16 :3:b"], "10.7.1.1",
     (["127.0.0.3"], ["b"]), [(2, "duplicate entry 10.7.0.0/16, the later value is used")]),
    (["1.2.3.7 :7", "1.2.3.7 :6", "1.2.3.7 :8"], "1.2.3.7", (["127.0.0.8"], []),
     [(n, "duplicate entry 1.2.3.7/32, the later value is used") for n in (2, 3)]),
])
def test_duplicate_prefix_keeps_the_later_value(bl, kind, lines, ip, answer, warned):
    client, path, warnings = bl(lines, kind)
    assert look(client, ip) == answer
    check_warnings(warnings, path, warned)


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("lines, answers", [
    (["10.0.0.0/8 :2:eight", "10.1.0.0/16 :3:sixteen", "10.1.2.0/24 :4:tfour",
      "10.1.2.3 :5:tt", "10.1.2.128/25 :6:tf"],
     {"10.9.9.9": (["127.0.0.2"], ["eight"]), "10.1.9.9": (["127.0.0.3"], ["sixteen"]),
      "10.1.2.9": (["127.0.0.4"], ["tfour"]), "10.1.2.3": (["127.0.0.5"], ["tt"]),
      "10.1.2.200": (["127.0.0.6"], ["tf"])}),
    # Longest prefix only, also where rbldnsd's ip4set would merge octet-sized cells.
    (["10.0.0.0/12 :2", "10.0.0.0/10 :3"],
     {"10.1.1.1": (["127.0.0.2"], []), "10.32.0.1": (["127.0.0.3"], [])}),
    (["10.128.0.0/9 :6", "10.200.0.0/16 :7", "!10.200.0.0/17"],
     {"10.200.200.1": (["127.0.0.7"], []), "10.200.1.1": NX, "10.201.0.0": (["127.0.0.6"], [])}),
])
def test_most_specific_entry_answers(bl, kind, lines, answers):
    client, _, _ = bl(lines, kind)
    assert {ip: look(client, ip) for ip in answers} == answers


@pytest.mark.parametrize("kind", SET_TRIE)
def test_exclusion_spans_files_of_one_dataset_only(serve, zone_file, kind):
    a = zone_file(["10.0.0.0/8"])
    b = zone_file(["!10.1.2.3"])
    one = serve(f"bl.test:{kind}:{a},{b}")
    assert look(one, "10.1.2.3") is NX
    assert look(one, "10.1.2.4") == LISTED
    separate = serve(f"bl.test:{kind}:{a}", f"bl.test:{kind}:{b}")
    assert look(separate, "10.1.2.3") == LISTED


# -- 8. $TTL and special-line prefixes ---------------------------------------------------

@pytest.mark.parametrize("lines, ttl, warned", [
    (["$TTL 300"], 300, []),
    (["$TTL 1h"], 3600, []),
    (["$TTL 35m"], 2100, []),
    (["$TTL 2d"], 172800, []),
    (["$TTL 1w"], 604800, []),
    (["$TTL 0"], 2100, []),
    (["$TTL 100", "1.2.3.9", "$TTL 200"], 200, []),   # the last one wins dataset-wide
    (["$ttl 95", "$Ttl  96"], 96, []),
    (["#$TTL 60"], 60, []),
    ([":$TTL 70"], 70, []),
    ([";$TTL 80"], 80, []),
    (["$TTL 1w2d"], 2100, [1]),
    (["$TTL 5x"], 2100, [1]),
    (["$TTL abc"], 2100, [1]),
    (["$TTL"], 2100, [1]),
    (["$TTL 300", "$FOO bar"], 300, [2]),
    (["$TTL 300", "#$FOO bar"], 300, [2]),
    # Over 32 bits: warned, and the $TTL before it stays (rbldnsd does the same).
    (["$TTL 4294967296"], 2100, [1]),
    (["$TTL 300", "$TTL 99999999999", "$TTL 7102w"], 300, [2, 3]),
])
def test_ttl(serve, zone_file, lines, ttl, warned):
    path = zone_file([*lines, "1.2.3.4 :3:txt"])
    client = serve(f"bl.test:ip4set:{path}")
    for rdtype in ("A", "TXT"):
        r = client.query(rev("1.2.3.4"), rdtype)
        [rrset] = r.answer
        assert rrset.ttl == ttl
    check_warnings(warnings_of("ip4set", path), path,
                   [(n, "special entry") for n in warned])


def test_ttl_over_32_bits_skips_the_line_with_a_located_warning(serve, zone_file):
    # These crashed loading (struct.error) before: no TTL field holds them.
    path = zone_file(["ok A 127.0.0.1", "ex 99999999999 A 127.0.0.10",
                      "ex2 4294967296 TXT too-long", "$TTL 4294967296", "late A 127.0.0.2"])
    check_warnings(warnings_of("generic", path), path,
                   [(2, "over 4294967295 seconds"), (3, "over 4294967295 seconds"),
                    (4, "over 4294967295 seconds")])
    client = serve(f"bl.test:generic:{path}")
    assert client.a("ok.bl.test") == ["127.0.0.1"]
    assert client.query("ex.bl.test").rcode() == dns.rcode.NXDOMAIN
    assert client.query("ex2.bl.test", "TXT").rcode() == dns.rcode.NXDOMAIN
    assert client.query("late.bl.test").answer[0].ttl == 2100  # the bad $TTL changed nothing


def test_ttl_in_a_later_file_applies_to_earlier_ones(serve, zone_file):
    client = serve(f"bl.test:ip4trie:{zone_file(['1.2.3.4'])},{zone_file(['$TTL 200'])}")
    assert client.query(rev("1.2.3.4")).answer[0].ttl == 200


# -- 8. $SOA and $NS ---------------------------------------------------------------------

SP1 = ["$TTL 300", "$SOA 0 ns.x hostmaster.x 0 2h 1h 1w 10m",
       "$NS 3600 ns1.x -ns2.x ns3.x", "1.2.3.4"]
SP1_MTIME = calendar.timegm((2024, 1, 2, 3, 4, 5))


def soa_fields(rd) -> tuple:
    return (str(rd.mname), str(rd.rname), rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum)


def test_soa_and_ns_lines(serve, zone_file):
    path = zone_file(SP1)
    os.utime(path, (SP1_MTIME, SP1_MTIME))
    client = serve(f"a.test:ip4set:{path}")
    r = client.query("a.test", "SOA")
    [rrset] = r.answer
    assert rrset.ttl == 300  # SOA ttl 0: the $TTL in effect
    assert soa_fields(rrset[0]) == ("ns.x.", "hostmaster.x.", SP1_MTIME, 7200, 3600, 604800, 600)
    r = client.query("a.test", "NS")
    [rrset] = r.answer
    assert rrset.ttl == 3600
    assert sorted(str(rd.target) for rd in rrset) == ["ns1.x.", "ns3.x."]
    r = client.query(rev("1.2.3.4", "a.test"))
    assert r.answer[0].ttl == 300 and [rd.address for rd in r.answer[0]] == ["127.0.0.2"]
    check_warnings(warnings_of("ip4set", path), path, [])


def test_soa_serial_zero_is_the_newest_mtime_of_the_zone(serve, zone_file):
    sp1 = zone_file(SP1)
    other = zone_file(["5.6.7.8"])
    os.utime(sp1, (SP1_MTIME, SP1_MTIME))
    os.utime(other, (SP1_MTIME + 1000, SP1_MTIME + 1000))
    lone = zone_file(["$SOA 0 ns.x hm.x 0 1h 1h 1w 1m", "127.0.0.2"])
    os.utime(lone, (SP1_MTIME, SP1_MTIME))
    client = serve(f"a.test:ip4set:{sp1}", f"a.test:ip4trie:{other}", f"b.test:ip4set:{lone}")
    assert client.query("a.test", "SOA").answer[0][0].serial == SP1_MTIME + 1000
    # One file: its mtime; SOA ttl 0 and no $TTL: the default TTL.
    [soa] = client.query("b.test", "SOA").answer
    assert (soa[0].serial, soa.ttl) == (SP1_MTIME, 2100)


@pytest.mark.parametrize("lines, ttl, fields, ns, ns_ttl", [
    # Only the first $SOA / $NS count; units work in every numeric field.
    (["$SOA 600 ns.x hm.x 7 1d 2h 1w 300", "$SOA 900 ns.y hm.y 8 1 1 1 1",
      "$NS 1d ns1.x", "$NS 60 ns9.x"],
     600, ("ns.x.", "hm.x.", 7, 86400, 7200, 604800, 300), ["ns1.x."], 86400),
    # $NS ttl 0 is the $TTL.
    (["$TTL 1h", "$SOA 1h ns.x hm.x 9 1h 1h 1h 1h", "$NS 0 ns1.x"],
     3600, ("ns.x.", "hm.x.", 9, 3600, 3600, 3600, 3600), ["ns1.x."], 3600),
])
def test_only_the_first_soa_and_ns_count(serve, zone_file, lines, ttl, fields, ns, ns_ttl):
    path = zone_file([*lines, "1.2.3.4"])
    client = serve(f"a.test:ip4set:{path}")
    [soa] = client.query("a.test", "SOA").answer
    assert (soa.ttl, soa_fields(soa[0])) == (ttl, fields)
    [nsset] = client.query("a.test", "NS").answer
    assert (nsset.ttl, sorted(str(rd.target) for rd in nsset)) == (ns_ttl, ns)
    check_warnings(warnings_of("ip4set", path), path, [])


def test_negative_answer_ttl_is_the_soa_minimum(serve, zone_file):
    # SOA ttl 600, minimum 300: rbldnsd's negative TTL is the minimum field.
    client = serve(f"a.test:ip4set:{zone_file(['$SOA 600 ns.x hm.x 1 1h 1h 1w 300', '1.2.3.4'])}")
    r = client.query(rev("5.3.2.1", "a.test"))
    assert r.rcode() == dns.rcode.NXDOMAIN
    [rrset] = r.authority
    assert rrset.rdtype == dns.rdatatype.SOA and rrset.ttl == 300 and rrset[0].serial == 1


@pytest.mark.parametrize("line", [
    "$SOA 0 ns.x hostmaster.x 0 2h",
    "$SOA 0 ns.x hostmaster.x 0 2h 1h 1w 10m extra",
    "$SOA 0 ns.x hostmaster.x 0 2x 1h 1w 10m",
])
def test_malformed_soa_is_ignored(bl, line):
    client, path, warnings = bl([line, "1.2.3.4"])
    check_warnings(warnings, path, [(1, "special entry")])
    r = client.query("bl.test", "SOA")
    assert all(str(rd.mname) != "ns.x." for rrset in r.answer for rd in rrset)
    assert look(client, "1.2.3.4") == LISTED


@pytest.mark.parametrize("line, warned", [("$NS 0", [1]), ("$NS 0 -ns1.x", [])])
def test_ns_line_without_usable_names_gives_no_ns(bl, line, warned):
    client, path, warnings = bl([line, "1.2.3.4"])
    check_warnings(warnings, path, [(n, "special entry") for n in warned])
    r = client.query("bl.test", "NS")
    assert not [rd for rrset in r.answer for rd in rrset if rrset.rdtype == dns.rdatatype.NS]
    assert look(client, "1.2.3.4") == LISTED


# -- 8. $MAXRANGE4 -----------------------------------------------------------------------

# lines after the directives: key -> None (accepted) or (hosts, max) of the warning
MAXRANGE_CASES = [
    (["$MAXRANGE4 /24"], [("10.1.0.0/16", (65536, 256)), ("10.2.0.0/24", None),
                          ("10.3.0.0/23", (512, 256)), ("10.4.0.0-10.4.1.255", (512, 256)),
                          ("10.5.0.0/25", None), ("10.6.0.0-10.6.0.255", None),
                          ("10.7.0.0-10.7.1.0", (257, 256))]),
    (["$MAXRANGE4 256"], [("10.1.0.0/16", (65536, 256)), ("10.2.0.0/24", None),
                          ("10.3.0.0/23", (512, 256)), ("10.7.0.0-10.7.1.0", (257, 256))]),
    (["$MAXRANGE4 100"], [("10.1.0.0/25", (128, 100)), ("10.2.0.0/26", None),
                          ("10.3.0.0-10.3.0.99", None), ("10.4.0.0-10.4.0.100", (101, 100))]),
]


@pytest.mark.parametrize("kind", SET_TRIE)
@pytest.mark.parametrize("directives, keys", MAXRANGE_CASES)
def test_maxrange(bl, kind, directives, keys):
    if kind == "ip4trie":
        keys = [(key, result) for key, result in keys if "-" not in key]
    client, path, warnings = bl([*directives, *(key for key, _ in keys)], kind)
    for key, result in keys:
        first = key.split("/")[0].split("-")[0]
        assert look(client, first) == (LISTED if result is None else NX), key
    check_warnings(warnings, path, [
        (n, f"too large range ({result[0]}) ignored ({result[1]} max")
        for n, (_, result) in enumerate(keys, len(directives) + 1) if result is not None])


def test_maxrange_cannot_be_raised_but_can_be_lowered(bl):
    client, path, warnings = bl(["$MAXRANGE4 /24", "$MAXRANGE4 /16", "10.1.0.0/23",
                                 "10.9.0.0/24", "$MAXRANGE4 /28", "10.2.0.0/27", "10.3.0.0/28"])
    assert [look(client, ip) for ip in ["10.1.0.0", "10.9.0.0", "10.2.0.0", "10.3.0.0"]] == [
        NX, LISTED, NX, LISTED]
    check_warnings(warnings, path, [
        (2, "ignoring attempt to increase $MAXRANGE4 from 256 to 65536"),
        (3, "too large range (512) ignored (256 max"),
        (6, "too large range (32) ignored (16 max")])


@pytest.mark.parametrize("kind", SET_TRIE)
def test_maxrange_applies_to_exclusions(bl, kind):
    client, path, warnings = bl(["10.0.0.0/8", "$MAXRANGE4 /28", "!10.4.0.0/24",
                                 "!10.5.0.0/28"], kind)
    assert look(client, "10.4.0.1") == LISTED
    assert look(client, "10.5.0.1") is NX
    check_warnings(warnings, path, [(3, "too large range (256) ignored (16 max")])


# -- 8. $TIMESTAMP -----------------------------------------------------------------------

@pytest.mark.parametrize("stamp", ["2020:01:01 2020:01:02", "2020:01:01 +1d", "0 2020:01:01"])
def test_expired_timestamp_gives_servfail(bl, stamp):
    client, path, warnings = bl([f"$TIMESTAMP {stamp}", "1.2.3.4"])
    check_warnings(warnings, path, [])
    for name, rdtype in [(rev("1.2.3.4"), "A"), (rev("1.2.3.5"), "A"), ("bl.test", "SOA")]:
        r = client.query(name, rdtype)
        assert r.rcode() == dns.rcode.SERVFAIL
        assert not r.flags & dns.flags.AA


def _relative_stamp() -> str:
    return time.strftime("%Y-%m-%d-%H", time.gmtime(time.time() - 5 * 3600)) + " +30d"


@pytest.mark.parametrize("stamp, warned", [
    ("20200101120000 -", False),
    ("2020:01:01 2038:12:31", False),
    (_relative_stamp(), False),
    ("2020:01:01 2099:01:01", False),   # years past 2038 are fine here
    ("2020:13:01", True),               # invalid: warning, loaded with no expiry
    ("2020:02:30", True),
    ("2020:01:01:25", True),
    ("2020", True),
    ("2020:01:01 +2x", True),
])
def test_timestamp_that_does_not_stop_loading(bl, stamp, warned):
    client, path, warnings = bl([f"$TIMESTAMP {stamp}", "1.2.3.4"])
    assert look(client, "1.2.3.4") == LISTED
    check_warnings(warnings, path, [(1, "special entry")] if warned else [])


def test_future_timestamp_fails_the_dataset(zone_file):
    future = zone_file([f"$TIMESTAMP {year_stamp(time.time() + 400 * 86400)}", "1.2.3.4"])
    fine = zone_file(["1.2.3.4"])
    with pytest.raises(ZoneFileError) as exc:
        load_dataset("ip4set", [fine, future], 2100)
    assert str(exc.value).startswith(f"{future}:1: ") and "future" in str(exc.value)
    config = ServerConfig(zones=merge_zones([parse_zone_spec(f"f.test:ip4set:{future}"),
                                             parse_zone_spec(f"g.test:ip4set:{fine}")]))
    with pytest.raises(LoadError) as err:
        load_snapshot(config)
    assert [str(e) for e in err.value.errors] == [str(exc.value)]
    unloaded = err.value.partial.by_name("f.test")  # that zone is not served...
    assert not unloaded.loaded and unloaded.servfail
    assert err.value.partial.by_name("g.test").loaded  # ...the others are


# -- 10. gzip and several files ----------------------------------------------------------

@pytest.mark.parametrize("name", ["g1.gz", "g1plain"])
def test_gzip_file_detected_by_magic(serve, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"$TTL 300\n:3:gz $\n1.2.3.4\n10.0.0.0/8\n!10.1.0.0/16\n"))
    client = serve(f"bl.test:ip4set:{path}")
    assert look(client, "1.2.3.4") == (["127.0.0.3"], ["gz 1.2.3.4"])
    assert look(client, "10.2.0.1") == (["127.0.0.3"], ["gz 10.2.0.1"])
    assert look(client, "10.1.0.1") is NX
    assert client.query(rev("1.2.3.4")).answer[0].ttl == 300


@pytest.mark.parametrize("data", [
    b"\x1f\x8b" + b"garbage" * 20,
    gzip.compress(b"1.2.3.4\n" * 1000)[:-30],   # truncated
])
def test_corrupt_gzip_fails_the_dataset(tmp_path, data):
    path = tmp_path / "g2"
    path.write_bytes(data)
    with pytest.raises(ZoneFileError) as exc:
        load_dataset("ip4set", [str(path)], 2100)
    assert str(exc.value).startswith(str(path))


def test_several_files_are_one_dataset(serve, zone_file, tmp_path):
    a = zone_file([":3:from a $", "10.0.0.0/8", "1.2.3.4"])
    b = zone_file(["!10.1.0.0/16", "1.2.3.5", "$TTL 77"])
    c = tmp_path / "c.gz"
    c.write_bytes(gzip.compress(b"9.9.9.0/24 :5:from c\n"))
    client = serve(f"bl.test:ip4set:{a},{b},{c}")
    assert look(client, "1.2.3.4") == (["127.0.0.3"], ["from a 1.2.3.4"])
    assert look(client, "10.2.0.1") == (["127.0.0.3"], ["from a 10.2.0.1"])
    # A default value lasts to the end of its file only.
    assert look(client, "1.2.3.5") == LISTED
    # An exclusion in one file applies to the whole dataset.
    assert look(client, "10.1.0.1") is NX
    # A gzip file is one of them like any other.
    assert look(client, "9.9.9.9") == (["127.0.0.5"], ["from c"])
    # $TTL is dataset-wide: given in b, it holds for c too.
    assert client.query(rev("9.9.9.9")).answer[0].ttl == 77


# -- 11. bulk reading agrees with reading line by line -----------------------------------
# datasets/ip4.py reads the bare dotted quads of a big file a run at a time and the other
# lines one at a time. Whatever the file, the dataset must be what reading its lines one
# by one gives, with the rules applied one entry at a time, read by a reference written
# apart from the parser (keys judged by the ipaddress module).

# A small pool, so that addresses repeat across lines and runs.
_address = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.0", "192.0.2.9",
                            "1.2.3.4", "255.255.255.255", "0.0.0.0", "127.0.0.2"])
_line = st.one_of(
    _address,
    _address.map(lambda a: a + "  "),
    _address.map(lambda a: a + "\r"),
    _address.map(lambda a: "!" + a),
    _address.map(lambda a: a + " :3:Listed $"),
    _address.map(lambda a: a + " :4"),
    _address.map(lambda a: a + " #"),
    _address.map(lambda a: a + "\t:3:tab"),
    _address.map(lambda a: a + "#c"),
    _address.map(lambda a: a + ":5"),
    _address.map(lambda a: a + "/32 :3:full"),
    st.sampled_from([
        "010.0.0.1",  # a leading zero: decimal, as rbldnsd reads it
        "10.0.0.256", "10.0.0", "10.0.0.0/24", "!10.0.0.0/30", "10.0.0.0/33", " 10.0.0.1",
        ":127.0.0.5:default $", ":6", "# comment", "", " ", "$TTL 60", "1.2.3.4.5", "1..2.3",
        "1.2.3.4 5.6.7.8", "1.2\r3.4", "10.0.0.0/08", "10.0.0.0/24 :3:x", "10.0.0.0/24;c",
        "10.0.0.0/+8", "10.0.0.0/0", "10.0.0.1/24", "10.0.0.1\0", "10.0.0.0/24\0 :3:x",
    ]),
)


def _dataset(path, kind: str) -> tuple:
    parsed = parse_dataset(kind, [str(path)], 2100)
    values = [None if v is None else (v.a, v.raw) for v in parsed.values]
    singles = dict(zip(memoryview(parsed.singles).cast("I"),
                       (values[n] for n in memoryview(parsed.numbers).cast("I")), strict=True))
    blocks = {(key, bits): values[n] for key, bits, n in parsed.blocks}
    return singles, blocks, [w.lineno for w in parsed.warnings]


def _reference_key(kind: str, text: str) -> ipaddress.IPv4Network | str:
    """rbldnsd's reading of an IPv4 key, written apart from the parser: octets
    in decimal (a leading zero is no octal), trailing ones left out make the
    prefix length (10.0.0 is a /24; a bare 10 is nothing), and ipaddress
    judges the network. "bad" or "host part" where it is none."""
    address, slash, bits_text = text.partition("/")
    octets = address.split(".")
    if (not all(o.isascii() and o.isdigit() for o in octets) or len(octets) > 4
            or any(int(o) > 255 for o in octets)):
        return "bad"
    if slash and not (bits_text.isascii() and bits_text.isdigit()):
        return "bad"
    bits = int(bits_text) if slash else 8 * len(octets)
    if (kind == "ip4tset" and (slash or len(octets) < 4)) or (not slash and len(octets) == 1) \
            or bits > 32 or (kind == "ip4set" and bits == 0):
        return "bad"
    quad = ".".join(str(int(o)) for o in octets + ["0"] * (4 - len(octets)))
    try:
        return ipaddress.IPv4Network(f"{quad}/{bits}")
    except ValueError:
        return "host part"


def _reference_value(text: str, default: tuple) -> tuple:
    """``:A:TXT``, ``:A`` (the default's TXT) or a plain TXT -> (A, TXT)."""
    if not text.startswith(":"):
        return default[0], text
    a_text, sep, txt = text[1:].partition(":")
    a = (ipaddress.IPv4Address(a_text).packed if "." in a_text
         else bytes((127, 0, 0, int(a_text))))
    return a, (txt.strip() or None) if sep else default[1]


def _reference(path, kind: str) -> tuple:
    """What the lines of :data:`_line` list, read the plain way, one line at a
    time, none of it by the parser: dicts where the later value wins (with a
    warning) and an exclusion wins in any order; the numbers of the lines
    warned about."""
    builtin = default = (b"\x7f\x00\x00\x02", None)
    singles: dict = {}
    blocks: dict = {}
    warned = []
    with open(path, encoding="latin-1", newline="") as f:
        lines = f.read().split("\n")
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line[0] in "#$":
            continue
        if line[0] == ":":
            if kind != "ip4tset":
                default = _reference_value(line, builtin)
            continue
        excluded = line[0] == "!"
        if excluded and kind == "ip4tset":
            warned.append(lineno)
            continue
        line = line.lstrip("!")
        end = next((i for i, c in enumerate(line) if c in " \t#;:"), len(line))
        network, rest = _reference_key(kind, line[:end]), line[end:].lstrip()
        if isinstance(network, str):
            warned.append(lineno)
            continue
        value = (None if excluded else default if not rest or rest[0] in "#;"
                 else _reference_value(rest, default))
        key = int(network.network_address)
        table, index = ((singles, key) if network.prefixlen == 32
                        else (blocks, (key, network.prefixlen)))
        if index in table and table[index] is None:
            continue
        if table.get(index) is not None and value is not None:
            warned.append(lineno)  # a duplicate: the later value is used
        table[index] = value
    return dict(sorted(singles.items())), blocks, warned


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["ip4set", "ip4trie", "ip4tset"]),
       lines=st.lists(_line, max_size=40), newline_at_end=st.booleans())
def test_bulk_reading_agrees_with_reading_line_by_line(tmp_path, kind, lines, newline_at_end):
    path = tmp_path / "bl.zone"
    path.write_text("\n".join(lines) + ("\n" if newline_at_end else ""),
                    encoding="latin-1", newline="")
    got, want = _dataset(path, kind), _reference(path, kind)
    if kind == "ip4tset":  # every entry answers with the one value of the dataset
        assert list(got[0]) == list(want[0]) and got[1].keys() == want[1].keys()
    else:
        assert list(got[0].items()) == list(want[0].items())
        assert got[1] == want[1]
    assert got[2] == want[2]


_key = st.sampled_from([0, 1, 2, 2**31, 2**32 - 2, 2**32 - 1]) | st.integers(0, 2**32 - 1)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(_key, max_size=20).map(sorted) | st.lists(_key, max_size=20),
       chunk=st.integers(1, 6))
def test_ascending_agrees_with_comparing_pair_by_pair(keys, chunk):
    # The lane arithmetic of datasets.ip4._ascending, over chunks small enough to have
    # edges: it decides whether a file's runs need sorting at all.
    with mock.patch.object(ip4, "_CHUNK", chunk):
        assert ip4._ascending(array("I", keys)) == all(
            a < b for a, b in zip(keys, keys[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_key, max_size=200, unique=True).map(sorted), bits=st.integers(8, 16))
def test_block_index_points_at_the_first_key_of_each_block(keys, bits):
    # A lookup bisects only between starts[block] and starts[block + 1].
    want = [bisect.bisect_left(keys, block << (32 - bits)) for block in range(1 << bits)]
    assert list(ip4._block_starts(array("I", keys), bits)) == want + [len(keys)]


@pytest.mark.parametrize("kind", ["ip4set", "ip4trie"])
def test_bare_lines_answer_with_the_value_in_force_and_repeats_are_located(bl, kind):
    client, path, warnings = bl([
        "192.0.2.1",
        "192.0.2.2",
        ":127.0.0.3:second default $",
        "192.0.2.3",
        "192.0.2.1",  # a repeat: the later value wins, with a warning
        "!192.0.2.2",  # an exclusion beats the bare line above
        "010.000.002.004",  # leading zeros are decimal
        "192.0.2.5\r",  # a CRLF line
    ], kind)
    assert look(client, "192.0.2.1") == (["127.0.0.3"], ["second default 192.0.2.1"])
    assert look(client, "192.0.2.2") is NX
    assert look(client, "192.0.2.3") == (["127.0.0.3"], ["second default 192.0.2.3"])
    assert look(client, "10.0.2.4") == (["127.0.0.3"], ["second default 10.0.2.4"])
    assert look(client, "192.0.2.5") == (["127.0.0.3"], ["second default 192.0.2.5"])
    check_warnings(warnings, path, [(5, "duplicate entry 192.0.2.1/32")])


def test_addresses_at_the_edges_of_index_blocks_answer(bl):
    # 20,000 addresses spread over the whole space: the index goes by their top
    # 10 bits, and every block has some. The first and last address of a block,
    # and the addresses just outside them, are where a wrong start would show.
    step = (1 << 32) // 20_000
    keys = [i * step + 1 for i in range(20_000)]
    client, _path, _warnings = bl([str(ipaddress.IPv4Address(k)) for k in keys], "ip4trie")
    for i in (0, 19, 20, 39, 40, 59, 10_000, 19_999):  # blocks start at 20, 40, 59, ...
        assert look(client, str(ipaddress.IPv4Address(keys[i]))) == LISTED
        assert look(client, str(ipaddress.IPv4Address(keys[i] - 1))) is NX
        assert look(client, str(ipaddress.IPv4Address(keys[i] + 1))) is NX


def test_line_numbers_hold_across_read_blocks_and_unsorted_runs(bl):
    # 100,000 bare lines in descending order (about 1.4 MiB: two read blocks),
    # then a repeat of the first one and a comment line.
    lines = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(100_000, 0, -1)]
    lines += ["# end", lines[0], "10.200.0.1 :3:last"]
    client, path, warnings = bl(lines, "ip4trie")
    check_warnings(warnings, path, [(100_002, f"duplicate entry {lines[0]}/32")])
    assert look(client, "10.0.0.1") == (["127.0.0.2"], [])
    assert look(client, "10.1.134.160") == (["127.0.0.2"], [])  # 100,000: the first line
    assert look(client, "10.1.134.161") is NX
    assert look(client, "10.200.0.1") == (["127.0.0.3"], ["last"])
