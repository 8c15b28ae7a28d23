"""Timing for tests that must pass on any host: bounded waits for a condition,
and time limits scaled by how fast this host runs Python.

A test waits for what it needs (``wait_for``) instead of sleeping a time tuned
on one machine; where it asserts that something took at most so long, it
scales the bound with ``scaled`` so a host at half the speed, or one with a
CPU hog beside the suite, gets twice the room.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: What ``_workload`` takes, best of five, on the 2-core host the suite was
#: written on when idle. Only the ratio to it matters.
_REFERENCE_SECONDS = 0.02


def _workload() -> float:
    """Seconds for a fixed amount of the work tests do most: DNS messages
    built and parsed by dnspython."""
    import dns.message

    started = time.perf_counter()
    for i in range(300):
        dns.message.from_wire(dns.message.make_query(f"{i}.0.0.127.bl.test", "A").to_wire())
    return time.perf_counter() - started


def _time_factor() -> float:
    """How many times slower than the reference this host runs: at least 1.

    DNSBL_TEST_TIME_FACTOR raises it for a host known to be slow or loaded
    (an emulator, a shared CI runner); the measured ratio is used when larger.
    """
    try:
        wanted = float(os.environ.get("DNSBL_TEST_TIME_FACTOR", "1"))
    except ValueError:
        raise SystemExit("DNSBL_TEST_TIME_FACTOR must be a number, e.g. 3") from None
    measured = min(_workload() for _ in range(5)) / _REFERENCE_SECONDS
    return max(1.0, wanted, min(measured, 20.0))


#: Measured once per test process.
TIME_FACTOR = _time_factor()


def scaled(seconds: float) -> float:
    """``seconds`` on the reference host: as long as it takes here."""
    return seconds * TIME_FACTOR


def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
             what: str = "condition") -> float:
    """Seconds until ``predicate()`` is true; AssertionError once ``timeout``
    (seconds on the reference host, scaled to this one) passes. Polls every
    10 ms at first, backing off to 100 ms, so a quick condition is seen quickly."""
    limit = scaled(timeout)
    started = time.monotonic()
    pause = 0.01
    while not predicate():
        waited = time.monotonic() - started
        if waited > limit:
            raise AssertionError(f"{what} not reached within {limit:.1f} s")
        time.sleep(min(pause, max(0.0, limit - waited) + 0.001))
        pause = min(pause * 1.5, 0.1)
    return time.monotonic() - started


def retry(ask: Callable[[], T], retry_on: tuple[type[BaseException], ...],
          timeout: float = 10.0) -> T:
    """``ask()`` again while it raises one of ``retry_on`` (a UDP question lost
    on a loaded host), until ``timeout`` (reference seconds, scaled) passes;
    then the last error is raised."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        try:
            return ask()
        except retry_on:
            if time.monotonic() >= deadline:
                raise


def timestamp_line(expires_in: float) -> str:
    """A ``$TIMESTAMP`` line stamped 10 s ago whose data expires
    ``expires_in`` seconds from now on the reference host, scaled here (up to
    2 s later: the stamp has whole seconds), so a test has at least that long
    to see the data fresh before it expires."""
    stamp = time.strftime("%Y:%m:%d:%H:%M:%S", time.gmtime(time.time() - 10))
    return f"$TIMESTAMP {stamp} +{math.ceil(11 + scaled(expires_in))}s"
