"""The same data files give the same answers from rbldnsd and from dnsbl.

Skipped where the rbldnsd binary is missing (`.ci/run` installs it). Both
servers run on the bundled zones/ and on data generated from a fixed seed for
every type, and are asked the A and TXT of each name, from 127.0.0.1 and,
for the ACLs, from 127.0.0.2.. and ::1. The data avoids the cases where we
differ on purpose; DIFFERENCES names each of them with its reason, and
test_named_differences shows each one on both servers, so the list cannot
go stale.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.rcode
import pytest

from dnsbl.explain import name_under
from tests.helpers import ROOT, Client, ServerThread, free_port, has_ipv6_loopback, scaled, stop_all

#: Where dnsbl answers differently from rbldnsd on purpose, and why (README,
#: "How it differs from rbldnsd"). Only the answer section and rcode are
#: compared; the authority section differs too (the default SOA, no NS).
DIFFERENCES = {
    "rfc8020": "A name with listed names below it exists: NODATA, not rbldnsd's NXDOMAIN "
               "(RFC 8020), or QNAME-minimising resolvers (Unbound by default) take the "
               "whole subtree for gone. This covers IPv4 names of 1 to 3 labels, IPv6 "
               "nibble names with a listed network at or below them (or, in a zone with "
               "IPv4 data, on the way to ::ffff:0:0/96 or 2002::/16), the base x of *.x, "
               "the parent of a listed name or generic record, and an excluded name whose "
               "subdomains are listed. Other names, an unlisted 8.8.8.8 included, are "
               "NXDOMAIN as in rbldnsd.",
    "default-soa": "A zone without $SOA gets a default SOA, so the apex SOA query and the "
                   "apex ANY query are answered (rbldnsd: REFUSED) and negative answers "
                   "can be cached (RFC 2308).",
    "duplicate-prefix": "Two entries for exactly one prefix in ip4trie/ip6trie: the later "
                        "value is used, with a warning (rbldnsd keeps the first, silently "
                        "in ip6trie); an exclusion of that prefix wins in any order "
                        "(in rbldnsd the first line wins).",
    "ip4set-granularity": "ip4set matches by longest prefix; rbldnsd matches whole-octet "
                          "blocks, so overlapping odd-sized blocks can both answer there.",
    "ip6-overlong": "An IPv6 key with more than eight groups or ':::' is an invalid "
                    "address here; rbldnsd reads the leftover groups as the entry's value "
                    "(a typo silently becomes a listing with another A).",
}

RBLDNSD = shutil.which("rbldnsd") or (
    "/usr/sbin/rbldnsd" if os.path.exists("/usr/sbin/rbldnsd") else None)

pytestmark = [
    pytest.mark.skipif(RBLDNSD is None, reason="rbldnsd not installed (apt-get install rbldnsd)"),
    pytest.mark.slow,  # a second server, thousands of questions to both
]


def _ip(rng: random.Random, first: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address((first << 24) | rng.randrange(1 << 24))


def _values(rng: random.Random) -> str:
    return rng.choice(["", " :3:", " :4:Spam source $", " Open proxy $ $1", " :5",
                       " :127.0.0.6:see https://example.org/?$"])


def generate(rng: random.Random) -> dict[str, tuple[list[str], list[str]]]:
    """kind -> (zone lines, addresses to ask about)."""
    out: dict[str, tuple[list[str], list[str]]] = {}

    # ip4set: singles in 10/8, /24 and /16 prefixes in 11/8-12/8, ranges in 13/8.
    lines = ["$1 (var one)", ":2:Listed $ $1"]
    asks: list[str] = []
    for _ in range(60):
        ip = _ip(rng, 10)
        lines.append(f"{ip}{_values(rng)}")
        asks.append(str(ip))
    for i in range(15):
        net = ipaddress.IPv4Network((int(_ip(rng, 11)) & 0xFFFFFF00, 24))
        key = ".".join(str(net.network_address).split(".")[:3]) if i % 2 else str(net)
        lines.append(f"{key}{_values(rng)}")
        hole = net.network_address + rng.randrange(256)
        lines.append(f"!{hole}")
        asks += [str(hole), str(net.network_address + rng.randrange(256))]
    for _ in range(5):
        net = ipaddress.IPv4Network((int(_ip(rng, 12)) & 0xFFFF0000, 16))
        lines.append(f"{'.'.join(str(net.network_address).split('.')[:2])}/16{_values(rng)}")
        asks.append(str(net.network_address + rng.randrange(1 << 16)))
    for _ in range(10):
        base = int(_ip(rng, 13)) & 0xFFFFFF00
        lo, hi = sorted(rng.sample(range(256), 2))
        first, last = ipaddress.IPv4Address(base + lo), ipaddress.IPv4Address(base + hi)
        lines.append(f"{first}-{last}{_values(rng)}" if rng.random() < 0.5
                     else f"{first}-{hi}{_values(rng)}")
        asks += [str(first), str(last), str(ipaddress.IPv4Address(base + (hi + 1) % 256))]
    asks += [str(_ip(rng, rng.choice([10, 11, 12, 13, 14]))) for _ in range(40)]
    out["ip4set"] = (lines, asks)

    # ip4trie: CIDRs of every length, nested, with exclusions.
    lines, asks, seen = [":127.0.0.2:Trie listing $"], [], set()
    for _ in range(120):
        bits = rng.choice([8, 12, 16, 19, 22, 24, 26, 28, 30, 32, 32, 32])
        net = ipaddress.IPv4Network((int(_ip(rng, rng.choice([20, 21]))) >> (32 - bits)
                                     << (32 - bits), bits))
        if net in seen:
            continue
        seen.add(net)
        excluded = rng.random() < 0.2
        lines.append(f"{'!' if excluded else ''}{net}{'' if excluded else _values(rng)}")
        asks.append(str(net.network_address + rng.randrange(net.num_addresses)))
    asks += [str(_ip(rng, rng.choice([20, 21, 22]))) for _ in range(60)]
    out["ip4trie"] = (lines, asks)

    # ip4tset: single addresses, one value.
    singles = [str(_ip(rng, 30)) for _ in range(100)]
    out["ip4tset"] = ([":3:Tset $", *singles], singles[:50] + [str(_ip(rng, 30))
                                                              for _ in range(50)])

    # ip6trie: prefixes of every length under 2001:db8::/32, nested, with exclusions;
    # keys written with :: and without (trailing zero groups left out).
    lines, asks, seen6 = [":127.0.1.2:v6 listed $"], [], set()
    base = int(ipaddress.IPv6Address("2001:db8::"))
    for _ in range(120):
        bits = rng.choice([32, 40, 48, 56, 64, 64, 96, 112, 128, 128])
        net6 = ipaddress.IPv6Network(
            ((base | rng.getrandbits(96)) >> (128 - bits) << (128 - bits), bits))
        if net6 in seen6:
            continue
        seen6.add(net6)
        key = str(net6) if bits % 16 or rng.random() < 0.5 else ":".join(
            net6.exploded.split(":")[:bits // 16])
        excluded = rng.random() < 0.2
        lines.append(f"{'!' if excluded else ''}{key}{'' if excluded else _values(rng)}")
        asks.append(str(net6.network_address + rng.getrandbits(128 - bits)))
    asks += [str(ipaddress.IPv6Address(base | rng.getrandbits(96))) for _ in range(40)]
    out["ip6trie"] = (lines, asks)

    # ip6tset: /64s as four groups, a few excluded single addresses.
    nets = [ipaddress.IPv6Network((base | rng.getrandbits(32) << 64, 64)) for _ in range(80)]
    lines = [":4:v6 tset $"] + [":".join(n.exploded.split(":")[:4]) for n in nets]
    asks = [str(n.network_address + rng.getrandbits(64)) for n in nets]
    holes = [str(n.network_address + 5) for n in nets[:10]]
    lines += [f"!{h}" for h in holes]
    others = [str(ipaddress.IPv6Address(base | rng.getrandbits(96))) for _ in range(20)]
    out["ip6tset"] = (lines, asks + holes + others)

    # dnset: exact names, *.x, .x and exclusions on separate bases; asked at or
    # below an entry, or unrelated (intermediate names differ on purpose).
    lines, asks = [":5:dn listed $"], []
    for i in range(60):
        base_name = f"d{i}.example{i % 7}.net"
        form = i % 4
        value = _values(rng)
        if form == 0:
            lines.append(f"{base_name}{value}")
            asks += [base_name, f"www.{base_name}"]
        elif form == 1:
            lines.append(f"*.{base_name}{value}")
            asks += [f"a.{base_name}", f"b.c.{base_name}"]  # not x: NODATA here (RFC 8020)
        elif form == 2:
            lines += [f".{base_name}{value}", f"!no.{base_name}"]
            # not no.x itself: y.no.x is listed under it, so it is NODATA here (RFC 8020)
            asks += [base_name, f"x.{base_name}", f"y.no.{base_name}"]
        else:
            lines.append(f"{base_name.upper()}{value}")
            asks += [base_name, f"{base_name[0].upper()}{base_name[1:]}"]
    asks += [f"other{i}.example.org" for i in range(20)] + ["test", "invalid"]
    out["dnset"] = (lines, asks)

    # generic: A, TXT and MX records at names (asked as names, not addresses).
    lines, asks = [], []
    for i in range(40):
        name = f"host{i}" if i % 3 else f"h{i}.sub"
        lines.append(f"{name} A 127.0.{i}.8")
        if i % 2:
            lines.append(f'{name} TXT "record {i}"')
        if i % 5 == 0:
            lines.append(f"{name} MX 10 mx{i}.example.org")
        asks.append(name)
    out["generic"] = (lines, asks + [f"missing{i}" for i in range(60)])

    # combined: sections under the zone itself and under subzones.
    lines = ["$SOA 1w ns1.ex.com admin.ex.com 0 2h 2h 1w 1h", "$NS 1w ns1.ex.com", "$1 one"]
    asks = ["www", "www.proxies", "proxies", "missing.relays"]
    sections = [("$DATASET ip4set:p proxies @", ":2:Proxy $ $1", 40),
                ("$DATASET ip4trie:r relays @", ":3:Relay $", 41),
                ("$DATASET ip4set:m multihop", ":4:Multihop $", 42)]
    for header, default, first in sections:
        lines += [header, default]
        for _ in range(20):
            address = _ip(rng, first)
            lines.append(str(address))
            reverse = ".".join(reversed(str(address).split(".")))
            asks += [reverse, f"{reverse}.proxies", f"{reverse}.relays", f"{reverse}.multihop"]
    lines += ["$DATASET generic:g proxies @", "@ A 127.0.0.8", "www A 127.0.0.8"]
    # Sections of other types, one with no name (rbldnsd names it by its type).
    lines += ["$DATASET dnset:d names", ":5:Name $", ".bad.example", "!ok.bad.example",
              "listed.example"]
    asks += ["bad.example.names", "x.bad.example.names", "z.ok.bad.example.names",
             "listed.example.names", "other.example.names", "x.listed.example.names"]
    lines += ["$DATASET ip6trie six", ":6:Six $"]
    for _ in range(10):
        net6 = ipaddress.IPv6Network((base | rng.getrandbits(32) << 64, 64))
        lines.append(str(net6))
        for address in (net6.network_address + rng.getrandbits(64),
                        ipaddress.IPv6Address(base | rng.getrandbits(96))):
            asks.append(name_under(str(address), "six"))
    out["combined"] = (lines, asks)
    return out


#: Kinds whose questions are names under the zone as written, not addresses.
VERBATIM = ("generic", "combined")


@pytest.fixture(scope="module")
def data():
    root = tempfile.mkdtemp(prefix="dnsbl-compat-")
    os.chmod(root, 0o755)
    generated = generate(random.Random(5782))
    for kind, (lines, _asks) in generated.items():
        path = os.path.join(root, f"{kind}.zone")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o644)
    yield root, generated
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def rbldnsd(data):
    root, generated = data
    yield from _rbldnsd(root, [f"{kind}.test:{kind}:{{}}{kind}.zone" for kind in generated])


def _rbldnsd(root: str, specs: list[str], v6: bool = False):
    """Run rbldnsd on zone specs whose file names are relative to ``root``
    (``{}`` stands where the directory goes); yield a Client for it (and
    answering on ::1 too with ``v6``, on the same port)."""
    port = free_port()
    cmd = [RBLDNSD, "-n", "-b", f"127.0.0.1/{port}", "-t", "2100"]
    if v6:
        cmd += ["-b", f"::1/{port}"]
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("rbldns")
        except KeyError:
            pytest.skip("rbldnsd refuses root and there is no rbldns user")
        cmd += ["-u", "rbldns", "-r", root]
        prefix = ""
    else:
        prefix = root + "/"
    cmd += [spec.format(prefix) for spec in specs]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = Client("127.0.0.1", port)
        deadline = time.monotonic() + scaled(10)
        while True:
            try:
                # A short wait per try: a question sent before it binds is lost.
                client.query(specs[0].split(":")[0] or "x.test", "SOA", timeout=0.2)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail("rbldnsd did not start: " + (proc.communicate()[0] or ""))
                time.sleep(0.05)
        yield client
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        if proc.stdout is not None and not proc.stdout.closed:  # not read yet
            try:
                proc.communicate(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def ours(data):
    from dnsbl.config import Listen, ServerConfig, parse_zone_spec

    root, generated = data
    config = ServerConfig(listen=(Listen("127.0.0.1", 0),), zones=tuple(
        parse_zone_spec(f"{kind}.test:{kind}:{root}/{kind}.zone") for kind in generated))
    thread = ServerThread(config)
    yield thread.start()
    thread.stop()


def _answer(client: Client, name: str, rdtype: str) -> tuple:
    r = client.query(name, rdtype)
    values = sorted(rd.to_text() for rrset in r.answer for rd in rrset)
    return dns.rcode.to_text(r.rcode()), values


@pytest.mark.parametrize("kind", ["ip4set", "ip4trie", "ip4tset", "ip6trie", "ip6tset",
                                  "dnset", "generic", "combined"])
def test_same_answers_as_rbldnsd(data, rbldnsd, ours, kind):
    _root, generated = data
    lines, asks = generated[kind]
    assert len(asks) >= 100
    listed = 0
    for key in asks:
        name = f"{key}.{kind}.test" if kind in VERBATIM else name_under(key, f"{kind}.test")
        for rdtype in ("A", "TXT"):
            theirs = _answer(rbldnsd, name, rdtype)
            assert _answer(ours, name, rdtype) == theirs, (name, rdtype)
            listed += theirs[0] == "NOERROR" and rdtype == "A"
    # The comparison means something only if both kinds of answer occurred.
    assert 0.2 * len(asks) < listed < 0.9 * len(asks)


SOA_LINE = "$SOA 0 ns1.bl.test admin.bl.test 1 2h 2h 1w 1h"
ACL_FILES = {
    "data": [SOA_LINE, "$NS 0 ns1.ex.com", ":2:Listed $", "127.0.0.2"],
    "gen": ["www A 127.0.0.8", 'info TXT "info record"', "@ A 127.0.0.9"],
    "dn": [SOA_LINE, ":3:D $", "listed.example", ".dot.example"],
    "six": [SOA_LINE, ":4:S $", "2001:db8::/32", "::ffff:7f00:2"],
    "comb": ["$SOA 1w ns1.ex.com admin.ex.com 0 2h 2h 1w 1h", "$NS 1w ns1.ex.com",
             "$DATASET ip4set:p proxies @", ":2:P $", "127.0.0.2",
             "$DATASET ip4set:r relays @", ":3:R $", "127.0.0.2",
             "$DATASET dnset names", ":5:N $", "listed.example",
             "$DATASET ip6trie:s six", ":6:S6 $", "2001:db8::/32",
             "$DATASET generic:g proxies @", "@ A 127.0.0.8", "www A 127.0.0.8"],
    # A zone ACL with a default line: bare entries and partial values take it.
    "zacl": ["$TTL 77", ":127.0.0.50:deflt $", "127.0.0.2 :ignore", "127.0.0.3 :empty",
             "127.0.0.4 :127.0.0.200:zone $", "127.0.0.5 :refuse", "127.0.0.6 :pass",
             "127.0.0.7 :127.0.0.200:zone $", "127.0.0.8 :127.0.0.200:zone $",
             "127.0.0.9 :pass", "127.0.0.10 :refuse", "127.0.0.13", "127.0.0.14 :9",
             "127.0.0.15 some txt $", "127.0.0.16 ignore", "127.0.0.17 :pass junk",
             "127.0.0.18 :ignore:", "127.0.0.19 :127.255.255.253:", "127.0.0.22 :blackhole",
             "127.0.1.0/24 :refuse", "127.0.1.6 :pass", "127.0.1.7 :empty",
             "::1 :127.255.255.250:v6 client $"],
    "gacl": ["127.0.0.2 :refuse", "127.0.0.3 :127.0.0.100:global $", "127.0.0.4 :empty",
             "127.0.0.5 :pass", "127.0.0.6 :ignore", "127.0.0.7 :127.0.0.100:global $",
             "127.0.0.8 :pass", "127.0.0.9 :refuse", "127.0.0.11 :refuse",
             "127.0.0.12 :127.0.0.100:g12 $", "127.0.0.20/30 :empty",
             "127.0.0.21 :127.0.0.101:x"],
}
ACL_SPECS = ["bl.test:ip4set:{}data", "bl.test:generic:{}gen", "bl.test:acl:{}zacl",
             "dn.test:dnset:{}dn", "dn.test:generic:{}gen", "dn.test:acl:{}zacl",
             "s6.test:ip6trie:{}six", "s6.test:ip4set:{}data", "s6.test:acl:{}zacl",
             "c.test:combined:{}comb", "c.test:acl:{}zacl",
             "other.test:ip4set:{}data", ":acl:{}gacl"]
# Not asked: names that are NODATA here and NXDOMAIN in rbldnsd (DIFFERENCES["rfc8020"]).
ACL_QUESTIONS = [
    ("2.0.0.127.bl.test", "A"), ("2.0.0.127.bl.test", "TXT"), ("3.0.0.127.bl.test", "A"),
    ("3.0.0.127.bl.test", "TXT"), ("bl.test", "A"), ("bl.test", "NS"), ("www.bl.test", "A"),
    ("info.bl.test", "TXT"), ("nx.bl.test", "A"),
    ("listed.example.dn.test", "A"), ("other.example.dn.test", "TXT"), ("a.b.c.dn.test", "A"),
    ("www.dn.test", "A"), ("dn.test", "A"), ("x.dot.example.dn.test", "TXT"),
    (name_under("2001:db8::1", "s6.test"), "A"), (name_under("3001:db8::1", "s6.test"), "TXT"),
    (name_under("::ffff:7f00:2", "s6.test"), "TXT"), (name_under("2002:7f00:2::1", "s6.test"), "A"),
    ("2.0.0.127.s6.test", "A"),
    ("2.0.0.127.c.test", "A"), ("2.0.0.127.c.test", "TXT"), ("9.9.9.9.proxies.c.test", "TXT"),
    ("www.c.test", "A"), ("c.test", "A"), ("proxies.c.test", "A"), ("x.proxies.c.test", "A"),
    ("listed.example.names.c.test", "TXT"), ("other.names.c.test", "A"),
    (name_under("2001:db8::5", "six.c.test"), "TXT"),
    ("2.0.0.127.other.test", "A"), ("3.0.0.127.other.test", "TXT"), ("foo.nozone", "A"),
]
ACL_SOURCES = ["127.0.0.1", *(f"127.0.0.{i}" for i in range(2, 23)), "127.0.1.1", "127.0.1.6",
               "127.0.1.7", "::1"]
#: Sources only other spellings of ignore apply to: every answer is a timeout,
#: so a few questions show it.
ACL_SILENT_SOURCES = {"127.0.0.18": 3, "127.0.0.22": 3}


def _seen(client: Client, source: str, name: str, rdtype: str):
    r = client.ask_or_silence(name, rdtype, source)
    if r is None:
        return "silence"
    return dns.rcode.to_text(r.rcode()), sorted(rd.to_text() for rrset in r.answer for rd in rrset)


def _write(root: str, files: dict[str, list[str]]) -> None:
    for name, lines in files.items():
        path = os.path.join(root, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o644)


class _Both:
    """rbldnsd and dnsbl on the same files: ``ask`` returns both answers."""

    def __init__(self, root: str, specs: list[str], v6: bool = False) -> None:
        from dnsbl.config import Listen, ServerConfig, with_overrides

        self._theirs = _rbldnsd(root, specs, v6)
        rbl = next(self._theirs)
        listen = (Listen("127.0.0.1", 0),) + ((Listen("::1", 0),) if v6 else ())
        self._thread = ServerThread(with_overrides(
            ServerConfig(listen=listen), zones=[s.format(root + "/") for s in specs]))
        try:
            self._thread.start()
        except BaseException:
            self._theirs.close()  # rbldnsd stopped: nothing outlives a failed start
            raise
        assert self._thread.server is not None
        ports = {b.host: b.port for b in self._thread.server.bound}
        self.rbldnsd = {"127.0.0.1": rbl, "::1": Client("::1", rbl.port)}
        self.ours = {host: Client(host, port) for host, port in ports.items()}
        # Both asked at once: a silent answer costs one timeout, not two.
        self._pool = ThreadPoolExecutor(1)

    def ask(self, name: str, rdtype: str, source: str = "127.0.0.1") -> tuple:
        host = "::1" if ":" in source else "127.0.0.1"
        ours = self._pool.submit(_seen, self.ours[host], source, name, rdtype)
        return _seen(self.rbldnsd[host], source, name, rdtype), ours.result()

    def stop(self) -> None:
        self._pool.shutdown()
        try:
            self._thread.stop()
        finally:
            next(self._theirs, None)


@pytest.fixture
def both():
    """both(files, specs, v6=False) -> _Both, stopped after the test."""
    started: list[_Both] = []
    roots: list[str] = []

    def _start(files: dict[str, list[str]], specs: list[str], v6: bool = False) -> _Both:
        root = tempfile.mkdtemp(prefix="dnsbl-compat-")
        os.chmod(root, 0o755)
        roots.append(root)
        _write(root, files)
        pair = _Both(root, specs, v6)
        started.append(pair)
        return pair

    yield _start
    stop_all([pair.stop for pair in started])
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def test_same_acl_answers_as_rbldnsd(both):
    """Zone and global ACLs, default lines, on ip4set, dnset, ip6trie and
    combined zones, from 127.0.0.1..22, 127.0.1.x and ::1."""
    v6 = has_ipv6_loopback()
    pair = both(ACL_FILES, ACL_SPECS, v6=v6)
    compared = answered = 0
    for source in ACL_SOURCES:
        if source == "::1" and not v6:
            continue
        for name, rdtype in ACL_QUESTIONS[:ACL_SILENT_SOURCES.get(source)]:
            theirs, ours = pair.ask(name, rdtype, source)
            assert ours == theirs, (source, name, rdtype)
            compared += 1
            answered += theirs != "silence" and bool(theirs[1])
    assert compared >= 23 * len(ACL_QUESTIONS)
    assert 0.2 * compared < answered < 0.8 * compared  # both kinds of answer occurred


def test_default_lines_and_ttls_same_as_rbldnsd(both):
    """A default line with only an A value (no TXT after it), and $TTL placed
    between generic lines and in combined sections: answers and TTLs."""
    files = {"s": [":127.0.0.3:old $", "1.2.3.1", ":4", "1.2.3.2", "1.2.3.3 :5"],
             "d": [":127.0.0.3:old $", "one.ex", ":127.0.0.4", "two.ex", "three.ex :5"],
             "v": [":127.0.0.3:old $", "2001:db8:1::/48", ":4", "2001:db8:2::/48"],
             "g": ["x A 127.0.0.1", "$TTL 60", "y A 127.0.0.2", "z 0 TXT zero", "$TTL 0",
                   "v A 127.0.0.5"],
             "c": ["$TTL 500", "$DATASET generic g", "x A 127.0.0.1", "$TTL 60",
                   "y A 127.0.0.2", "$DATASET ip4set f", "$TTL 0", "127.0.0.2",
                   "$DATASET ip4set a", "127.0.0.2"]}
    specs = ["s.test:ip4set:{}s", "t.test:ip4trie:{}s", "d.test:dnset:{}d",
             "v.test:ip6trie:{}v", "g.test:generic:{}g", "c.test:combined:{}c"]
    pair = both(files, specs)
    questions = [f"{n}.3.2.1.{z}" for n in (1, 2, 3) for z in ("s.test", "t.test")]
    questions += [f"{n}.ex.d.test" for n in ("one", "two", "three")]
    questions += [name_under(f"2001:db8:{n}::1", "v.test") for n in (1, 2)]
    questions += [f"{n}.g.test" for n in "xyzv"]
    questions += ["x.g.c.test", "y.g.c.test", "2.0.0.127.f.c.test", "2.0.0.127.a.c.test"]
    theirs, ours = pair.rbldnsd["127.0.0.1"], pair.ours["127.0.0.1"]
    for name in questions:
        for rdtype in ("A", "TXT"):
            answers = [sorted((rrset.ttl, rd.to_text()) for rrset in c.query(name, rdtype).answer
                              for rd in rrset) for c in (theirs, ours)]
            assert answers[1] == answers[0], (name, rdtype)


def _bundled_questions(rng: random.Random) -> list[str]:
    """Names under the bundled zones: around every entry of their files, RFC
    5782 test points, IPv4-mapped and 6to4 forms, and random ones."""
    names: list[str] = []
    v4 = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"):
        block = ipaddress.IPv4Network(net)
        v4 += [str(block.network_address + rng.randrange(256)) for _ in range(25)]
    v4 += ["198.51.100.7", "203.0.113.10", "203.0.113.20", "203.0.113.21", "192.0.2.127",
           "192.0.2.128"]
    # Unlisted, and four IPv6 nibbles too, with nothing listed under them.
    v4 += ["8.8.8.8", "9.9.9.9", "1.1.1.1", "4.4.8.8"]
    names += [name_under(a, "bl.example.org") for a in v4]
    v6 = ["::ffff:7f00:1", "::ffff:7f00:2", "2001:db8:bad::1", "2001:db8:bad:1::5",
          "2001:db8:f00:1::9", "2001:db8:f00:2::9", "::7f00:2"]
    v6 += [str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8:bad::"))
                                     + rng.getrandbits(80))) for _ in range(40)]
    v6 += [f"::ffff:{a}" for a in v4[3::3]]  # mapped: the IPv4 list answers
    v6 += [str(ipaddress.IPv6Address((0x2002 << 112) | int(ipaddress.IPv4Address(a)) << 80
                                     | rng.getrandbits(80))) for a in v4[4::4]]  # 6to4
    names += [name_under(a, "bl.example.org") for a in v6]
    domains = ["test", "invalid", "malware.example.net", "x.malware.example.net",
               "a.b.malware.example.net", "z.clean.malware.example.net",
               "a.phish.example.org", "b.a.phish.example.org", "other.test"]
    domains += [f"d{rng.randrange(10**6)}.example.{rng.choice(['com', 'net', 'org'])}"
                for _ in range(30)]
    names += [f"{d}.dbl.example.org" for d in domains]
    return names


def test_bundled_zones_same_answers_as_rbldnsd(both):
    files = {name: (ROOT / "zones" / name).read_text().splitlines()
             for name in ("bl.zone", "bl6.zone", "dbl.zone")}
    pair = both(files, ["bl.example.org:ip4set:{}bl.zone", "bl.example.org:ip6trie:{}bl6.zone",
                        "dbl.example.org:dnset:{}dbl.zone"])
    names = _bundled_questions(random.Random(5782))
    assert len(names) >= 200
    listed = 0
    for name in names:
        for rdtype in ("A", "TXT"):
            theirs, ours = pair.ask(name, rdtype)
            assert ours == theirs, (name, rdtype)
            listed += rdtype == "A" and theirs[0] == "NOERROR"
    assert 0.2 * len(names) < listed < 0.9 * len(names)


#: (why, data files, zone specs, question, rbldnsd's answer, ours)
NAMED = [
    ("rfc8020", {"z": ["127.0.0.2"]}, ["z.test:ip4set:{}z"], ("0.127.z.test", "A"),
     ("NXDOMAIN", []), ("NOERROR", [])),
    ("rfc8020", {"z": ["2001:db8::/32"]}, ["z.test:ip6trie:{}z"], ("8.b.d.0.1.0.0.2.z.test", "A"),
     ("NXDOMAIN", []), ("NOERROR", [])),
    ("rfc8020", {"z": ["*.wild.test", "a.b.c.test", ".x.test", "!no.x.test"]},
     ["z.test:dnset:{}z"], ("wild.test.z.test", "A"), ("NXDOMAIN", []), ("NOERROR", [])),
    ("rfc8020", {"z": ["a.b.c.test"]}, ["z.test:dnset:{}z"], ("b.c.test.z.test", "A"),
     ("NXDOMAIN", []), ("NOERROR", [])),
    ("rfc8020", {"z": [".x.test", "!no.x.test"]}, ["z.test:dnset:{}z"], ("no.x.test.z.test", "A"),
     ("NXDOMAIN", []), ("NOERROR", [])),
    ("rfc8020", {"z": ["2001:db8:1::/48"]}, ["z.test:ip6trie:{}z"],
     ("8.b.d.0.1.0.0.2.z.test", "A"), ("NXDOMAIN", []), ("NOERROR", [])),
    ("rfc8020", {"z": ["a.b.c A 127.0.0.5"]}, ["z.test:generic:{}z"], ("b.c.z.test", "A"),
     ("NXDOMAIN", []), ("NOERROR", [])),
    ("default-soa", {"z": ["127.0.0.2"]}, ["z.test:ip4set:{}z"], ("z.test", "SOA"),
     ("REFUSED", []), "NOERROR"),
    ("default-soa", {"z": ["127.0.0.2"]}, ["z.test:ip4set:{}z"], ("z.test", "ANY"),
     ("REFUSED", []), "NOERROR"),
    ("duplicate-prefix", {"z": ["10.0.0.0/8 :2:first", "10.0.0.0/8 :3:second"]},
     ["z.test:ip4trie:{}z"], ("1.0.0.10.z.test", "A"), ("NOERROR", ["127.0.0.2"]),
     ("NOERROR", ["127.0.0.3"])),
    ("duplicate-prefix", {"z": ["2001:db8::/32", "!2001:db8::/32"]}, ["z.test:ip6trie:{}z"],
     (name_under("2001:db8::1", "z.test"), "A"), ("NOERROR", ["127.0.0.2"]), ("NXDOMAIN", [])),
    ("ip4set-granularity", {"z": ["10.0.0.0/10 :2:", "10.0.0.0/12 :3:"]}, ["z.test:ip4set:{}z"],
     ("1.0.0.10.z.test", "A"), ("NOERROR", ["127.0.0.2", "127.0.0.3"]),
     ("NOERROR", ["127.0.0.3"])),
    ("ip6-overlong", {"z": ["2001:db8:7:0:0:0:0:1:2 :127.0.2.7:f7 $"]}, ["z.test:ip6trie:{}z"],
     (name_under("2001:db8:7::1", "z.test"), "A"), ("NOERROR", ["127.0.0.2"]), ("NXDOMAIN", [])),
    ("ip6-overlong", {"z": ["2001:db8:10:::1 :127.0.2.14:f14 $"]}, ["z.test:ip6trie:{}z"],
     (name_under("2001:db8:10::", "z.test"), "A"), ("NOERROR", ["127.0.0.1"]), ("NXDOMAIN", [])),
]


@pytest.mark.parametrize("why, files, specs, question, theirs, ours", NAMED,
                         ids=[f"{n[0]}-{i}" for i, n in enumerate(NAMED)])
def test_named_differences(both, why, files, specs, question, theirs, ours):
    assert why in DIFFERENCES
    got_theirs, got_ours = both(files, specs).ask(*question)
    assert got_theirs == theirs, DIFFERENCES[why]
    assert (got_ours[0] if isinstance(ours, str) else got_ours) == ours, DIFFERENCES[why]


def test_every_difference_is_shown():
    assert {why for why, *_ in NAMED} == set(DIFFERENCES)
