"""The ``dnsbl`` command: serve, check and query zones."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dnsbl import __version__, logs
from dnsbl.config import (
    LOG_FORMATS,
    LOG_LEVELS,
    ConfigError,
    ServerConfig,
    load_config,
    parse_listen,
    with_overrides,
)
from dnsbl.control import ControlError, default_path, discard, open_socket
from dnsbl.datasets import TYPES
from dnsbl.ledger import cli as ledger_cli
from dnsbl.lint import DEFAULT_MAX_WIDTH4, DEFAULT_MAX_WIDTH6, lists_loopback
from dnsbl.loader import LoadError, dataset_specs, load_snapshot
from dnsbl.spawn import Forker
from dnsbl.zones import Snapshot, Zone

if TYPE_CHECKING:
    from dnsbl.ledger.timer import PublishTimer

#: Exit codes: 1 for problems found by `check`, 2 for usage, 3 when serving cannot start.
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
STARTUP_FAILURE = 3
#: `dnsbl ctl`: the server cannot be reached (1: it said no, 2: usage).
UNREACHABLE = 3

#: RFC 5782 section 5, per kind of data: (MUST NOT be listed, MUST be listed).
_TEST_POINTS = {"ip4": ("127.0.0.1", "127.0.0.2"), "ip6": ("::ffff:7f00:1", "::ffff:7f00:2"),
                "name": ("invalid", "test")}

#: Bad lines logged at start-up; a broken feed of a million lines must not flood the log.
_MAX_LOGGED_WARNINGS = 20

log = logging.getLogger("dnsbl")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--list` must not quietly mean `--listen`, and a
        # flag added later must not change what an old abbreviation meant.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def _zone_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE",
        help="TOML configuration (listen, ttl, zones); command-line flags override it")
    parser.add_argument(
        "--zone", action="append", metavar="NAME:TYPE:FILE[,FILE...]",
        help=f"serve NAME from a dataset of TYPE ({', '.join(TYPES)}) read from "
             "FILEs (repeat it; one NAME given several times is one zone of all those "
             "datasets; :acl:FILE is the global ACL)")
    parser.add_argument(
        "--ttl", metavar="DEF[:MIN[:MAX]]",
        help="TTL of answers when the data has no $TTL (units s/m/h/d/w allowed; default "
             "35m; not 0), and as in rbldnsd's -t the bounds the data's TTLs are clamped "
             "into (e.g. 35m:1m:1d; an empty part is left as it was, a bound of 0 is none)")


def _width(longest: int) -> Callable[[str], int]:
    """An argparse type: ``/8`` or ``8``, from 0 to ``longest``."""
    def parse(text: str) -> int:
        bits = text.removeprefix("/")
        if not (bits.isascii() and bits.isdigit()) or int(bits) > longest:
            raise argparse.ArgumentTypeError(f"expected a prefix length /0 to /{longest}, "
                                             f"got {text!r}")
        return int(bits)
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dnsbl", description="A fast DNSBL server for rbldnsd-format zones.")
    parser.add_argument("--version", action="version", version=f"dnsbl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="answer DNS queries for the zones",
                           description="Load the zones, then answer DNS queries over UDP and TCP.")
    _zone_options(serve)
    serve.add_argument(
        "--listen", action="append", metavar="HOST:PORT",
        help="address to answer on, e.g. 127.0.0.1:5300 or [::1]:5300, or as rbldnsd's -b "
             "127.0.0.1/5300 or ::1/5300 (repeat it; default 127.0.0.1:5300; no port means "
             "53; port 0 picks a free port)")
    serve.add_argument(
        "--check-interval", metavar="SECONDS",
        help="how often to look for changed zone files (default 1; 0: only on SIGHUP)")
    serve.add_argument(
        "--allow-missing", action="store_true",
        help="start even if a zone cannot load; it answers SERVFAIL until its files load")
    serve.add_argument(
        "--metrics", metavar="HOST:PORT",
        help="serve /metrics, /healthz and /readyz here (default 127.0.0.1:9153; "
             "'none' turns it off)")
    serve.add_argument(
        "--rrl-rate", metavar="N",
        help="response rate limiting: N UDP responses per second per client /24 (IPv6 /56); "
             "0 or absent: off (the [rrl] table of the config sets the rest)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")
    serve.add_argument(
        "--query-log", metavar="FILE",
        help="append sampled queries to FILE as JSON lines (time, client, qname, qtype, rcode, "
             "matched entry); reopened on SIGHUP")
    serve.add_argument("--query-log-sample", metavar="N",
                       help="log one query in N (default 1: every query)")
    serve.add_argument("--log-format", choices=LOG_FORMATS,
                       help="text (default) or json: one JSON object per line")
    serve.add_argument(
        "--workers", metavar="N",
        help="server processes sharing the listen addresses (SO_REUSEPORT), each with the "
             "data; default 0: one per CPU")
    serve.add_argument(
        "--control", metavar="PATH",
        help="the control socket for `dnsbl ctl` (default: control in $RUNTIME_DIRECTORY, "
             "else /run/dnsbl for root, else $XDG_RUNTIME_DIR/dnsbl; 'none' turns it off)")
    serve.add_argument(
        "--udp-batch", metavar="N",
        help="UDP datagrams read and answered per system call (recvmmsg; default 32; "
             "0: one at a time)")

    check = sub.add_parser(
        "check", help="validate the zones without serving",
        description="Parse every zone file, print entry counts and every problem as "
                    "file:line: reason. Exit status 1 when there are problems.")
    _zone_options(check)
    check.add_argument(
        "--strict", action="store_true",
        help="also fail on what a list should never publish: an RFC 5782 never-listed "
             "test point (127.0.0.1), the whole Internet (0/0), an entry wider than "
             "--max-width4/--max-width6")
    check.add_argument(
        "--max-width4", metavar="/N", type=_width(32), default=DEFAULT_MAX_WIDTH4,
        help=f"with --strict: the widest IPv4 entry allowed (default /{DEFAULT_MAX_WIDTH4})")
    check.add_argument(
        "--max-width6", metavar="/N", type=_width(128), default=DEFAULT_MAX_WIDTH6,
        help=f"with --strict: the widest IPv6 entry allowed (default /{DEFAULT_MAX_WIDTH6})")

    query = sub.add_parser(
        "query", help="show what the server would answer, and why",
        description="Answer A and TXT for an address (under every zone) or a full name, "
                    "and name the data line that decided it.")
    _zone_options(query)
    query.add_argument("target", metavar="IP-or-NAME",
                       help="e.g. 127.0.0.2 or 2.0.0.127.bl.example.org")

    export = sub.add_parser(
        "export", help="write a zone as a BIND master file or a Response Policy Zone",
        description="Write ZONE as a standard master file (--format bind: A and TXT per "
                    "listed name, whole-octet blocks as wildcards) or as an RPZ (--format "
                    "rpz: rpz-ip triggers, actions from the [rpz] table).")
    _zone_options(export)
    export.add_argument("zone_name", metavar="ZONE", help="the zone to export")
    export.add_argument("--format", choices=("bind", "rpz"), default="bind",
                        help="bind (the default) or rpz")
    export.add_argument("--origin", metavar="NAME",
                        help="the RPZ zone's name (default: the zone's rpz origin, else "
                             "rpz.ZONE); bind: ignored")
    export.add_argument("--output", metavar="FILE",
                        help="write here (by a rename, complete or not at all); default: "
                             "standard output")
    export.add_argument("--max-records", metavar="N", type=int, default=10_000_000,
                        help="stop with an error past this many records of expanded "
                             "blocks and exclusions (default 10000000)")

    ctl = sub.add_parser(
        "ctl", help="ask the running server: status, reload, query",
        description="Talk to a running `dnsbl serve` over its control socket. Exit status: "
                    "0 done, 1 the server said no (or the query is listed nowhere), "
                    "2 usage, 3 the server cannot be reached.")
    ctl.add_argument("--control", metavar="PATH",
                     help="the server's control socket (default: as `serve` places it)")
    ctl.add_argument("--config", metavar="FILE",
                     help="the server's configuration, to find its control socket there")
    actions = ctl.add_subparsers(dest="action", required=True, parser_class=_Parser)
    status = actions.add_parser(
        "status", help="zones, serials, entries, data age, last reload, failures, workers")
    status.add_argument("--json", action="store_true", help="the reply as one JSON object")
    reload = actions.add_parser(
        "reload", help="check the zone files now, and retry what failed",
        description="Check the files of every zone (or of ZONE) now and load what changed; "
                    "exit 1 when a zone asked for did not load.")
    reload.add_argument("zone", metavar="ZONE", nargs="?", help="only retry this zone's files")
    reload.add_argument("--accept-shrink", action="store_true",
                        help="load ZONE's new data even if it shrinks past min_entries_ratio "
                             "(once; the guard is on again for the next reload)")
    ask = actions.add_parser(
        "query", help="what the running server answers, and the data line behind it",
        description="Exit 0 when listed in some zone, 1 when listed nowhere.")
    ask.add_argument("target", metavar="IP-or-NAME",
                     help="e.g. 127.0.0.2 or 2.0.0.127.bl.example.org")
    ledger = sub.add_parser(
        "ledger", help="the reputation ledger: list, remove, import, publish",
        description="Keep listings with their sources, reasons and expiry, and publish "
                    "them as zones. Exit status: 0 done, 1 nothing to do, 2 bad input, "
                    "3 the ledger cannot be used now; nothing is changed unless 0.")
    ledger_cli.add_arguments(ledger)

    web = sub.add_parser(
        "web", help="the ledger over HTTP: API, public lookup, removal requests",
        description="Serve the ledger's HTTP API (/api/v1), the public lookup page and "
                    "removal requests; loopback unless --listen or [ledger.web] listen "
                    "says otherwise (put a TLS reverse proxy in front).")
    web.add_argument("--config", metavar="FILE", required=True,
                     help="the server's TOML configuration, with a [ledger] table")
    web.add_argument("--listen", metavar="HOST:PORT",
                     help="default: [ledger.web] listen, else 127.0.0.1:8080")

    migrate = sub.add_parser(
        "from-rbldnsd", help="print the configuration equivalent to an rbldnsd command line",
        description="Print the dnsbl TOML configuration that serves what `rbldnsd ARGS...` "
                    "serves, with a comment for each rbldnsd option that has no setting "
                    "here.")
    migrate.add_argument("rbldnsd_args", nargs=argparse.REMAINDER, metavar="ARGS",
                         help="rbldnsd's options and zones, e.g. -b 127.0.0.1/53 -t 35m "
                              "bl.example.org:ip4set:bl.zone")
    return parser


def _config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config) if args.config else ServerConfig()
    return with_overrides(
        config, listen=getattr(args, "listen", None), zones=args.zone, ttl=args.ttl,
        check_interval=getattr(args, "check_interval", None),
        allow_missing=getattr(args, "allow_missing", False),
        metrics=getattr(args, "metrics", None), log_level=getattr(args, "log_level", None),
        log_format=getattr(args, "log_format", None), query_log=getattr(args, "query_log", None),
        query_log_sample=getattr(args, "query_log_sample", None),
        rrl_rate=getattr(args, "rrl_rate", None), udp_batch=getattr(args, "udp_batch", None),
        workers=getattr(args, "workers", None), control=getattr(args, "control", None))


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if given[:1] == ["from-rbldnsd"] and given[1:] not in (["-h"], ["--help"]):
        # rbldnsd's options are its own (-b, -t ...): argparse must not see them.
        return _from_rbldnsd(given[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args, sys.argv[1:] if argv is None else argv)
        if args.command == "ctl":
            return _ctl(args)
        if args.command == "ledger":
            path = getattr(args, "config", None)
            loaded = load_config(path) if path else None
            # `ledger sightings`: the query log's sample rate is the server's.
            args.default_sample = loaded.query_log_sample if loaded else 1
            status = ledger_cli.run(args, loaded.ledger if loaded else None)
            sys.stdout.flush()
            return status
        if args.command == "export":
            return _export(args)
        if args.command == "web":
            return _web(args)
        status = _check(args) if args.command == "check" else _query(args)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return status
    except ConfigError as exc:
        print(f"dnsbl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dnsbl query ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_PROBLEMS


def _export(args: argparse.Namespace) -> int:
    from dnsbl import export

    config = _config(args)
    try:
        zoneset, zone = export.load(config, args.zone_name, rpz=args.format == "rpz")
        if args.format == "rpz":
            configured = next((z.rpz for z in config.zones if z.name == zone.name), None)
            origin = (args.origin or configured or f"rpz.{zone.name}").rstrip(".")
            lines = export.master_file(export.rpz_records(zoneset, zone, config, config.rpz),
                                       origin, f"RPZ of {zone.name}")
        else:
            lines = export.master_file(export.bind_records(zoneset, zone, args.max_records),
                                       zone.name, zone.name)
        if args.output is None:
            export.write(lines, sys.stdout)
            sys.stdout.flush()
            return 0
        partial = f"{args.output}.tmp{os.getpid()}"
        try:
            with open(partial, "w", encoding="latin-1") as out:
                export.write(lines, out)
            os.replace(partial, args.output)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    except export.ExportError as exc:
        print(f"dnsbl: export {args.zone_name}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except BrokenPipeError:
        raise  # `dnsbl export ... | head`: main() handles it
    except OSError as exc:
        print(f"dnsbl: export: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    return 0


def _web(args: argparse.Namespace) -> int:
    from dnsbl.web.serve import run

    loaded = load_config(args.config)
    ledger = loaded.ledger
    if ledger is None:
        print(f"dnsbl web: {args.config}: no [ledger] table to serve", file=sys.stderr)
        return EXIT_USAGE
    if not ledger.sightings.sample:  # the followed logs are this file's server's
        ledger = replace(ledger, sightings=replace(ledger.sightings,
                                                   sample=loaded.query_log_sample))
    if args.listen:
        parse_listen(args.listen)  # a bad address is a ConfigError, said before start-up
    return run(ledger, args.listen)


def _from_rbldnsd(argv: list[str]) -> int:
    from dnsbl.migrate import rbldnsd_to_toml

    try:
        print(rbldnsd_to_toml(argv[1:] if argv[:1] == ["--"] else argv), end="")
    except ConfigError as exc:
        print(f"dnsbl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _serve(args: argparse.Namespace, argv: Sequence[str]) -> int:

    from dnsbl import commands
    from dnsbl.portlock import PortLock
    from dnsbl.server import Server, StartupError, listeners, metrics_sockets, run
    from dnsbl.supervisor import Supervisor
    from dnsbl.worker import send_startup_failure, serve_supervisor, worker_seat

    # Until the event loop handles them, signals that mean "reload" or "log
    # statistics" must not end the process by their default action.
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    seat = worker_seat()  # set when a supervisor started this process
    config = _config(args)
    logging.basicConfig(level=config.log_level.upper(), handlers=[logs.handler(
        config.log_format, f"worker {seat.index}: " if seat is not None else "")])
    workers = config.workers or os.cpu_count() or 1
    sockets: list | None = None
    metrics: list | None = None
    control = None
    origin = "the supervisor"
    timer: PublishTimer | None = None
    if seat is None and config.ledger is not None:
        publisher = _ledger_publisher(config)
        if isinstance(publisher, str):
            log.error("%s", publisher)
            return STARTUP_FAILURE
        timer = publisher
    if seat is None:
        # What can be checked at once is, before anything is logged or started,
        # so a missing file or a busy port is one line on stderr in every mode.
        problem = _unstartable(config)
        if problem:
            log.error("%s", problem)
            return STARTUP_FAILURE
        lock = PortLock()  # held until this process ends: the addresses are ours
        try:
            control = _control_socket(config)
        except ControlError as exc:
            log.error("%s", exc)
            return STARTUP_FAILURE
        supervisor = Supervisor(config, workers, argv, control) if workers > 1 else None
        try:
            if supervisor is not None:
                supervisor.bind()
            else:
                sockets, origin = listeners(config, lock)
                metrics = metrics_sockets(config)
        except StartupError as exc:
            log.error("%s", exc)
            return STARTUP_FAILURE
        log.info("dnsbl %s starting (pid %d%s)", __version__, os.getpid(),
                 f", {workers} workers" if supervisor is not None else "")
        if supervisor is not None:
            if timer is not None:
                timer.start()
            try:
                return supervisor.run()
            finally:
                if timer is not None:
                    timer.stop()
    else:
        sockets = seat.sockets
        config = replace(config, metrics=None)  # the supervisor serves the sum

    def cannot_start(message: str) -> int:
        if seat is not None:
            send_startup_failure(seat, message)  # the supervisor says it, once for all workers
        else:
            log.error("%s", message)
        return STARTUP_FAILURE

    alongside = None
    if seat is not None:
        async def alongside(server: Server) -> None:
            from dnsbl.metrics import build_registry

            registry = build_registry(server, server.loop_name, server.config.ledger)
            await serve_supervisor(seat, registry, server.readiness, server.stop,
                                   server.hangup, lambda request: commands.handle(server, request))
    started = time.monotonic()
    # Parse in child processes, in parallel: the parsing garbage never becomes
    # part of the server's memory. Forked: no thread runs yet.
    pool = Forker(min(len(config.zones) or 1, os.cpu_count() or 1),
                  timeout=config.limits.parse_timeout)
    try:
        zoneset = load_snapshot(config, pool)
    except LoadError as exc:
        if not config.allow_missing:
            return cannot_start(_load_failed(exc.errors))
        for error in exc.errors:
            log.error("%s", error)
        zoneset = exc.partial
    finally:
        pool.shutdown()
    warnings = zoneset.warnings()
    for warning in warnings[:_MAX_LOGGED_WARNINGS]:
        log.warning("%s", warning)
    more = len(warnings) + zoneset.warnings_not_kept() - _MAX_LOGGED_WARNINGS
    if more > 0:
        log.warning("%d more warnings not shown; `dnsbl check` lists them", more)
    for zone in zoneset.zones.values():
        if lists_loopback(zone):
            log.warning("zone %s lists 127.0.0.1, which RFC 5782 says must never be listed: "
                        "mail servers test a list with it (`dnsbl check --strict` fails on it)",
                        zone.name)
        if zone.loaded:
            log.info("zone %s: %d entries from %d dataset(s), serial %d",
                     zone.name, zone.entries, len(zone.datasets), zone.serial)
        else:
            log.warning("zone %s: not loaded, answering SERVFAIL until it loads", zone.name)
    log.info("loaded %d zone(s) in %.2fs", len(zoneset.zones), time.monotonic() - started)
    if timer is not None:
        timer.start()  # after the forked parsers: no thread may run while forking
    try:
        run(config, zoneset, sockets, alongside, origin, metrics, control)
    except StartupError as exc:
        return cannot_start(str(exc))
    finally:
        if timer is not None:
            timer.stop()
    return 0


def _control_socket(config: ServerConfig) -> socket.socket | None:
    """The control socket, bound, where the configuration says; None when it
    says none, or when the default place is missing or another server's.

    :raises ControlError: when a path given cannot be had.
    """
    if config.control is None:
        return None
    path = config.control or default_path()
    if path is None:
        log.info("no control socket: no runtime directory ($XDG_RUNTIME_DIR); "
                 "--control PATH gives one")
        return None
    try:
        sock = open_socket(path)
    except ControlError as exc:
        if config.control:
            raise
        # Another server has the default place (a second instance on other
        # addresses, say): this one serves without; `--control PATH` names one.
        log.warning("%s; serving without one", exc)
        return None
    # Removed at exit when start-up fails before it is served (once served,
    # the server removes it).
    atexit.register(discard, sock)
    return sock


def _ledger_publisher(config: ServerConfig) -> PublishTimer | str | None:
    """Publish the ledger once now (its zone files must exist before they are
    served) and return the timer that keeps publishing; or why it cannot."""
    from dnsbl.ledger.timer import PublishTimer, publish_now

    assert config.ledger is not None
    problem = publish_now(config.ledger)
    if problem is not None:
        ledger = config.ledger
        if not all(os.path.exists(path) for zone in ledger.zones()
                   for path in ledger.zone_files(zone)):
            return f"cannot start: {problem}"
        log.warning("%s; serving the zones published before", problem)
    if not config.ledger.publish_interval or not config.sources:
        return None
    return PublishTimer(config.sources[0], config.ledger.publish_interval)


def _load_failed(errors: Sequence[Exception]) -> str:
    return (f"cannot start: {'; '.join(map(str, errors))} (--allow-missing starts anyway, "
            "answering SERVFAIL for those zones until their files load)")


def _unstartable(config: ServerConfig) -> str | None:
    """Why serving cannot start, found without loading anything; None if nothing is."""
    from dnsbl.loader import unopenable

    if not config.allow_missing:
        errors = unopenable(config)
        if errors:
            return _load_failed(errors)
    if config.query_log:
        try:
            with open(config.query_log, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            return f"cannot open query log {config.query_log}: {exc.strerror or exc}"
    return None


def _ctl(args: argparse.Namespace) -> int:
    """`dnsbl ctl`: one request to the running server, its answer on stdout."""
    from dnsbl import commands
    from dnsbl.config import parse_control
    from dnsbl.control import call

    if args.action == "reload" and args.accept_shrink and not args.zone:
        print("dnsbl ctl: reload --accept-shrink needs the ZONE whose shrink to accept",
              file=sys.stderr)
        return EXIT_USAGE
    path: str | None = ""  # "": where `serve` puts it by default
    if args.control:
        path = parse_control(args.control)
    elif args.config:
        path = load_config(args.config).control
    if path == "":
        path = default_path()
    if path is None:
        print("dnsbl ctl: no control socket: give --control PATH (or --config FILE)",
              file=sys.stderr)
        return UNREACHABLE
    request: dict = {"command": args.action}
    if args.action == "reload":
        request.update(zone=args.zone, accept_shrink=args.accept_shrink)
    elif args.action == "query":
        request["target"] = args.target
    try:
        # A reload waits for the files to load: a big zone takes seconds, and
        # with workers every one loads its copy.
        reply = call(path, request, timeout=300 if args.action == "reload" else 30)
    except ControlError as exc:
        print(f"dnsbl ctl: {exc}", file=sys.stderr)
        return UNREACHABLE
    if args.action == "status" and args.json:
        print(json.dumps(reply, indent=2))
        return 0 if reply["ok"] else EXIT_PROBLEMS
    if args.action == "reload":
        lines = list(commands.render_reload(reply))
    elif reply["ok"] and args.action == "status":
        lines = list(commands.render_status(reply))
    else:
        lines = reply.get("lines", [])
    for line in lines:
        print(line)
    if not reply["ok"]:
        print(f"dnsbl ctl: {reply.get('error', 'refused')}", file=sys.stderr)
        return EXIT_PROBLEMS
    return 0 if args.action != "query" or reply["listed"] else EXIT_PROBLEMS


def _check(args: argparse.Namespace) -> int:
    config = _config(args)
    problems = 0
    if config.ledger is not None:
        # The ledger's zones exist once published (by `dnsbl ledger` or `serve`).
        unpublished = {name for name in config.ledger.zones()
                       if not all(map(os.path.exists, config.ledger.zone_files(name)))}
        for name in sorted(unpublished):
            print(f"{name}: not published yet (`dnsbl ledger publish` or `dnsbl serve` "
                  "writes it)")
        config = replace(config, zones=tuple(z for z in config.zones
                                             if z.name not in unpublished))
    try:
        zoneset = load_snapshot(config)
    except LoadError as exc:
        zoneset = exc.partial
        for error in exc.errors:
            print(f"error: {error}")
        problems += len(exc.errors)
    for warning in zoneset.warnings():
        print(f"error: {warning}")
        problems += 1
    not_kept = zoneset.warnings_not_kept()
    if not_kept:  # past MAX_WARNINGS a dataset, bad lines are counted, not kept
        print(f"error: {not_kept} more problem(s) like those, not listed")
        problems += not_kept
    if args.strict:
        from dnsbl.lint import wide_entries

        for spec in dataset_specs(config).values():
            for wide in wide_entries(spec.type, spec.files, args.max_width4, args.max_width6):
                print(f"error: {wide}")
                problems += 1
    for zone_config in config.zones:
        zone = zoneset.by_name(zone_config.name)
        if zone is None or not zone.loaded:
            print(f"{zone_config.name}: not loaded")
            continue
        print(f"{zone.name}: {zone.entries} entries, serial {zone.serial}")
        # A combined file's sections attached only to subzones answer there.
        subzones = [z for z in zoneset.zones.values()
                    if z.parent_labels and z.name.endswith("." + zone.name)]
        for served in (zone, *subzones):
            indent = "  "
            if served is not zone:
                print(f"  subzone {served.name}:")
                indent = "    "
            for dataset in served.datasets:
                if served is not zone and dataset.family == "combined":
                    continue  # listed with the zone itself
                print(f"{indent}{dataset.kind} {','.join(dataset.paths)}: {dataset.listed} "
                      f"entries, {dataset.exclusions} exclusions, ttl {dataset.ttl}")
            problems += _check_test_points(served, zoneset, args.strict)
    print(f"{problems} problem(s)")
    return EXIT_PROBLEMS if problems else 0


def _check_test_points(zone: Zone, zoneset: Snapshot, strict: bool) -> int:
    """Say where a zone lists what RFC 5782 says it must never, or does not
    list its test entries, for each kind of data it has; with ``strict`` the
    former are problems (their count is returned), else warnings."""
    from dnsbl.explain import name_under, reply_for

    problems = 0
    families = {d.family for d in zone.datasets}
    for family, (never, always) in _TEST_POINTS.items():
        if family not in families:
            continue
        for key, must in ((never, False), (always, True)):
            reply = reply_for(name_under(key, zone.name), "A", zoneset)
            listed = reply is not None and bool(reply.rr)
            if listed and not must:
                print(f"{'error' if strict else 'warning'}: {zone.name}: {key} is listed; "
                      "RFC 5782 says it must never be")
                problems += strict
            elif must and not listed:
                print(f"note: {zone.name}: {key} is not listed; RFC 5782 asks lists to list "
                      "it as a test entry")
    return problems


def _query(args: argparse.Namespace) -> int:
    """Exit 0 when the target is listed in some zone, 1 when in none, 2 when it
    cannot be asked (not an address or a name, under no zone) or some data did
    not load (as grep: an error outweighs a miss)."""
    import dnslib

    from dnsbl.explain import find_zone, query_name, reply_for, target_problem

    problem = target_problem(args.target)
    if problem:
        print(f"dnsbl: {problem}", file=sys.stderr)
        return EXIT_USAGE
    config = _config(args)
    status = EXIT_PROBLEMS  # until an answer lists it
    try:
        zoneset = load_snapshot(config)
    except LoadError as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        zoneset = exc.partial  # what a server missing that data answers, shown below
        failed = True
    else:
        failed = False
    out: list[str] = []  # printed at the end, so a closed pipe cannot change the status
    for name in query_name(args.target, zoneset):
        out.append(f";; {name}")
        located = find_zone(name, zoneset)
        for qtype in ("A", "TXT"):
            reply = reply_for(name, qtype, zoneset)
            if reply is None:
                out.append(f"{qtype}: no reply")
                continue
            rcode = dnslib.RCODE.get(reply.header.rcode)
            out.append(f"{qtype}: {rcode}")
            for rr in reply.rr:
                out.append(f"  {rr.toZone()}")
                if rr.rtype == dnslib.QTYPE.A:
                    status = 0
        if located is None:
            out.append("  not under any served zone")
            failed = True
            continue
        out.extend(_explain(located, zoneset))
    status = EXIT_USAGE if failed else status
    try:
        print("\n".join(out))
        sys.stdout.flush()
    except BrokenPipeError:  # `dnsbl query ... | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return status


def _explain(located: tuple, zoneset: Snapshot) -> list[str]:
    from dnsbl.explain import matches
    from dnsbl.keys import key_of

    zone, prefix = located
    key = key_of(prefix)
    if not prefix:
        return [f"  the apex of zone {zone.name}"]
    lines = []
    for dataset, match in zip(zone.datasets, matches(zone, key), strict=True):
        what = match.describe() if match else f"{','.join(dataset.paths)}: no entry"
        lines.append(f"  {dataset.kind} {what}")
    return lines

