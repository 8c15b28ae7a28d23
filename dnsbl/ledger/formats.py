"""Import and export formats: each reader turns a file into reports, line by line.

A reader yields ``(lineno, Report)`` for a good line and ``(lineno, reason)``
for a bad one, streaming, so a file of millions of lines never sits in memory.

- ``plain``: one address or network a line, ``#`` comments;
- ``csv``: a header row naming at least ``key`` (or ``ip``, ``address``,
  ``network``), and any of the export's columns;
- ``json``: JSON lines as ``export --format json`` writes them;
- ``intelmq``: IntelMQ events as JSON lines (``source.ip`` or ``source.network``,
  ``classification.type``, ``feed.provider``, ``feed.accuracy``, ``time.source``);
- ``misp-json``, ``misp-csv``: MISP attribute exports (restSearch ``json`` and
  ``csv``); ``ip-src`` and ``ip-dst`` attributes, their tags and timestamps.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from dnsbl.ledger.config import LedgerConfig
from dnsbl.ledger.model import (
    LedgerError,
    Listing,
    Report,
    iso,
    parse_confidence,
    parse_key,
    parse_reason,
    parse_when,
)

Line = tuple[int, Report | str]
FORMATS = ("plain", "csv", "json", "intelmq", "misp-json", "misp-csv")
EXPORT_FORMATS = ("json", "csv")
EXPORT_COLUMNS = ("key", "category", "source", "reason", "ref", "confidence", "first_seen",
                  "last_seen", "expires", "entered_by", "forced")
_KEY_COLUMNS = ("key", "ip", "address", "network", "cidr")
_MISP_TYPES = {"ip-src", "ip-dst"}


@dataclass
class Defaults:
    """What the command line gives for what a line does not say."""

    config: LedgerConfig
    now: int
    source: str | None = None
    category: str | None = None
    expires: int | None = None  # absolute; else seen + the category's lifetime
    reason: str = ""
    entered_by: str = ""
    seen: int | None = None

    def report(self, key: str, *, category: str | None = None, source: str | None = None,
               reason: str | None = None, seen: int | None = None, ref: str = "",
               confidence: int = 100, expires: int | None = None,
               first_seen: int | None = None, entered_by: str | None = None,
               forced: bool = False) -> Report:
        """A report from a line's values and these defaults.

        :raises LedgerError: for a bad key, an unknown category, no source.
        """
        name = category or self.category
        if not name:
            raise LedgerError("no category: give --category or map the feed's to ours "
                              "(aliases of a [ledger] category)")
        settings = self._categories.get(name) or self.config.category(name)
        source = source or self.source
        if not source:
            raise LedgerError("no source: give --source")
        when = seen if seen is not None else self.seen if self.seen is not None else self.now
        return Report(parse_key(key), settings.name, source,
                      self.reason if reason is None else parse_reason(reason), when,
                      expires or self.expires or when + settings.lifetime, ref, confidence,
                      first_seen, forced, entered_by or self.entered_by)

    def __post_init__(self) -> None:
        self.reason = parse_reason(self.reason)
        self._categories = {c.name: c for c in self.config.categories}

    def mapped(self, names: Iterable[str]) -> str | None:
        """The first of a feed's category names (or tags) that is ours or aliased."""
        for name in names:
            try:
                return self.config.category(name).name
            except LedgerError:
                continue
        return None


