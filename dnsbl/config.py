"""Server configuration: one TOML file and command-line overrides, one set of defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from dnsbl.zonefile import DATASET_TYPES, NS, SOA, parse_ns, parse_soa, parse_time

DEFAULT_PORT = 53


class ConfigError(Exception):
    """The configuration cannot be used; the message says why."""


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
    sources: tuple[str, ...] = field(default=(), compare=False)


def parse_listen(text: str) -> Listen:
    """``"127.0.0.1:5300"`` / ``"[::1]:5300"`` / ``"::1"`` -> Listen.

    :raises ConfigError: for a bad address or port.
    """
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"bad listen address {text!r}: expected [ADDRESS]:PORT")
        if rest:
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"bad listen address {text!r}: port must be 0-65535")
    if not host:
        raise ConfigError(f"bad listen address {text!r}: no host")
    return Listen(host, int(port))


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
    if kind not in DATASET_TYPES:
        raise ConfigError(
            f"{where}: unknown dataset type {kind!r} (known: {', '.join(DATASET_TYPES)})")
    if isinstance(files, str):
        files = [files]
    if not files or not all(isinstance(f, str) and f for f in files):
        raise ConfigError(f"{where}: 'files' must be a list of file names")
    return DatasetConfig(kind, tuple(os.path.join(base, f) for f in files))


def merge_zones(zones: list[ZoneConfig]) -> tuple[ZoneConfig, ...]:
    """Zones named more than once become one zone of all their datasets (rbldnsd style)."""
    merged: dict[str, ZoneConfig] = {}
    for zone in zones:
        if zone.name in merged:
            old = merged[zone.name]
            merged[zone.name] = replace(old, datasets=old.datasets + zone.datasets)
        else:
            merged[zone.name] = zone
    return tuple(merged.values())


_TOP_KEYS = {"listen", "ttl", "zone", "check_interval", "allow_missing", "metrics", "acl",
             "log_level", "log_format", "query_log", "query_log_sample", "rrl",
             "tcp_idle_timeout", "tcp_max_connections", "tcp_max_per_client", "edns_payload",
             "nsid", "udp_batch", "workers", "control"}
_ZONE_KEYS = {"name", "type", "files", "datasets", "min_entries_ratio", "max_data_age", "soa",
              "ns"}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def load_config(path: str) -> ServerConfig:
    """Read a TOML configuration; file names in it are relative to its folder.

    :raises ConfigError: with the file name and what is wrong.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")
    base = os.path.dirname(path)
    config = ServerConfig(sources=(path,))
    if "listen" in data:
        listen = data["listen"]
        if isinstance(listen, str):
            listen = [listen]
        if not isinstance(listen, list) or not listen:
            raise ConfigError(f"{path}: 'listen' must be a list of HOST:PORT")
        config = replace(config, listen=tuple(parse_listen(str(x)) for x in listen))
    if "ttl" in data:
        config = replace(config, ttl=_ttl(data["ttl"], path))
    if "check_interval" in data:
        config = replace(config, check_interval=_interval(data["check_interval"], path))
    if "allow_missing" in data:
        if not isinstance(data["allow_missing"], bool):
            raise ConfigError(f"{path}: 'allow_missing' must be true or false")
        config = replace(config, allow_missing=data["allow_missing"])
    if "metrics" in data:
        config = replace(config, metrics=parse_metrics(str(data["metrics"])))
    if "acl" in data:
        config = replace(config, global_acl=_dataset("acl", data["acl"], base, f"{path}: acl"))
    if "rrl" in data:
        config = replace(config, rrl=_rrl(data["rrl"], path))
    if "tcp_idle_timeout" in data:
        config = replace(config, tcp_idle_timeout=_interval(data["tcp_idle_timeout"], path))
    for key, (low, high) in _WHOLE_NUMBERS.items():
        if key in data:
            number: dict[str, Any] = {key: _whole(data[key], f"{path}: '{key}'", low, high)}
            config = replace(config, **number)
    if "nsid" in data:
        nsid = str(data["nsid"])
        if not nsid.isascii() or len(nsid) > 128:
            raise ConfigError(f"{path}: 'nsid' must be ASCII, at most 128 characters")
        config = replace(config, nsid=nsid)
    if "query_log" in data:
        config = replace(config, query_log=os.path.join(base, str(data["query_log"])))
    if "query_log_sample" in data:
        config = replace(config, query_log_sample=_sample(data["query_log_sample"], path))
    if "control" in data:
        control = data["control"]
        if not isinstance(control, str) or not control:
            raise ConfigError(f"{path}: 'control' must be a path, or \"none\"")
        config = replace(config, control=parse_control(control, base))
    for key, choices in (("log_level", LOG_LEVELS), ("log_format", LOG_FORMATS)):
        if key in data:
            if data[key] not in choices:
                raise ConfigError(f"{path}: '{key}' must be one of {', '.join(choices)}")
            config = replace(config, **{key: data[key]})
    zones = []
    for i, table in enumerate(data.get("zone", []), 1):
        where = f"{path}: zone #{i}"
        if not isinstance(table, dict) or "name" not in table:
            raise ConfigError(f"{where}: needs a name")
        unknown = set(table) - _ZONE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
        name = normalize_zone_name(str(table["name"]))
        specs = table.get("datasets", [])
        if "type" in table:
            specs = [{"type": table["type"], "files": table.get("files")}, *specs]
        if not specs:
            raise ConfigError(f"{where} ({name}): needs 'type' and 'files', or 'datasets'")
        datasets = tuple(
            _dataset(str(s.get("type")), s.get("files"), base, f"{where} ({name})")
            for s in specs
        )
        ratio = table.get("min_entries_ratio", ZoneConfig.min_entries_ratio)
        if not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise ConfigError(f"{where} ({name}): 'min_entries_ratio' must be from 0 to 1")
        max_age = table.get("max_data_age")
        if max_age is not None:
            max_age = _ttl(max_age, f"{where} ({name}): max_data_age")
        zones.append(ZoneConfig(name, datasets, float(ratio), max_age,
                                *_apex(table, f"{where} ({name})")))
    return replace(config, zones=merge_zones(zones))


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


