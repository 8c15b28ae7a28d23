"""The compiled IPv4 reader (datasets/_ip4scan.c) against the Python one.

The Python reader is the reference: for any file, good or bad, both must
give the same dataset (every entry with its value), the same warnings at the
same lines, and the same errors. A server started on a random-order file
answers the same either way.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbl import zonefile
from dnsbl.datasets import ip4, load_dataset
from dnsbl.zonefile import Limits, ZoneFileError

NOT_BUILT = "the compiled IPv4 reader was not built (no C compiler at install time)"
compiled_only = pytest.mark.skipif(ip4._ip4scan is None, reason=NOT_BUILT)


def _read(monkeypatch, reader: str, kind: str, paths: list[str], limits: Limits | None = None):
    """The dataset ``reader`` ("compiled" or "python") reads, as plain data:
    its entries, warnings, counts; or the error that ended the load."""
    monkeypatch.setattr(ip4, "SCAN", ip4._ip4scan if reader == "compiled" else None)
    try:
        dataset = load_dataset(kind, paths, 2100, limits=limits)
    except ZoneFileError as exc:
        return "error", str(exc), exc.reason
    entries = [(e.address, e.bits, None if e.value is None
                else (e.value.a, e.value.raw, e.value.txt)) for e in dataset.entries()]
    return (entries, [str(w) for w in dataset.warnings], dataset.warnings.dropped,
            dataset.listed, dataset.exclusions, dataset.ttl)


def assert_readers_agree(monkeypatch, kind: str, paths: list[str],
                         limits: Limits | None = None) -> tuple:
    compiled = _read(monkeypatch, "compiled", kind, paths, limits)
    python = _read(monkeypatch, "python", kind, paths, limits)
    assert compiled == python
    return compiled


_POOL = ["192.0.2.1", "192.0.2.2", "198.51.100.7", "10.0.0.0", "0.0.0.0", "255.255.255.255"]
_address = st.sampled_from(_POOL) | st.integers(0, 2**32 - 1).map(
    lambda n: str(ipaddress.IPv4Address(n)))
_block = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 33)).map(
    lambda nb: f"{ipaddress.IPv4Address(nb[0] & (0xFFFFFFFF << (32 - min(nb[1], 32))))}/{nb[1]}")
_rest = st.sampled_from([
    "", " :2:Spam $", " :3", " :127.0.0.4:listed", " text $", " :0", " :999:bad", " #c",
    " ;c", "\t:2:tab", "  :4:two blanks", " :2:" + "x" * 300, " caf\xe9 $", " :2:a\rb",
    " :5:", "#glued", ":glued", " \xa0:2:nbsp", " :2:x\x0b", " $",
])
_line = st.one_of(
    st.tuples(_address, _rest).map("".join),
    st.tuples(_block, _rest).map("".join),
    _address.map(lambda a: "!" + a),
    _address.map(lambda a: "! " + a + " :2:ignored"),
    _block.map(lambda b: "!" + b),
    _address.map(lambda a: "  " + a + "  "),
    _address.map(lambda a: a + "\r"),
    _address.map(lambda a: "\xa0" + a),
    _address.map(lambda a: a + "\x0c"),
    _block.map(lambda b: b.replace("/", "/0")),  # a leading zero in the prefix length
    st.sampled_from([
        "010.0.0.1", "10.0.0.256", "10.0.0", "10/8", "10", "1.2.3.4.5", "1..2.3", "10.0.0.1/24",
        "10.0.0.0-10.0.0.9", "10.6.16-31", "10.0.0.1\0", "1.2.3.4/32 :2:full", "1.2.3.4/",
        ":127.0.0.5:default $", ":6", ":2:second", ":bad", "# comment", "; comment", "", " ",
        "$TTL 60", "$MAXRANGE4 /24", "$MAXRANGE4 1000", "#$TTL 120", ";$NS 60 ns.example.",
        "$1 one", "$= base $=", "$SOA 60 ns.example. hm.example. 1 60 60 60 60", "!", "\x85",
    ]),
)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["ip4set", "ip4trie", "ip4tset"]),
       files=st.lists(st.tuples(st.lists(_line, max_size=40), st.booleans(), st.booleans()),
                      min_size=1, max_size=2),
       block=st.sampled_from([32, 1 << 20]))
def test_compiled_and_python_readers_give_the_same_dataset(tmp_path, monkeypatch, kind, files,
                                                          block):
    # Any mix of lines, good and bad, in one or two files, LF or CRLF, read a
    # few lines at a time or whole.
    monkeypatch.setattr(zonefile, "_BLOCK", block)
    paths = []
    for i, (lines, crlf, newline_at_end) in enumerate(files):
        path = tmp_path / f"bl{i}.zone"
        eol = "\r\n" if crlf else "\n"
        path.write_bytes((eol.join(lines) + (eol if newline_at_end else "")).encode("latin-1"))
        paths.append(str(path))
    assert_readers_agree(monkeypatch, kind, paths)


def _random_zone(path: Path, count: int, seed: int) -> list[str]:
    """``count`` entries in random order, as generate.py writes them: bare
    addresses, some with values, blocks, exclusions, a default line; and a
    few repeats, listed and excluded."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        address = str(ipaddress.IPv4Address(rng.getrandbits(32) | 1 << 24))
        roll = rng.random()
        if roll < 0.02:
            lines.append(f"{address} :{rng.randint(2, 9)}:Spam from $")
        elif roll < 0.04:
            lines.append(f"{address.rpartition('.')[0]}.0/24")
        elif roll < 0.045:
            lines.append(f"!{address}")
        else:
            lines.append(address)
    for _ in range(count // 100):  # repeats of lines already there
        lines.append(rng.choice(lines))
    rng.shuffle(lines)
    lines.insert(count // 2, ":127.0.0.3:second default $")
    path.write_text("$TTL 300\n" + "\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize("kind", ["ip4set", "ip4trie"])
def test_a_big_random_order_file_reads_the_same(tmp_path, monkeypatch, kind):
    # 60,000 entries over several read blocks, with repeats: the sort, the
    # folding of repeats and the line numbers of their warnings.
    path = tmp_path / "bl.zone"
    _random_zone(path, 60_000, seed=18)
    monkeypatch.setattr(zonefile, "_BLOCK", 1 << 16)
    entries, warnings, *_ = assert_readers_agree(monkeypatch, kind, [str(path)])
    assert len(entries) > 55_000
    assert warnings and all(w.startswith(f"{path}:") and "duplicate entry" in w
                            for w in warnings)


def test_thousands_of_repeats_keep_the_first_warnings_in_both(tmp_path, monkeypatch):
    # Past the warnings kept, both count the rest, and keep the same ones.
    path = tmp_path / "bl.zone"
    lines = [f"192.0.2.{i % 7} :{2 + i % 3}:x" for i in range(3000)][::-1]
    path.write_text("\n".join(lines) + "\n")
    _, warnings, dropped, *_ = assert_readers_agree(monkeypatch, "ip4trie", [str(path)])
    assert len(warnings) == zonefile.MAX_WARNINGS and dropped == 3000 - 7 - len(warnings)


@pytest.mark.parametrize("limit", [1, 500, 1001, 1999])
def test_too_many_entries_fails_at_the_same_line(tmp_path, monkeypatch, limit):
    path = tmp_path / "bl.zone"
    _random_zone(path, 2000, seed=limit)
    got = assert_readers_agree(monkeypatch, "ip4trie", [str(path)], Limits(max_entries=limit))
    assert got[0] == "error" and got[2] == "entries" and "max_entries" in got[1]


def test_the_reader_was_built_where_a_compiler_is():
    compiler = os.environ.get("CC", "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"no C compiler ({compiler}) or no {headers} (Debian: python3-dev)")
    assert ip4._ip4scan is not None, "a compiler is here, but _ip4scan was not built"


@compiled_only
@pytest.mark.parametrize("text", [b"", b"\n\n", b"1.2.3.4", b"!", b"\xff" * 9, b"1.2.3.4/",
                                  b"255.255.255.255/32\n", b"1.2.3.4 " + b"\x00" * 5])
def test_scan_takes_any_bytes(text):
    # Whatever the bytes, scan() returns where it stopped within them.
    pos, lineno, stopped, *_ = ip4._ip4scan.scan(text, 0, 1, {}, 1, 0, False)
    assert 0 <= pos <= len(text) and lineno >= 1
    assert stopped or pos == len(text)


@compiled_only
def test_scan_refuses_a_position_outside_the_data():
    with pytest.raises(ValueError, match="pos out of range"):
        ip4._ip4scan.scan(b"1.2.3.4\n", 9, 1, {}, 1, 0, False)


@pytest.mark.parametrize("pure", ["", "1"])
def test_a_random_order_zone_answers_the_same_from_either_reader(process, tmp_path, pure):
    # The real server, its parse in a child process, on a random-order file.
    path = tmp_path / "bl.zone"
    lines = _random_zone(path, 5000, seed=5)
    server = process("--zone", f"bl.test:ip4trie:{path}", "--listen", "127.0.0.1:0",
                     env={"DNSBL_PURE_PYTHON": pure})
    client = server.wait_listening()
    listed = next(line for line in lines if " :" in line and not line.startswith("!"))
    address, _, value = listed.partition(" :")
    reversed_name = ".".join(reversed(address.split(".")))
    assert client.a(f"{reversed_name}.bl.test") == [f"127.0.0.{value.split(':')[0]}"]
    excluded = next(line[1:] for line in lines if line.startswith("!")
                    and lines.count(line[1:]) == 0)
    reversed_name = ".".join(reversed(excluded.split(".")))
    assert client.a(f"{reversed_name}.bl.test") == []