def read(fmt: str, stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    """``(lineno, Report)`` or ``(lineno, reason)`` for each record of ``stream``."""
    return _READERS[fmt](stream, defaults)


def _guarded(lineno: int, make: Callable[..., Report], *args: Any) -> Line:
    """``make(*args)`` for a record, or what was wrong with it."""
    try:
        return lineno, make(*args)
    except LedgerError as exc:
        return lineno, str(exc)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return lineno, f"bad record: {exc}"


def _plain(stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    for lineno, line in enumerate(stream, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            yield _guarded(lineno, defaults.report, text.split()[0])


def _csv(stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    reader = csv.DictReader(stream)
    fields = [f.strip().lower() for f in reader.fieldnames or ()]
    key_column = next((c for c in _KEY_COLUMNS if c in fields), None)
    if key_column is None:
        yield 1, f"no key column in the header (one of: {', '.join(_KEY_COLUMNS)})"
        return
    reader.fieldnames = fields
    for row in reader:
        yield _guarded(reader.line_num, _exported, row, key_column, defaults)


def _exported(row: dict[str, Any], key_column: str, defaults: Defaults) -> Report:
    """A CSV row or JSON object with export's fields (all but the key optional)."""
    def when(name: str) -> int | None:
        value = row.get(name)
        return parse_when(str(value)) if value not in (None, "") else None

    confidence = row.get("confidence")
    forced = str(row.get("forced", "")).lower() in ("1", "true", "yes")
    return defaults.report(
        str(row[key_column]), category=row.get("category") or None,
        source=row.get("source") or None,
        reason=row.get("reason") if row.get("reason") is not None else None,
        seen=when("last_seen"), ref=str(row.get("ref") or ""),
        confidence=parse_confidence(confidence) if confidence not in (None, "") else 100,
        expires=when("expires"), first_seen=when("first_seen"),
        entered_by=row.get("entered_by") or None, forced=forced)


def _json_lines(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    for lineno, line in enumerate(stream, 1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except ValueError as exc:
                yield lineno, exc


def _json(stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    for lineno, record in _json_lines(stream):
        if isinstance(record, ValueError) or not isinstance(record, dict):
            yield lineno, "not a JSON object"
        elif "key" not in record:
            yield lineno, "no 'key'"
        else:
            yield _guarded(lineno, _exported, record, "key", defaults)


def _intelmq(stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    for lineno, event in _json_lines(stream):
        if isinstance(event, ValueError) or not isinstance(event, dict):
            yield lineno, "not a JSON object (IntelMQ events are one JSON object a line)"
            continue
        yield _guarded(lineno, _intelmq_event, event, defaults)


def _intelmq_event(event: dict[str, Any], defaults: Defaults) -> Report:
    key = event.get("source.network") or event.get("source.ip")
    if not key:
        raise LedgerError("no source.ip or source.network")
    kind = event.get("classification.type")
    category = defaults.mapped([kind]) if kind else None
    if kind and category is None and defaults.category is None:
        raise LedgerError(f"classification.type {kind!r} maps to no category (add it to the "
                          "aliases of one, or give --category)")
    accuracy = event.get("feed.accuracy")
    reason = event.get("event_description.text") or event.get("classification.identifier") \
        or kind or ""
    seen = event.get("time.source") or event.get("time.observation")
    return defaults.report(
        str(key), category=category, source=event.get("feed.provider") or None,
        reason=str(reason)[:255], seen=parse_when(str(seen)) if seen else None,
        ref=str(event.get("event_description.url") or event.get("feed.url") or ""),
        confidence=parse_confidence(round(float(accuracy))) if accuracy is not None else 100)


def _misp_json(stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    # A restSearch attribute export is one JSON document, not lines: read whole.
    try:
        data = json.load(stream)
    except ValueError as exc:
        yield 1, f"not a MISP JSON export: {exc}"
        return
    if isinstance(data, dict):
        data = data.get("response", data)
        if isinstance(data, dict):
            data = data.get("Attribute")
    if not isinstance(data, list):
        yield 1, "not a MISP attribute export (no response.Attribute list)"
        return
    for number, attribute in enumerate(data, 1):
        if not isinstance(attribute, dict) or attribute.get("type") not in _MISP_TYPES:
            continue  # domains, hashes: not for an address list
        tags = [t.get("name", "") for t in attribute.get("Tag", []) if isinstance(t, dict)]
        yield _guarded(number, _misp, attribute.get("value", ""), tags,
                       attribute.get("timestamp"), attribute.get("comment")
                       or (attribute.get("Event") or {}).get("info"),
                       attribute.get("uuid", ""), defaults)


def _misp_csv(stream: IO[str], defaults: Defaults) -> Iterator[Line]:
    reader = csv.DictReader(stream)
    if not reader.fieldnames or not {"type", "value"} <= set(reader.fieldnames):
        yield 1, "not a MISP CSV export (no type and value columns)"
        return
    for row in reader:
        if row.get("type") not in _MISP_TYPES:
            continue
        tags = [t.strip() for t in (row.get("attribute_tag") or "").split(",") if t.strip()]
        yield _guarded(reader.line_num, _misp, row.get("value", ""), tags,
                       row.get("date") or row.get("timestamp"), row.get("comment"),
                       row.get("uuid", ""), defaults)


def _misp(value: str, tags: list[str], timestamp: Any, comment: Any, uuid: str,
          defaults: Defaults) -> Report:
    category = defaults.mapped(tags)
    if category is None and defaults.category is None:
        raise LedgerError(f"no tag of {value!r} maps to a category ({', '.join(tags) or 'none'}"
                          "); add one to a category's aliases, or give --category")
    return defaults.report(
        str(value), category=category, reason=str(comment or "")[:255] or None,
        seen=parse_when(str(timestamp)) if timestamp else None,
        ref=f"misp:{uuid}" if uuid else "")


_READERS: dict[str, Callable[[IO[str], Defaults], Iterator[Line]]] = {
    "plain": _plain, "csv": _csv, "json": _json, "intelmq": _intelmq,
    "misp-json": _misp_json, "misp-csv": _misp_csv}


def export_row(listing: Listing) -> dict[str, Any]:
    """A live listing as ``export`` writes it (times ISO 8601 UTC)."""
    return {"key": listing.key, "category": listing.category, "source": listing.source,
            "reason": listing.reason, "ref": listing.ref, "confidence": listing.confidence,
            "first_seen": iso(listing.first_seen), "last_seen": iso(listing.last_seen),
            "expires": iso(listing.expires), "entered_by": listing.entered_by,
            "forced": listing.forced}


def write_export(fmt: str, listings: Iterable[Listing], out: IO[str]) -> int:
    """Write the listings as JSON lines or CSV with a header; returns how many."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for listing in listings:
            writer.writerow(export_row(listing))
            count += 1
        return count
    for listing in listings:
        out.write(json.dumps(export_row(listing), ensure_ascii=False) + "\n")
        count += 1
    return count


