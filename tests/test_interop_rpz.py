"""Interop by zone transfer: resolvers taking the RPZ form of a dnsbl zone
(BIND 9 ``response-policy``, Unbound ``rpz:``), and Knot DNS as a secondary
of the DNSBL zone itself.

Each third-party server is started here on a free loopback port with its
own configuration in tmp_path, takes the zone from dnsbl by AXFR, and is
ended by PID whatever the outcome. A resolver's upstream for the names it
is asked is dnsbl too: a generic zone ``web.test`` whose A records are
listed, excluded, allowlisted or unlisted addresses, so the resolvers
reach nothing but loopback. Skipped where a server is missing (`.ci/run`
installs bind9, unbound and knot).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from dnsbl.config import Listen, load_config
from tests.helpers import (
    NAMED,
    Daemon,
    Named,
    ServerThread,
    answers_soa,
    ask,
    seen,
    stop_all,
    unbound_server,
)

UNBOUND = shutil.which("unbound") or (
    "/usr/sbin/unbound" if os.path.exists("/usr/sbin/unbound") else None)
KNOTD = shutil.which("knotd") or ("/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd")
                                  else None)

pytestmark = pytest.mark.slow  # a server of its own per test, and a transfer

ZONE = "bl.example.org"
ORIGIN = "rpz.bl.example.org"
DATA = """\
$SOA 3600 ns1.example.org hostmaster.example.org 7 1h 15m 1w 300
$NS 0 ns1.example.org
$TTL 600
:127.0.0.2:Listed: $
192.0.2.66
192.0.2.67
198.51.100.0/24 :3:Botnet controllers
!198.51.100.9
10.0.0.0/8 :4:Big block
!10.1.0.0/16
10.1.2.0/24 :5:Back in
!10.1.2.128/25
172.16.0.0/12 :6:Off a boundary
!172.16.5.64/26
""" + "".join(f"203.0.{i // 256}.{i % 256} :4:Host $\n" for i in range(1, 1500))
ALLOW = "192.0.2.67\n"
#: What the resolvers are asked, and the A record dnsbl's web.test gives.
WEB = {
    "listed": "192.0.2.66",  # the default action: NXDOMAIN
    "botnet": "198.51.100.5",  # category 127.0.0.3: local data, a walled garden's address
    "excluded": "198.51.100.9",  # !198.51.100.9 under the /24: rpz-passthru
    "allowed": "192.0.2.67",  # listed, and in the allowlist: rpz-passthru
    "clean": "192.0.2.1",  # not listed
}
WALLED = "192.0.2.80"
PROBES = 40  # names probe0..: listed, asked until the resolver has the zone


@pytest.fixture
def primary(tmp_path):
    """dnsbl serving bl.example.org (and its RPZ form) and web.test."""
    (tmp_path / "bl.zone").write_text(DATA)
    (tmp_path / "allow.txt").write_text(ALLOW)
    web = [f"{name} A {address}" for name, address in WEB.items()]
    web += [f"probe{i} A {WEB['listed']}" for i in range(PROBES)]
    (tmp_path / "web.zone").write_text("\n".join(web) + "\n")
    path = tmp_path / "dnsbl.toml"
    path.write_text(f"""\
[[zone]]
name = "{ZONE}"
type = "ip4set"
files = ["bl.zone"]
transfer = ["127.0.0.0/8"]
rpz = {{ origin = "{ORIGIN}" }}
[[zone]]
name = "web.test"
type = "generic"
files = ["web.zone"]
[rpz]
default = "nxdomain"
allowlist = ["allow.txt"]
[rpz.actions]
"127.0.0.3" = "a:{WALLED}"
""")
    thread = ServerThread(replace(load_config(str(path)), listen=(Listen("127.0.0.1", 0),)))
    thread.start()
    try:
        yield thread
    finally:
        stop_all([thread.stop])


def dnsbl_port(thread: ServerThread) -> int:
    assert thread.server is not None
    return thread.server.bound[0].port


def answers(port: int, name: str) -> tuple[str, list[str]]:
    """(rcode, A addresses) a resolver gives for ``name`` (recursion desired)."""
    r = ask(port, name, "A")
    return dns.rcode.to_text(r.rcode()), seen(r, "A")[1]


def assert_policy_applied(port: int) -> None:
    assert answers(port, "listed.web.test") == ("NXDOMAIN", [])
    assert answers(port, "botnet.web.test") == ("NOERROR", [WALLED])
    for name in ("excluded", "allowed", "clean"):
        assert answers(port, f"{name}.web.test") == ("NOERROR", [WEB[name]]), name


# -- BIND 9: response-policy ----------------------------------------------------------

class PolicyResolver(Named):
    """named as a resolver: the RPZ form as a secondary zone in its
    response-policy, every other name forwarded to dnsbl."""

    def __init__(self, tmp_path: Path, upstream: int) -> None:
        super().__init__(tmp_path, {ORIGIN: tmp_path / "rpz.db"})
        self.upstream = upstream
        # Root hints at loopback: named primes the root from them, and
        # must not reach for the real root servers.
        (self.dir / "root.hints").write_text(". 3600000 NS a.root.test.\n"
                                             "a.root.test. 3600000 A 127.0.0.1\n")

    def options(self) -> str:
        return f"""\
    recursion yes;
    allow-recursion {{ 127.0.0.0/8; }};
    forwarders {{ 127.0.0.1 port {self.upstream}; }};
    forward only;
    dnssec-validation no;
    notify no;
    response-policy {{ zone "{ORIGIN}"; }} qname-wait-recurse no;"""

    def zone_clause(self, name: str, path: Path) -> str:
        return (f'zone "." {{ type hint; file "{self.dir}/root.hints"; }};\n'
                f'zone "{name}" {{ type secondary; file "{path}"; '
                f"primaries {{ 127.0.0.1 port {self.upstream}; }}; }};\n")


@pytest.mark.skipif(NAMED is None, reason="named not installed (apt-get install bind9)")
def test_bind_response_policy_takes_the_rpz_form_and_blocks_listed_answers(tmp_path,
                                                                          primary):
    bind = PolicyResolver(tmp_path, dnsbl_port(primary))
    try:
        bind.start()  # ready: it answers the RPZ zone's SOA, so it has transferred it
        assert_policy_applied(bind.port)
        assert primary.server is not None and primary.server.transfers is not None
        assert primary.server.transfers.counts.get((ORIGIN, "axfr", "ok")) == 1
    finally:
        stop_all([bind.stop])


# -- Unbound: rpz: with primary: -------------------------------------------------------

class Unbound(Daemon):
    """unbound as a resolver with the RPZ form taken by transfer, web.test
    asked of dnsbl."""

    name = "unbound"

    def __init__(self, tmp_path: Path, upstream: int, transferred: Callable[[], bool]) -> None:
        super().__init__(tmp_path)
        self.upstream = upstream
        self.transferred = transferred
        self.probes = iter(range(PROBES))

    def command(self) -> list[str]:
        assert UNBOUND is not None
        conf = self.dir / "unbound.conf"
        conf.write_text(unbound_server(self.port, self.dir) + f"""\
    module-config: "respip iterator"
    local-zone: "test." nodefault

