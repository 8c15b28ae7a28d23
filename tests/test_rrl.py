"""Response rate limiting: the limiter's keys, and a real server flooded over UDP."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from dataclasses import replace

import dns.edns
import dns.flags
import dns.message
import pytest

from dnsbl.config import Listen, RRLConfig, ServerConfig, load_config, parse_zone_spec
from dnsbl.rrl import ALLOW, DROP, RateLimiter
from tests.helpers import ServerThread, samples, scaled, stop_all, value

NAME = "2.0.0.127.bl.test"


def plain() -> dns.message.Message:
    return dns.message.make_query(NAME, "A")


def send(host: str, port: int, source: str, count: int,
         make: Callable[[], dns.message.Message] = plain) -> socket.socket:
    """A socket bound to ``source`` that sent ``count`` queries as fast as it could."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # no reply lost here
    s.bind((source, 0))
    for _ in range(count):
        s.sendto(make().to_wire(), (host, port))
    return s


def collect(s: socket.socket, count: int) -> list[dns.message.Message]:
    """The replies that came to ``s`` (at most ``count``), then close it."""
    replies = []
    s.settimeout(scaled(0.5))  # until replies stop coming for a while
    with s:
        try:
            for _ in range(count):
                replies.append(dns.message.from_wire(s.recv(4096)))
        except TimeoutError:
            pass
    return replies


def flood(host: str, port: int, source: str, count: int,
          make: Callable[[], dns.message.Message] = plain) -> list[dns.message.Message]:
    """Send ``count`` queries from ``source`` as fast as possible; collect replies."""
    return collect(send(host, port, source, count, make), count)


def full(replies: list[dns.message.Message]) -> list[dns.message.Message]:
    return [r for r in replies if r.answer]


def slipped(replies: list[dns.message.Message]) -> list[dns.message.Message]:
    return [r for r in replies if r.flags & dns.flags.TC and not r.answer]


