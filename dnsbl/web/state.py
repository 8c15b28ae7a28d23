"""What every handler shares: the configuration, the ledger thread, the limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from dnsbl.ledger.config import LedgerConfig
from dnsbl.web.errors import ApiError
from dnsbl.web.ledger import LedgerThread
from dnsbl.web.ratelimit import RateLimiter

T = TypeVar("T")


@dataclass
class State:
    config: LedgerConfig
    ledger: LedgerThread
    api_limit: RateLimiter = field(init=False)
    lookup_limit: RateLimiter = field(init=False)
    request_limit: RateLimiter = field(init=False)
    login_limit: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        web = self.config.web
        self.api_limit = RateLimiter(web.api_rate, 1.0)
        self.lookup_limit = RateLimiter(web.lookup_rate, 60.0)
        self.request_limit = RateLimiter(web.request_rate, 3600.0)
        # Failed logins per client address: five, then one a minute.
        self.login_limit = RateLimiter(5, 300.0)

    async def change(self, fn: Callable[..., tuple[T, list[bytes] | None]], *args: Any) -> T:
        """Run a change of :mod:`dnsbl.web.actions` on the ledger, then have what
        it touched published (shortly, with the changes meanwhile)."""
        result, changed = await self.ledger(fn, *args)
        if changed != []:
            self.ledger.publish_soon(changed)
        return result


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is longer than ``limit`` bytes
    (by its Content-Length, or while it streams in without one)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body is {declared} bytes; at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
