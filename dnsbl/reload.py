"""Reloading: notice changed zone files, rebuild them off the event loop, swap whole.

The last good data always serves: a file that is missing, unreadable, not a
regular file, changed while being read, not valid gzip, stamped in the future,
past a [limits] bound, whose parse fails in any way (out of memory, too slow,
killed), or that would shrink a zone below its ``min_entries_ratio`` leaves
the previous data in place. That is one failed load of that dataset, counted
by reason and tried again when its files change (or on SIGHUP); every other
dataset reloads as usual.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from dnsbl.allowlist import Allowlist, load_allowlist, served_allowlist_files
from dnsbl.config import DatasetConfig, ServerConfig, ZoneConfig
from dnsbl.datasets import Dataset
from dnsbl.loader import dataset_specs, load_dataset_async
from dnsbl.spawn import Spawner
from dnsbl.systemd import reloading
from dnsbl.watch import FileWatch
from dnsbl.zonefile import Signature, ZoneFileError, file_signature, open_regular
from dnsbl.zones import DatasetKey, ServedZones, Snapshot, build_snapshot, dataset_key

log = logging.getLogger(__name__)

#: How often expiry is looked at, and the finest file-check interval, in seconds.
TICK = 1.0
#: Bad lines logged per reload; `dnsbl check` lists them all.
MAX_LOGGED_WARNINGS = 20


@dataclass
class DatasetStatus:
    """What reloading did to one dataset, for logs and metrics."""

    loads: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # by reason
    last_success: float = 0.0  # wall-clock time
    last_duration: float = 0.0  # seconds
    last_attempt: float = 0.0  # wall-clock time of the last load tried, good or not
    last_error: str = ""  # why the last load tried failed; "" when it loaded
    failing: int = 0  # loads failed in a row since the last good one


@dataclass
class CheckResult:
    """What one check of the files did, by zone, for whoever asked for it."""

    reloaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # zone -> why
    #: Zones whose shrink was to be accepted but had nothing to rebuild.
    lapsed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.reloaded or self.failed)


def status_line(result: CheckResult) -> str:
    """systemd's STATUS= after a check: serving, and which zones failed to reload."""
    if not result.failed:
        return "serving"
    zone, why = next(iter(result.failed.items()))
    return f"serving; {len(result.failed)} zone(s) failed to reload, the previous data kept: " \
        f"{zone}: {why}"


