"""The same data files give the same answers from rbldnsd and from dnsbl.

Skipped where the rbldnsd binary is missing (`.ci/run` installs it). Data is
generated from a fixed seed and avoids the cases where we differ on purpose
(README, "How it differs from rbldnsd"): exact duplicate prefixes, odd-sized
overlapping blocks in ip4set, and names with listed names under them (an
intermediate name, a *.x base, an excluded name with listed subdomains),
which rbldnsd calls NXDOMAIN and RFC 8020 says exist (NODATA here).
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

import dns.exception
import dns.rcode
import pytest

from dnsbl.explain import name_under
from tests.conftest import Client, free_port

RBLDNSD = shutil.which("rbldnsd") or (
    "/usr/sbin/rbldnsd" if os.path.exists("/usr/sbin/rbldnsd") else None)

pytestmark = pytest.mark.skipif(
    RBLDNSD is None, reason="rbldnsd not installed (apt-get install rbldnsd)")


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


def _rbldnsd(root: str, specs: list[str]):
    """Run rbldnsd on zone specs whose file names are relative to ``root``
    (``{}`` stands where the directory goes); yield a Client for it."""
    port = free_port()
    cmd = [RBLDNSD, "-n", "-b", f"127.0.0.1/{port}", "-t", "2100"]
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
    client = Client("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.query(specs[0].split(":")[0] or "x.test", "SOA")
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("rbldnsd did not start: " + (proc.communicate()[0] or ""))
            time.sleep(0.1)
    yield client
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def ours(data):
    from dnsbl.config import Listen, ServerConfig, parse_zone_spec
    from tests.conftest import ServerThread

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


ACL_DATA = ["$SOA 0 ns1.acl.test admin.acl.test 1 2h 2h 1w 1h", ":2:Listed $", "127.0.0.2"]
ACL_GENERIC = ["www A 127.0.0.8", 'info TXT "info record"']
ACL_LINES = ["127.0.0.2 :ignore", "127.0.0.3 :refuse", "127.0.0.4 :empty", "127.0.0.5 :pass",
             "127.0.0.6 :127.255.255.254:Open resolver $", "127.0.0.7", "127.0.1.0/24 :refuse",
             "127.0.1.6 :pass", "127.0.1.7 :empty"]
ACL_SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6",
               "127.0.0.7", "127.0.1.1", "127.0.1.6", "127.0.1.7"]
ACL_QUESTIONS = [("2.0.0.127", "A"), ("2.0.0.127", "TXT"), ("3.0.0.127", "A"),
                 ("3.0.0.127", "TXT"), ("www", "A"), ("info", "TXT"), ("nx", "A")]


def _seen(client: Client, source: str, name: str, rdtype: str):
    try:
        r = client.query(name, rdtype, source=source, timeout=0.4)
    except dns.exception.Timeout:
        return "silence"
    return dns.rcode.to_text(r.rcode()), sorted(rd.to_text() for rrset in r.answer for rd in rrset)


def test_same_acl_answers_as_rbldnsd(tmp_path):
    from dnsbl.config import Listen, ServerConfig, with_overrides
    from tests.conftest import ServerThread

    root = tempfile.mkdtemp(prefix="dnsbl-acl-")
    os.chmod(root, 0o755)
    try:
        for name, lines in (("data", ACL_DATA), ("gen", ACL_GENERIC), ("acl", ACL_LINES)):
            path = os.path.join(root, name)
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            os.chmod(path, 0o644)
        specs = ["acl.test:ip4set:{}data", "acl.test:generic:{}gen", "acl.test:acl:{}acl"]
        theirs = _rbldnsd(root, specs)
        rbl = next(theirs)
        thread = ServerThread(with_overrides(ServerConfig(listen=(Listen("127.0.0.1", 0),)),
                                             zones=[s.format(root + "/") for s in specs]))
        ours = thread.start()
        try:
            compared = 0
            for source in ACL_SOURCES:
                for label, rdtype in ACL_QUESTIONS:
                    name = f"{label}.acl.test"
                    expected = _seen(rbl, source, name, rdtype)
                    assert _seen(ours, source, name, rdtype) == expected, (source, name, rdtype)
                    compared += 1
            assert compared == len(ACL_SOURCES) * len(ACL_QUESTIONS)
        finally:
            thread.stop()
            next(theirs, None)
    finally:
        shutil.rmtree(root, ignore_errors=True)
