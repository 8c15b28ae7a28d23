"""Interop: Unbound, a validating recursive resolver, asks us through a stub-zone.

Mail servers reach a DNSBL through a caching resolver, usually Unbound with
QNAME minimisation on by default; that is the path tested here. Skipped
where the unbound binary is missing (`.ci/run` installs it). Unbound runs in
the foreground with its own configuration and port, and is stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnsbl.config import Listen, ServerConfig, parse_zone_spec
from tests.helpers import (
    ServerThread,
    free_port,
    retry,
    scaled,
    soa_of,
    stop_all,
    unbound_server,
)

UNBOUND = shutil.which("unbound") or (
    "/usr/sbin/unbound" if os.path.exists("/usr/sbin/unbound") else None)

pytestmark = [
    pytest.mark.skipif(UNBOUND is None, reason="unbound not installed (apt-get install unbound)"),
    pytest.mark.slow,  # a resolver of its own per test
]

NEGATIVE_TTL = 300  # min(SOA TTL 3600, SOA minimum 300), RFC 2308
DATA = [
    f"$SOA 3600 ns1.example.org hostmaster.example.org 42 1h 15m 1w {NEGATIVE_TTL}",
    "$NS 0 ns1.example.org",
    "$TTL 600",
    ":127.0.0.2:Listed: $",
    "127.0.0.2",
    "10.0.0.0/8 :3:Big block",
]


def _config(tmp_path: Path, port: int, upstream: int) -> Path:
    conf = tmp_path / "unbound.conf"
    conf.write_text(unbound_server(port, tmp_path) + f"""\
    qname-minimisation: yes
    use-caps-for-id: yes
    module-config: "iterator"
    # bl.test is under .test, which Unbound answers itself by default (RFC 6761).
    local-zone: "test." nodefault

remote-control:
    control-enable: no

stub-zone:
    name: "bl.test"
    stub-addr: 127.0.0.1@{upstream}
""")
    return conf


class Unbound:
    def __init__(self, tmp_path: Path, upstream: int) -> None:
        self.tmp_path = tmp_path
        self.upstream = upstream
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = tmp_path / "unbound.log"

    def start(self) -> None:
        assert UNBOUND is not None
        for _attempt in range(3):  # the free port may be taken before Unbound binds it
            self.port = free_port()
            conf = _config(self.tmp_path, self.port, self.upstream)
            checkconf = shutil.which("unbound-checkconf")
            if checkconf:
                check = subprocess.run([checkconf, str(conf)], capture_output=True, text=True,
                                       timeout=30)
                assert check.returncode == 0, check.stdout + check.stderr
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)], stdout=log,
                                             stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError("unbound did not start:\n" + self.log.read_text())

    def _wait_ready(self) -> bool:
        q = dns.message.make_query("bl.test", "SOA")
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                # A short wait per try: a question sent before it binds is lost.
                dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.2)
                return True
            except (dns.exception.DNSException, OSError):
                time.sleep(0.05)
        return False

    def query(self, name: str, rdtype: str = "A") -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        return retry(lambda: dns.query.udp(q, "127.0.0.1", port=self.port, timeout=scaled(5)),
                     (dns.exception.Timeout,))

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            os.kill(proc.pid, 15)  # SIGTERM, by PID: only the Unbound we started
            try:
                proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait(scaled(10))


@pytest.fixture
def resolver(zone_file, tmp_path):
    """(Unbound, our ServerThread): Unbound with a stub-zone bl.test pointing at us."""
    thread = ServerThread(ServerConfig(listen=(Listen("127.0.0.1", 0),), zones=(
        parse_zone_spec(f"bl.test:ip4set:{zone_file(DATA)}"),)))
    ours = thread.start()
    unbound = Unbound(tmp_path, ours.port)
    try:
        unbound.start()
        yield unbound, thread
    finally:
        stop_all([unbound.stop, thread.stop])


def test_listed_address_through_unbound(resolver):
    unbound, _ = resolver
    r = unbound.query("2.0.0.127.bl.test", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.2"]
    assert 0 < r.answer[0].ttl <= 600
    r = unbound.query("2.0.0.127.bl.test", "TXT")
    assert [b"".join(rd.strings) for rrset in r.answer for rd in rrset] == [
        b"Listed: 127.0.0.2"]
    r = unbound.query("9.8.7.10.bl.test", "A")
    assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.3"]
    r = unbound.query("9.8.7.10.bl.test", "TXT")
    assert [b"".join(rd.strings) for rrset in r.answer for rd in rrset] == [b"Big block"]


def test_unlisted_address_is_nxdomain_through_unbound(resolver):
    unbound, _ = resolver
    r = unbound.query("1.0.0.127.bl.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert not r.answer
    soa = soa_of(r)
    assert str(soa.name) == "bl.test."
    assert 0 < soa.ttl <= NEGATIVE_TTL


@pytest.mark.parametrize("name", ["127.bl.test", "0.127.bl.test", "0.0.127.bl.test",
                                  "10.bl.test"])
def test_intermediate_names_are_nodata_through_unbound(resolver, name):
    # With QNAME minimisation Unbound walks these names itself on the way down.
    unbound, _ = resolver
    r = unbound.query(name, "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    soa_of(r)


def test_listed_below_a_walked_intermediate_name(resolver):
    # Walk an intermediate name first, then ask below it: the NODATA must not hide
    # the subtree (RFC 8020 is what makes NXDOMAIN there wrong).
    unbound, _ = resolver
    assert unbound.query("0.0.127.bl.test", "A").rcode() == dns.rcode.NOERROR
    r = unbound.query("2.0.0.127.bl.test", "A")
    assert [rd.address for rrset in r.answer for rd in rrset] == ["127.0.0.2"]


def test_negative_answer_is_cached_for_the_soa_minimum(resolver):
    unbound, thread = resolver
    first = unbound.query("3.0.0.127.bl.test", "A")
    assert first.rcode() == dns.rcode.NXDOMAIN
    first_ttl = soa_of(first).ttl
    assert NEGATIVE_TTL - 5 <= first_ttl <= NEGATIVE_TTL
    time.sleep(2.1)
    second = unbound.query("3.0.0.127.bl.test", "A")
    assert second.rcode() == dns.rcode.NXDOMAIN
    # From the cache: the remaining TTL counts down (a fresh answer would be 300 again).
    assert soa_of(second).ttl <= first_ttl - 2
    # ...and it does not need us: with our server gone the cached NXDOMAIN still comes.
    thread.stop()
    third = unbound.query("3.0.0.127.bl.test", "A")
    assert third.rcode() == dns.rcode.NXDOMAIN
    assert 0 < soa_of(third).ttl <= first_ttl - 2
