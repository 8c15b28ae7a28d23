"""Server configuration: one TOML file and command-line overrides, one set of defaults."""

from __future__ import annotations

import base64
import ipaddress
import os
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, cast

from dnsbl import settings
from dnsbl.datasets import TYPES
from dnsbl.ledger.config import LedgerConfig, parse_ledger
from dnsbl.ledger.model import LedgerError
from dnsbl.rpz import RpzPolicy, parse_rpz
from dnsbl.settings import ConfigError as ConfigError
from dnsbl.zonefile import NS, SOA, Limits, parse_ns, parse_soa

DEFAULT_PORT = 53
_T = TypeVar("_T")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DatasetConfig:
    type: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ZoneConfig:
    """A zone: a name and the datasets that answer under it, in order."""

    name: str
    datasets: tuple[DatasetConfig, ...]
    #: A reload that would leave fewer entries than this share of those served
    #: now is refused (a truncated rsync must not delist everything); 0: off.
    min_entries_ratio: float = 0.5
    #: Not ready (/readyz) when the newest file is older than this many seconds.
    max_data_age: float | None = None
    #: The apex SOA and NS, in the syntax of the $SOA and $NS lines; they take
    #: the place of any $SOA/$NS in the data. None: from the data, or a default SOA.
    soa: SOA | None = None
    ns: NS | None = None
    #: Networks that may transfer the zone (AXFR, IXFR); (): nobody.
    transfer: tuple[str, ...] = ()
    #: The TSIG key (a name in [tsig]) a transfer must be signed with; None: none needed.
    transfer_key: str | None = None
    #: The origin under which the zone's RPZ form (the [rpz] policy) is also
    #: served for transfer, to the same networks and key; None: not served.
    rpz: str | None = None
    #: Secondaries told of every new serial (RFC 1996 NOTIFY), as (host, port):
    #: of the zone, and of its RPZ form where it has one.
    notify: tuple[tuple[str, int], ...] = ()
    #: Versions of the zone whose differences are kept for IXFR (RFC 1995),
    #: for each of its transfer forms; 0: none.
    ixfr_versions: int = 10


@dataclass(frozen=True)
class RRLConfig:
    """Response rate limiting (UDP only); see dnsbl.rrl."""

    rate: float = 20.0  # responses per second per client prefix
    slip: int = 2  # every slip-th limited response goes out as TC=1; 0: drop all
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[str, ...] = ()  # networks never limited


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[Listen, ...] = (Listen("127.0.0.1", 5300),)
    zones: tuple[ZoneConfig, ...] = ()
    #: Default TTL of answers when a dataset has no $TTL (rbldnsd's default: 35m).
    ttl: int = 2100
    #: rbldnsd's ``-t def:min:max``: TTLs read from the data ($TTL, generic
    #: records, $SOA and $NS) are clamped into [ttl_min, ttl_max]; 0: no bound.
    ttl_min: int = 0
    ttl_max: int = 0
    #: Seconds between checks of the zone files for changes; 0: only on SIGHUP.
    check_interval: float = 1.0
    #: Start even when a zone cannot load; it answers SERVFAIL until it does.
    allow_missing: bool = False
    #: Where /metrics, /healthz and /readyz answer; None: nowhere.
    metrics: Listen | None = Listen("127.0.0.1", 9153)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    #: JSON-lines log of sampled queries (1 in query_log_sample); None: off.
    query_log: str | None = None
    query_log_sample: int = 1
    #: Response rate limiting; None: off.
    rrl: RRLConfig | None = None
    #: An ACL for every zone (rbldnsd's ":acl:file"), consulted before each zone's own.
    global_acl: DatasetConfig | None = None
    #: TCP: seconds a connection may sit idle, and connections open at once.
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 512
    tcp_max_per_client: int = 64
    #: Connections the metrics endpoint holds at once; past it a connection
    #: is closed at once, so a flood of them cannot take the file descriptors
    #: DNS over TCP needs.
    metrics_max_connections: int = 32
    #: EDNS0: the UDP payload size we advertise (DNS Flag Day 2020), and the
    #: NSID (RFC 5001) sent to clients that ask, to tell anycast nodes apart.
    edns_payload: int = 1232
    nsid: str = ""
    #: UDP datagrams read (and answered) per system call; 0: one at a time,
    #: through the event loop's own transport.
    udp_batch: int = 32
    #: Server processes sharing the listen addresses (SO_REUSEPORT); 0: one per CPU.
    workers: int = 0
    #: The control socket of `dnsbl ctl`: "" for the default place under the
    #: runtime directory (dnsbl.control.default_path), None for none.
    control: str | None = ""
    #: The reputation ledger whose zones this server publishes and serves; None: none.
    ledger: LedgerConfig | None = None
    #: What loading one dataset may cost (the [limits] table).
    limits: Limits = Limits()
    #: What `dnsbl export --format rpz` writes per category (the [rpz] table).
    rpz: RpzPolicy = RpzPolicy()
    #: TSIG keys (HMAC-SHA256) by name, their secrets in base64 (the [tsig] table).
    tsig_keys: tuple[tuple[str, str], ...] = ()
    #: Where each transferable zone's last serial is kept, so it never goes
    #: back, across restarts too; None: in memory only.
    state_dir: str | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ttl_bounds(self) -> tuple[int, int]:
        """(min, max) for the data's TTLs; 0 means no bound on that side."""
        return self.ttl_min, self.ttl_max


