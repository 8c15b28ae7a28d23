"""The fast path answers exactly as the general path does.

Two zones serve the same ip4trie file: ``fast.test`` holds only that data, so
its reversed-address questions take answer.py's fast path; ``slow.test`` also
holds a generic record, which sends every question through the general path.
The names have the same length, so for any question the two replies must be
the same bytes but for the zone's name. A spy on the fast path checks that
``fast.test`` questions do take it (else the comparison proves nothing).
"""

from __future__ import annotations

import os
import re
import socket
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbl import answer as answer_module
from dnsbl.answer import DEFAULT_EDNS, FAST_PATHS
from tests.helpers import ServerThread, scaled

NOT_BUILT = "the compiled fast path was not built (no C compiler at install time)"
PATHS = ["python", pytest.param("compiled", marks=pytest.mark.skipif(
    "compiled" not in FAST_PATHS, reason=NOT_BUILT))]

ZONE = [
    ":127.0.0.2:Listed, see https://bl.example.org/?ip=$",
    "192.0.2.1",
    "192.0.2.2 :3:Spam from $",
    "192.0.2.3 :4:",  # no TXT at all: TXT is NODATA
    "192.0.2.4 :5:" + "x" * 250 + "$",  # a long TXT: ANY without EDNS is 512+ bytes
    "198.51.100.0/24 :6:Range",
    "!198.51.100.128/26",
    "!198.51.100.10",  # a single excluded: value number 0 in the index of singles
    "203.0.113.7",
]
ADDRESSES = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5",
             "198.51.100.9", "198.51.100.10", "198.51.100.130", "203.0.113.7", "203.0.113.8",
             "10.1.2.3",
             # also nibble names: 6to4's 2002:: and IPv4-mapped ::ffff: start so
             "2.0.0.2", "0.0.0.0"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from dnsbl.config import Listen, ServerConfig, with_overrides

    work = tmp_path_factory.mktemp("fast")
    data = work / "bl.txt"
    data.write_text("\n".join(ZONE) + "\n")
    generic = work / "generic.txt"
    generic.write_text("www A 127.0.0.9\n")
    mtime = data.stat().st_mtime
    os.utime(generic, (mtime, mtime))  # the same SOA serial (newest mtime) for both zones
    config = with_overrides(ServerConfig(listen=(Listen("127.0.0.1", 0),)), zones=[
        f"fast.test:ip4trie:{data}", f"slow.test:ip4trie:{data}",
        f"slow.test:generic:{generic}"])
    thread = ServerThread(config)
    client = thread.start()
    yield thread, client
    thread.stop()


@pytest.fixture
def fast_answered(fast_path, monkeypatch):
    """The questions the fast path chosen by ``fast_path`` answered (it returns
    None for those it leaves to the general path); the server runs in this process."""
    answered: list[bytes] = []
    fast = answer_module._fast

    def spy(data, *args):
        reply = fast(data, *args)
        if reply is not None:
            answered.append(data)
        return reply

    monkeypatch.setattr(answer_module, "_fast", spy)
    return answered


@pytest.fixture
def servers(served, fast_path):
    """The server's client, the server answering with ``fast_path``."""
    return served[1]


@pytest.fixture(params=PATHS)
def fast_path(request, monkeypatch):
    """Answer with the one fast path or the other: answer() looks it up per
    call, so a server already running switches too."""
    monkeypatch.setattr(answer_module, "_fast", FAST_PATHS[request.param])
    return request.param


