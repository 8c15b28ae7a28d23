"""``dnsbl web``: the ledger over HTTP (API, public lookup, removal requests)."""
