"""Prometheus metrics, read at scrape time, and the HTTP endpoint that serves them.

The query path only bumps plain ints in lists (prometheus-client's
``Counter.inc()`` takes a lock per call); the collector here turns them into
metric families when Prometheus scrapes. ``/healthz`` and ``/readyz`` share the
port so a load balancer or anycast health check can withdraw a stale node.
"""

from __future__ import annotations

import asyncio
import operator
import platform
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from dnsbl.stats import (
    DROP_REASONS,
    MALFORMED_REASONS,
    PROTOS,
    QTYPE_LABELS,
    RCODE_LABELS,
    TCP_CLOSE_REASONS,
)

if TYPE_CHECKING:
    from dnsbl.ledger.config import LedgerConfig
    from dnsbl.reload import DatasetStatus
    from dnsbl.stats import Stats
    from dnsbl.zones import Snapshot

#: How the supervisor folds one series from every worker into one (``--workers``
#: above 1): "sum" for counts and shares of the work, "min" or "max" for what
#: every worker holds its own copy of, whichever is the conservative one (the
#: lowest serial and entries, the oldest data). A worker on older data lowers
#: the serial shown, it never raises it.
Fold = Literal["sum", "min", "max"]


class Series(NamedTuple):
    """One series of :class:`Collector`, as README "Metrics" lists it."""

    type: Literal["counter", "gauge"]
    #: None: the supervisor's own series, never sent by a worker.
    fold: Fold | None
    help: str


#: Every series this module exports, with its type, fold and help text (README "Metrics").
SERIES: dict[str, Series] = {
    "dnsbl_dns_requests_total": Series(
        "counter", "sum", "DNS queries received, by zone, query type and transport."),
    "dnsbl_dns_responses_total": Series(
        "counter", "sum", "DNS responses sent, by zone and response code."),
    "dnsbl_lookups_total": Series(
        "counter", "sum",
        "Address lookups in a zone's data, by zone and result (listed, not_listed)."),
    "dnsbl_dns_dropped_total": Series(
        "counter", "sum", "Datagrams dropped without a reply, by reason."),
    "dnsbl_dns_malformed_total": Series(
        "counter", "sum", "Queries answered FORMERR, NOTIMP or REFUSED because they are "
                          "malformed or not a QUERY of class IN, by reason."),
    "dnsbl_rrl_limited_total": Series(
        "counter", "sum",
        "UDP responses held back by rate limiting, by action (dropped, slipped)."),
    "dnsbl_tcp_connections": Series("gauge", "sum", "TCP connections open now."),
    "dnsbl_tcp_closed_total": Series(
        "counter", "sum", "TCP connections closed by the server, by reason (cap: refused over "
                          "the connection cap, in all or for one client address, idle: nothing "
                          "asked, stalled: answers not read)."),
    "dnsbl_tcp_buffered_bytes": Series(
        "gauge", "sum", "Bytes held for TCP clients now: answers not yet sent and questions "
                        "not yet answered."),
    "dnsbl_query_log_dropped_total": Series(
        "counter", "sum", "Sampled queries left out of the query log: its writer fell behind, "
                          "or writing failed (a full disk)."),
    "dnsbl_xfr_requests_total": Series(
        "counter", "sum", "Zone transfer requests, by zone, kind (axfr, ixfr) and "
                          "result (ok; full: an IXFR answered with the whole zone, its "
                          "serial not kept; uptodate; future: an IXFR from a serial newer "
                          "than ours, answered with our SOA; toobig: an IXFR over UDP "
                          "answered with our SOA; refused; notauth: a bad TSIG; aborted: "
                          "the client went or stopped reading; failed)."),
    "dnsbl_notify_total": Series(
        "counter", "sum", "NOTIFY messages to secondaries, by zone and result (ok, refused: "
                          "answered with an error, unanswered: after every retry)."),
    "dnsbl_tsig_queries_total": Series(
        "counter", "sum", "TSIG-signed queries other than transfers, by result (ok, badkey, "
                          "badsig, badtime: answered NOTAUTH)."),
    "dnsbl_zone_entries": Series("gauge", "min", "Entries (listed blocks) a zone serves."),
    "dnsbl_zone_soa_serial": Series("gauge", "min", "SOA serial a zone answers with."),
    "dnsbl_zone_loaded": Series(
        "gauge", "min", "1 when every dataset of the zone is loaded, else 0."),
    "dnsbl_zone_expired": Series(
        "gauge", "max", "1 when the zone's data is past its $TIMESTAMP expiry."),
    "dnsbl_dataset_entries": Series("gauge", "min", "Entries (listed blocks) a dataset holds."),
    "dnsbl_dataset_exclusions": Series("gauge", "min", "Exclusion entries a dataset holds."),
    "dnsbl_dataset_data_age_seconds": Series(
        "gauge", "max",
        "Seconds since the newest file of the dataset served now was modified."),
    "dnsbl_dataset_reload_timestamp_seconds": Series(
        "gauge", "min", "Unix time of the dataset's last successful load."),
    "dnsbl_dataset_reload_duration_seconds": Series(
        "gauge", "max", "Seconds the dataset's last successful load took."),
    "dnsbl_dataset_reloads_total": Series("counter", "sum", "Successful loads of the dataset."),
    "dnsbl_dataset_reload_failures_total": Series(
        "counter", "sum",
        "Loads of the dataset refused, by reason; the previous data kept serving."),
    "dnsbl_build_info": Series(
        "gauge", "max", "Version of dnsbl, Python, the event loop and the fast path that "
                        "answers (compiled or python), as labels."),
    "dnsbl_workers": Series(
        "gauge", None, "Worker processes running, ready and answering (with --workers above 1; "
                       "the other series are then folded over the workers)."),
    "dnsbl_worker_restarts_total": Series(
        "counter", None, "Worker processes restarted after ending."),
}

