"""``/ui``: the analysts' pages. A login (scrypt password) starts a session kept
in the ledger (the cookie holds a random id, the ledger its SHA-256); every form
carries a CSRF token derived from the session, and a post without it is 403."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dnsbl.ledger.access import Access
from dnsbl.ledger.model import (
    LedgerError,
    Report,
    iso,
    now,
    parse_expiry,
    parse_key,
    parse_reason,
)
from dnsbl.ledger.passwords import check_password
from dnsbl.ledger.requests import RemovalRequests
from dnsbl.ledger.show import show
from dnsbl.ledger.sighted import Sightings
from dnsbl.ledger.sightings import DAY
from dnsbl.ledger.tokens import digest
from dnsbl.web import actions
from dnsbl.web.public import csrf_ok, csrf_token, set_csrf
from dnsbl.web.render import render
from dnsbl.web.state import State, client_address, read_body

SESSION_COOKIE = "dnsbl_session"
#: Rows of a list a page shows (recent changes, expiring, a network's listings);
#: "older" and "more" links walk the rest.
PAGE = 100
SESSION_SECONDS = 8 * 3600
EXPIRING_SOON = 2 * 86400


def _whole(request: Request, name: str) -> int | None:
    """A whole-number query parameter; None when absent or not one (a page's
    link, so a bad one gives the first page rather than an error)."""
    text = request.query_params.get(name, "")
    return int(text) if text.isdigit() and len(text) < 19 else None


def _csrf_for(session: str) -> str:
    return hmac.new(session.encode(), b"csrf", hashlib.sha256).hexdigest()


async def _form(request: Request) -> dict[str, str]:
    body = await read_body(request, request.app.state.web.config.web.max_body)
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


async def _analyst(request: Request) -> str | None:
    session = request.cookies.get(SESSION_COOKIE, "")
    if not session:
        return None
    state: State = request.app.state.web
    return await state.ledger(lambda store: Access(store).session_analyst(digest(session), now()))


def _page(request: Request, name: str, analyst: str, status_code: int = 200,
          headers: dict[str, str] | None = None, **context: Any) -> Response:
    csrf = _csrf_for(request.cookies.get(SESSION_COOKIE, ""))
    return render(request, name, {"analyst": analyst, "csrf": csrf, **context},
                  status_code=status_code, headers=headers)


def _forbidden(request: Request) -> Response:
    return render(request, "message.html", {
        "title": "Form expired", "message": "the form's security token is missing or wrong; "
                                            "reload the page and send it again"},
        status_code=403)


def _to_login() -> Response:
    return RedirectResponse("/ui/login", 303)


async def _posted(request: Request) -> tuple[str, dict[str, str]] | Response:
    """A form posted in a session: (the analyst, the form), or the answer to
    give instead (to the login page without a session, 403 without the CSRF token)."""
    analyst = await _analyst(request)
    if analyst is None:
        return _to_login()
    form = await _form(request)
    if not hmac.compare_digest(form.get("csrf", ""),
                               _csrf_for(request.cookies.get(SESSION_COOKIE, ""))):
        return _forbidden(request)
    return analyst, form


Page = Callable[[Request, str, State], Awaitable[Response]]
FormPost = Callable[[Request, str, dict[str, str], State], Awaitable[Response]]


def _signed_in(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for analysts: without a session, the login page instead."""
    @functools.wraps(page)
    async def handler(request: Request) -> Response:
        analyst = await _analyst(request)
        if analyst is None:
            return _to_login()
        return await page(request, analyst, request.app.state.web)
    return handler


def _form_post(post: FormPost) -> Callable[[Request], Awaitable[Response]]:
    """A form posted by an analyst, its CSRF token checked (see :func:`_posted`)."""
    @functools.wraps(post)
    async def handler(request: Request) -> Response:
        posted = await _posted(request)
        if isinstance(posted, Response):
            return posted
        analyst, form = posted
        return await post(request, analyst, form, request.app.state.web)
    return handler


