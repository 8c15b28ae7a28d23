"""What an operator asks of a running server, and how the answers read.

``dnsbl ctl`` asks for a status, a reload or a query over the control socket
(:mod:`dnsbl.control`); SIGUSR1 and SIGUSR2 log the statistics, as rbldnsd's
do. Requests and replies are JSON objects; every reply has ``ok`` and, when
the server says no, ``error``. With workers the supervisor passes requests on
and folds the replies with :func:`merge_status` and :func:`merge_reloads`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dnsbl.answer import FAST_PATH
from dnsbl.config import ServerConfig
from dnsbl.reload import CheckResult, DatasetStatus
from dnsbl.stats import RCODE_LABELS, Stats, ZoneStats
from dnsbl.zones import Snapshot, dataset_key

if TYPE_CHECKING:
    from dnsbl.server import Server

log = logging.getLogger(__name__)

#: The code that answers the common questions: "compiled" or "python".
ANSWERING = FAST_PATH
COMMANDS = ("status", "reload", "query")


def invalid(config: ServerConfig, request: Any) -> str | None:
    """Why ``request`` cannot be done (an unknown command or zone); None if it can."""
    if not isinstance(request, dict) or request.get("command") not in COMMANDS:
        return f"unknown command; the commands are {', '.join(COMMANDS)}"
    zone = request.get("zone")
    if request["command"] == "reload":
        if zone is not None and (not isinstance(zone, str)
                                 or zone.rstrip(".").lower() not in _zone_names(config)):
            return f"no zone {zone!r}; the zones are {', '.join(_zone_names(config))}"
        if request.get("accept_shrink") and zone is None:
            return "--accept-shrink needs the ZONE whose shrink to accept"
    if request["command"] == "query":
        target = request.get("target")
        if not isinstance(target, str) or not target or len(target) > 255 or any(
                c.isspace() or not c.isprintable() for c in target):
            return "query needs an IP address or a domain name"
        if _looks_like_an_address(target):
            try:
                ipaddress.ip_address(target)
            except ValueError:
                return f"{target!r} is not a valid IP address"
    return None


def zone_of(request: dict[str, Any]) -> str | None:
    """The zone a valid request names, as the configuration spells it."""
    zone = request.get("zone")
    return zone.rstrip(".").lower() if zone else None


def _zone_names(config: ServerConfig) -> list[str]:
    return [z.name for z in config.zones]


def _looks_like_an_address(text: str) -> bool:
    return ":" in text or "/" in text or all(c.isdigit() or c == "." for c in text)


async def handle(server: Server, request: Any) -> dict[str, Any]:
    """Do ``request`` in one server process; the reply."""
    problem = invalid(server.config, request)
    if problem:
        return {"ok": False, "error": problem}
    if request["command"] == "status":
        return status(server)
    if request["command"] == "reload":
        assert server.reloader is not None
        zone = zone_of(request)
        result = await server.reloader.check_soon(zone, bool(request.get("accept_shrink")))
        return reload_reply(result, zone)
    from dnsbl.explain import replies, report

    zoneset = server.zoneset()
    answers = replies(request["target"], zoneset)
    # The data lines are read from the files: in a thread, never on the loop.
    lines, listed = await asyncio.to_thread(report, answers, zoneset)
    return {"ok": True, "listed": listed, "lines": lines}


def reload_reply(result: CheckResult, zone: str | None) -> dict[str, Any]:
    """ok unless a zone asked for (every zone, without ``zone``) failed to
    load, or a shrink to accept had nothing to rebuild."""
    failed = {z: why for z, why in result.failed.items() if zone is None or z == zone}
    lapsed = [z for z in result.lapsed if z == zone]
    reply: dict[str, Any] = {"ok": not failed and not lapsed, "reloaded": result.reloaded,
                             "failed": result.failed, "lapsed": result.lapsed}
    if lapsed:
        reply["error"] = (f"zone {zone}: nothing to rebuild, so no shrink to accept; "
                          "the shrink guard stays on")
    elif failed:
        reply["error"] = "; ".join(f"zone {z}: {why}" for z, why in failed.items())
    return reply


def status(server: Server) -> dict[str, Any]:
    """Zones, serials, entries, data age, last reload and its result, failures."""
    now = time.time()
    current = server.zoneset()
    reloads = server.reload_status()
    zones = []
    for zone_config in server.config.zones:
        zone = current.by_name(zone_config.name)
        datasets: list[dict[str, Any]] = []
        for key in (dataset_key(d) for d in zone_config.datasets):
            state = reloads.get(key) or DatasetStatus()
            loaded = current.datasets.get(key)
            datasets.append({
                "type": key[0], "files": list(key[1]), "loaded": loaded is not None,
                "entries": loaded.listed if loaded else 0,
                "data_age": round(now - loaded.mtime, 1) if loaded else None,
                "loads": state.loads, "failures": dict(state.failures),
                "last_load": state.last_success or None,
                "last_attempt": state.last_attempt or state.last_success or None,
                "last_error": state.last_error or None})
        attempts = [d for d in datasets if d["last_attempt"]]
        last = max(attempts, key=lambda d: d["last_attempt"]) if attempts else None
        errors = [f"{d['type']} {','.join(d['files'])}: {d['last_error']}"
                  for d in datasets if d["last_error"]]
        ages = [d["data_age"] for d in datasets if d["data_age"] is not None]
        zones.append({
            "name": zone_config.name,
            "loaded": bool(zone and zone.loaded), "expired": bool(zone and zone.expired),
            "serial": zone.serial if zone else None, "entries": zone.entries if zone else 0,
            "data_age": max(ages) if ages else None,
            "last_reload": last["last_attempt"] if last else None,
            "last_result": "; ".join(errors) if errors else "ok",
            "failures": sum(sum(d["failures"].values()) for d in datasets),
            "datasets": datasets})
    return {"ok": True, "pid": os.getpid(), "uptime": round(server.uptime(), 1),
            "answering": ANSWERING, "loop": server.loop_name, "workers": None, "zones": zones}


def merge_status(own: dict[str, Any], replies: Sequence[dict[str, Any] | None],
                 workers: list[dict[str, Any]]) -> dict[str, Any]:
    """The supervisor's status: its own pid and uptime, every worker's state,
    and the zones as the first worker that answered sees them (every worker
    loads the same files), with failures summed and each worker's serials."""
    answered = [r for r in replies if r and r.get("ok")]
    zones = answered[0]["zones"] if answered else []
    for zone in zones:
        zone["failures"] = sum(z["failures"] for r in answered for z in r["zones"]
                               if z["name"] == zone["name"])
    for worker, reply in zip(workers, replies, strict=False):
        if reply and reply.get("ok"):
            worker["serials"] = {z["name"]: z["serial"] for z in reply["zones"]}
    return {**own, "ok": True, "answering": ANSWERING,
            "loop": answered[0]["loop"] if answered else "", "workers": workers, "zones": zones}