def parse_listen(text: str) -> Listen:
    """``"127.0.0.1:5300"`` / ``"[::1]:5300"`` / ``"::1"`` -> Listen; rbldnsd's
    ``-b`` forms too: ``"127.0.0.1/5300"``, ``"::1/5300"``, ``"[::1]/5300"``.

    Something that looks like an address must be one: ``999.1.1.1`` is an
    error here, not a host name to look up when binding.

    :raises ConfigError: for a bad address or port.
    """
    host, port = text, str(DEFAULT_PORT)
    if "/" in text:  # rbldnsd: the slash, never a colon, ends the address
        host, port = text.rsplit("/", 1)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
    elif text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"bad listen address {text!r}: expected [ADDRESS]:PORT "
                              "or ADDRESS/PORT")
        if rest:
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"bad listen address {text!r}: port must be 0-65535")
    if not host:
        raise ConfigError(f"bad listen address {text!r}: no host")
    if _looks_like_address(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"bad listen address {text!r}: {host!r} is not an IP "
                              "address") from None
    return Listen(host, int(port))


def _looks_like_address(text: str) -> bool:
    """Digits and dots, or a colon: meant as an IP address, never a host name."""
    return ":" in text or all(c.isdigit() or c == "." for c in text)


def parse_metrics(text: str) -> Listen | None:
    """``"127.0.0.1:9153"`` -> Listen; ``"none"`` -> None (no metrics endpoint)."""
    if text.strip().lower() == "none":
        return None
    return parse_listen(text)


def parse_control(text: str, base: str = "") -> str | None:
    """The control socket's path (relative to ``base``); ``"none"`` -> None."""
    return None if text == "none" else os.path.join(base, text)


def normalize_zone_name(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    if not name or any(not 0 < len(label) < 64 for label in name.split(".")):
        raise ConfigError(f"bad zone name {name!r}")
    return name


def parse_zone_spec(text: str, base: str = "") -> ZoneConfig:
    """``"bl.example.org:ip4set:a.zone,b.zone"`` -> ZoneConfig (files relative to base).

    :raises ConfigError: for a malformed spec or an unknown dataset type.
    """
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts[1:]) or not (parts[0] or parts[1] == "acl"):
        raise ConfigError(f"bad zone {text!r}: expected NAME:TYPE:FILE[,FILE...] "
                          "(or :acl:FILE for a global ACL)")
    name, kind, files = parts
    dataset = _dataset(kind, files.split(","), base, text)
    # An empty name is rbldnsd's global ACL; with_overrides moves it out of the zones.
    return ZoneConfig(normalize_zone_name(name) if name else "", (dataset,))