def _ttl(value: Any, where: str) -> int:
    try:
        return parse_time(str(value))
    except ValueError:
        raise ConfigError(f"{where}: bad ttl {value!r}") from None


def _interval(value: Any, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1
    if not 0 <= seconds <= 86400:
        raise ConfigError(f"{where}: bad check interval {value!r} (seconds, 0 disables)")
    return seconds


def _rrl(table: Any, where: str) -> RRLConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [rrl] must be a table")
    unknown = set(table) - {"rate", "slip", "ipv4_prefix", "ipv6_prefix", "exempt"}
    if unknown:
        raise ConfigError(f"{where}: [rrl]: unknown setting(s): {', '.join(sorted(unknown))}")
    rrl = RRLConfig()
    try:
        rrl = RRLConfig(
            rate=float(table.get("rate", rrl.rate)), slip=int(table.get("slip", rrl.slip)),
            ipv4_prefix=int(table.get("ipv4_prefix", rrl.ipv4_prefix)),
            ipv6_prefix=int(table.get("ipv6_prefix", rrl.ipv6_prefix)),
            exempt=tuple(str(ipaddress.ip_network(n, strict=False))
                         for n in table.get("exempt", ())))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: [rrl]: {exc}") from None
    if rrl.rate <= 0 or rrl.slip < 0 or not 0 < rrl.ipv4_prefix <= 32 \
            or not 0 < rrl.ipv6_prefix <= 128:
        raise ConfigError(f"{where}: [rrl]: rate must be positive, slip 0 or more, prefixes "
                          "1-32 and 1-128")
    return rrl


def _rrl_table(rrl: RRLConfig | None) -> dict[str, Any]:
    return {} if rrl is None else {
        "slip": rrl.slip, "ipv4_prefix": rrl.ipv4_prefix, "ipv6_prefix": rrl.ipv6_prefix,
        "exempt": list(rrl.exempt)}


def _sample(value: Any, where: str) -> int:
    return _whole(value, f"{where}: query log sample", 1, None)


#: Settings that are whole numbers, with their bounds (None: no upper bound).
_WHOLE_NUMBERS: dict[str, tuple[int, int | None]] = {
    "tcp_max_connections": (1, None), "tcp_max_per_client": (1, None),
    "edns_payload": (512, 65535), "udp_batch": (0, 1024),
    "workers": (0, 1024)}


def _whole(value: Any, what: str, low: int, high: int | None) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if (not isinstance(value, int) or isinstance(value, bool) or value < low
            or (high is not None and value > high)):
        bounds = f"from {low} up" if high is None else f"from {low} to {high}"
        raise ConfigError(f"{what} must be a whole number {bounds}")
    return value


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
        config = replace(config, ttl=_ttl(ttl, "--ttl"))
    if check_interval is not None:
        config = replace(config, check_interval=_interval(check_interval, "--check-interval"))
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
    if query_log_sample is not None:
        config = replace(config, query_log_sample=_sample(query_log_sample, "--query-log-sample"))
    if rrl_rate is not None:
        config = replace(config, rrl=_rrl({**_rrl_table(config.rrl), "rate": rrl_rate},
                                          "--rrl-rate") if rrl_rate != "0" else None)
    for key, value in (("udp_batch", udp_batch), ("workers", workers)):
        if value is not None:
            low, high = _WHOLE_NUMBERS[key]
            flag = "--" + key.replace("_", "-")
            number: dict[str, Any] = {key: _whole(value, flag, low, high)}
            config = replace(config, **number)
    if not config.zones:
        raise ConfigError("no zones: give --zone NAME:TYPE:FILE or --config FILE")
    return config