def _exchange(client, wire: bytes, tcp: bool) -> bytes:
    if tcp:
        with socket.create_connection((client.host, client.port), timeout=scaled(3)) as conn:
            conn.sendall(struct.pack(">H", len(wire)) + wire)
            size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
            return conn.recv(size, socket.MSG_WAITALL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(scaled(3))
        sock.sendto(wire, (client.host, client.port))
        return sock.recv(65535)


def _as_fast(match: re.Match) -> bytes:
    """"slow" as "fast", letter case kept (the question echoes the client's case)."""
    return bytes(f if s >= 0x61 else f - 0x20 for s, f in zip(match[0], b"fast", strict=True))


def _name(address: str, zone: str, zeros: bool, upper: str) -> str:
    octets = address.split(".")[::-1]
    if zeros:
        octets = [f"{int(o):03d}" for o in octets]
    name = ".".join(octets) + "." + zone
    return "".join(c.upper() if u == "1" else c for c, u in zip(name, upper.ljust(len(name), "0"),
                                                                strict=False))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=st.sampled_from(ADDRESSES),
       qtype=st.sampled_from(["A", "TXT", "ANY", "MX", "AAAA"]),
       edns=st.sampled_from([None, 512, 1232, 4096]),
       zeros=st.booleans(), upper=st.text("01", max_size=40), rd=st.booleans(),
       tcp=st.booleans(), qid=st.integers(0, 65535), dnssec=st.booleans())
def test_fast_and_general_paths_agree(servers, fast_answered, address, qtype, edns, zeros, upper,
                                      rd, tcp, qid, dnssec):
    replies = {}
    taken = {}
    for zone in ("fast.test", "slow.test"):
        query = dns.message.make_query(_name(address, zone, zeros, upper), qtype,
                                       use_edns=edns is not None, payload=edns or 512,
                                       want_dnssec=dnssec and edns is not None)
        query.id = qid
        if not rd:
            query.flags &= ~dns.flags.RD
        fast_answered.clear()
        replies[zone] = _exchange(servers, query.to_wire(), tcp)
        taken[zone] = bool(fast_answered)
    fast, slow = replies["fast.test"], replies["slow.test"]
    assert fast == re.sub(rb"(?i)slow", _as_fast, slow)
    dns.message.from_wire(fast)  # and it is a well-formed message
    # What the fast path leaves to the general one: other types, a TXT the
    # entry does not have (NODATA), and a reply to truncate.
    fast_case = (qtype in ("A", "TXT", "ANY") and not (address == "192.0.2.3" and qtype != "A")
                 and not dns.message.from_wire(fast).flags & dns.flags.TC)
    assert taken == {"fast.test": fast_case, "slow.test": False}


@pytest.mark.parametrize("qtype", ["A", "TXT", "ANY"])
@pytest.mark.parametrize("address", ["192.0.2.2", "198.51.100.130", "10.1.2.3"])
def test_the_common_questions_take_the_fast_path(servers, fast_answered, address, qtype):
    # Listed, excluded and unlisted, with and without EDNS and the DO bit.
    for zone, fast in (("fast.test", True), ("slow.test", False)):
        for edns, dnssec in ((None, False), (1232, False), (1232, True)):
            query = dns.message.make_query(_name(address, zone, False, ""), qtype,
                                           use_edns=edns is not None, payload=edns or 512,
                                           want_dnssec=dnssec)
            fast_answered.clear()
            reply = dns.message.from_wire(_exchange(servers, query.to_wire(), False))
            assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
            assert fast_answered == ([query.to_wire()] if fast else [])


