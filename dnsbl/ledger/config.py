"""The ``[ledger]`` table of the server's configuration, and its categories.

A leaf: :mod:`dnsbl.config` reads the TOML and hands the table here.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

from dnsbl.ledger.model import LedgerError, parse_duration


@dataclass(frozen=True)
class Category:
    """What a kind of listing publishes as, and the limits on it."""

    name: str
    a: str = "127.0.0.2"  # the A record its listings answer with
    lifetime: int = 7 * 86400  # seconds a report lists for unless it says otherwise
    widest_v4: int = 24  # the shortest prefix it may publish
    widest_v6: int = 48
    zones: tuple[str, ...] = ()  # the published zones it goes into; () is the ledger's zone
    public: bool = True  # False: its TXT names no source
    aliases: tuple[str, ...] = ()  # feeds' names for it: IntelMQ types, MISP tags


@dataclass(frozen=True)
class WebConfig:
    """The ``[ledger.web]`` table: what ``dnsbl web`` serves and its limits."""

    #: Loopback unless configured: a deployment puts a TLS proxy in front.
    listen: str = "127.0.0.1:8080"
    #: Shown on the public lookup page under a listed address.
    removal_instructions: str = ""
    #: Bytes a request body may have (a bulk NDJSON upload: bulk_body).
    max_body: int = 64 * 1024
    bulk_body: int = 16 * 1024 * 1024
    #: Public lookups per client address per minute; removal requests per hour.
    lookup_rate: int = 60
    request_rate: int = 5
    #: API requests per token per second (a burst of as many is allowed).
    api_rate: int = 200


@dataclass(frozen=True)
class SightingsConfig:
    """The ``[ledger.sightings]`` table: the query logs ``dnsbl web`` follows."""

    #: The query logs the servers write (their ``query_log``); (): none followed.
    logs: tuple[str, ...] = ()
    #: Queries each logged line stands for; 0: this file's ``query_log_sample``.
    sample: int = 0
    #: Seconds between reads of the logs.
    interval: float = 5.0


@dataclass(frozen=True)
class LedgerConfig:
    #: A file name (SQLite, created on first use) or a ``postgresql://`` URL.
    database: str
    #: Where ``publish`` writes ``<zone>.zone``, one combined file per zone.
    publish_dir: str
    zone: str = "rep.example.org"
    categories: tuple[Category, ...] = ()
    #: Put in every TXT with ``$`` as the address: where to read more.
    lookup_url: str = ""
    #: Files of addresses and networks never to publish (one a line, ``#`` comments).
    allowlist: tuple[str, ...] = ()
    #: MISP warninglist JSON files (their ``list`` of addresses and networks).
    warninglists: tuple[str, ...] = ()
    #: Seconds between publishes by ``dnsbl serve``; 0: only after changes.
    publish_interval: float = 60.0
    #: Sources whose names no TXT shows.
    private_sources: tuple[str, ...] = ()
    #: The TTL of the published answers.
    ttl: int = 300
    #: Seconds a change waits for another writer to finish before giving up.
    lock_timeout: float = 30.0
    #: Files each zone is split into (by the first byte of the address): a
    #: change rewrites, and the server reloads, the one file it falls in.
    shards: int = 16
    #: ``dnsbl web``'s settings.
    web: WebConfig = WebConfig()
    #: The query logs ``dnsbl web`` takes sightings from.
    sightings: SightingsConfig = SightingsConfig()

    def category(self, name: str) -> Category:
        """The category called ``name`` or aliased so.

        :raises LedgerError: naming the known categories.
        """
        for category in self.categories:
            if category.name == name:
                return category
        for category in self.categories:
            if name in category.aliases:
                return category
        raise LedgerError(f"unknown category {name!r} (known: "
                          f"{', '.join(c.name for c in self.categories)})")

    def zones(self) -> dict[str, tuple[Category, ...]]:
        """Each published zone and the categories that go into it, in order."""
        zones: dict[str, list[Category]] = {}
        for category in self.categories:
            for zone in category.zones or (self.zone,):
                zones.setdefault(zone, []).append(category)
        return {zone: tuple(categories) for zone, categories in zones.items()}

    def zone_file(self, zone: str, shard: int) -> str:
        """``published/rep.example.org.zone``, or ``...org.07.zone`` for shard 7 of several."""
        name = f"{zone}.zone" if self.shards == 1 else f"{zone}.{shard:02d}.zone"
        return os.path.join(self.publish_dir, name)

    def zone_files(self, zone: str) -> tuple[str, ...]:
        return tuple(self.zone_file(zone, shard) for shard in range(self.shards))

    def shard_of(self, start: bytes) -> int:
        """The shard of a network by its first address. Networks inside one
        another share their first byte (at /8 and longer), so they share a
        file, where the longest prefix wins as in one list."""
        return start[0] % self.shards


_KEYS = {"database", "publish_dir", "zone", "categories", "category", "lookup_url",
         "allowlist", "warninglists", "publish_interval", "private_sources", "ttl",
         "lock_timeout", "shards", "web", "sightings"}
_WEB_KEYS = {"listen", "removal_instructions", "max_body", "bulk_body", "lookup_rate",
             "request_rate", "api_rate"}
_SIGHTINGS_KEYS = {"logs", "sample", "interval"}
_CATEGORY_KEYS = {"name", "a", "lifetime", "widest_v4", "widest_v6", "zones", "public",
                  "aliases"}


def parse_ledger(table: Any, base: str) -> LedgerConfig:
    """The ``[ledger]`` table -> LedgerConfig; file names relative to ``base``.

    :raises LedgerError: naming the setting that is wrong.
    """
    if not isinstance(table, dict):
        raise LedgerError("[ledger] must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise LedgerError(f"[ledger]: unknown setting(s): {', '.join(sorted(unknown))}")
    database = str(table.get("database", "ledger.sqlite"))
    if "://" not in database:
        database = os.path.join(base, database)
    zone = str(table.get("zone", LedgerConfig.zone)).strip().rstrip(".").lower()
    specs: list[tuple[str, Any]] = []
    for i, spec in enumerate(table.get("category", []), 1):
        if not isinstance(spec, dict) or "name" not in spec:
            raise LedgerError(f"[[ledger.category]] #{i}: needs a name")
        specs.append((str(spec["name"]), spec))
    named = table.get("categories", {})
    if not isinstance(named, dict):
        raise LedgerError("[ledger.categories] must be a table of tables")
    specs.extend((str(name), spec) for name, spec in named.items())
    categories = tuple(_category(name, spec) for name, spec in specs)
    names = [c.name for c in categories]
    if len(set(names)) != len(names):
        raise LedgerError("[ledger]: a category is defined twice")
    try:
        interval = float(table.get("publish_interval", LedgerConfig.publish_interval))
        ttl = int(str(table.get("ttl", LedgerConfig.ttl)))
        lock_timeout = float(table.get("lock_timeout", LedgerConfig.lock_timeout))
        shards = int(str(table.get("shards", LedgerConfig.shards)))
    except ValueError as exc:
        raise LedgerError(f"[ledger]: {exc}") from None
    if not 1 <= shards <= 256:
        raise LedgerError("[ledger]: shards must be from 1 to 256")
    if interval < 0 or ttl < 0 or lock_timeout < 0:
        raise LedgerError("[ledger]: publish_interval, ttl and lock_timeout must not be "
                          "negative")
    return LedgerConfig(
        database=database,
        publish_dir=os.path.join(base, str(table.get("publish_dir", "published"))),
        zone=zone, categories=categories, lookup_url=str(table.get("lookup_url", "")),
        allowlist=_files(table, "allowlist", base), warninglists=_files(table, "warninglists",
                                                                         base),
        publish_interval=interval, private_sources=_strings(table, "private_sources", "[ledger]"),
        ttl=ttl, lock_timeout=lock_timeout, shards=shards, web=_web(table.get("web", {})),
        sightings=_sightings(table.get("sightings", {}), base))


def _sightings(table: Any, base: str) -> SightingsConfig:
    if not isinstance(table, dict):
        raise LedgerError("[ledger.sightings] must be a table")
    unknown = set(table) - _SIGHTINGS_KEYS
    if unknown:
        raise LedgerError(f"[ledger.sightings]: unknown setting(s): "
                          f"{', '.join(sorted(unknown))}")
    sample = table.get("sample", 0)
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        raise LedgerError(f"[ledger.sightings]: sample must be a whole number, 1 or more "
                          f"(0: the query_log_sample of this file), not {sample!r}")
    interval = table.get("interval", SightingsConfig.interval)
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        raise LedgerError(f"[ledger.sightings]: interval must be a number of seconds above 0, "
                          f"not {interval!r}")
    return SightingsConfig(
        logs=tuple(os.path.join(base, f) for f in _strings(table, "logs", "[ledger.sightings]")),
        sample=sample, interval=float(interval))


def _web(table: Any) -> WebConfig:
    if not isinstance(table, dict):
        raise LedgerError("[ledger.web] must be a table")
    unknown = set(table) - _WEB_KEYS
    if unknown:
        raise LedgerError(f"[ledger.web]: unknown setting(s): {', '.join(sorted(unknown))}")
    numbers: dict[str, int] = {}
    for name in ("max_body", "bulk_body", "lookup_rate", "request_rate", "api_rate"):
        value = table.get(name, getattr(WebConfig, name))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LedgerError(f"[ledger.web]: {name} must be a whole number above 0, "
                              f"not {value!r}")
        numbers[name] = value
    for name in ("listen", "removal_instructions"):
        if not isinstance(table.get(name, ""), str):
            raise LedgerError(f"[ledger.web]: {name} must be a string")
    return WebConfig(listen=table.get("listen", WebConfig.listen),
                     removal_instructions=table.get("removal_instructions", ""), **numbers)


def _category(name: str, spec: Any) -> Category:
    where = f"[ledger] category {name!r}"
    if not isinstance(spec, dict):
        raise LedgerError(f"{where}: must be a table")
    unknown = set(spec) - _CATEGORY_KEYS
    if unknown:
        raise LedgerError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    if not name or any(c.isspace() for c in name):
        raise LedgerError(f"{where}: a name is one word")
    a = str(spec.get("a", Category.a))
    if a.isascii() and a.isdigit():
        a = f"127.0.0.{a}"
    try:
        address = ipaddress.IPv4Address(a)
    except ValueError:
        address = None
    if address is None or address not in ipaddress.IPv4Network("127.0.0.0/8") \
            or str(address) == "127.0.0.1":
        raise LedgerError(f"{where}: a must be an address in 127.0.0.0/8 other than 127.0.0.1 "
                          f"(RFC 5782), not {spec.get('a')!r}")
    lifetime = parse_duration(str(spec.get("lifetime", "7d")))
    v4, v6 = spec.get("widest_v4", Category.widest_v4), spec.get("widest_v6", Category.widest_v6)
    if not (isinstance(v4, int) and 0 <= v4 <= 32 and isinstance(v6, int) and 0 <= v6 <= 128):
        raise LedgerError(f"{where}: widest_v4 is 0-32, widest_v6 0-128")
    public = spec.get("public", True)
    if not isinstance(public, bool):
        raise LedgerError(f"{where}: public must be true or false")
    zones = tuple(z.strip().rstrip(".").lower() for z in _strings(spec, "zones", where))
    return Category(name, str(address), lifetime, v4, v6, zones, public,
                    _strings(spec, "aliases", where))


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LedgerError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _files(table: dict[str, Any], key: str, base: str) -> tuple[str, ...]:
    return tuple(os.path.join(base, f) for f in _strings(table, key, "[ledger]"))