#: How the series of the other collectors a worker runs fold: prometheus-client's
#: process, platform and GC collectors, and the ledger's (every worker reads the
#: same publish status, so any one value is the value).
OTHER_FOLDS: dict[str, Fold] = {
    "process_virtual_memory_bytes": "sum", "process_resident_memory_bytes": "sum",
    "process_cpu_seconds_total": "sum", "process_open_fds": "sum",
    "process_start_time_seconds": "min", "process_max_fds": "max", "python_info": "max",
    "python_gc_objects_collected_total": "sum", "python_gc_objects_uncollectable_total": "sum",
    "python_gc_collections_total": "sum",
    "dnsbl_ledger_held_back": "max", "dnsbl_ledger_published_entries": "max",
    "dnsbl_ledger_last_publish_timestamp_seconds": "max",
}

#: Reasons a reload fails (dnsbl_dataset_reload_failures_total), created at 0.
FAILURE_REASONS = ("open", "not_regular", "size", "entries", "read", "changed", "timestamp",
                   "parse", "memory", "timeout", "died", "shrink")


class Source(Protocol):
    """What the collector reads: the server's counters, zones and reload status."""

    stats: Stats

    def transport_counts(self) -> tuple[list[int], int, int]:
        """RRL [dropped, slipped], open TCP connections and the bytes they hold."""
        ...

    def zoneset(self) -> Snapshot: ...

    def reload_status(self) -> dict[tuple[str, tuple[str, ...]], DatasetStatus]: ...

    def transfer_counts(self) -> dict[tuple[str, str, str], int]:
        """Zone transfer requests by (zone, kind, result)."""
        ...

    def notify_counts(self) -> dict[tuple[str, str], int]:
        """NOTIFYs sent by (zone, result)."""
        ...

    def tsig_counts(self) -> dict[str, int]:
        """Signed queries other than transfers, by result."""
        ...

    def query_log_dropped(self) -> int:
        """Query log entries left out: the writer's queue was full, or a write failed."""
        ...


def metric_family(name: str, labels: list[str]) -> CounterMetricFamily | GaugeMetricFamily:
    series = SERIES[name]
    if series.type == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), series.help, labels=labels)
    return GaugeMetricFamily(name, series.help, labels=labels)


def dataset_label(key: tuple[str, tuple[str, ...]]) -> str:
    """``("ip4set", ("a.zone", "b.zone"))`` -> ``"ip4set:a.zone,b.zone"``."""
    return f"{key[0]}:{','.join(key[1])}"


def declared_fold(family: Metric) -> Fold | None:
    """How ``family`` folds over the workers, as :data:`SERIES` or
    :data:`OTHER_FOLDS` declare it; None when neither does."""
    # A counter family is named without the _total its samples carry.
    name = family.name + "_total" if family.type == "counter" else family.name
    series = SERIES.get(name)
    return series.fold if series is not None else OTHER_FOLDS.get(name)


def fold_of(family: Metric) -> Fold:
    """The declared fold of ``family``; for a series nobody declared (a test
    fails on any of ours), counters are summed and anything else shows the
    highest worker's value."""
    return declared_fold(family) or ("sum" if family.type == "counter" else "max")


_FOLDERS: dict[str, Callable[[float, float], float]] = {
    "sum": operator.add, "min": min, "max": max}