def test_fast_path_answers_listed_and_unlisted(servers):
    # The same facts the general path's tests pin down, on the fast zone.
    assert servers.a("1.2.0.192.fast.test") == ["127.0.0.2"]
    assert servers.txt("2.2.0.192.fast.test") == ["Spam from 192.0.2.2"]
    assert servers.a("130.100.51.198.fast.test") == []
    reply = servers.query("8.113.0.203.fast.test", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


# --- the compiled fast path against the Python one, byte for byte ---------------------------

def _counters(zones) -> list[list[int]]:
    return [list(counts) for zone in zones.values()
            for counts in (zone.stats.requests, zone.stats.rcodes, zone.stats.lookups)]


def assert_paths_agree(data: bytes, zones, udp: bool, edns=DEFAULT_EDNS) -> bytes | None:
    """Both fast paths on one datagram: the same reply (or both ``None``: the
    general path's) and the same counters bumped."""
    python, compiled = FAST_PATHS["python"], FAST_PATHS["compiled"]
    before = _counters(zones)
    expected = python(data, zones, udp, edns)
    middle = _counters(zones)
    got = compiled(data, zones, udp, edns)
    after = _counters(zones)
    assert got == expected, f"the paths differ on {data!r} (udp={udp})"
    assert ([[m - b for b, m in zip(bs, ms, strict=True)] for bs, ms in zip(before, middle,
                                                                             strict=True)]
            == [[a - m for m, a in zip(ms, as_, strict=True)] for ms, as_ in zip(middle, after,
                                                                                  strict=True)])
    return got


def _fast_query(address: str, qtype: str, edns: int | None, dnssec: bool, zeros: bool,
                upper: str) -> bytes:
    query = dns.message.make_query(_name(address, "fast.test", zeros, upper), qtype,
                                   use_edns=edns is not None, payload=edns or 512,
                                   want_dnssec=dnssec and edns is not None)
    return query.to_wire()


compiled_only = pytest.mark.skipif("compiled" not in FAST_PATHS, reason=NOT_BUILT)


@compiled_only
@settings(max_examples=2000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(address=st.sampled_from(ADDRESSES + ["300.1.2.3", "255.255.255.255", "0.0.0.0"]),
       qtype=st.sampled_from(["A", "TXT", "ANY", "MX"]),
       edns=st.sampled_from([None, 0, 511, 512, 600, 1232, 65535]), dnssec=st.booleans(),
       zeros=st.booleans(), upper=st.text("01", max_size=40), udp=st.booleans(),
       cut=st.integers(0, 80), flips=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)),
                                               max_size=3),
       tail=st.binary(max_size=8))
def test_compiled_and_python_fast_paths_agree(served, address, qtype, edns, dnssec, zeros, upper,
                                              udp, cut, flips, tail):
    # Valid fast questions, then the same cut short, with bytes changed and
    # bytes added: every bounds check of the one must be the other's.
    zones = served[0].server.served.current.zones
    wire = _fast_query(address, qtype, edns, dnssec, zeros, upper)
    assert_paths_agree(wire, zones, udp)
    changed = bytearray(wire)
    for at, byte in flips:
        if at < len(changed):
            changed[at] = byte
    for data in (bytes(changed), wire[:len(wire) - cut], wire + tail, bytes(changed) + tail):
        assert_paths_agree(data, zones, udp)


@compiled_only
def test_compiled_path_answers_what_the_python_one_answers(served):
    # Not everything handed to the general path: the listed, the unlisted,
    # the "$" TXT, ANY, EDNS with DO, over UDP and TCP.
    zones = served[0].server.served.current.zones
    answered = 0
    for address in ADDRESSES:
        for qtype in ("A", "TXT", "ANY"):
            for edns, dnssec in ((None, False), (1232, True)):
                for udp in (True, False):
                    wire = _fast_query(address, qtype, edns, dnssec, False, "")
                    answered += assert_paths_agree(wire, zones, udp) is not None
    assert answered >= 100


@compiled_only
def test_compiled_path_survives_the_hostile_corpus(served):
    from tests.test_hostile import CORPUS
    zones = dict(served[0].server.served.current.zones)
    # The corpus asks about bl.test: serve it from the fast zone's data.
    zones[b"\x02bl\x04test\x00"] = zones[b"\x04fast\x04test\x00"]
    for case in CORPUS.values():
        for udp in (True, False):
            assert_paths_agree(case.packet, zones, udp)
            for cut in range(len(case.packet)):
                assert_paths_agree(case.packet[:cut], zones, udp)


