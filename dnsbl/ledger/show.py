"""Everything the ledger knows about one key: ``dnsbl ledger show``, the API's
``GET /api/v1/listings/KEY`` and the analysts' search page."""

from __future__ import annotations

from typing import Any

from dnsbl.ledger.model import Key, iso, now
from dnsbl.ledger.sighted import Sightings
from dnsbl.ledger.sightings import DAY
from dnsbl.ledger.store import Store


def show(store: Store, key: Key, limit: int | None = None, offset: int = 0) -> dict[str, Any]:
    """Every listing around ``key``, live or not, the history of their keys, and
    how often the servers were asked about them, per day.

    With ``limit``, one page: that many listings from the ``offset``-th (a wide
    network may hold many), the history and sightings of their keys, and
    ``next_offset``, the next page's offset (None after the last)."""
    at = now()
    listings = store.covering(key, None if limit is None else limit + 1, offset)
    page: dict[str, Any] = {}
    if limit is not None:
        page = {"offset": offset, "limit": limit,
                "next_offset": offset + limit if len(listings) > limit else None}
        listings = listings[:limit]
    keys = sorted({listing.key for listing in listings} | {key.text})
    return {**page, "key": key.text,
            "listings": [dict(listing.as_dict(), active=listing.active(at))
                         for listing in listings],
            "history": [entry.as_dict() for entry in store.history(keys)],
            "sightings": [{"key": k, "day": iso(day * DAY)[:10], "lookups": n,
                           "resolvers": r, "first": iso(f), "last": iso(la)}
                          for k in keys for day, n, r, f, la in Sightings(store).days(k)]}
