"""The public pages: ``/lookup?ip=`` (HTML, or JSON by Accept) and the removal
request form under it. Nothing here changes a listing; what is not public
(private sources, sources of categories not public, refs, who entered what,
history) is never shown. Both are rate limited per client address."""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from dnsbl.ledger.model import LedgerError, iso, now, parse_key
from dnsbl.ledger.requests import RemovalRequests
from dnsbl.web import actions
from dnsbl.web.render import render

__all__ = ["ROUTES", "render"]
from dnsbl.web.state import State, client_address, read_body

CSRF_COOKIE = "dnsbl_csrf"
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,190}\.[^@\s<>\"']{2,63}$")
MAX_MESSAGE = 2000


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def csrf_token(request: Request) -> str:
    """The client's CSRF token (double-submit: a cookie and the same value in
    each form); a new one when it has none."""
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if len(token) == 43 else secrets.token_urlsafe(32)


def set_csrf(request: Request, response: Response, token: str) -> Response:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
    return response


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf", "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def _limited(request: Request, json: bool, retry: int) -> Response:
    message = "too many requests from your address; try again later"
    headers = {"Retry-After": str(retry)}
    if json:
        return JSONResponse({"error": message, "status": 429}, 429, headers=headers)
    return render(request, "message.html", {"title": "Slow down", "message": message},
                  status_code=429, headers=headers)


async def lookup(request: Request) -> Response:
    state: State = request.app.state.web
    as_json = wants_json(request)
    client = client_address(request)
    if not state.lookup_limit.allow(client):
        return _limited(request, as_json, state.lookup_limit.retry_after(client))
    text = request.query_params.get("ip", "").strip()
    context: dict[str, Any] = {"ip": text, "zones": None, "error": "",
                               "instructions": state.config.web.removal_instructions}
    status = 200
    if text:
        try:
            key = parse_key(text)
            if "/" in key.text:
                raise LedgerError(f"give one address, not a network: {text!r}")
        except LedgerError as exc:
            context["error"], status = str(exc), 400
        else:
            found = await state.ledger(actions.lookup, state.config, key)
            context["ip"] = key.text
            context["zones"] = {zone: [
                {"category": item.category, "reason": item.reason, "since": iso(item.since),
                 "expires": iso(item.expires), **({"source": item.source} if item.source
                                                  else {})} for item in items]
                for zone, items in found.items()}
    if as_json:
        if context["error"]:
            return JSONResponse({"error": f"ip: {context['error']}", "field": "ip",
                                 "status": 400}, 400)
        if not text:
            return JSONResponse({"error": "ip: is required", "field": "ip", "status": 400},
                                400)
        return JSONResponse({"ip": context["ip"], "zones": [
            {"zone": zone, "listed": bool(items), "listings": items}
            for zone, items in context["zones"].items()],
            "removal_instructions": context["instructions"]})
    token = csrf_token(request)
    context["csrf"] = token
    context["listed"] = bool(context["zones"]) and any(context["zones"].values())
    return set_csrf(request, render(request, "lookup.html", context, status_code=status),
                    token)


async def removal_request(request: Request) -> Response:
    """POST /lookup/request: queue a request for an analyst; changes no listing."""
    state: State = request.app.state.web
    body = await read_body(request, state.config.web.max_body)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if not csrf_ok(request, form):
        return render(request, "message.html", {
            "title": "Form expired", "message": "the form's security token is missing or "
                                                "wrong; reload the lookup page and send it "
                                                "again"}, status_code=403)
    client = client_address(request)
    if not state.request_limit.allow(client):
        return _limited(request, False, state.request_limit.retry_after(client))
    problems = []
    try:
        key = parse_key(form.get("ip", ""))
        if "/" in key.text:
            raise LedgerError("give one address")
    except LedgerError as exc:
        problems.append(f"address: {exc}")
    contact = form.get("contact", "").strip()
    if not _EMAIL.match(contact):
        problems.append("contact: an e-mail address we can answer")
    message = " ".join(form.get("message", "").split())
    if len(message) > MAX_MESSAGE:
        problems.append(f"message: at most {MAX_MESSAGE} characters")
    if not problems:
        found = await state.ledger(actions.lookup, state.config, key)
        if not any(found.values()):
            problems.append(f"address: {key.text} is not listed; nothing to remove")
    if problems:
        return render(request, "message.html", {"title": "Not sent",
                                                "message": "; ".join(problems)},
                      status_code=400)
    request_id, new = await state.ledger(
        lambda store: RemovalRequests(store).request(key.text, contact, message, client, now()))
    text = (f"Your request #{request_id} to remove {key.text} is queued for an analyst."
            if new else f"A request to remove {key.text} is already pending "
                        f"(#{request_id}); it was not sent again.")
    return render(request, "message.html", {"title": "Request received", "message": text})


async def home(request: Request) -> Response:
    return RedirectResponse("/lookup", 303)


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/lookup", lookup, methods=["GET"]),
    Route("/lookup/request", removal_request, methods=["POST"]),
]
