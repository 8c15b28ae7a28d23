"""The compiled IPv4 lookup (datasets/_ip4index.c) against the Python one.

The Python lookup (a bisect in the single addresses, then the Patricia trie
of blocks) is the reference: for any dataset and any address, the compiled
one, which flattens the blocks into ranges, must give the same value.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import sysconfig
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsbl.datasets import ip4, load_dataset

NOT_BUILT = "the compiled IPv4 lookup was not built (no C compiler at install time)"
compiled_only = pytest.mark.skipif(ip4.Index is None, reason=NOT_BUILT)


def _dataset(path: Path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines))
    return load_dataset("ip4trie", [str(path)], 2100)


def _probes(lines: list[str], rng: random.Random, extra: int) -> list[bytes]:
    """Each entry's first and last address and their neighbours, and random ones."""
    probes = {0, 2**32 - 1}
    for line in lines:
        text = line.lstrip("!").split()[0]
        network = ipaddress.IPv4Network(text, strict=False)
        first, last = int(network.network_address), int(network.broadcast_address)
        probes.update(n for n in (first - 1, first, last, last + 1) if 0 <= n < 2**32)
    probes.update(rng.randrange(2**32) for _ in range(extra))
    return [n.to_bytes(4, "big") for n in sorted(probes)]


def assert_lookups_agree(path: Path, lines: list[str], seed: int, extra: int = 200) -> None:
    dataset = _dataset(path, lines)
    index = dataset.lookup.index
    assert isinstance(index, ip4.Index)
    for ip in _probes(lines, random.Random(seed), extra):
        assert index(ip) is dataset.lookup(ip), ipaddress.IPv4Address(ip)


# Prefixes in a few narrow places, so that they nest, repeat and touch.
_network = st.tuples(st.sampled_from([0, 10 << 24, 192 << 24 | 168 << 16, 0xFFFFFF00]),
                     st.integers(0, 2**16 - 1), st.integers(0, 32))
_entry = st.tuples(st.booleans(), _network, st.integers(2, 5))


def _line(entry) -> str:
    excluded, (base, low, bits), value = entry
    network = ipaddress.IPv4Network(((base | low * 7) & (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF,
                                     bits))
    text = str(network) if bits < 32 or value % 2 else str(network.network_address)
    return f"!{text}" if excluded else f"{text} :{value}:reason {value}"


@compiled_only
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_entry, max_size=40), st.integers(0, 2**32 - 1))
def test_the_compiled_lookup_gives_what_the_python_lookup_gives(tmp_path, entries, seed):
    assert_lookups_agree(tmp_path / "bl.zone", [_line(e) for e in entries], seed)


@compiled_only
@pytest.mark.parametrize("lines", [
    [],
    ["0.0.0.0/0 :2:all"],
    ["0.0.0.0/0 :2:all", "!255.255.255.255", "!0.0.0.0/32"],
    ["255.255.255.255/32 :3:last", "255.255.255.0/24 :2:top", "!255.255.255.128/25"],
    ["10.0.0.0/8 :2:a", "10.0.0.0/16 :3:b", "10.0.0.0/24 :4:c", "10.0.0.0/32 :5:d",
     "!10.0.0.1", "10.0.1.0/24 :2:a"],
    ["1.2.3.4 :2:one", "1.2.3.0/24 :3:net", "!1.2.3.5"],
])
def test_edges_of_the_address_space_and_nesting(tmp_path, lines):
    assert_lookups_agree(tmp_path / "bl.zone", lines, seed=len(lines), extra=50)


@compiled_only
def test_a_big_random_order_dataset_looks_up_the_same(tmp_path):
    rng = random.Random(18)
    lines = []
    for _ in range(20000):
        address = ipaddress.IPv4Address(rng.randrange(2**32))
        lines.append(f"{address} :{rng.randint(2, 5)}:single")
    for _ in range(2000):
        bits = rng.randint(8, 31)
        network = ipaddress.IPv4Network((rng.randrange(2**32) >> (32 - bits) << (32 - bits), bits))
        lines.append(f"{'!' if rng.random() < 0.2 else ''}{network} :{rng.randint(2, 5)}:block")
    rng.shuffle(lines)
    assert_lookups_agree(tmp_path / "bl.zone", lines, seed=18, extra=20000)


@compiled_only
def test_the_ranges_are_the_blocks_flattened(tmp_path):
    dataset = _dataset(tmp_path / "bl.zone",
                       ["10.0.0.0/8 :2:outer", "10.1.0.0/16 :3:inner", "!10.1.2.0/24"])
    outer, inner = (dataset.lookup(ipaddress.IPv4Address(a).packed) for a in
                    ("10.0.0.1", "10.1.0.1"))
    values = dataset._values
    assert [(str(ipaddress.IPv4Address(first)), None if n is None else values[n])
            for first, n in dataset.lookup.index.ranges()] == [
        ("0.0.0.0", None), ("10.0.0.0", outer), ("10.1.0.0", inner), ("10.1.2.0", None),
        ("10.1.3.0", inner), ("10.2.0.0", outer), ("11.0.0.0", None)]


@compiled_only
@pytest.mark.parametrize("args, error", [
    ((array("I"), array("I", [0] * 65537), array("I"), [None], 16, [(1, 40, 1)]), ValueError),
    ((array("I", [1]), array("I", [0] * 65537), array("I", [1]), [None, 1], 16, []), ValueError),
    ((array("I"), array("I", [0] * 65537), array("I"), [None], 8, []), ValueError),
    ((array("B"), array("I", [0] * 65537), array("I"), [None], 16, []), TypeError),
    ((array("I"), array("I", [0] * 65537), array("I"), [None], 16, [("x", 1, 1)]), TypeError),
])
def test_an_index_refuses_what_it_could_not_look_up_within(args, error):
    with pytest.raises(error):
        ip4.Index(*args)


@compiled_only
def test_an_index_takes_only_four_bytes():
    index = ip4.Index(array("I"), array("I", [0] * 65537), array("I"), [None], 16, [])
    assert index(b"\x01\x02\x03\x04") is None
    for bad in (b"", b"\x01\x02\x03", b"\x00" * 16):
        with pytest.raises(ValueError, match="4 bytes"):
            index(bad)


def test_the_lookup_was_built_where_a_compiler_is():
    compiler = os.environ.get("CC", "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"no C compiler ({compiler}) or no {headers} (Debian: python3-dev)")
    assert ip4.Index is not None, "a compiler is here, but _ip4index was not built"
