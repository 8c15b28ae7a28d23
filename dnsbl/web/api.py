"""``/api/v1``: listings over JSON for teams and tools, behind bearer tokens.

Every request names a token (``Authorization: Bearer ...``); a token writes
only its sources and a read-only one writes nothing. Errors are JSON (see
:mod:`dnsbl.web.errors`); every change records ``token:NAME`` as who made it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.model import (
    LedgerError,
    Report,
    Token,
    now,
    parse_confidence,
    parse_duration,
    parse_expiry,
    parse_key,
    parse_reason,
    parse_when,
)
from dnsbl.ledger.requests import RemovalRequests
from dnsbl.ledger.show import show
from dnsbl.web import actions
from dnsbl.web.errors import ApiError, bad
from dnsbl.web.openapi import OPENAPI
from dnsbl.web.state import State, read_body

#: Listings (or changes) a page holds at most (``limit`` may ask for fewer);
#: ``offset`` (``before`` for changes) walks the pages.
MAX_RESULTS = 1000
_LISTING_FIELDS = {"key", "category", "source", "reason", "expires", "ref", "confidence",
                   "seen", "force"}


async def authenticate(request: Request, write: bool) -> Token:
    """The request's live token, rate limited; 401 without one, 403 read-only writing."""
    state: State = request.app.state.web
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "no token: send 'Authorization: Bearer TOKEN' (made by "
                            "`dnsbl ledger token create`)",
                       headers={"WWW-Authenticate": "Bearer"})
    token = await state.ledger(actions.token_for, secret.strip())
    if token is None or not token.live(now()):
        raise ApiError(401, "the token is unknown, expired or revoked",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not state.api_limit.allow(token.name):
        raise ApiError(429, f"token {token.name}: too many requests; slow down",
                       headers={"Retry-After": str(state.api_limit.retry_after(token.name))})
    if write and token.read_only:
        raise ApiError(403, f"token {token.name} is read-only")
    return token


def _may_write(token: Token, source: str, field: str = "source") -> None:
    if source not in token.source_list:
        raise ApiError(403, f"{field}: token {token.name} may not write source {source!r} "
                            f"(it may write: {', '.join(token.source_list)})", field)


def parse_listing(item: Any, config: LedgerConfig, token: Token, who: str,
                  where: str = "") -> Report:
    """One listing object of a request -> Report.

    :raises ApiError: 400 naming the field (``where`` before it: ``line 3: key``),
        403 for a source the token may not write.
    """
    if not isinstance(item, dict):
        raise bad(f"{where}body".strip(), "must be a JSON object")
    unknown = set(item) - _LISTING_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise bad(where + name, f"unknown field (known: {', '.join(sorted(_LISTING_FIELDS))})")
    at = now()

    def field(name: str, parse: Any, default: Any = None, required: bool = False) -> Any:
        value = item.get(name)
        if value is None:
            if required:
                raise bad(where + name, "is required")
            return default
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise bad(where + name, "must be a string")
        try:
            return parse(value)
        except LedgerError as exc:
            raise bad(where + name, str(exc)) from None

    key = field("key", lambda v: parse_key(str(v)), required=True)
    category = field("category", lambda v: config.category(str(v)), required=True)
    source = field("source", str, default=token.source_list[0] if len(
        token.source_list) == 1 else None, required=len(token.source_list) != 1)
    _may_write(token, source, where + "source")
    reason = field("reason", lambda v: parse_reason(str(v)), required=True)
    seen = field("seen", lambda v: parse_when(str(v)), default=at)
    if seen > at + 300:
        raise bad(where + "seen", "is in the future")
    expires = field("expires", lambda v: parse_expiry(str(v), at),
                    default=seen + category.lifetime)
    ref = field("ref", str, default="")
    confidence = field("confidence", parse_confidence, default=100)
    force = item.get("force", False)
    if not isinstance(force, bool):
        raise bad(where + "force", "must be true or false")
    return Report(key, category.name, source, reason, seen, expires, ref, confidence, None,
                  force, who)


async def _json(request: Request) -> Any:
    body = await read_body(request, request.app.state.web.config.web.max_body)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad("body", f"not JSON: {exc}") from None


def _number(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter from ``low`` to ``high``; 400 naming it."""
    text = request.query_params.get(name, str(default))
    if not text.isdigit() or not low <= int(text) <= high:
        raise bad(name, f"a whole number from {low} to {high}")
    return int(text)


def _page(request: Request) -> tuple[int, int]:
    """(limit, offset) of a request for one page of results."""
    return (_number(request, "limit", MAX_RESULTS, 1, MAX_RESULTS),
            _number(request, "offset", 0, 0, 2**62))


def _conflict(result: dict[str, Any], key: str) -> None:
    if result.get("held_by_removal"):
        raise ApiError(409, f"{key} was removed after this evidence was seen; report newer "
                            "evidence ('seen') to list it again", "seen")


async def create(request: Request) -> Response:
    """POST /api/v1/listings: list a key, or extend the same key, category and source."""
    token = await authenticate(request, write=True)
    state: State = request.app.state.web
    who = f"token:{token.name}"
    report = parse_listing(await _json(request), state.config, token, who)
    result = await state.change(actions.add, state.config, [report], who, "api add")
    _conflict(result, report.key.text)
    result.update(key=report.key.text, category=report.category, source=report.source)
    return JSONResponse(result, status_code=201 if result["added"] + result["relisted"]
                        else 200)


async def bulk(request: Request) -> Response:
    """POST /api/v1/listings/bulk: NDJSON, one listing a line; all or nothing."""
    token = await authenticate(request, write=True)
    state: State = request.app.state.web
    who = f"token:{token.name}"
    body = await read_body(request, state.config.web.bulk_body)
    reports: list[Report] = []
    errors: list[str] = []
    forbidden: ApiError | None = None
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise bad(f"line {number}: body", f"not JSON: {exc}") from None
            reports.append(parse_listing(item, state.config, token, who, f"line {number}: "))
        except ApiError as exc:
            if exc.status == 403:
                forbidden = forbidden or exc
            errors.append(exc.message)
    if forbidden is not None:
        raise forbidden
    if errors:
        shown = errors[:20]
        raise ApiError(400, f"{len(errors)} bad line(s); nothing imported: "
                            + "; ".join(shown), errors[0].split(": ")[1])
    if not reports:
        raise bad("body", "no listings (one JSON object a line)")
    result = await state.change(actions.add, state.config, reports, who,
                                f"api bulk ({len(reports)})")
    result["records"] = len(reports)
    return JSONResponse(result, status_code=200)


async def get(request: Request) -> Response:
    """GET /api/v1/listings/{key}: every listing around KEY, live or not, with history."""
    await authenticate(request, write=False)
    state: State = request.app.state.web
    try:
        key = parse_key(request.path_params["key"])
    except LedgerError as exc:
        raise bad("key", str(exc)) from None
    limit, offset = _page(request)
    result = await state.ledger(show, key, limit, offset)
    if not result["listings"] and not result["history"] and not offset:
        raise ApiError(404, f"{key.text}: never listed")
    return JSONResponse(result)


async def remove(request: Request) -> Response:
    """DELETE /api/v1/listings/{key} with {"reason", "category"?, "source"?}: end it."""
    token = await authenticate(request, write=True)
    state: State = request.app.state.web
    try:
        key = parse_key(request.path_params["key"])
    except LedgerError as exc:
        raise bad("key", str(exc)) from None
    item = await _json(request)
    if not isinstance(item, dict):
        raise bad("body", "must be a JSON object")
    try:
        reason = parse_reason(str(item.get("reason") or ""))
    except LedgerError as exc:
        raise bad("reason", str(exc)) from None
    if not reason:
        raise bad("reason", "is required")
    category = None
    if item.get("category") is not None:
        try:
            category = state.config.category(str(item["category"])).name
        except LedgerError as exc:
            raise bad("category", str(exc)) from None
    sources = token.source_list
    if item.get("source") is not None:
        _may_write(token, str(item["source"]))
        sources = (str(item["source"]),)
    ended = await state.change(actions.remove, state.config, key, category, sources, reason,
                               f"token:{token.name}")
    if not ended:
        raise ApiError(404, f"{key.text}: no live listing from "
                            f"{', '.join(sources)} to remove")
    return JSONResponse({"key": key.text, "removed": [e.as_dict() for e in ended]})


async def search(request: Request) -> Response:
    """GET /api/v1/listings?category=&source=&expiring_within=&added_since=&all=
    &limit=&offset=: one page of the listings found, and the next page's offset."""
    await authenticate(request, write=False)
    state: State = request.app.state.web
    query = request.query_params
    filters: dict[str, Any] = {}
    at = now()
    try:
        field = "category"
        if query.get("category"):
            filters["category"] = state.config.category(query["category"]).name
        if query.get("source"):
            filters["source"] = query["source"]
        field = "expiring_within"
        if query.get("expiring_within"):
            filters["expiring_before"] = at + parse_duration(query["expiring_within"])
        field = "added_since"
        if query.get("added_since"):
            filters["since"] = parse_when(query["added_since"])
    except LedgerError as exc:
        raise bad(field, str(exc)) from None
    filters["active"] = query.get("all", "") not in ("1", "true", "yes")
    limit, offset = _page(request)
    return JSONResponse(await state.ledger(actions.search, limit, offset, **filters))


async def changes(request: Request) -> Response:
    """GET /api/v1/changes?limit=&before=: the audit, newest first, one page; the
    next page is ``before`` the id of this one's last (``next_before``)."""
    await authenticate(request, write=False)
    state: State = request.app.state.web
    limit = _number(request, "limit", 100, 1, MAX_RESULTS)
    before = (_number(request, "before", 0, 1, 2**62)
              if "before" in request.query_params else None)
    rows = await state.ledger(lambda store: store.changes(limit + 1, before))
    return JSONResponse({
        "changes": [dict(entry.as_dict(), id=id_) for id_, entry in rows[:limit]],
        "next_before": rows[limit - 1][0] if len(rows) > limit else None})


async def requests(request: Request) -> Response:
    """GET /api/v1/requests?state=pending: removal requests."""
    await authenticate(request, write=False)
    state: State = request.app.state.web
    wanted = request.query_params.get("state", "pending")
    if wanted not in ("pending", "approved", "rejected", "all"):
        raise bad("state", "one of pending, approved, rejected, all")
    found = await state.ledger(lambda store: RemovalRequests(store).in_state(
        None if wanted == "all" else wanted))
    return JSONResponse({"requests": [r.as_dict() for r in found]})


async def decide(request: Request) -> Response:
    """POST /api/v1/requests/{id}/approve|reject: approving removes the key's
    listings from the token's sources, with the request as the reason."""
    token = await authenticate(request, write=True)
    state: State = request.app.state.web
    verdict = request.path_params["verdict"]
    if verdict not in ("approve", "reject"):
        raise ApiError(404, f"no such action {verdict!r} (approve or reject)")
    who = f"token:{token.name}"
    decided, ended = await state.change(actions.decide, state.config,
                                        request.path_params["id"], verdict == "approve",
                                        token.source_list, who)
    if decided is None:
        raise ApiError(404, f"removal request {request.path_params['id']}: none pending")
    result: dict[str, Any] = {"request": decided.as_dict()}
    if verdict == "approve":
        result["removed"] = [e.as_dict() for e in ended]
    return JSONResponse(result)


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


ROUTES = [
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    Route("/api/v1/listings", search, methods=["GET"]),
    Route("/api/v1/listings", create, methods=["POST"]),
    Route("/api/v1/listings/bulk", bulk, methods=["POST"]),
    Route("/api/v1/listings/{key:path}", get, methods=["GET"]),
    Route("/api/v1/listings/{key:path}", remove, methods=["DELETE"]),
    Route("/api/v1/changes", changes, methods=["GET"]),
    Route("/api/v1/requests", requests, methods=["GET"]),
    Route("/api/v1/requests/{id:int}/{verdict:str}", decide, methods=["POST"]),
]
