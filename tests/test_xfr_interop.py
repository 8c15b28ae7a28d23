"""Interop: BIND 9 as a secondary of a dnsbl zone, by zone transfer.

BIND runs with its own configuration on a free loopback port, takes the
zone from dnsbl by AXFR, and must answer as dnsbl does. Skipped where named
is missing (`.ci/run` installs bind9).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from pathlib import Path

import dns.rcode
import pytest

from dnsbl.config import Listen, load_config
from tests.conftest import ServerThread, stop_all
from tests.test_export import NAMED, Named, ask, seen
from tests.test_xfr import DATA as XFR_DATA
from tests.test_xfr import config_file

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    NAMED is None, reason="named not installed (apt-get install bind9)")]

DATA = XFR_DATA + """\
10.1.2.0/24 :5:Back in
!10.1.2.128/25
172.16.0.0/12 :6:Off a boundary
!172.16.5.64/26
""" + "".join(f"198.51.{i // 256}.{i % 256} :4:Host $\n" for i in range(2000))


class Secondary(Named):
    """named with one secondary zone taken from ``primary``."""

    def __init__(self, tmp_path: Path, zone: str, primary: int) -> None:
        super().__init__(tmp_path, {zone: tmp_path / "secondary.db"})
        self.primary = primary

    def zone_clause(self, name: str, path: Path) -> str:
        # Not over TSIG yet: BIND signs its SOA query too, and dnsbl's query
        # path does not sign answers (dnsbl.xfr signs transfers only).
        return (f'zone "{name}" {{ type secondary; file "{path}"; '
                f"primaries {{ 127.0.0.1 port {self.primary}; }}; }};\n")


def test_bind_secondary_answers_as_dnsbl(tmp_path):
    path = config_file(tmp_path, data=DATA)
    thread = ServerThread(replace(load_config(str(path)), listen=(Listen("127.0.0.1", 0),)))
    ours = thread.start()
    bind = Secondary(tmp_path, "bl.example.org", ours.port)
    try:
        bind.start()
        rng = random.Random(1000)
        networks = [ipaddress.ip_network(n) for n in (
            "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "172.16.0.0/12", "172.16.5.0/24",
            "198.51.0.0/21", "127.0.0.0/30", "11.0.0.0/8")]
        names = []
        while len(names) < 1000:
            net = networks[len(names) % len(networks)]
            address = net[rng.randrange(net.num_addresses)]
            names.append(address.reverse_pointer.removesuffix(".in-addr.arpa")
                         + ".bl.example.org")
        listed = 0
        for name in names:
            expect = seen(ask(ours.port, name, "A"), "A")
            got = ask(bind.port, name, "A")
            assert seen(got, "A") == expect, name
            if expect[0] == "not listed":
                assert got.rcode() == dns.rcode.NXDOMAIN, name
            listed += expect[0] == "listed"
        assert 200 < listed < 800
        assert thread.server is not None and thread.server.transfers is not None
        assert thread.server.transfers.counts == {("bl.example.org", "axfr", "ok"): 1}
    finally:
        stop_all([bind.stop, thread.stop])