def _dataset(kind: str, files: Any, base: str, where: str) -> DatasetConfig:
    if kind not in TYPES:
        raise ConfigError(
            f"{where}: unknown dataset type {kind!r} (known: {', '.join(TYPES)})")
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f
                                                           for f in files):
        raise ConfigError(f"{where}: 'files' must be a list of file names")
    return DatasetConfig(kind, tuple(os.path.join(base, f) for f in files))


def merge_zones(zones: list[ZoneConfig]) -> tuple[ZoneConfig, ...]:
    """Zones named more than once become one zone of all their datasets (rbldnsd style)."""
    merged: dict[str, ZoneConfig] = {}
    for zone in zones:
        if zone.name in merged:
            old = merged[zone.name]
            merged[zone.name] = replace(old, datasets=old.datasets + zone.datasets,
                                          rpz=old.rpz or zone.rpz, notify=old.notify or zone.notify)
        else:
            merged[zone.name] = zone
    return tuple(merged.values())


_TOP_KEYS = {"listen", "ttl", "zone", "check_interval", "allow_missing", "metrics", "acl",
             "log_level", "log_format", "query_log", "query_log_sample", "rrl",
             "tcp_idle_timeout", "tcp_max_connections", "tcp_max_per_client", "edns_payload",
             "nsid", "udp_batch", "workers", "metrics_max_connections", "control",
             "ledger", "limits", "rpz", "tsig", "state_dir"}
