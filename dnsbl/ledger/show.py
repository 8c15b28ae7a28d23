"""Everything the ledger knows about one key: ``dnsbl ledger show``, the API's
``GET /api/v1/listings/KEY`` and the analysts' search page."""

from __future__ import annotations

from typing import Any

from dnsbl.ledger.model import Key, iso, now
from dnsbl.ledger.sighted import Sightings
from dnsbl.ledger.sightings import DAY
from dnsbl.ledger.store import Store


def show(store: Store, key: Key) -> dict[str, Any]:
    """Every listing around ``key``, live or not, the history of their keys, and
    how often the servers were asked about them, per day."""
    at = now()
    listings = store.covering(key)
    keys = sorted({listing.key for listing in listings} | {key.text})
    return {"key": key.text,
            "listings": [dict(listing.as_dict(), active=listing.active(at))
                         for listing in listings],
            "history": [entry.as_dict() for entry in store.history(keys)],
            "sightings": [{"key": k, "day": iso(day * DAY)[:10], "lookups": n,
                           "resolvers": r, "first": iso(f), "last": iso(la)}
                          for k in keys for day, n, r, f, la in Sightings(store).days(k)]}