def merge_reloads(replies: Sequence[dict[str, Any]], zone: str | None
                  ) -> dict[str, Any]:
    """One reply for a reload every worker did: what any worker reloaded or
    failed, ok only if every one was."""
    result = CheckResult()
    for reply in replies:
        result.reloaded += [z for z in reply.get("reloaded", ()) if z not in result.reloaded]
        result.failed.update(reply.get("failed", {}))
        result.lapsed += [z for z in reply.get("lapsed", ()) if z not in result.lapsed]
    merged = reload_reply(result, zone)
    unanswered = [r["error"] for r in replies if "reloaded" not in r]
    if unanswered:
        merged["ok"] = False
        merged["error"] = "; ".join(unanswered)
    return merged


# -- how the answers read, for dnsbl ctl ---------------------------------------------------

def render_status(reply: dict[str, Any]) -> Iterator[str]:
    yield (f"dnsbl pid {reply['pid']}, up {_duration(reply['uptime'])}, answering with "
           f"{reply['answering']} on {reply['loop']}")
    for worker in reply["workers"] or ():
        yield (f"worker {worker['index']}: pid {worker['pid']}, {worker['state']}, "
               f"{worker['restarts']} restart(s)")
    now = time.time()
    for zone in reply["zones"]:
        state = ("expired" if zone["expired"] else "loaded") if zone["loaded"] else "NOT LOADED"
        age = "" if zone["data_age"] is None else f", data {_duration(zone['data_age'])} old"
        last = ("" if zone["last_reload"] is None
                else f"last load {_duration(now - zone['last_reload'])} ago: "
                     f"{zone['last_result']}")
        yield (f"zone {zone['name']}: {state}, serial {zone['serial']}, "
               f"{zone['entries']} entries{age}, {zone['failures']} failed load(s)")
        if last:
            yield f"  {last}"
        for dataset in zone["datasets"]:
            yield (f"  {dataset['type']} {','.join(dataset['files'])}: "
                   f"{dataset['entries']} entries, {dataset['loads']} load(s)"
                   + "".join(f", {n} {why}" for why, n in sorted(dataset["failures"].items())))


