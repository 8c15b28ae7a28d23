"""The difference made from the changed entries alone (dnsbl/ixdiff.py) is
the one made from every record of both versions (dnsbl/ixfr.py's
``difference``, the reference), in both transfer forms, on random pairs of
versions: addresses and blocks around /16 and /8 boundaries, exclusions
(holes), per-entry values, the default value's text, $NS, the allowlist,
and datasets a reload kept (the same objects) next to ones it read again."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dnsbl.allowlist import Allowlist, allowlist_files, load_allowlist
from dnsbl.config import ServerConfig, load_config
from dnsbl.datasets import Dataset
from dnsbl.export import dataset_entries, transfer_forms
from dnsbl.ixdiff import MOST, narrowed, zone_difference
from dnsbl.ixfr import Digests, difference
from dnsbl.loader import load_datasets
from dnsbl.wire import TYPE_SOA
from dnsbl.zones import DatasetKey, Snapshot, build_snapshot

ZONE = "bl.example.org"
CONFIG = """\
ttl = 600
[[zone]]
name = "bl.example.org"
rpz = { origin = "rpz.example.org" }
transfer = ["127.0.0.0/8"]
datasets = [{ type = "ip4set", files = ["a.zone"] }, { type = "ip4trie", files = ["b.zone"] },
            { type = "ip6trie", files = ["c.zone"] }, { type = "dnset", files = ["d.zone"] }]