def test_the_compiled_path_is_built_where_a_compiler_is():
    # setup.py builds the extension optionally: a silent build failure would
    # leave every test above skipped. Where cc and Python.h are, it is built.
    import shutil
    import sysconfig
    from pathlib import Path

    compiler = os.environ.get("CC", "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"no C compiler ({compiler}) or no {headers} (Debian: python3-dev)")
    assert "compiled" in FAST_PATHS, "a compiler is here, but the extension was not built"


@pytest.mark.parametrize("pure", ["", "1"])
def test_serve_logs_which_fast_path_answers(process, zone_file, pure):
    # DNSBL_PURE_PYTHON=1 asks for the Python path; without it, the compiled
    # one serves where built. Either way the same answers.
    expected = "python" if pure or "compiled" not in FAST_PATHS else "compiled"
    server = process("--zone", f"bl.test:ip4trie:{zone_file(ZONE)}", "--listen", "127.0.0.1:0",
                     env={"DNSBL_PURE_PYTHON": pure})
    client = server.wait_listening()
    [line] = server.wait_log(" fast path")
    assert f"answering with the {expected} fast path" in line
    if pure and "compiled" in FAST_PATHS:
        assert "(DNSBL_PURE_PYTHON=1)" in line
    assert client.a("2.2.0.192.bl.test") == ["127.0.0.3"]
    assert client.txt("2.2.0.192.bl.test") == ["Spam from 192.0.2.2"]


@pytest.mark.slow
def test_an_install_that_cannot_compile_serves_with_the_python_path(process, zone_file,
                                                                      tmp_path):
    # The compiler made to fail: pip install still succeeds, without the
    # extension, and that install serves, through the Python fast path.
    import shutil
    import subprocess
    import sys

    target, source = tmp_path / "site", tmp_path / "source"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # A copy of the sources alone: pip builds in the tree it is given, and a
    # build/ there from an earlier build would hand over its extension
    # without compiling anything.
    shutil.copytree(os.path.join(root, "dnsbl"), source / "dnsbl",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(os.path.join(root, name), source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=scaled(600),
        env={**os.environ, "CC": "false", "PIP_NO_INPUT": "1"}, cwd=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (target / "dnsbl" / "answer.py").is_file()
    assert not list((target / "dnsbl").glob("_fastpath*.so")), "built with CC=false?"
    assert not list((target / "dnsbl" / "datasets").glob("_ip4*.so"))
    # Served by the interpreter the virtualenv was made from, out of the
    # source tree, with the install and then the virtualenv's packages (its
    # dependencies) on the path: the editable install's import hook, which
    # would find the source tree's extension, is not loaded.
    import sysconfig

    shim = "import os, sys; os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
    server = process("--zone", f"bl.test:ip4trie:{zone_file(ZONE)}", "--listen", "127.0.0.1:0",
                     cwd=tmp_path, command=[sys._base_executable, "-c", shim],
                     env={"PYTHONPATH": os.pathsep.join((str(target),
                                                         sysconfig.get_paths()["purelib"])),
                          "DNSBL_PURE_PYTHON": ""})
    client = server.wait_listening()
    [line] = server.wait_log(" fast path")
    assert "answering with the python fast path (the compiled one was not built" in line
    assert client.a("2.2.0.192.bl.test") == ["127.0.0.3"]
    assert client.txt("2.2.0.192.bl.test") == ["Spam from 192.0.2.2"]
    assert client.query("8.113.0.203.bl.test").rcode() == dns.rcode.NXDOMAIN


@compiled_only
def test_udp_batches_go_through_the_compiled_loop(served, monkeypatch):
    # With the compiled fast path answering, each readable event of batch.py
    # goes to the compiled loop, which calls answer() for what it cannot
    # answer itself (here the general path's generic record).
    from dnsbl import batch

    if not batch.AVAILABLE:
        pytest.skip("no recvmmsg/sendmmsg on this system")
    real, events = batch._compiled_drain, []

    def counting(*args):
        events.append(args)
        return real(*args)

    monkeypatch.setattr(batch, "_compiled_drain", counting)
    monkeypatch.setattr(answer_module, "_fast", FAST_PATHS["compiled"])
    client = served[1]
    assert client.a("1.2.0.192.fast.test") == ["127.0.0.2"]
    assert client.a("www.slow.test") == ["127.0.0.9"]
    assert client.query("8.113.0.203.fast.test").rcode() == dns.rcode.NXDOMAIN
    assert len(events) >= 3


def _mixed_datagrams() -> list[bytes]:
    """Questions for both loops: fast ones (listed, unlisted, "$" TXT, EDNS
    with DO, over 512 bytes), general ones, and malformed ones (the hostile
    corpus whole and cut, empty, shorter than a header, responses)."""
    from tests.test_hostile import CORPUS

    datagrams = []
    for address in ADDRESSES:
        for qtype in ("A", "TXT", "ANY", "MX"):
            for edns, dnssec in ((None, False), (1232, True), (512, False)):
                datagrams.append(_fast_query(address, qtype, edns, dnssec, False, ""))
                datagrams.append(dns.message.make_query(
                    _name(address, "slow.test", True, "1"), qtype).to_wire())
    datagrams.append(dns.message.make_query("www.slow.test", "A").to_wire())
    for case in CORPUS.values():
        datagrams += [case.packet, case.packet[:7], case.packet[:20]]
    datagrams += [b"", b"\x00" * 11, b"\xff" * 40]
    # Distinct IDs, so every reply can be told from the others.
    return [d[:2] if len(d) < 2 else i.to_bytes(2, "big") + d[2:]
            for i, d in enumerate(datagrams)]


def _global_counters(thread) -> list[list[int]]:
    stats = thread.server.stats
    unzoned = stats.unzoned
    return [list(stats.dropped), list(stats.malformed), list(stats.tcp_closed),
            list(unzoned.requests), list(unzoned.rcodes), list(unzoned.lookups),
            *_counters(thread.server.served.current.zones)]


def _replies_to(client, datagrams: list[bytes]) -> list[bytes]:
    """Every reply the server sends to datagrams sent in waves (each well
    inside the kernel's receive buffers); a question last in each wave marks
    its end, the server answering in the order it reads."""
    replies: list[bytes] = []
    end = dns.message.make_query("1.2.0.192.fast.test", "A", id=0xFFFF).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(scaled(5))
        for start in range(0, len(datagrams), 100):
            for data in datagrams[start:start + 100] + [end]:
                sock.sendto(data, (client.host, client.port))
            while (reply := sock.recv(65535))[:2] != b"\xff\xff":
                replies.append(reply)
    return sorted(replies)


@compiled_only
def test_compiled_loop_answers_and_counts_as_the_python_loop(served, monkeypatch):
    # The same datagrams, many per recvmmsg, through batch.py's Python loop
    # and then through the compiled one: the same replies, byte for byte,
    # and the same counters moved (answer() called for the same datagrams).
    from dnsbl import batch

    if not batch.AVAILABLE:
        pytest.skip("no recvmmsg/sendmmsg on this system")
    thread, client = served
    monkeypatch.setattr(answer_module, "_fast", FAST_PATHS["compiled"])
    datagrams = _mixed_datagrams()
    runs = []
    real, events = batch._compiled_drain, []

    def counting(*args):
        events.append(args)
        return real(*args)

    for loop in (None, counting):
        monkeypatch.setattr(batch, "_compiled_drain", loop)
        before = _global_counters(thread)
        replies = _replies_to(client, datagrams)
        after = _global_counters(thread)
        runs.append((replies, [[a - b for b, a in zip(bs, as_, strict=True)]
                               for bs, as_ in zip(before, after, strict=True)]))
        assert bool(events) == (loop is not None)
    (python_replies, python_counts), (compiled_replies, compiled_counts) = runs
    assert len(python_replies) > len(datagrams) // 2
    assert compiled_replies == python_replies
    assert compiled_counts == python_counts