def fold(workers: Iterable[Iterable[Metric]]) -> Iterator[Metric]:
    """Every worker's metric families as one set, each sample folded over the
    workers by its series' :data:`Fold`; a counter's ``_created`` is the earliest."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    for families in workers:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation,
                                             family.type, family.unit)
                values[family.name] = {}
            into = values[family.name]
            combine = _FOLDERS[fold_of(family)]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in into:
                    into[key] = sample.value
                elif sample.name.endswith("_created"):
                    into[key] = min(into[key], sample.value)
                else:
                    into[key] = combine(into[key], sample.value)
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
        yield family


class Collector:
    """Builds every dnsbl_* family from plain-int counters at scrape time."""

    def __init__(self, source: Source, loop_name: str) -> None:
        self._source = source
        self._loop_name = loop_name

    def collect(self) -> Iterator[Metric]:
        source = self._source
        zoneset = source.zoneset()
        requests = metric_family("dnsbl_dns_requests_total", ["zone", "qtype", "proto"])
        responses = metric_family("dnsbl_dns_responses_total", ["zone", "rcode"])
        lookups = metric_family("dnsbl_lookups_total", ["zone", "result"])
        counted = [("", source.stats.unzoned)]
        counted += [(zone.name, zone.stats) for zone in zoneset.zones.values()]
        for name, stats in counted:
            for p, proto in enumerate(PROTOS):
                for q, qtype in enumerate(QTYPE_LABELS):
                    requests.add_metric([name, qtype, proto],
                                        stats.requests[p * len(QTYPE_LABELS) + q])
            for code, label in RCODE_LABELS.items():
                responses.add_metric([name, label], stats.rcodes[code])
            if name:
                lookups.add_metric([name, "listed"], stats.lookups[0])
                lookups.add_metric([name, "not_listed"], stats.lookups[1])
        yield from (requests, responses, lookups)

        for name, reasons, counts in (
                ("dnsbl_dns_dropped_total", DROP_REASONS, source.stats.dropped),
                ("dnsbl_dns_malformed_total", MALFORMED_REASONS, source.stats.malformed),
                ("dnsbl_tcp_closed_total", TCP_CLOSE_REASONS, source.stats.tcp_closed)):
            family = metric_family(name, ["reason"])
            for reason, count in zip(reasons, counts, strict=True):
                family.add_metric([reason], count)
            yield family

        limited, connections, buffered = source.transport_counts()
        rrl = metric_family("dnsbl_rrl_limited_total", ["action"])
        rrl.add_metric(["dropped"], limited[0])
        rrl.add_metric(["slipped"], limited[1])
        tcp = metric_family("dnsbl_tcp_connections", [])
        tcp.add_metric([], connections)
        held = metric_family("dnsbl_tcp_buffered_bytes", [])
        held.add_metric([], buffered)
        query_log = metric_family("dnsbl_query_log_dropped_total", [])
        query_log.add_metric([], source.query_log_dropped())
        yield from (rrl, tcp, held, query_log)
        transfers = metric_family("dnsbl_xfr_requests_total", ["zone", "kind", "result"])
        for (zone_name, kind, result), count in source.transfer_counts().items():
            transfers.add_metric([zone_name, kind, result], count)
        notify = metric_family("dnsbl_notify_total", ["zone", "result"])
        for (zone_name, result), count in source.notify_counts().items():
            notify.add_metric([zone_name, result], count)
        tsig = metric_family("dnsbl_tsig_queries_total", ["result"])
        for result, count in source.tsig_counts().items():
            tsig.add_metric([result], count)
        yield from (transfers, notify, tsig)

        entries = metric_family("dnsbl_zone_entries", ["zone"])
        serial = metric_family("dnsbl_zone_soa_serial", ["zone"])
        loaded = metric_family("dnsbl_zone_loaded", ["zone"])
        expired = metric_family("dnsbl_zone_expired", ["zone"])
        for zone in zoneset.zones.values():
            entries.add_metric([zone.name], zone.entries)
            serial.add_metric([zone.name], zone.serial)
            loaded.add_metric([zone.name], 1 if zone.loaded else 0)
            expired.add_metric([zone.name], 1 if zone.expired else 0)
        yield from (entries, serial, loaded, expired)

        yield from self._datasets(zoneset)

        info = metric_family("dnsbl_build_info", ["version", "python", "loop", "answering"])
        from dnsbl import __version__
        from dnsbl.answer import FAST_PATH

        info.add_metric([__version__, platform.python_version(), self._loop_name, FAST_PATH], 1)
        yield info

    def _datasets(self, zoneset: Snapshot) -> Iterator[Metric]:
        now = time.time()
        names = ["dataset"]
        ds_entries = metric_family("dnsbl_dataset_entries", names)
        exclusions = metric_family("dnsbl_dataset_exclusions", names)
        age = metric_family("dnsbl_dataset_data_age_seconds", names)
        stamp = metric_family("dnsbl_dataset_reload_timestamp_seconds", names)
        duration = metric_family("dnsbl_dataset_reload_duration_seconds", names)
        loads = metric_family("dnsbl_dataset_reloads_total", names)
        failures = metric_family("dnsbl_dataset_reload_failures_total", ["dataset", "reason"])
        for key, dataset in zoneset.datasets.items():
            label = [dataset_label(key)]
            ds_entries.add_metric(label, dataset.listed)
            exclusions.add_metric(label, dataset.exclusions)
            age.add_metric(label, max(0.0, now - dataset.mtime))
        for key, status in self._source.reload_status().items():
            label = [dataset_label(key)]
            stamp.add_metric(label, status.last_success)
            duration.add_metric(label, status.last_duration)
            loads.add_metric(label, status.loads)
            for reason in FAILURE_REASONS:
                failures.add_metric([label[0], reason], status.failures.get(reason, 0))
        yield from (ds_entries, exclusions, age, stamp, duration, loads, failures)


def build_registry(source: Source, loop_name: str,
                   ledger: LedgerConfig | None = None) -> CollectorRegistry:
    """A registry with our collector and the standard process, platform and GC ones,
    and the ledger's publish counts where the configuration names a ledger."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(source, loop_name))  # type: ignore[arg-type]
    if ledger is not None:
        from dnsbl.ledger.status import LedgerCollector

        registry.register(LedgerCollector(ledger))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` names (as asyncio's
    start_server binds them), bound now: a port clash is found before
    anything loads.

    :raises OSError: when one cannot be bound (the others are closed).
    """
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(100)
            sock.setblocking(False)
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


#: Connections the endpoint holds at once (ServerConfig.metrics_max_connections).
MAX_CONNECTIONS = 32
_OVER_CAP = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
             b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n")


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over plain HTTP/1.1, on the event loop.

    Answering at all proves this loop runs, which is what ``/healthz`` reports;
    ``health()``, when given, names other loops that do not (a supervisor's
    workers). ``readiness()`` returns the reasons the node is not ready (none:
    ready). A HEAD request gets the headers of the GET, without the body.
    Past ``max_connections`` open at once a connection is answered 503 and
    closed: each holds a file descriptor, and DNS over TCP needs them.
    """

    def __init__(self, registry: CollectorRegistry, readiness: Callable[[], list[str]],
                 refresh: Callable[[], Awaitable[None]] | None = None,
                 health: Callable[[], list[str]] | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._registry = registry
        self._readiness = readiness
        self._refresh = refresh  # gathers what the registry and readiness read
        self._health = health
        self._max_connections = max_connections
        self._open = 0
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self, host: str, port: int,
                    sockets: list[socket.socket] | None = None) -> int:
        """Serve on ``sockets`` (from :func:`bind_sockets`), or on ``host:port``; the port.

        :raises OSError: when ``host:port`` cannot be bound.
        """
        if sockets is None:
            sockets = bind_sockets(host, port)
        for sock in sockets:
            self._servers.append(await asyncio.start_server(self._handle, sock=sock))
        return int(sockets[0].getsockname()[1])

    def close(self) -> None:
        for server in self._servers:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self._max_connections:
            writer.write(_OVER_CAP)
            writer.close()  # its descriptor is free once the 503 is sent
            return
        self._open += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, *_ = request_line.split(" ") + ["", ""]
            headers = {}
            for line in header_lines:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            path = path.split("?")[0]
            if self._refresh is not None and path in ("/metrics", "/readyz"):
                await self._refresh()
            status, content_type, body = self._route(method, path, headers)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError, UnicodeDecodeError):
            pass
        finally:
            self._open -= 1
            writer.close()

    def _route(self, method: str, path: str, headers: dict[str, str]
               ) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            encoder, content_type = choose_encoder(headers.get("accept", ""))
            return "200 OK", content_type, encoder(self._registry)
        if path == "/healthz":
            problems = self._health() if self._health is not None else []
            if problems:
                return ("503 Service Unavailable", "text/plain",
                        ("unhealthy:\n" + "".join(f"- {p}\n" for p in problems)).encode())
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            problems = self._readiness()
            if problems:
                return ("503 Service Unavailable", "text/plain",
                        ("not ready:\n" + "".join(f"- {p}\n" for p in problems)).encode())
            return "200 OK", "text/plain", b"ready\n"
        return "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"
