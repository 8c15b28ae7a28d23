"""What a question asks the data: the key its name stands for, and the key
each dataset of the zone is asked for it.

Shared by the query log and ``dnsbl query``; answer.py decodes the same keys
straight from the wire, and these functions follow it.
"""

from __future__ import annotations

import ipaddress

from dnsbl.datasets import ListedDataset
from dnsbl.zones import Zone

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def key_of(prefix: str) -> Address | str:
    """The labels in front of a zone as the data means them: ``"2.0.0.127"`` ->
    127.0.0.2, 32 nibbles -> an IPv6 address, anything else -> the name."""
    labels = prefix.split(".") if prefix else []
    try:
        if len(labels) == 4:
            return ipaddress.IPv4Address(".".join(reversed(labels)))
        if len(labels) == 32:
            digits = "".join(reversed(labels))
            return ipaddress.IPv6Address(":".join(digits[i:i + 4] for i in range(0, 32, 4)))
    except ValueError:
        pass
    return prefix


def dataset_keys(zone: Zone, key: Address | str
                 ) -> list[tuple[ListedDataset, Address | str] | None]:
    """Per dataset of the zone, what answer.py asks it for ``key``: ``key``
    itself, the IPv4 address inside an IPv4-mapped or 6to4 one, or nothing
    (None) when the dataset holds another family. 2001:db8::1 -> the IPv6
    datasets; ::ffff:127.0.0.2 in a zone with IPv4 data -> its IPv4 datasets
    with 127.0.0.2, and no others."""
    out: list[tuple[ListedDataset, Address | str] | None] = []
    # An IPv6 address holding an IPv4 one is asked of the IPv4 data too (a
    # 6to4 one) or instead (an IPv4-mapped one), as answer.py does.
    embedded = None
    if isinstance(key, ipaddress.IPv6Address) and zone.lookups4:
        embedded = key.ipv4_mapped or key.sixtofour
    for dataset in zone.datasets:
        family = {4: "ip4", 6: "ip6"}.get(getattr(key, "version", 0), "name")
        wanted: Address | str = key
        if embedded is not None and dataset.family == "ip4":
            family, wanted = "ip4", embedded
        elif embedded is not None and key.ipv4_mapped is not None:  # type: ignore[union-attr]
            family = ""
        if isinstance(dataset, ListedDataset) and dataset.family == family:
            out.append((dataset, wanted))
        else:
            out.append(None)
    return out