_ZONE_KEYS = {"name", "type", "files", "datasets", "min_entries_ratio", "max_data_age", "soa",
              "ns", "transfer", "transfer_key", "rpz", "notify", "ixfr_versions"}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def load_config(path: str) -> ServerConfig:
    """Read a TOML configuration; file names in it are relative to its folder.

    :raises ConfigError: with the file name and what is wrong.
    """
    data = _read_toml(path)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")
    base = os.path.dirname(path)
    # Transfer state (serials) lives next to the configuration unless told.
    config = ServerConfig(sources=(path,), state_dir=os.path.join(base, "state"))
    if "state_dir" in data:
        state = settings.text(data["state_dir"], f"{path}: 'state_dir'", "a folder")
        config = replace(config, state_dir=os.path.join(base, state))
    if "listen" in data:
        listen = data["listen"]
        if isinstance(listen, str):
            listen = [listen]
        if (not isinstance(listen, list) or not listen
                or not all(isinstance(x, str) for x in listen)):
            raise ConfigError(f"{path}: 'listen' must be a list of HOST:PORT strings")
        config = replace(config, listen=tuple(_within(path, parse_listen, x) for x in listen))
    if "ttl" in data:
        config = with_ttl(config, data["ttl"], f"{path}: 'ttl'")
    if "check_interval" in data:
        config = replace(config, check_interval=settings.interval(
            data["check_interval"], f"{path}: 'check_interval'"))
    if "allow_missing" in data:
        if not isinstance(data["allow_missing"], bool):
            raise ConfigError(f"{path}: 'allow_missing' must be true or false")
        config = replace(config, allow_missing=data["allow_missing"])
    if "metrics" in data:
        config = replace(config, metrics=_within(path, parse_metrics, settings.text(
            data["metrics"], f"{path}: 'metrics'", 'HOST:PORT or "none"')))
    if "acl" in data:
        config = replace(config, global_acl=_dataset("acl", data["acl"], base, f"{path}: acl"))
    if "rrl" in data:
        config = replace(config, rrl=_rrl(data["rrl"], path))
    if "limits" in data:
        config = replace(config, limits=_limits(data["limits"], f"{path}: [limits]"))
    if "tsig" in data:
        config = replace(config, tsig_keys=_tsig_keys(data["tsig"], f"{path}: [tsig]"))
    if "rpz" in data:
        try:
            config = replace(config, rpz=parse_rpz(data["rpz"], f"{path}: [rpz]", base))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if "tcp_idle_timeout" in data:
        config = replace(config, tcp_idle_timeout=settings.duration(
            data["tcp_idle_timeout"], f"{path}: 'tcp_idle_timeout'"))
    for key, (low, high) in _WHOLE_NUMBERS.items():
        if key in data:
            number: dict[str, Any] = {key: settings.count(data[key], f"{path}: '{key}'", low,
                                                          high)}
            config = replace(config, **number)
    if "edns_payload" in data:
        config = replace(config, edns_payload=settings.size(
            data["edns_payload"], f"{path}: 'edns_payload'", 512, 65535))
    if "nsid" in data:
        rule = "ASCII text, at most 128 characters"
        nsid = settings.text(data["nsid"], f"{path}: 'nsid'", rule)
        if not nsid.isascii() or len(nsid) > 128:
            raise ConfigError(f"{path}: 'nsid' must be {rule}, not {settings.shown(nsid)}")
        config = replace(config, nsid=nsid)
    if "query_log" in data:
        query_log = settings.text(data["query_log"], f"{path}: 'query_log'", "a file name")
        config = replace(config, query_log=os.path.join(base, query_log))
    if "control" in data:
        control = settings.text(data["control"], f"{path}: 'control'", 'a path, or "none"')
        if not control:
            raise ConfigError(f"{path}: 'control' must be a path, or \"none\"")
        config = replace(config, control=parse_control(control, base))
    for key, choices in (("log_level", LOG_LEVELS), ("log_format", LOG_FORMATS)):
        if key in data:
            if data[key] not in choices:
                raise ConfigError(f"{path}: '{key}' must be one of {', '.join(choices)}")
            config = replace(config, **{key: data[key]})
    tables = data.get("zone", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: 'zone' must be [[zone]] tables")
    zones = [_zone(table, f"{path}: zone #{i}", base) for i, table in enumerate(tables, 1)]
    if "ledger" in data:
        try:
            ledger = parse_ledger(data["ledger"], base)
        except LedgerError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        config = replace(config, ledger=ledger)
        zones.extend(_ledger_zones(ledger, {z.name for z in zones}))
    known = {name for name, _secret in config.tsig_keys}
    for zone in zones:
        if zone.transfer_key is not None and zone.transfer_key not in known:
            raise ConfigError(f"{path}: zone {zone.name}: 'transfer_key' {zone.transfer_key!r} "
                              f"is not a key of [tsig] ({', '.join(sorted(known)) or 'none'})")
    merged = merge_zones(zones)
    _check_rpz(config, merged, path)
    return replace(config, zones=merged)


def _check_rpz(config: ServerConfig, zones: tuple[ZoneConfig, ...], path: str) -> None:
    """RPZ forms served for transfer: each origin names one zone, and every
    category of the [rpz] policy is known now, not at a secondary's request."""
    names = {zone.name for zone in zones}
    origins: set[str] = set()
    for zone in zones:
        if zone.rpz is None:
            continue
        if zone.rpz in names or zone.rpz in origins:
            raise ConfigError(f"{path}: zone {zone.name}: rpz origin {zone.rpz!r} is already "
                              "the name of a zone or of another RPZ form")
        origins.add(zone.rpz)
    if not origins:
        return
    categories = {c.name for c in (config.ledger.categories if config.ledger else ())}
    for where, category in [*(("actions", c) for c, _action in config.rpz.actions),
                            *(("client", c) for c in config.rpz.client)]:
        if category in categories:
            continue
        try:
            ipaddress.IPv4Address(category)
        except ValueError:
            raise ConfigError(f"{path}: [rpz] {where}: {category!r} is neither a ledger "
                              f"category ({', '.join(sorted(categories)) or 'none configured'})"
                              " nor an address") from None


def _tsig_keys(table: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The [tsig] table: key name = base64 secret (HMAC-SHA256, RFC 8945)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of name = \"base64 secret\"")
    keys = []
    for name, secret in table.items():
        try:
            if not isinstance(secret, str) or len(base64.b64decode(secret, validate=True)) < 16:
                raise ValueError
            normalize_zone_name(name)
        except (ValueError, ConfigError):
            raise ConfigError(f"{where}: {name!r} must be a key name with a base64 secret of "
                              "16 bytes or more (e.g. from `tsig-keygen -a hmac-sha256`)"
                              ) from None
        keys.append((name, secret))
    return tuple(keys)


def _ledger_zones(ledger: LedgerConfig, declared: set[str]) -> list[ZoneConfig]:
    """The zones the ledger publishes, served unless declared as [[zone]] too.
    No shrink guard: the ledger writes whole files by rename, and a mass
    removal in it is meant."""
    return [ZoneConfig(zone, tuple(DatasetConfig("combined", (path,))
                                   for path in ledger.zone_files(zone)),
                       min_entries_ratio=0.0)
            for zone in ledger.zones() if zone not in declared]


def _within(where: str, parse: Callable[[str], _T], text: str) -> _T:
    """``parse(text)``, its ConfigError saying where the text was."""
    try:
        return parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _read_toml(path: str) -> dict[str, Any]:
    """The TOML file's tables; only a regular file is read, and never blocks
    (a FIFO would wait for a writer forever).

    :raises ConfigError: naming the file, and the line for bad text or syntax.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{path}: cannot read: not a regular file")
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _zone(table: Any, where: str, base: str) -> ZoneConfig:
    """One [[zone]] table."""
    if not isinstance(table, dict) or "name" not in table:
        raise ConfigError(f"{where}: needs a name")
    unknown = set(table) - _ZONE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    name = _within(where, normalize_zone_name,
                   settings.text(table["name"], f"{where}: 'name'", "a zone name"))
    where = f"{where} ({name})"
    specs = table.get("datasets", [])
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ConfigError(f"{where}: 'datasets' must be a list of {{ type = ..., files = "
                          "[...] } tables")
    if "type" in table:
        specs = [{"type": table["type"], "files": table.get("files")}, *specs]
    if not specs:
        raise ConfigError(f"{where}: needs 'type' and 'files', or 'datasets'")
    datasets = tuple(_dataset(str(s.get("type")), s.get("files"), base, where) for s in specs)
    ratio = settings.fraction(table.get("min_entries_ratio", ZoneConfig.min_entries_ratio),
                              f"{where}: 'min_entries_ratio'")
    max_age = table.get("max_data_age")
    if max_age is not None:
        max_age = settings.duration(max_age, f"{where}: 'max_data_age'", _MAX_AGE)
    transfer = _networks(table.get("transfer", []), f"{where}: 'transfer'")
    key = table.get("transfer_key")
    if key is not None and not isinstance(key, str):
        raise ConfigError(f"{where}: 'transfer_key' must be a key name of [tsig]")
    notify = tuple(_within(f"{where}: 'notify'", _notify_target, x)
                   for x in _strings(table.get("notify", []), f"{where}: 'notify'"))
    if notify and not transfer:
        raise ConfigError(f"{where}: 'notify' needs 'transfer' (the secondaries must be "
                          "allowed to transfer what they are told of)")
    versions = settings.count(table.get("ixfr_versions", ZoneConfig.ixfr_versions),
                              f"{where}: 'ixfr_versions'", 0, 1000)
    return ZoneConfig(name, datasets, ratio, max_age, *_apex(table, where), transfer=transfer,
                      transfer_key=key, rpz=_rpz_origin(table.get("rpz"), name, transfer, where),
                      notify=notify, ixfr_versions=versions)


def _rpz_origin(table: Any, name: str, transfer: tuple[str, ...], where: str) -> str | None:
    """A zone's ``rpz = { origin = "NAME" }``: the RPZ form's origin (default rpz.ZONE)."""
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) - {"origin"}:
        raise ConfigError(f'{where}: \'rpz\' must be a table {{ origin = "rpz.{name}" }}')
    if not transfer:
        raise ConfigError(f"{where}: 'rpz' serves the RPZ form for transfer, so it needs "
                          "'transfer' (the networks that may take it)")
    origin = settings.text(table.get("origin", f"rpz.{name}"), f"{where}: rpz 'origin'",
                           "a zone name")
    return _within(f"{where}: rpz 'origin'", normalize_zone_name, origin)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where} must be a list of strings")
    return value


def _notify_target(text: str) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"[::1]:5353"`` -> (address, port); 53 by default."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":")) if rest.startswith(":") else -1
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number) if number.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{text!r} is not an address with an optional port") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{text!r}: bad port")
    return host, port


def _networks(value: Any, where: str) -> tuple[str, ...]:
    """A list of networks (``["127.0.0.0/8", "::1"]``), each checked."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where} must be a list of networks, e.g. ["127.0.0.0/8", "::1"]')
    for text in value:
        try:
            ipaddress.ip_network(text)
        except ValueError:
            raise ConfigError(f"{where}: bad network {text!r}") from None
    return tuple(value)


def _apex(table: dict[str, Any], where: str) -> tuple[SOA | None, NS | None]:
    """A zone's ``soa = "$SOA fields"`` and ``ns = "$NS fields"`` (or a list of names)."""
    soa = ns = None
    try:
        if "soa" in table:
            soa = parse_soa(str(table["soa"]))
        if "ns" in table:
            value = table["ns"]
            if isinstance(value, list):
                value = " ".join(["0", *map(str, value)])  # names only: the zone TTL
            ns = parse_ns(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return soa, ns


#: Seconds max_data_age may reach: what a 32-bit DNS timer holds.
_MAX_AGE = float(0xFFFFFFFF)


def with_ttl(config: ServerConfig, value: Any, where: str) -> ServerConfig:
    """``35m``, or rbldnsd's ``DEF:MIN:MAX`` (``35m:1m:1d``, ``::1d``): the
    default TTL and the bounds the data's TTLs are clamped into. An empty part
    leaves that value as it was (the configuration file's, or the default); a
    bound of 0 means none. A default of 0 is refused, as rbldnsd does: answers
    that cannot be cached would bring every question back to the server.

    :raises ConfigError: naming ``where`` and what is wrong.
    """
    parts = value.split(":") if isinstance(value, str) else [value]
    if len(parts) > 3:
        raise ConfigError(f"{where} must be DEFAULT[:MIN[:MAX]] (e.g. 35m or 35m:1m:1d), "
                          f"not {settings.shown(value)}")
    parts += [""] * (3 - len(parts))
    numbers = [config.ttl, config.ttl_min, config.ttl_max]
    for i, part in enumerate(parts):
        if part != "":
            numbers[i] = settings.ttl(part, where)
    default, low, high = numbers
    if parts[0] != "" and default == 0:
        raise ConfigError(f"{where} must have a default TTL over 0 (nothing could be cached; "
                          f"rbldnsd refuses 0 too), not {settings.shown(value)}")
    if (low and high and low > high) or (low and default < low) or (high and default > high):
        raise ConfigError(f"{where} must have MIN <= DEFAULT <= MAX (a bound of 0 is none), "
                          f"not {settings.shown(value)} ({default}:{low}:{high})")
    return replace(config, ttl=default, ttl_min=low, ttl_max=high)


def _rrl(table: Any, where: str) -> RRLConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [rrl] must be a table")
    unknown = set(table) - {"rate", "slip", "ipv4_prefix", "ipv6_prefix", "exempt"}
    if unknown:
        raise ConfigError(f"{where}: [rrl]: unknown setting(s): {', '.join(sorted(unknown))}")
    defaults = RRLConfig()
    where = f"{where}: [rrl]"
    exempt = table.get("exempt", [])
    if not isinstance(exempt, list) or not all(isinstance(n, str) for n in exempt):
        raise ConfigError(f"{where} 'exempt' must be a list of networks (\"192.0.2.0/24\")")
    try:
        networks = tuple(str(ipaddress.ip_network(n, strict=False)) for n in exempt)
    except ValueError as exc:
        raise ConfigError(f"{where} 'exempt': {exc}") from None
    return RRLConfig(
        rate=settings.rate(table.get("rate", defaults.rate), f"{where} 'rate'"),
        slip=settings.count(table.get("slip", defaults.slip), f"{where} 'slip'", 0, 1000),
        ipv4_prefix=settings.count(table.get("ipv4_prefix", defaults.ipv4_prefix),
                                   f"{where} 'ipv4_prefix'", 1, 32),
        ipv6_prefix=settings.count(table.get("ipv6_prefix", defaults.ipv6_prefix),
                                   f"{where} 'ipv6_prefix'", 1, 128),
        exempt=networks)


def _limits(table: Any, where: str) -> Limits:
    """The [limits] table: max_file_size and parse_memory in bytes (a whole
    number, or with a unit: "512M", "4G"), max_entries, parse_timeout in seconds."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - {"max_file_size", "max_entries", "parse_memory", "parse_timeout"}
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    limits = Limits()
    if "max_file_size" in table:
        limits = replace(limits, max_file_size=settings.size(
            table["max_file_size"], f"{where} 'max_file_size'", 1))
    if "parse_memory" in table:  # 0: the default, relative to the files' size
        limits = replace(limits, parse_memory=settings.size(
            table["parse_memory"], f"{where} 'parse_memory'", 0))
    if "max_entries" in table:
        limits = replace(limits, max_entries=settings.count(
            table["max_entries"], f"{where} 'max_entries'", 1))
    if "parse_timeout" in table:
        limits = replace(limits, parse_timeout=settings.duration(
            table["parse_timeout"], f"{where} 'parse_timeout'"))
    return limits


#: Settings that are whole numbers, with their bounds (None: no upper bound).
_WHOLE_NUMBERS: dict[str, tuple[int, int | None]] = {
    "tcp_max_connections": (1, None), "tcp_max_per_client": (1, None),
    "metrics_max_connections": (1, None), "udp_batch": (0, 1024), "workers": (0, 1024),
    "query_log_sample": (1, None)}


def with_overrides(config: ServerConfig, *, listen: list[str] | None = None,
                   zones: list[str] | None = None, ttl: str | None = None,
                   check_interval: str | None = None, allow_missing: bool = False,
                   metrics: str | None = None, log_level: str | None = None,
                   log_format: str | None = None, query_log: str | None = None,
                   query_log_sample: str | None = None, rrl_rate: str | None = None,
                   udp_batch: str | None = None, workers: str | None = None,
                   control: str | None = None) -> ServerConfig:
    """Command-line values over the file: listeners replace, zones replace by name."""
    if listen:
        config = replace(config, listen=tuple(parse_listen(x) for x in listen))
    if zones:
        given = merge_zones([parse_zone_spec(z) for z in zones])
        for acl in (z for z in given if not z.name):
            config = replace(config, global_acl=acl.datasets[-1])
        given = tuple(z for z in given if z.name)
        names = {z.name for z in given}
        kept = tuple(z for z in config.zones if z.name not in names)
        config = replace(config, zones=kept + given)
    if ttl is not None:
        config = with_ttl(config, ttl, "--ttl")
    if check_interval is not None:
        config = replace(config, check_interval=settings.interval(check_interval,
                                                                  "--check-interval"))
    if allow_missing:
        config = replace(config, allow_missing=True)
    if metrics is not None:
        config = replace(config, metrics=parse_metrics(metrics))
    if log_level is not None:
        config = replace(config, log_level=cast(Any, log_level))
    if log_format is not None:
        config = replace(config, log_format=cast(Any, log_format))
    if query_log is not None:
        config = replace(config, query_log=query_log)
    if control is not None:
        config = replace(config, control=parse_control(control))
    if rrl_rate is not None:
        rate = settings.rate(rrl_rate, "--rrl-rate", zero="off")
        config = replace(config, rrl=replace(config.rrl or RRLConfig(), rate=rate)
                         if rate else None)
    for key, value in (("udp_batch", udp_batch), ("workers", workers),
                       ("query_log_sample", query_log_sample)):
        if value is not None:
            low, high = _WHOLE_NUMBERS[key]
            flag = "--" + key.replace("_", "-")
            number: dict[str, Any] = {key: settings.count(value, flag, low, high)}
            config = replace(config, **number)
    if not config.zones:
        raise ConfigError("no zones: give --zone NAME:TYPE:FILE or --config FILE")
    return config
