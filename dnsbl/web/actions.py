"""What the web application does to the ledger, run on its ledger thread.

Each function takes the store first (see :class:`dnsbl.web.ledger.LedgerThread`)
and values already checked by the caller's parser; a change also returns what
it touched, which the caller hands to ``publish_soon`` so ``dnsbl serve``
answers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dnsbl.ledger.access import Access
from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.guard import Guard
from dnsbl.ledger.model import (
    MAX_REASON,
    Key,
    LedgerError,
    Listing,
    RemovalRequest,
    Report,
    Token,
    now,
    parse_key,
)
from dnsbl.ledger.requests import RemovalRequests
from dnsbl.ledger.store import Store
from dnsbl.ledger.tokens import digest


def token_for(store: Store, secret: str) -> Token | None:
    return Access(store).token_by_digest(digest(secret))


#: What a change returns beside its result: the first addresses of the keys
#: it changed, for :meth:`LedgerThread.publish_soon` (None: every file; []: none).
Changed = list[bytes] | None


def add(store: Store, config: LedgerConfig, reports: list[Report], who: str,
        details: str) -> tuple[dict[str, Any], Changed]:
    """Merge ``reports`` in one transaction (all or nothing)."""
    at = now()
    store.stage(reports)
    merged = store.merge(at, who, details)
    result: dict[str, Any] = merged.as_dict()
    guard = Guard(config, store.allowed())
    warnings = []
    for report in reports[:100]:
        category = config.category(report.category)
        key = report.key
        why = guard.check(key.family, key.start, key.end, key.prefixlen, category,
                          report.forced)
        if why is not None:
            warnings.append(f"{key.text} will not be published: {why}")
    if warnings:
        result["warnings"] = warnings
    changed: Changed = []
    if merged.added + merged.extended + merged.relisted:
        changed = ([r.key.start for r in reports if r.key.prefixlen >= 8]
                   if len(reports) <= 64 and all(r.key.prefixlen >= 8 for r in reports)
                   else None)
    return result, changed


def remove(store: Store, config: LedgerConfig, key: Key, category: str | None,
           sources: Iterable[str], reason: str, who: str) -> tuple[list[Listing], Changed]:
    """End ``key``'s live listings from each of ``sources``."""
    at = now()
    ended: list[Listing] = []
    for source in sources:
        ended.extend(store.remove(key, category, source, reason, who, at))
    return ended, ([key.start] if key.prefixlen >= 8 else None) if ended else []


def remove_any(store: Store, config: LedgerConfig, key: Key, category: str | None,
               sources: Iterable[str] | None, reason: str,
               who: str) -> tuple[list[Listing], Changed]:
    """:func:`remove`, from every source listing ``key`` when ``sources`` is None
    (an analyst's removal)."""
    if sources is None:
        sources = sorted({listing.source for listing in store.covering(key)
                          if listing.key == key.text and listing.removed_at is None})
    return remove(store, config, key, category, sources, reason, who)


def decide(store: Store, config: LedgerConfig, request_id: int, approve: bool,
           sources: Iterable[str] | None,
           who: str) -> tuple[tuple[RemovalRequest | None, list[Listing]], Changed]:
    """Approve (remove the key's listings from ``sources``, all when None, with
    the request as the reason) or reject a pending removal request; (None, [])
    when it is not pending."""
    decided = RemovalRequests(store).decide(request_id, "approved" if approve else "rejected", who,
                                   now())
    if decided is None or not approve:
        return (decided, []), []
    reason = " ".join(f"removal request #{decided.id} from {decided.contact}: "
                      f"{decided.message}".split())
    reason = reason.encode()[:MAX_REASON].decode("utf-8", "ignore")
    ended, changed = remove_any(store, config, parse_key(decided.key), None, sources, reason,
                                who)
    return (decided, ended), changed


def search(store: Store, limit: int, offset: int = 0, **filters: Any) -> dict[str, Any]:
    """One page of listings by filter: ``limit`` from the ``offset``-th, and the
    next page's offset (None after the last)."""
    at = now()
    found = [dict(listing.as_dict(), active=listing.active(at))
             for listing in store.listings(at, limit=limit + 1, offset=offset, **filters)]
    return {"listings": found[:limit], "count": min(len(found), limit), "offset": offset,
            "next_offset": offset + limit if len(found) > limit else None}


@dataclass(frozen=True)
class PublicListing:
    """What the public lookup page shows of a listing: nothing more."""

    category: str
    reason: str
    since: int
    expires: int
    source: str  # "" when the source or its category is not public


def lookup(store: Store, config: LedgerConfig, key: Key) -> dict[str, list[PublicListing]]:
    """Per published zone, the live listings that cover ``key`` and are published
    (the guard's holds applied), as the public may see them."""
    at = now()
    guard = Guard(config, store.allowed())
    private = set(config.private_sources)
    found: dict[str, list[PublicListing]] = {zone: [] for zone in config.zones()}
    for listing in store.covering(key):
        if not listing.active(at):
            continue
        try:
            category = config.category(listing.category)
        except LedgerError:
            continue  # a category no longer configured is not published
        lk = parse_key(listing.key)
        if guard.check(lk.family, lk.start, lk.end, lk.prefixlen, category,
                       listing.forced) is not None:
            continue
        shown = PublicListing(category.name, listing.reason, listing.first_seen,
                              listing.expires,
                              listing.source if category.public and listing.source
                              not in private else "")
        for zone, categories in config.zones().items():
            if category in categories:
                found[zone].append(shown)
    return found