@pytest.fixture
def rrl_server(zone_file):
    started: list[ServerThread] = []

    def _start(rrl: RRLConfig, host: str = "127.0.0.1", **settings) -> ServerThread:
        config = ServerConfig(listen=(Listen(host, 0),), rrl=rrl, zones=(
            parse_zone_spec(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}"),))
        thread = ServerThread(replace(config, **settings),
                              metrics=settings.pop("metrics", None))
        started.append(thread)
        thread.start()
        return thread

    yield _start
    stop_all([thread.stop for thread in started])


def bound(thread: ServerThread) -> tuple[str, int]:
    assert thread.server is not None
    return thread.server.bound[0].host, thread.server.bound[0].port


# --- the limiter's keys, in-process ------------------------------------------------------------

def test_ipv6_clients_share_a_bucket_per_56():
    rrl = RateLimiter(rate=2, slip=0)
    # 2001:db8:0:100:: to 2001:db8:0:1ff:: are one /56.
    assert rrl.check(("2001:db8:0:100::1", 53)) == ALLOW
    assert rrl.check(("2001:db8:0:1ff:ffff::2", 53)) == ALLOW
    assert rrl.check(("2001:db8:0:1aa::3", 53)) == DROP
    assert rrl.check(("2001:db8:0:200::1", 53)) == ALLOW  # the next /56
    assert rrl.limited == [1, 0]


def test_ipv6_prefix_length_is_configurable():
    rrl = RateLimiter(rate=1, slip=0, ipv6_prefix=64)
    assert rrl.check(("2001:db8:0:100::1", 53)) == ALLOW
    assert rrl.check(("2001:db8:0:100::2", 53)) == DROP  # same /64
    assert rrl.check(("2001:db8:0:101::1", 53)) == ALLOW  # same /56, another /64


def _sockaddr_in(host: str) -> memoryview:
    """struct sockaddr_in as recvmmsg writes it (the batched path's view)."""
    return memoryview(socket.AF_INET.to_bytes(2, sys.byteorder) + b"\x00\x35"
                      + socket.inet_aton(host) + bytes(8))


@pytest.mark.parametrize("first", ["exempt", "neighbour"])
@pytest.mark.parametrize("path", ["text", "sockaddr"])
def test_an_exempt_address_narrower_than_the_prefix_is_exempt_alone(first, path):
    """Exempting one resolver (a /32) must neither exempt its /24 nor depend
    on which of them asks first."""
    rrl = RateLimiter(rate=2, slip=0, exempt=["127.0.20.5/32"])

    def check(host: str) -> int:
        if path == "text":
            return rrl.check((host, 53))
        return rrl.check_sockaddr(_sockaddr_in(host), 0.0)

    order = ["127.0.20.5", "127.0.20.6"] if first == "exempt" else ["127.0.20.6", "127.0.20.5"]
    verdicts: dict[str, list[int]] = {host: [] for host in order}
    for _ in range(5):
        for host in order:
            verdicts[host].append(check(host))
    assert verdicts["127.0.20.5"] == [ALLOW] * 5
    assert verdicts["127.0.20.6"] == [ALLOW, ALLOW, DROP, DROP, DROP]
    assert rrl.check(("127.0.21.1", 53)) == ALLOW  # another /24: a bucket of its own


def test_an_exempt_network_wider_than_the_prefix_exempts_it_all():
    rrl = RateLimiter(rate=1, slip=0, exempt=["127.0.0.0/16", "2001:db8::/32"])
    for host in ("127.0.9.1", "127.0.200.7", "2001:db8:1::1"):
        assert [rrl.check((host, 53)) for _ in range(3)] == [ALLOW] * 3
    assert [rrl.check(("127.1.0.1", 53)) for _ in range(2)] == [ALLOW, DROP]


# --- a real server ----------------------------------------------------------------------------

@pytest.mark.parametrize("udp_batch", [32, 0], ids=["recvmmsg", "one-at-a-time"])
def test_ipv6_client_is_limited(rrl_server, udp_batch):
    thread = rrl_server(RRLConfig(rate=10, slip=2, exempt=("::2/128",)), host="::1",
                        udp_batch=udp_batch)
    host, port = bound(thread)
    replies = flood(host, port, "::1", 200)
    assert 5 <= len(full(replies)) <= 20  # the one-second burst, give or take the clock
    assert len(slipped(replies)) >= 80  # about every second limited response slips
    assert len(full(replies)) + len(slipped(replies)) < 200  # the rest were dropped
    assert thread.server is not None and thread.server.rrl is not None
    assert thread.server.rrl.limited[1] == len(slipped(replies))


@pytest.mark.parametrize(("prefix", "shared"), [(24, True), (32, False)])
def test_ipv4_prefix_length_decides_who_shares_a_bucket(rrl_server, prefix, shared):
    thread = rrl_server(RRLConfig(rate=10, slip=0, ipv4_prefix=prefix))
    host, port = bound(thread)
    flooder = send(host, port, "127.0.1.1", 100)
    # 127.0.1.2, right after: the flooder's own /24, but another /32.
    neighbour = send(host, port, "127.0.1.2", 8)
    assert len(full(collect(flooder, 100))) <= 20
    served = len(full(collect(neighbour, 8)))
    # Sharing the emptied bucket: a token or two refilled while the test ran, at most.
    assert served <= 2 if shared else served == 8


def test_rrl_section_of_the_config_file(tmp_path, zone_file):
    config_file = tmp_path / "dnsbl.toml"
    config_file.write_text(f"""
listen = ["127.0.0.1:0"]

[[zone]]
name = "bl.test"
type = "ip4set"
files = ["{zone_file(['127.0.0.2'])}"]

[rrl]
rate = 10
slip = 0
ipv4_prefix = 32
ipv6_prefix = 48
exempt = ["127.0.3.0/24"]
""")
    config = load_config(str(config_file))
    assert config.rrl == RRLConfig(rate=10, slip=0, ipv4_prefix=32, ipv6_prefix=48,
                                   exempt=("127.0.3.0/24",))
    thread = ServerThread(config)
    thread.start()
    try:
        host, port = bound(thread)
        flooded = flood(host, port, "127.0.1.1", 100)
        assert 5 <= len(flooded) <= 20 and not slipped(flooded)  # slip 0: the rest dropped
        assert len(full(flood(host, port, "127.0.1.2", 8))) == 8  # another /32
        assert len(full(flood(host, port, "127.0.3.1", 100))) == 100  # exempt
    finally:
        thread.stop()


def test_limited_responses_are_counted_in_metrics(rrl_server):
    thread = rrl_server(RRLConfig(rate=10, slip=3), metrics=Listen("127.0.0.1", 0))
    assert thread.server is not None and thread.server.metrics_port
    port_metrics = thread.server.metrics_port
    before = samples(port_metrics)
    assert value(before, "dnsbl_rrl_limited_total", action="dropped") == 0
    host, port = bound(thread)
    replies = flood(host, port, "127.0.1.1", 150)
    after = samples(port_metrics)
    tc = len(slipped(replies))
    assert tc >= 30
    assert value(after, "dnsbl_rrl_limited_total", action="slipped") == tc
    assert value(after, "dnsbl_rrl_limited_total", action="dropped") == 150 - len(replies)


def nsid_query() -> dns.message.Message:
    return dns.message.make_query(NAME, "A", use_edns=0,
                                  options=[dns.edns.GenericOption(dns.edns.NSID, b"")])


def edns_query() -> dns.message.Message:
    return dns.message.make_query(NAME, "A", use_edns=0)


def test_slipped_replies_keep_their_opt(rrl_server):
    """RFC 6891 6.1.1: a reply to a query with an OPT carries one, the TC=1
    reply of a rate-limited client too; with the NSID it asked for (RFC 5001)."""
    thread = rrl_server(RRLConfig(rate=5, slip=1), nsid="node-7")
    host, port = bound(thread)
    for source, make, options in (("127.0.1.1", nsid_query, [(dns.edns.NSID, b"node-7")]),
                                  ("127.0.2.1", edns_query, []),
                                  ("127.0.3.1", plain, None)):
        replies = flood(host, port, source, 60, make)
        assert len(slipped(replies)) >= 40, source  # slip 1: every limited one
        for r in replies:
            if options is None:
                assert r.edns == -1  # no OPT asked, none back
            else:
                assert r.edns == 0, (source, r)
                assert [(o.otype, o.to_wire()) for o in r.options] == options