def render_reload(reply: dict[str, Any]) -> Iterator[str]:
    for zone in reply.get("reloaded", ()):
        yield f"reloaded zone {zone}"
    for zone, why in reply.get("failed", {}).items():
        yield f"zone {zone}: not reloaded, still serving the previous data: {why}"
    if not reply.get("reloaded") and not reply.get("failed"):
        yield "no zone file changed; nothing to reload"


def _duration(seconds: float) -> str:
    """``4s``, ``3m4s``, ``2h3m``, ``1d2h``: the two largest units."""
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


# -- SIGUSR1 and SIGUSR2 ---------------------------------------------------------------------

class Statistics:
    """Counts since start or the last reset, logged on SIGUSR1 (and reset on
    SIGUSR2), as rbldnsd does. The counters themselves are never reset: the
    Prometheus series must only go up; a reset moves the baseline."""

    def __init__(self) -> None:
        self._since = time.monotonic()
        self._reset = False  # whether a reset started this period
        self._base: dict[str, tuple[int, ...]] = {}  # by zone; "": no zone, drops

    def log(self, zoneset: Snapshot, stats: Stats, uptime: float, reset: bool = False) -> None:
        now = {zone.name: _counts(zone.stats) for zone in zoneset.zones.values()}
        now[""] = (*_counts(stats.unzoned), sum(stats.dropped), sum(stats.malformed))
        delta = {name: tuple(n - b for n, b in zip(counts, self._base.get(name, counts),
                                                   strict=True))
                 if name in self._base else counts for name, counts in now.items()}
        period = (f"statistics for {_duration(time.monotonic() - self._since)} (since "
                  f"{'the last reset' if self._reset else 'start'})")
        for zone in zoneset.zones.values():
            queries, listed, not_listed, *rcodes = delta[zone.name]
            log.info("%s: zone %s: %d queries (%s), %d listed, %d not listed; %d entries",
                     period, zone.name, queries, _rcodes(rcodes), listed, not_listed,
                     zone.entries)
        queries, _listed, _not_listed, *rest = delta[""]
        *rcodes, dropped, malformed = rest
        log.info("%s: %d queries in no zone (%s), %d dropped, %d malformed; up %s", period,
                 queries, _rcodes(rcodes), dropped, malformed, _duration(uptime))
        if reset:
            self._base = now
            self._since = time.monotonic()
            self._reset = True
            log.info("statistics reset")


def _counts(stats: ZoneStats) -> tuple[int, ...]:
    """Queries, listed, not listed, then answers by rcode."""
    return (sum(stats.requests), *stats.lookups, *stats.rcodes)


def _rcodes(counts: Sequence[int]) -> str:
    named = [f"{RCODE_LABELS.get(code, str(code))} {n}" for code, n in enumerate(counts) if n]
    return ", ".join(named) or "none answered"
