"""Token buckets per client (an address, an API token): in memory, bounded."""

from __future__ import annotations

import time
from collections import OrderedDict

#: Clients remembered per limiter; the least recently seen is forgotten first,
#: so a flood of new addresses cannot grow memory without bound.
MAX_CLIENTS = 100_000


class RateLimiter:
    """``rate`` requests per ``per`` seconds, with a burst of ``rate``."""

    def __init__(self, rate: int, per: float) -> None:
        self.capacity = float(rate)
        self.refill = rate / per
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str, now: float | None = None) -> bool:
        """Take one request from ``client``'s bucket; False when it is empty."""
        at = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (self.capacity, at))
        tokens = min(self.capacity, tokens + (at - last) * self.refill)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, at)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return allowed

    def exhausted(self, client: str, now: float | None = None) -> bool:
        """True when ``client`` has no request left (nothing is taken)."""
        at = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(client, (self.capacity, at))
        return min(self.capacity, tokens + (at - last) * self.refill) < 1.0

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` has a request again."""
        tokens, _ = self._buckets.get(client, (self.capacity, 0.0))
        return max(1, int((1.0 - tokens) / self.refill + 0.999))