async def login_page(request: Request) -> Response:
    token = csrf_token(request)
    return set_csrf(request, render(request, "ui_login.html", {"csrf": token, "error": ""}),
                    token)


async def login(request: Request) -> Response:
    state: State = request.app.state.web
    form = await _form(request)
    if not csrf_ok(request, form):
        return _forbidden(request)
    client = client_address(request)
    token = csrf_token(request)
    if state.login_limit.exhausted(client):
        return set_csrf(request, render(request, "ui_login.html", {
            "csrf": token, "error": "too many failed logins; wait a few minutes"},
            status_code=429, headers={"Retry-After": str(state.login_limit.retry_after(
                client))}), token)
    name, password = form.get("name", ""), form.get("password", "")
    stored = await state.ledger(lambda store: Access(store).analyst_password(name))
    if not check_password(password, stored):
        state.login_limit.allow(client)  # counts the failure
        # The same words whether the name or the password was wrong.
        return set_csrf(request, render(request, "ui_login.html", {
            "csrf": token, "error": "wrong name or password"}, status_code=401), token)
    session = secrets.token_urlsafe(32)
    await state.ledger(lambda store: Access(store).start_session(
        digest(session), name, now() + SESSION_SECONDS, now()))
    response = RedirectResponse("/ui", 303)
    response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/ui")
    return response


async def logout(request: Request) -> Response:
    form = await _form(request)
    session = request.cookies.get(SESSION_COOKIE, "")
    if not session or not hmac.compare_digest(form.get("csrf", ""), _csrf_for(session)):
        return _forbidden(request)
    state: State = request.app.state.web
    await state.ledger(lambda store: Access(store).end_session(digest(session)))
    response = _to_login()
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@_signed_in
async def home(request: Request, analyst: str, state: State) -> Response:
    at = now()
    before = _whole(request, "before")
    offset = _whole(request, "offset") or 0
    recent = await state.ledger(lambda store: store.changes(PAGE + 1, before))
    expiring = await state.ledger(actions.search, PAGE, offset,
                                  expiring_before=at + EXPIRING_SOON)
    pending = await state.ledger(lambda store: RemovalRequests(store).in_state("pending"))
    return _page(request, "ui_home.html", analyst,
                 recent=[e.as_dict() for _, e in recent[:PAGE]],
                 older=recent[PAGE - 1][0] if len(recent) > PAGE else None,
                 expiring=expiring, pending=len(pending),
                 categories=[c.name for c in state.config.categories])


@_signed_in
async def search(request: Request, analyst: str, state: State) -> Response:
    text = request.query_params.get("q", "").strip()
    try:
        key = parse_key(text)
    except LedgerError as exc:
        return _page(request, "ui_search.html", analyst, 400, q=text, error=str(exc),
                     result=None, categories=[])
    result = await state.ledger(show, key, PAGE, _whole(request, "offset") or 0)
    return _page(request, "ui_search.html", analyst, q=key.text, error="", result=result,
                 categories=[c.name for c in state.config.categories])


@_form_post
async def change(request: Request, analyst: str, form: dict[str, str],
                 state: State) -> Response:
    """POST /ui/add and /ui/remove: a listing changed by the analyst."""
    who = f"web:{analyst}"
    at = now()
    try:
        key = parse_key(form.get("key", ""))
        reason = parse_reason(form.get("reason", "").strip())
        if not reason:
            raise LedgerError("reason: is required")
        if request.url.path.endswith("/add"):
            category = state.config.category(form.get("category", ""))
            source = form.get("source", "").strip()
            if not source or any(c.isspace() or c == "," for c in source):
                raise LedgerError("source: one word, the team or feed that reported it")
            expires = (parse_expiry(form["expires"], at) if form.get("expires")
                       else at + category.lifetime)
            report = Report(key, category.name, source, reason, at, expires, "", 100, None,
                            False, who)
            await state.change(actions.add, state.config, [report], who, "web add")
        else:
            sources = [form["source"]] if form.get("source") else None
            await state.change(actions.remove_any, state.config, key, form.get("category") or None,
                               sources, reason, who)
    except LedgerError as exc:
        return _page(request, "ui_search.html", analyst, 400, q=form.get("key", ""),
                     error=str(exc), result=None, categories=[])
    return RedirectResponse(f"/ui/search?q={quote(key.text)}", 303)