[rpz]
default = "nxdomain"
client = ["127.0.0.8"]
allowlist = ["allow.txt"]
[rpz.actions]
"127.0.0.3" = "drop"
"""
SIX = ":127.0.0.2:Six $\n2001:db8::/32\n!2001:db8:1::/48\n::ffff:10.0.0.0/104 :3:Mapped\n"

NAMES = ":127.0.0.2:Name $\n.example.net\n!ok.example.net\nexample.com :3:Three\n"

# Few /16s (and both sides of a /8 and a /12 edge), so entries meet.
SIXTEENS = [(10, 0), (10, 1), (10, 15), (10, 16), (10, 255), (11, 0)]
ENTRY = st.tuples(st.sampled_from(SIXTEENS), st.integers(0, 3), st.integers(0, 5),
                  st.sampled_from([8, 12, 15, 16, 16, 20, 24, 24, 30, 32, 32, 32, 32]),
                  st.booleans(), st.sampled_from(["", "", " :3:Three $", " :8:Client"]))


def line(entry: tuple) -> str:
    (first, second), third, fourth, bits, excluded, value = entry
    network = ipaddress.IPv4Network((first << 24 | second << 16 | third << 8 | fourth, bits),
                                    strict=False)
    text = str(network.network_address) if bits == 32 else str(network)
    return f"{'!' if excluded else ''}{text}{'' if excluded else value}"


def head(text: str, ns: str) -> str:
    return (f"$SOA 3600 ns1.example.org hostmaster.example.org 7 1h 15m 1w 300\n"
            f"$NS 0 {ns}\n$TTL 600\n:127.0.0.2:{text} $\n")


VERSION = st.fixed_dictionaries({
    "a": st.lists(ENTRY, max_size=25), "b": st.lists(ENTRY, max_size=8),
    "text": st.sampled_from(["Listed", "Listed", "Other"]),
    "ns": st.sampled_from(["ns1.example.org", "ns1.example.org", "ns2.example.org"]),
    "six": st.sampled_from([SIX, SIX, SIX + "2001:db8:2::/48\n"]),
    "allow": st.sampled_from(["10.0.1.1\n", "10.0.1.1\n", "10.1.0.0/16\n10.0.0.2\n"]),
    "names": st.sampled_from([NAMES, NAMES, NAMES + "bad.example.com :3:Three\n"]),
})


def files(version: dict) -> dict[str, str]:
    return {"a.zone": head(version["text"], version["ns"])
            + "".join(line(e) + "\n" for e in version["a"]),
            "b.zone": ":127.0.0.4:Trie\n" + "".join(line(e) + "\n" for e in version["b"]),
            "c.zone": version["six"], "d.zone": version["names"], "allow.txt": version["allow"]}


def reload(config: ServerConfig, folder: Path, version: dict,
           before: tuple[dict[DatasetKey, Dataset], Allowlist] | None = None) -> Snapshot:
    """The snapshot of ``version``'s files, keeping (as a reload does) the
    datasets and allowlist of ``before`` whose files it did not change."""
    changed = set()
    for name, text in files(version).items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.add(str(path))
    loaded, errors = load_datasets(config)
    assert not errors
    allowlist = load_allowlist(allowlist_files(config))
    if before is not None:
        kept, old_allowlist = before
        loaded = {key: kept[key] if not changed & set(dataset.paths) else dataset
                  for key, dataset in loaded.items()}
        if not changed & set(old_allowlist.files):
            allowlist = old_allowlist
    return build_snapshot(config, loaded, allowlist)


def same_difference(old_version: dict, new_version: dict, most: float = 1.0) -> int:
    """Check both forms' differences against the reference; how many of the
    two were made from the changed entries alone (``most``: the share of
    addresses past which the whole zone is compared; by default never, so
    that the narrow path is what small random zones test)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "dnsbl.toml").write_text(CONFIG)
        config = load_config(str(folder / "dnsbl.toml"))
        old = reload(config, folder, old_version)
        assert old.allowlist is not None
        new = reload(config, folder, new_version, (old.datasets, old.allowlist))
        before, zone = old.by_name(ZONE), new.by_name(ZONE)
        assert before is not None and zone is not None
        before.set_serial(7)
        zone.set_serial(8)
        narrow = 0
        for _zone, records in transfer_forms(config).values():
            reference = difference(lambda form=records: form(old, before, dataset_entries),
                                   records(new, zone, dataset_entries))
            known = Digests(records(old, before, dataset_entries))
            found = zone_difference(records, old, before, new, zone, known, most=most)
            assert reference is not None and found is not None
            assert sorted(found[0]) == sorted(reference[0])  # deleted
            assert sorted(found[1]) == sorted(reference[1])  # added
            assert all(r[2] != TYPE_SOA for r in found[0] + found[1])
            # The digests kept for the next difference: the new version's.
            assert found[2] is not None
            assert found[2].buckets == reference[2].buckets
            narrow += narrowed(old, before, new, zone, most) is not None
        return narrow


@settings(max_examples=150, deadline=None)
@given(VERSION, VERSION, st.data())
def test_the_difference_from_changed_entries_is_the_whole_zones(old, new, data):
    # Often a few lines changed, as a reload mostly sees; sometimes another version.
    if data.draw(st.booleans()):
        new = {**old, "a": [e for e in old["a"] if data.draw(st.integers(0, 5))]
               + data.draw(st.lists(ENTRY, max_size=3))}
    same_difference(old, new)


def test_a_few_changes_in_a_big_list_take_the_narrow_path():
    """The common case, checked to take the narrow path (a test of the
    comparison above that always fell back would prove nothing)."""
    entries = [((10, second), third, fourth, 32, False, "")
               for second in range(0, 256, 3) for third in range(0, 256, 7)
               for fourth in (1, 77, 200)]
    old = {"a": entries, "b": [((10, 1), 0, 0, 16, False, ""), ((10, 1), 2, 0, 24, True, "")],
           "text": "Listed", "ns": "ns1.example.org", "six": SIX, "allow": "10.0.1.1\n",
           "names": NAMES}
    changed = entries[:5] + entries[6:] + [((10, 3), 9, 9, 32, False, " :3:Three $"),
                                           ((10, 1), 2, 5, 32, False, "")]
    assert same_difference(old, {**old, "a": changed}, MOST) == 2