remote-control:
    control-enable: no

stub-zone:
    name: "web.test"
    stub-addr: 127.0.0.1@{self.upstream}

rpz:
    name: "{ORIGIN}"
    primary: 127.0.0.1@{self.upstream}
    zonefile: "{self.dir}/rpz.db"
""")
        return [UNBOUND, "-d", "-c", str(conf)]

    def ready(self) -> bool:
        """Once dnsbl has sent the zone, until a listed name is blocked (the
        zone is in force). Each probe is a name not asked before, so no
        answer from before the zone is cached."""
        if not self.transferred():
            return False
        probe = next(self.probes, None)
        if probe is None:
            raise AssertionError("unbound took the zone but does not block:\n"
                                 + self.log.read_text())
        r = dns.query.udp(dns.message.make_query(f"probe{probe}.web.test", "A"),
                          "127.0.0.1", port=self.port, timeout=0.5)
        return r.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.skipif(UNBOUND is None, reason="unbound not installed (apt-get install unbound)")
def test_unbound_rpz_primary_takes_the_rpz_form_and_blocks_on_response_ip(tmp_path, primary):
    assert primary.server is not None and primary.server.transfers is not None
    counts = primary.server.transfers.counts
    unbound = Unbound(tmp_path, dnsbl_port(primary),
                      lambda: counts.get((ORIGIN, "axfr", "ok"), 0) >= 1)
    try:
        unbound.start()
        assert_policy_applied(unbound.port)
    finally:
        stop_all([unbound.stop])


# -- Knot DNS: a secondary of the DNSBL zone -------------------------------------------

class Knot(Daemon):
    """knotd with bl.example.org as a secondary of dnsbl."""

    name = "knot"

    def __init__(self, tmp_path: Path, upstream: int) -> None:
        super().__init__(tmp_path)
        self.upstream = upstream

    def command(self) -> list[str]:
        assert KNOTD is not None
        conf = self.dir / "knot.conf"
        conf.write_text(f"""\
server:
    rundir: "{self.dir}"
    listen: 127.0.0.1@{self.port}
log:
  - target: stderr
    any: info
database:
    storage: "{self.dir}"
remote:
  - id: dnsbl
    address: 127.0.0.1@{self.upstream}
template:
  - id: default
    storage: "{self.dir}"
zone:
  - domain: {ZONE}
    master: dnsbl
""")
        return [KNOTD, "-c", str(conf)]

    def ready(self) -> bool:
        return answers_soa(self.port, ZONE)


@pytest.mark.skipif(KNOTD is None, reason="knotd not installed (apt-get install knot)")
def test_knot_secondary_answers_as_dnsbl(tmp_path, primary):
    ours = dnsbl_port(primary)
    knot = Knot(tmp_path, ours)
    try:
        knot.start()
        rng = random.Random(17)
        networks = [ipaddress.ip_network(n) for n in (
            "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "172.16.0.0/12", "172.16.5.0/24",
            "198.51.100.0/24", "203.0.0.0/21", "192.0.2.64/29", "11.0.0.0/8")]
        listed = 0
        for i in range(600):
            net = networks[i % len(networks)]
            address = net[rng.randrange(net.num_addresses)]
            name = address.reverse_pointer.removesuffix(".in-addr.arpa") + f".{ZONE}"
            for rdtype in ("A", "TXT"):
                expect = seen(ask(ours, name, rdtype), rdtype)
                got = ask(knot.port, name, rdtype)
                assert seen(got, rdtype) == expect, (name, rdtype)
            if expect[0] == "not listed":
                assert got.rcode() == dns.rcode.NXDOMAIN or not got.answer, name
            listed += expect[0] == "listed"
        assert 150 < listed < 500
        assert primary.server is not None and primary.server.transfers is not None
        assert primary.server.transfers.counts.get((ZONE, "axfr", "ok")) == 1
    finally:
        stop_all([knot.stop])
