"""The Starlette application of ``dnsbl web``: routes, errors as JSON, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.model import now
from dnsbl.ledger.requests import RemovalRequests
from dnsbl.web import api, public, ui
from dnsbl.web.errors import ApiError
from dnsbl.web.follow import LogFollower
from dnsbl.web.ledger import LedgerThread
from dnsbl.web.state import State


class Metrics:
    """The web application's own registry: not the server's."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dnsbl_web_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.listings = Gauge("dnsbl_ledger_listings", "live listings by category and source",
                              ["category", "source"], registry=self.registry)
        self.pending = Gauge("dnsbl_ledger_removal_requests_pending",
                             "removal requests waiting for an analyst", registry=self.registry)


class CountRequests:
    """Counts each response by its route's template (not its path: a metric per
    address looked up would grow without bound)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(name, str(status[0])).inc()


#: Seconds the listings gauge is reused between scrapes. Counting them reads
#: every listing (one to two seconds for a million, on a connection of its own
#: so that the API does not wait): a scrape every few seconds must not do that
#: each time.
LISTINGS_TTL = 30.0


def build_app(config: LedgerConfig) -> Starlette:
    """The application over the ledger of ``config`` (opened at start-up)."""
    metrics = Metrics()
    counted = [-LISTINGS_TTL]  # when the listings gauge was last set (monotonic)

    async def metrics_page(request: Request) -> Response:
        state: State = request.app.state.web
        if time.monotonic() - counted[0] >= LISTINGS_TTL:
            counted[0] = time.monotonic()  # one count at a time, even when scrapes overlap
            counts = await state.ledger.read(lambda store: store.live_counts(now()))
            metrics.listings.clear()
            for category, source, count in counts:
                metrics.listings.labels(category, source).set(count)
        # Pending requests: an indexed count, fresh on every scrape.
        metrics.pending.set(await state.ledger(lambda store: RemovalRequests(store).pending()))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        titles = {413: "Too large", 503: "Busy"}
        if not request.url.path.startswith("/api/") and exc.status in titles and \
                "application/json" not in request.headers.get("accept", ""):
            return public.render(request, "message.html", {
                "title": titles[exc.status], "message": exc.message},
                status_code=exc.status, headers=exc.headers)
        return exc.response()

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        detail = getattr(exc, "detail", "not found")
        return JSONResponse({"error": f"{request.url.path}: {detail}", "status": status},
                            status)

    async def server_error(request: Request, exc: Exception) -> Response:
        # The ledger unusable now (locked, full disk) or a bug: one line, no traceback.
        return JSONResponse({"error": f"the request failed: {exc}", "status": 500}, 500)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        follower = LogFollower(config) if config.sightings.logs else None
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            app.state.web.ledger.close()

    app = Starlette(routes=[*public.ROUTES, *api.ROUTES, *ui.ROUTES,
                            Route("/metrics", metrics_page, methods=["GET"])],
                    exception_handlers={ApiError: api_error, 404: not_found,
                                        405: not_found, Exception: server_error},
                    lifespan=lifespan)
    app.state.web = State(config, LedgerThread(config))
    app.add_middleware(CountRequests, metrics=metrics)
    return app
