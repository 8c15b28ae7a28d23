"""Keys as the ledger normalizes them, against the standard library's reading."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnsbl.ledger.model import LedgerError, parse_key


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_ipv4_keys_read_as_ipaddress_reads_them(value, prefixlen):
    network = ipaddress.ip_network((value, prefixlen), strict=False)
    key = parse_key(str(network))
    assert key.start == network.network_address.packed
    assert key.end == network.broadcast_address.packed
    assert key.prefixlen == prefixlen
    assert key.text == (str(network.network_address) if prefixlen == 32 else str(network))
    address = ipaddress.IPv4Address(value)
    if value != int(network.network_address):
        with pytest.raises(LedgerError, match=f"host bits set in '{address}/{prefixlen}' "
                                              f"\\(the network is {network}\\)"):
            parse_key(f"{address}/{prefixlen}")


@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_ipv6_keys_are_compressed_lowercase(value, prefixlen):
    # ip_network((0, 32)) would be IPv4: the test is about IPv6.
    network = ipaddress.IPv6Network((value, prefixlen), strict=False)
    key = parse_key(str(network).upper())
    assert key.text == (str(network.network_address) if prefixlen == 128 else str(network))
    assert (key.start, key.end) == (network.network_address.packed,
                                    network.broadcast_address.packed)


@pytest.mark.parametrize("text", ["10.1", "01.2.3.4", "1.2.3.4/", "1.2.3.4/33", "10.0.0.0/08",
                                  "1.2.3.4.5", "::1/129", "2001:db8::g", "", "example.org",
                                  "10.0.0.0/\u00b9", "::/\u00b9"])
def test_what_is_not_an_address_is_refused(text):
    with pytest.raises(LedgerError, match="bad address"):
        parse_key(text)
