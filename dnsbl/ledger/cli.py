"""``dnsbl ledger ...``: the analyst's commands over the store.

Exit codes: 0 done; 1 nothing to do (remove of a key not listed, show of one
never listed); 2 bad input or configuration (nothing changed); 3 the ledger or
the zone directory cannot be used now (locked, read-only, full disk; nothing
changed).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

from dnsbl.ledger.access import Access
from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.formats import EXPORT_FORMATS, FORMATS, Defaults, read, write_export
from dnsbl.ledger.guard import Guard
from dnsbl.ledger.model import (
    Key,
    LedgerError,
    Report,
    iso,
    now,
    parse_confidence,
    parse_duration,
    parse_expiry,
    parse_key,
    parse_reason,
    parse_when,
)
from dnsbl.ledger.passwords import hash_password
from dnsbl.ledger.publish import Published, publish
from dnsbl.ledger.show import show
from dnsbl.ledger.sightings import follow, take_in
from dnsbl.ledger.store import READ_ONLY, Store, open_store

EXIT_NOTHING = 1
EXIT_INPUT = 2
EXIT_UNAVAILABLE = 3
#: Bad lines printed by a failed import; the rest are counted.
_SHOWN_ERRORS = 20


class _Unavailable(Exception):
    """The ledger or the zone files cannot be used now; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ledger`` subcommands, on the ``dnsbl ledger`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the server's TOML configuration, with a [ledger] table")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the result as JSON")
    common.add_argument("--by", metavar="NAME", default=argparse.SUPPRESS,
                        help="who makes the change, for the audit (default: the login name)")
    for action in common._actions:
        parser._add_action(action)
    sub = parser.add_subparsers(dest="ledger_command", required=True,
                                parser_class=type(parser))

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    def no_publish(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-publish", action="store_true",
                       help="do not publish the zones after the change")

    add = command("add", "list KEY (an address or CIDR), or extend the listing of the same "
                         "key, category and source")
    add.add_argument("key", metavar="KEY")
    add.add_argument("--category", required=True)
    add.add_argument("--source", required=True, help="the team or feed that reported it")
    add.add_argument("--reason", required=True, help="published in the TXT; at most 255 bytes")
    add.add_argument("--expires", metavar="7d|DATE",
                     help="default: the category's lifetime from now")
    add.add_argument("--ref", default="", help="a ticket or URL")
    add.add_argument("--confidence", default="100", help="0-100 (default 100)")
    add.add_argument("--force", action="store_true",
                     help="publish it even where the guard would hold it back (recorded)")
    no_publish(add)

    remove = command("remove", "end the listings of exactly KEY; older evidence imported "
                               "later does not list it again")
    remove.add_argument("key", metavar="KEY")
    remove.add_argument("--category")
    remove.add_argument("--source")
    remove.add_argument("--reason", required=True)
    no_publish(remove)

    show = command("show", "every listing, live or not, that covers KEY, with its history")
    show.add_argument("key", metavar="KEY")

    listing = command("list", "listings, live ones unless --all")
    listing.add_argument("--category")
    listing.add_argument("--source")
    listing.add_argument("--expiring-within", metavar="DURATION", help="e.g. 2d")
    listing.add_argument("--added-since", metavar="TIME", help="a date or a duration ago")
    listing.add_argument("--all", action="store_true", help="removed and expired ones too")

    history = command("history", "the audit: every change, oldest first")
    history.add_argument("key", metavar="KEY", nargs="?")
    history.add_argument("--since", metavar="TIME", help="a date or a duration ago")
    history.add_argument("--limit", type=int, metavar="N", help="only the last N")

    imp = command("import", "list every address of FILE ('-': standard input) in one "
                            "transaction, or nothing when a line is bad")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--format", choices=FORMATS, required=True)
    imp.add_argument("--source", help="the source of lines that name none")
    imp.add_argument("--category", help="the category of lines that name none")
    imp.add_argument("--expires", metavar="7d|DATE",
                     help="default: each line's time plus its category's lifetime")
    imp.add_argument("--reason", help="the reason of lines that give none "
                                      "(default: 'imported from FILE')")
    imp.add_argument("--seen", metavar="TIME",
                     help="when the evidence of lines without a time is from (default: now)")
    imp.add_argument("--skip-bad", action="store_true",
                     help="import the good lines and report the bad ones")
    no_publish(imp)

    export = command("export", "the live listings with their sources, to import elsewhere")
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    export.add_argument("--since", metavar="TIME", help="reported since (a date or a "
                                                        "duration ago)")
    export.add_argument("--output", metavar="FILE", help="default: standard output")

    command("publish", "write the zone files from the live, guarded listings")

    allow = sub.add_parser("allow", help="the allowlist kept in the ledger: never published",
                           description="Addresses and networks the guard holds back at "
                                       "every publish, beside the allowlist files.")
    allow_sub = allow.add_subparsers(dest="allow_command", required=True,
                                     parser_class=type(parser))
    for name, text in (("add", "never publish KEY (an address or CIDR) nor what overlaps it"),
                       ("remove", "publish KEY again where listed")):
        change = allow_sub.add_parser(name, help=text, description=text, parents=[common])
        change.add_argument("key", metavar="KEY")
        change.add_argument("--reason", required=True, help="why, for the audit")
        no_publish(change)
    allow_sub.add_parser("list", help="the allowlist, with who added each and why",
                         description="the allowlist, with who added each and why",
                         parents=[common])

    token = sub.add_parser("token", help="API tokens for `dnsbl web`",
                           description="Bearer tokens for the HTTP API: each writes only "
                                       "its sources; shown once, kept as a digest.")
    token_sub = token.add_subparsers(dest="token_command", required=True,
                                     parser_class=type(parser))
    create = token_sub.add_parser("create", parents=[common],
                                  help="make a token and print it alone (shown only now)",
                                  description="make a token and print it alone on standard "
                                              "output; it is not shown again")
    create.add_argument("--source", action="append", required=True,
                        help="a source it may write (repeat for several)")
    create.add_argument("--name", help="for the audit and `token revoke` "
                                       "(default: the first source and a random suffix)")
    create.add_argument("--read-only", action="store_true", help="it may only read")
    create.add_argument("--expires", metavar="90d|DATE", help="default: never")
    token_sub.add_parser("list", parents=[common], help="every token, without its secret",
                         description="every token, without its secret")
    revoke = token_sub.add_parser("revoke", parents=[common], help="revoke the token NAME",
                                  description="revoke the token NAME: it is refused from now")
    revoke.add_argument("name", metavar="NAME")

    sightings = command("sightings", "take in `dnsbl serve`'s sampled query logs: which "
                                     "listed keys are looked up, how often, by how many "
                                     "resolvers")
    sightings.add_argument("files", metavar="FILE", nargs="+")
    sightings.add_argument("--sample", type=int, metavar="N",
                           help="1 in N queries was logged (default: the configuration's "
                                "query_log_sample)")
    sightings.add_argument("--follow", type=float, metavar="SECONDS",
                           help="keep reading every SECONDS until SIGTERM or SIGINT, "
                                "FILE.1 too (a rotated log's last lines)")

    analyst = sub.add_parser("analyst", help="analysts of the web UI",
                             description="Analysts who log in to `dnsbl web`'s /ui.")
    analyst_sub = analyst.add_subparsers(dest="analyst_command", required=True,
                                         parser_class=type(parser))
    set_ = analyst_sub.add_parser("set", parents=[common],
                                  help="add analyst NAME or change their password",
                                  description="add analyst NAME or change their password "
                                              "(their sessions end); the password is read "
                                              "from standard input, one line")
    set_.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace, config: LedgerConfig | None) -> int:
    """Run one ``dnsbl ledger`` command; returns the exit code."""
    if config is None:
        return _fail("no ledger: give --config FILE with a [ledger] table", EXIT_INPUT)
    as_json = getattr(args, "json", False)
    who = getattr(args, "by", None) or _login()
    command = args.ledger_command
    if command == "allow":
        command = f"allow {args.allow_command}"
    if command in ("token", "analyst"):
        command = f"{command} {getattr(args, command + '_command')}"
    try:
        store = open_store(config.database, config.lock_timeout)
    except LedgerError as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except Exception as exc:  # the driver's, for a database that cannot be opened
        return _fail(f"{config.database}: {exc}", EXIT_UNAVAILABLE)
    if store.read_only and command not in _READERS:
        store.close()  # its schema may be older too: say it before any query
        return _fail(f"{store.url}: {READ_ONLY}", EXIT_UNAVAILABLE)
    try:
        handler = _COMMANDS[command]
        result, status, changed = handler(args, config, store, who)
        if changed is not None and not getattr(args, "no_publish", False):
            result["published"] = _publish(store, config, who, changed or None).as_dict()
        _print(result, as_json)
        return status
    except LedgerError as exc:
        return _fail(str(exc), EXIT_INPUT)
    except _Unavailable as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except store.errors as exc:
        return _fail(store.explain(exc), EXIT_UNAVAILABLE)
    finally:
        store.close()


def _publish(store: Store, config: LedgerConfig, who: str,
             changed: list[bytes] | None = None) -> Published:
    """Publish every file, or those the keys starting at ``changed`` fall in."""
    try:
        return publish(store, config, now(), who, changed)
    except OSError as exc:
        raise _Unavailable(f"cannot write the zones in {config.publish_dir}: "
                           f"{exc.strerror or exc}; the old files stay") from None


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _fail(message: str, status: int) -> int:
    print(f"dnsbl ledger: {message}", file=sys.stderr)
    return status


#: What to print, the exit code, and what changed: None nothing, [] anything
#: (publish every file), else the first addresses of the keys changed.
Outcome = tuple[dict[str, Any], int, list[bytes] | None]


def _add(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    at = now()
    category = config.category(args.category)
    key = parse_key(args.key)
    expires = parse_expiry(args.expires, at) if args.expires else at + category.lifetime
    report = Report(key, category.name, args.source, parse_reason(args.reason), at, expires,
                    args.ref, parse_confidence(args.confidence), None, args.force, who)
    result: dict[str, Any] = {"key": key.text, "category": category.name,
                              "source": args.source, "expires": iso(expires)}
    why = Guard(config, store.allowed()).check(key.family, key.start, key.end, key.prefixlen,
                                               category, args.force)
    if why is not None:
        result["warning"] = f"{key.text} will not be published: {why}" + (
            "" if key.text == "127.0.0.1" else " (--force publishes it anyway)")
    store.stage([report])
    result.update(store.merge(at, who, "add").as_dict())
    return result, 0, [key.start]


def _remove(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    key = parse_key(args.key)
    category = config.category(args.category).name if args.category else None
    ended = store.remove(key, category, args.source, parse_reason(args.reason), who, now())
    if not ended:
        return {"key": key.text, "removed": [],
                "message": f"{key.text}: no live listing to remove"}, EXIT_NOTHING, None
    return {"key": key.text, "removed": [e.as_dict() for e in ended]}, 0, [key.start]


def _show(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    result = show(store, parse_key(args.key))
    return result, 0 if result["listings"] or result["history"] else EXIT_NOTHING, None


def _list(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    at = now()
    expiring = at + parse_duration(args.expiring_within) if args.expiring_within else None
    rows = store.listings(
        at, category=config.category(args.category).name if args.category else None,
        source=args.source, expiring_before=expiring,
        since=_moment(args.added_since, at) if args.added_since else None,
        active=not args.all)
    return {"listings": _Lazy(dict(r.as_dict(), active=r.active(at)) for r in rows)}, 0, None


def _history(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    keys = [parse_key(args.key).text] if args.key else []
    since = _moment(args.since, now()) if args.since else None
    entries = store.history(keys, since, args.limit)
    return {"history": [e.as_dict() for e in entries]}, 0, None


def _import(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    at = now()
    name = "<stdin>" if args.file == "-" else args.file
    defaults = Defaults(
        config, at, source=args.source,
        category=config.category(args.category).name if args.category else None,
        expires=parse_expiry(args.expires, at) if args.expires else None,
        reason=parse_reason(args.reason if args.reason is not None
                            else f"imported from {os.path.basename(name)}"),
        entered_by=who, seen=parse_when(args.seen) if args.seen else None)
    bad: list[str] = []
    counts = {"bad": 0, "read": 0}

    def reports(stream: IO[str]) -> Iterator[Report]:
        for lineno, item in read(args.format, stream, defaults):
            if isinstance(item, str):
                counts["bad"] += 1
                if len(bad) < 1000:
                    bad.append(f"{name}:{lineno}: {item}")
            else:
                counts["read"] += 1
                yield item

    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8",
                                                         errors="replace", newline="")
    except OSError as exc:
        raise LedgerError(f"{args.file}: cannot read: {exc.strerror or exc}") from None
    with stream:
        store.stage(reports(stream))
    if counts["bad"] and not args.skip_bad:
        store.discard()
        shown = "\n".join(bad[:_SHOWN_ERRORS])
        more = counts["bad"] - min(len(bad), _SHOWN_ERRORS)
        raise LedgerError(
            f"{shown}\n{counts['bad']} bad line(s){f' ({more} not shown)' if more else ''}; "
            "nothing imported (--skip-bad imports the good ones)")
    merged = store.merge(at, who, f"import {os.path.basename(name)} ({args.format})")
    result = {"file": name, "records": counts["read"], "skipped": counts["bad"],
              **merged.as_dict()}
    if bad:
        result["bad"] = bad
    return result, 0, [] if merged.added + merged.extended + merged.relisted else None


def _export(args: argparse.Namespace, config: LedgerConfig, store: Store, who: str) -> Outcome:
    at = now()
    rows = store.listings(at, seen_since=_moment(args.since, at) if args.since else None)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = write_export(args.format, rows, out)
        except OSError as exc:
            raise _Unavailable(f"{args.output}: cannot write: {exc.strerror or exc}") from None
        return {"exported": count, "file": args.output}, 0, None
    write_export(args.format, rows, sys.stdout)
    return {}, 0, None


def _publish_command(args: argparse.Namespace, config: LedgerConfig, store: Store,
                     who: str) -> Outcome:
    return {"published": _publish(store, config, who).as_dict()}, 0, None


def _allow_add(args: argparse.Namespace, config: LedgerConfig, store: Store,
               who: str) -> Outcome:
    key = parse_key(args.key)
    new = store.allow(key, parse_reason(args.reason), who, now())
    return ({"key": key.text, "allowed": True,
             "message": f"{key.text} is allowlisted" + ("" if new else " (reason updated)")},
            0, _first_addresses(key))


def _allow_remove(args: argparse.Namespace, config: LedgerConfig, store: Store,
                  who: str) -> Outcome:
    key = parse_key(args.key)
    if not store.unallow(key, parse_reason(args.reason), who, now()):
        return ({"key": key.text, "allowed": False,
                 "message": f"{key.text}: not on the ledger's allowlist"}, EXIT_NOTHING, None)
    return ({"key": key.text, "allowed": False,
             "message": f"{key.text} is off the allowlist"}, 0, _first_addresses(key))


def _allow_list(args: argparse.Namespace, config: LedgerConfig, store: Store,
                who: str) -> Outcome:
    return {"allowlist": [{"key": key, "why": why, "who": who_, "at": iso(at)}
                          for key, _family, _start, _end, why, who_, at in store.allowed()]
            }, 0, None


def _token_create(args: argparse.Namespace, config: LedgerConfig, store: Store,
                  who: str) -> Outcome:
    at = now()
    secret, token = Access(store).create_token(
        args.name or "", tuple(args.source), args.read_only,
        parse_expiry(args.expires, at) if args.expires else None, who, at)
    # The secret alone on standard output: `TOKEN=$(dnsbl ledger token create ...)`.
    return {"token": secret, **token.as_dict()}, 0, None


def _token_list(args: argparse.Namespace, config: LedgerConfig, store: Store,
                who: str) -> Outcome:
    return {"tokens": [t.as_dict() for t in Access(store).tokens()]}, 0, None


def _token_revoke(args: argparse.Namespace, config: LedgerConfig, store: Store,
                  who: str) -> Outcome:
    if not Access(store).revoke_token(args.name, who, now()):
        return ({"message": f"{args.name}: no live token of that name"}, EXIT_NOTHING, None)
    return {"message": f"token {args.name} revoked"}, 0, None


def _analyst_set(args: argparse.Namespace, config: LedgerConfig, store: Store,
                 who: str) -> Outcome:
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise LedgerError("the passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise LedgerError("a password has at least 12 characters")
    if not args.name or any(c.isspace() for c in args.name):
        raise LedgerError(f"an analyst's name is one word, not {args.name!r}")
    new = Access(store).set_analyst(args.name, hash_password(password), who, now())
    return {"message": f"analyst {args.name} " + ("added" if new else "has a new password")
            }, 0, None


def _sightings(args: argparse.Namespace, config: LedgerConfig, store: Store,
               who: str) -> Outcome:
    sample = args.sample or getattr(args, "default_sample", 1)
    if sample < 1:
        raise LedgerError("--sample must be 1 or more")
    if args.follow is not None:
        if args.follow <= 0:
            raise LedgerError("--follow takes a number of seconds above 0")
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        counts = follow(store, config, args.files, sample, args.follow, stop)
    else:
        counts = take_in(store, config, args.files, sample)
    return {"message": f"{counts['lines']} line(s) read, {counts['matches']} sighting(s) "
                       f"of listed keys, {counts['bad']} bad line(s)", **counts}, 0, None


def _first_addresses(key: Key) -> list[bytes]:
    """What to publish after a change to ``key``: the file its first byte picks,
    or every file ([]) for a network wider than one first byte."""
    return [key.start] if key.prefixlen >= 8 else []


#: What a read-only ledger can do: read, and publish (which writes the zone
#: files, and to the ledger only the audit row of a publish that changed one).
_READERS = {"show", "list", "history", "export", "allow list", "publish", "token list"}
_COMMANDS = {"add": _add, "remove": _remove, "show": _show, "list": _list,
             "history": _history, "import": _import, "export": _export,
             "publish": _publish_command, "allow add": _allow_add,
             "allow remove": _allow_remove, "allow list": _allow_list,
             "token create": _token_create, "token list": _token_list,
             "token revoke": _token_revoke, "analyst set": _analyst_set,
             "sightings": _sightings}


def _moment(text: str, at: int) -> int:
    """A date, or a duration before ``at`` (``2d``: two days ago)."""
    try:
        return at - parse_duration(text)
    except LedgerError:
        return parse_when(text)


class _Lazy:
    """Rows the printers stream through instead of holding them all."""

    def __init__(self, items: Iterator[dict[str, Any]]) -> None:
        self.items = items


def _print(result: dict[str, Any], as_json: bool) -> None:
    if not result:
        return
    if as_json:
        lazy = [k for k, v in result.items() if isinstance(v, _Lazy)]
        if lazy:  # stream a long list: one element at a time
            name = lazy[0]
            sys.stdout.write("{" + json.dumps(name) + ": [")
            for i, item in enumerate(result[name].items):
                sys.stdout.write(("," if i else "") + "\n" + json.dumps(item))
            sys.stdout.write("\n]}\n")
            return
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return
    for line in _text(result):
        print(line)


def _text(result: dict[str, Any]) -> Iterator[str]:
    if "token" in result:
        yield result["token"]
        return
    if "warning" in result:
        print(f"warning: {result['warning']}", file=sys.stderr)
    if "message" in result:
        yield result["message"]
    if "added" in result:
        what = ", ".join(f"{result[k]} {k.replace('_', ' ')}"
                         for k in ("added", "extended", "relisted", "held_by_removal"))
        where = f"{result['file']}: {result['records']} record(s), " if "file" in result else (
            f"{result['key']} {result['category']} from {result['source']} until "
            f"{result['expires']}: ")
        yield where + what + (f", {result['skipped']} bad line(s) skipped"
                              if result.get("skipped") else "")
        for line in result.get("bad", [])[:_SHOWN_ERRORS]:
            yield f"  skipped {line}"
    for listing in result.get("removed", []):
        yield (f"removed {listing['key']} {listing['category']} from {listing['source']}")
    listings = result.get("listings")
    if listings is not None:
        items = listings.items if isinstance(listings, _Lazy) else listings
        count = 0
        for item in items:
            count += 1
            state = "live" if item["active"] else (
                f"removed {item['removed_at']}" if item["removed_at"] else "expired")
            yield (f"{item['key']}  {item['category']}  {item['source']}  {state}  "
                   f"first {item['first_seen']}  last {item['last_seen']}  expires "
                   f"{item['expires']}  confidence {item['confidence']}"
                   f"{'  forced' if item['forced'] else ''}  {item['reason']}"
                   + (f"  ref {item['ref']}" if item["ref"] else ""))
        if not count and "key" in result:
            yield f"{result['key']}: never listed"
    if result.get("history"):
        if "key" in result:
            yield "history:"
        for entry in result["history"]:
            target = " ".join(x for x in (entry["key"], entry["category"], entry["source"]) if x)
            yield (f"{entry['at']}  {entry['action']}  by {entry['who'] or '-'}  {target}"
                   + (f": {entry['why']}" if entry["why"] else "")
                   + (f"  [{entry['details']}]" if entry["details"] else ""))
    if result.get("sightings"):
        yield "sightings:"
        for seen in result["sightings"]:
            yield (f"{seen['day']}  {seen['key']}  {seen['lookups']} lookup(s) from "
                   f"{seen['resolvers']} resolver(s), first {seen['first']}, "
                   f"last {seen['last']}")
    published = result.get("published")
    if published is not None:
        for zone, count in published["entries"].items():
            state = "written" if zone in published["changed"] else "unchanged"
            part = " in the file the change fell in" if published["partial"] else ""
            yield f"published {zone}: {count} entries{part} ({state})"
        held = published["held"]
        if held:
            yield f"held back {len(held)} listing(s):"
            for item in held[:_SHOWN_ERRORS]:
                yield f"  {item['key']} {item['category']}: {item['why']}"
            if len(held) > _SHOWN_ERRORS:
                yield f"  ... and {len(held) - _SHOWN_ERRORS} more (--json lists them all)"
    for entry in result.get("allowlist", []):
        yield f"{entry['key']}  by {entry['who']}  {entry['at']}: {entry['why']}"
    for token in result.get("tokens", []):
        state = (f"revoked {token['revoked']}" if token["revoked"] else
                 f"expires {token['expires']}" if token["expires"] else "live")
        yield (f"{token['name']}  sources {','.join(token['sources'])}  "
               f"{'read-only' if token['read_only'] else 'read-write'}  {state}  "
               f"created {token['created']} by {token['who']}")
    if "exported" in result:
        yield f"exported {result['exported']} listing(s) to {result['file']}"
