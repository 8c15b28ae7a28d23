"""The reputation ledger: the store of record that the published zones are compiled from.

Nothing here is on the server's query path; the server sees the ledger only
through the zone files that :mod:`dnsbl.ledger.publish` writes.
"""