@_signed_in
async def requests_page(request: Request, analyst: str, state: State) -> Response:
    pending = await state.ledger(lambda store: RemovalRequests(store).in_state("pending"))
    return _page(request, "ui_requests.html", analyst,
                 requests=[r.as_dict() for r in pending])


@_form_post
async def decide(request: Request, analyst: str, form: dict[str, str],
                 state: State) -> Response:
    verdict = form.get("verdict", "")
    if verdict not in ("approve", "reject"):
        return _to_login()
    await state.change(actions.decide, state.config, request.path_params["id"],
                       verdict == "approve", None, f"web:{analyst}")
    return RedirectResponse("/ui/requests", 303)


@_signed_in
async def tokens_page(request: Request, analyst: str, state: State) -> Response:
    return await _tokens(request, analyst, state)


async def _tokens(request: Request, analyst: str, state: State, status_code: int = 200,
                  headers: dict[str, str] | None = None, **context: Any) -> Response:
    tokens = await state.ledger(lambda store: Access(store).tokens())
    context = {"created": None, "error": "", "form": {}, **context}
    return _page(request, "ui_tokens.html", analyst, status_code, headers,
                 tokens=[t.as_dict() for t in tokens], **context)


@_form_post
async def create_token(request: Request, analyst: str, form: dict[str, str],
                       state: State) -> Response:
    """POST /ui/tokens: a new token, its secret shown on this answer only."""
    at = now()
    who = f"web:{analyst}"
    sources = tuple(form.get("sources", "").replace(",", " ").split())
    try:
        expires = parse_expiry(form["expires"], at) if form.get("expires") else None
        secret, token = await state.ledger(lambda store: Access(store).create_token(
            form.get("name", "").strip(), sources, form.get("read_only") == "1", expires,
            who, at))
    except LedgerError as exc:
        return await _tokens(request, analyst, state, 400, error=str(exc), form=form)
    # Never stored nor cached anywhere: this page is the only time it is seen.
    return await _tokens(request, analyst, state, 201, created={
        "name": token.name, "secret": secret}, headers={"Cache-Control": "no-store"})


@_form_post
async def revoke(request: Request, analyst: str, form: dict[str, str],
                 state: State) -> Response:
    name = form.get("name", "")
    await state.ledger(lambda store: Access(store).revoke_token(name, f"web:{analyst}", now()))
    return RedirectResponse("/ui/tokens", 303)


@_signed_in
async def sightings(request: Request, analyst: str, state: State) -> Response:
    """GET /ui/sightings?days=N: the most looked-up listed keys of the last N days."""
    days = request.query_params.get("days", "7")
    if not days.isdigit() or not 1 <= int(days) <= 366:
        days = "7"
    since = now() // DAY - int(days) + 1
    top = await state.ledger(lambda store: Sightings(store).top(since_day=since, limit=100))
    return _page(request, "ui_sightings.html", analyst, days=int(days), sightings=[
        {"key": key, "lookups": lookups, "resolvers": resolvers, "first": iso(first),
         "last": iso(last)} for key, lookups, resolvers, first, last in top])


ROUTES = [
    Route("/ui/login", login_page, methods=["GET"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui", home, methods=["GET"]),
    Route("/ui/search", search, methods=["GET"]),
    Route("/ui/add", change, methods=["POST"]),
    Route("/ui/remove", change, methods=["POST"]),
    Route("/ui/requests", requests_page, methods=["GET"]),
    Route("/ui/requests/{id:int}", decide, methods=["POST"]),
    Route("/ui/tokens", tokens_page, methods=["GET"]),
    Route("/ui/tokens", create_token, methods=["POST"]),
    Route("/ui/tokens/revoke", revoke, methods=["POST"]),
    Route("/ui/sightings", sightings, methods=["GET"]),
]