class Reloader:
    """Watches every dataset's files (mtime, size, inode) and swaps in new zones.

    :meth:`check_once` is one step, for tests to drive; :meth:`run` repeats it
    every ``check_interval`` seconds, whenever :meth:`request` is called, and
    at once when inotify reports a file replaced (:mod:`dnsbl.watch`).
    """

    def __init__(self, config: ServerConfig, served: ServedZones,
                 notify: Callable[[str], object] = lambda state: None) -> None:
        self.config = config
        self.served = served
        self._notify = notify  # systemd: RELOADING=1 and READY=1 around a reload
        self._specs = dataset_specs(config)
        #: The RPZ allowlist, reloaded as a dataset is, under a key of its own.
        self._allow_key: DatasetKey | None = None
        files = served_allowlist_files(config)
        if files:
            self._allow_key = ("allowlist", files)
        self.loads = Loads(self._specs, served.current, self._allow_key)
        #: What reloading did to each dataset, for logs and metrics.
        self.status = self.loads.status
        self._wake = asyncio.Event()
        self._waiting: list[asyncio.Future[CheckResult]] = []  # check_soon() callers
        self._lock = asyncio.Lock()
        self._accept_shrink: set[str] = set()  # zones whose next rebuild may shrink
        self._failed_now: dict[DatasetKey, str] = {}  # failures of the check running
        self._tried_now: set[DatasetKey] = set()  # datasets the check running loaded
        #: What the last check did.
        self.last_check = CheckResult()
        self._pool: Spawner | None = None
        self.reloads = 0  # swaps done

    def _executor(self) -> Spawner:
        if self._pool is None:
            self._pool = Spawner(timeout=self.config.limits.parse_timeout)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def request(self, zone: str | None = None) -> None:
        """Check now, and try again what failed before, of every zone or of
        ``zone`` alone (SIGHUP: the operator may have fixed what polling cannot
        see, or the parse died of a passing cause)."""
        self.loads.retry(None if zone is None else self.zone_keys(zone))
        self._wake.set()

    async def check_soon(self, zone: str | None = None,
                         accept_shrink: bool = False) -> CheckResult:
        """Ask for a check, as :meth:`request` does; return what it did once
        it has run. ``accept_shrink``: the rebuild of ``zone`` this check
        finds is accepted whatever its size (``dnsbl ctl reload
        --accept-shrink``); with nothing to rebuild that lapses. The caller
        tells systemd RELOADING=1 and READY=1 around it."""
        done: asyncio.Future[CheckResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(done)
        if accept_shrink and zone is not None:
            self._accept_shrink.add(zone)
        self.request(zone)
        return await done

    def zone_keys(self, zone: str) -> list[DatasetKey]:
        """The datasets of the configured zone ``zone`` (its RPZ form's
        allowlist too); [] for no such zone."""
        return [key for z in self.config.zones if z.name == zone for key in self._keys(z)]

    def _keys(self, zone: ZoneConfig) -> list[DatasetKey]:
        keys = [dataset_key(d) for d in zone.datasets]
        return keys + [self._allow_key] if zone.rpz and self._allow_key else keys

    async def run(self) -> None:
        watch = FileWatch([*(f for spec in self._specs.values() for f in spec.files),
                           *(self._allow_key[1] if self._allow_key else ())], self._wake.set)
        if self.config.check_interval:  # 0: nothing automatic, SIGHUP only
            watch.start(asyncio.get_running_loop())
        try:
            await self._checks()
        finally:
            watch.close()

    async def _checks(self) -> None:
        interval = self.config.check_interval or math.inf
        next_check = time.monotonic() + interval
        while True:
            # Wait for the next check itself, not a tick that may land a hair
            # before it: that would put the check off by a whole tick.
            timeout = max(0.0, min(TICK, next_check - time.monotonic()))
            # Not wait_for(): on Python 3.11 it swallows a cancel that comes as
            # the wait ends (SIGTERM just after SIGHUP), and the stop hung.
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            woken = self._wake.is_set()
            self._wake.clear()
            waiting, self._waiting = self._waiting, []
            self._check_expiry()
            if woken or time.monotonic() >= next_check:
                try:
                    await self.check_once(announce=not waiting)
                except Exception:  # never let one bad reload stop reloading
                    log.exception("zone check failed")
                next_check = time.monotonic() + interval
            for done in waiting:
                if not done.done():
                    done.set_result(self.last_check)

    def _check_expiry(self) -> None:
        now = time.time()
        for zone in self.served.current.zones.values():
            if zone.check_expiry(now):
                if zone.expired:
                    log.error("zone %s: data expired ($TIMESTAMP), answering SERVFAIL until "
                              "fresh data is loaded", zone.name)
                else:
                    log.info("zone %s: data no longer expired", zone.name)

    def changed(self) -> dict[DatasetKey, tuple[Signature | None, ...]]:
        """Datasets whose files differ from what is served and from the last failed try."""
        return self.loads.changed(self.served.current)

    def failed_datasets(self) -> list[str]:
        """Why each dataset whose last load failed did, for /readyz and systemd."""
        return self.loads.failed_datasets()

    async def check_once(self, announce: bool = True) -> bool:
        """Rebuild what changed; True when new zones were swapped in.
        ``announce``: tell systemd RELOADING=1 and READY=1 around a rebuild."""
        async with self._lock:
            # Taken now: an accept asked for while this check runs is for the next.
            accept, self._accept_shrink = self._accept_shrink, set()
            self._failed_now = {}
            self._tried_now = set()
            self.last_check = result = CheckResult()
            changed = self.changed()
            try:
                if not changed:
                    return False
                if not announce:
                    return await self._reload(changed, accept)
                with reloading(self._notify, self.loads.summary):
                    return await self._reload(changed, accept)
            finally:
                self._summarize(result, accept)

    def _summarize(self, result: CheckResult, accept: set[str]) -> None:
        """Fill ``result`` by zone from what the check just run did."""
        for zone_config in self.config.zones:
            keys = self._keys(zone_config)
            errors = [self._failed_now[k] for k in keys if k in self._failed_now]
            if errors:
                result.failed[zone_config.name] = "; ".join(errors)
            if zone_config.name in accept and not any(
                    k in self._tried_now for k in keys):
                # It lapses: a later shrink is guarded again.
                result.lapsed.append(zone_config.name)
                log.warning("zone %s: nothing to rebuild, so no shrink to accept; the shrink "
                            "guard stays on", zone_config.name)

    async def _reload(self, changed: dict[DatasetKey, tuple[Signature | None, ...]],
                      accept: set[str]) -> bool:
        loaded: dict[DatasetKey, Dataset] = {}
        current = self.served.current
        allowlist = current.allowlist
        if self._allow_key in changed:
            allowlist = await self._load_allowlist(changed.pop(self._allow_key))
        for key, signature in changed.items():
            dataset = await self._load(key, signature)
            if dataset is not None:
                loaded[key] = dataset
        # Lazily: a refused load is gone from ``loaded`` before the next zone is weighed.
        for key, message in shrinking(self.config, self.served.current, loaded, accept):
            del loaded[key]
            self._fail(key, changed[key], "shrink", message)
        if not loaded and allowlist is current.allowlist:
            return False
        zoneset = build_snapshot(self.config, {**current.datasets, **loaded}, allowlist)
        self.served.swap(zoneset)
        self.reloads += 1
        done = list(loaded)
        if allowlist is not current.allowlist and self._allow_key is not None:
            done.append(self._allow_key)
        recovered = self.loads.succeeded(done)
        self._log_reloaded(zoneset, done, recovered)
        return True

    async def _load_allowlist(self, signature: tuple[Signature | None, ...]
                              ) -> Allowlist | None:
        """The RPZ allowlist read anew; the one served when it cannot be."""
        key = self._allow_key
        assert key is not None
        started = time.monotonic()
        self._tried_now.add(key)
        self.status[key].last_attempt = time.time()
        try:
            allowlist = await asyncio.to_thread(load_allowlist, key[1])
        except ZoneFileError as error:
            self._fail(key, signature, error.reason, str(error))
            return self.served.current.allowlist
        self.status[key].last_duration = time.monotonic() - started
        return allowlist

    async def _load(self, key: DatasetKey,
                    signature: tuple[Signature | None, ...]) -> Dataset | None:
        started = time.monotonic()
        self._tried_now.add(key)
        self.status[key].last_attempt = time.time()
        try:
            dataset = await load_dataset_async(key, self._specs[key], self.config,
                                               self._executor())
        except ZoneFileError as error:
            self._fail(key, signature, error.reason, str(error))
            return None
        self.status[key].last_duration = time.monotonic() - started
        for warning in dataset.warnings[:MAX_LOGGED_WARNINGS]:
            log.warning("%s", warning)
        if len(dataset.warnings) > MAX_LOGGED_WARNINGS:
            log.warning("%d more warnings not shown; `dnsbl check` lists them all",
                        len(dataset.warnings) - MAX_LOGGED_WARNINGS)
        return dataset

    def _fail(self, key: DatasetKey, signature: tuple[Signature | None, ...], reason: str,
              message: str) -> None:
        self.loads.failed(key, signature, reason, message)
        self._failed_now[key] = message
        log.error("reload of %s %s failed, still serving the previous data: %s",
                  key[0], ",".join(key[1]), message)

    def _log_reloaded(self, zoneset: Snapshot, loaded: list[DatasetKey],
                      recovered: dict[DatasetKey, int]) -> None:
        for zone_config in self.config.zones:
            keys = self._keys(zone_config)
            changed = [k for k in keys if k in loaded]
            if not changed:
                continue
            zone = zoneset.by_name(zone_config.name)
            assert zone is not None
            files = ",".join(f for k in changed for f in k[1])
            seconds = sum(self.status[k].last_duration for k in changed)
            failed = sum(recovered[k] for k in changed)
            self.last_check.reloaded.append(zone.name)
            log.info("reloaded zone %s: %d entries, files %s, %.2fs, serial %d%s%s",
                     zone.name, zone.entries, files, seconds, zone.serial,
                     f", recovered after {failed} failed load{'s' if failed > 1 else ''}"
                     if failed else "",
                     "" if zone.loaded else " (still missing datasets: SERVFAIL)")


class Loads:
    """What reloading knows of each dataset: its :class:`DatasetStatus`, and
    which files failed to load as they are now, so they are not tried again
    until they change (or a SIGHUP asks)."""

    def __init__(self, specs: dict[DatasetKey, DatasetConfig], current: Snapshot,
                 allowlist: DatasetKey | None = None) -> None:
        self._specs = specs
        self._allowlist = allowlist  # the RPZ allowlist's key, when one is served
        self._attempted: dict[DatasetKey, tuple[Signature | None, ...]] = {}
        self._unopened: set[DatasetKey] = set()  # last failed: a file would not open
        now = time.time()
        self.status = {key: DatasetStatus() for key in specs}
        for key, dataset in current.datasets.items():
            self.status[key] = DatasetStatus(loads=1, last_success=now,
                                             last_duration=dataset.load_seconds)
        if allowlist is not None:
            self.status[allowlist] = DatasetStatus(
                loads=int(current.allowlist is not None),
                last_success=now if current.allowlist is not None else 0.0)

    def retry(self, keys: list[DatasetKey] | None) -> None:
        """Try these datasets again (None: every one) whatever their files."""
        if keys is None:
            self._attempted.clear()
        for key in keys or ():
            self._attempted.pop(key, None)

    def changed(self, current: Snapshot) -> dict[DatasetKey, tuple[Signature | None, ...]]:
        """Datasets whose files differ from what is served and from the last failed try."""
        out = {}
        served: dict[DatasetKey, tuple[Signature | None, ...]] = {
            key: dataset.signature for key, dataset in current.datasets.items()}
        files = {key: spec.files for key, spec in self._specs.items()}
        if self._allowlist is not None:
            files[self._allowlist] = self._allowlist[1]
            if current.allowlist is not None:
                served[self._allowlist] = current.allowlist.signature
        for key, paths in files.items():
            signature = tuple(file_signature(p) for p in paths)
            if served.get(key, False) == signature:
                continue
            if self._attempted.get(key) == signature and not self._opens_now(key, paths):
                continue
            out[key] = signature
        return out

    def _opens_now(self, key: DatasetKey, files: tuple[str, ...]) -> bool:
        """A dataset that failed because a file could not be opened, whose files
        all open now: a chmod or a remount changes nothing that is compared."""
        if key not in self._unopened:
            return False
        for path in files:
            try:
                os.close(open_regular(path)[0])  # never blocks, on a FIFO neither
            except ZoneFileError as exc:
                if exc.reason == "open":
                    return False
        return True  # (a file that opens but is no regular one fails once more, for that)

    def failed(self, key: DatasetKey, signature: tuple[Signature | None, ...], reason: str,
               message: str) -> None:
        self._attempted[key] = signature  # not again until the files change
        if reason == "open":
            self._unopened.add(key)
        else:
            self._unopened.discard(key)
        status = self.status[key]
        status.failures[reason] = status.failures.get(reason, 0) + 1
        status.failing += 1
        status.last_error = f"{reason}: {message}"

    def succeeded(self, loaded: Collection[DatasetKey]) -> dict[DatasetKey, int]:
        """Record these loads as served; how many failed loads each ends."""
        now = time.time()
        recovered = {key: self.status[key].failing for key in loaded}
        for key in loaded:
            self._attempted.pop(key, None)
            self._unopened.discard(key)
            status = self.status[key]
            status.loads += 1
            status.last_success = now
            status.last_error = ""
            status.failing = 0
        return recovered

    def failed_datasets(self) -> list[str]:
        """Why each dataset whose last load failed did, for /readyz and systemd."""
        return [f"dataset {key[0]}:{','.join(key[1])}: last load failed ({status.last_error}); "
                "serving the previous data"
                for key, status in self.status.items() if status.last_error]

    def summary(self) -> str:
        """One line for systemd's STATUS= after a check."""
        failing = self.failed_datasets()
        if not failing:
            return "serving"
        return f"serving; {len(failing)} dataset(s) failed to load: {failing[0]}"


def shrinking(config: ServerConfig, current: Snapshot, loaded: dict[DatasetKey, Dataset],
              accept: set[str]) -> Iterator[tuple[DatasetKey, str]]:
    """The loads to refuse, with why: those that would shrink a zone below its
    ``min_entries_ratio``, unless the zone is in ``accept``."""
    for zone_config in config.zones:
        keys = [dataset_key(d) for d in zone_config.datasets]
        if not any(k in loaded for k in keys):
            continue
        old = current.by_name(zone_config.name)
        if old is None or not old.loaded or not old.entries:
            continue
        new_entries = sum(
            (loaded.get(k) or current.datasets[k]).listed
            for k in keys if k in loaded or k in current.datasets)
        if new_entries >= zone_config.min_entries_ratio * old.entries:
            continue
        if zone_config.name in accept:
            log.warning("zone %s: accepting a shrink from %d to %d entries, as asked",
                        zone_config.name, old.entries, new_entries)
            continue
        for key in keys:
            if key in loaded:
                yield key, (f"zone {zone_config.name} would shrink from {old.entries} to "
                            f"{new_entries} entries, below min_entries_ratio "
                            f"{zone_config.min_entries_ratio}; if that is intended, accept "
                            f"it with: dnsbl ctl reload --accept-shrink {zone_config.name}")
