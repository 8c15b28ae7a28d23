"""Loading datasets: the one way start-up, ``dnsbl check`` and reloads build them.

A dataset is parsed (:func:`~dnsbl.datasets.parse_dataset`), in another
process when a pool is given, each with its memory limit, then indexed in
this one. Whatever ends a load (see :func:`load_failure`) becomes one
:class:`~dnsbl.zonefile.ZoneFileError` with its ``reason``, the same words
at start-up and on reload, and is that dataset's failure, never the others'.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import Executor, Future

from dnsbl.allowlist import load_allowlist, served_allowlist_files
from dnsbl.config import DatasetConfig, ServerConfig
from dnsbl.datasets import Dataset, Parsed, index_dataset, parse_dataset
from dnsbl.spawn import ProcessDied, ProcessTimeout, limited
from dnsbl.zonefile import Limits, ZoneFileError, open_regular
from dnsbl.zones import DatasetKey, Snapshot, build_snapshot, dataset_key


class LoadError(Exception):
    """Some datasets could not be loaded at all; ``errors`` says which and why."""

    def __init__(self, errors: list[ZoneFileError], partial: Snapshot) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors
        #: Every zone, those missing a dataset answering SERVFAIL.
        self.partial = partial


def dataset_specs(config: ServerConfig) -> dict[DatasetKey, DatasetConfig]:
    """Every distinct dataset to load: one named by several zones loads once."""
    specs: dict[DatasetKey, DatasetConfig] = {}
    for zone in config.zones:
        for spec in zone.datasets:
            specs.setdefault(dataset_key(spec), spec)
    if config.global_acl is not None:
        specs.setdefault(dataset_key(config.global_acl), config.global_acl)
    return specs


def unopenable(config: ServerConfig) -> list[ZoneFileError]:
    """The data files that cannot be opened now: a check that takes no time,
    so the commonest start-up mistake fails before anything else is done."""
    errors = []
    for spec in dataset_specs(config).values():
        for path in spec.files:
            try:
                os.close(open_regular(path)[0])
            except ZoneFileError as exc:
                errors.append(exc)
    return errors


def load_failure(key: DatasetKey, exc: BaseException) -> ZoneFileError:
    """What ended a load of a dataset, as one error with its ``reason``: the
    file's own (open, not_regular, size, entries, read, ...), or memory,
    timeout, died, or parse for anything else."""
    if isinstance(exc, ZoneFileError):
        # "line" names a bad line, a warning: a file that fails for what it
        # holds is a parse failure, a reason the metrics count.
        return exc if exc.reason != "line" else ZoneFileError(exc.path, exc.lineno,
                                                              exc.message, "parse")
    where = ",".join(key[1])
    if isinstance(exc, MemoryError):
        return ZoneFileError(where, 0, "parsing ran out of memory ([limits] parse_memory)",
                             "memory")
    if isinstance(exc, ProcessTimeout):
        return ZoneFileError(where, 0, f"parsing took too long: {exc} ([limits] parse_timeout)",
                             "timeout")
    if isinstance(exc, ProcessDied):
        return ZoneFileError(where, 0, f"the parsing process died: {exc}", "died")
    return ZoneFileError(where, 0, f"cannot be loaded: {type(exc).__name__}: {exc}", "parse")


def _parse_timed(kind: str, files: tuple[str, ...], ttl: int,
                 ttl_bounds: tuple[int, int], limits: Limits) -> tuple[Parsed, float]:
    # Timed where it runs: the results are read in order, so a clock in the
    # caller would charge one dataset with the wait for those before it.
    started = time.monotonic()
    return parse_dataset(kind, files, ttl, ttl_bounds, limits), time.monotonic() - started


def _submit(pool: Executor, spec: DatasetConfig,
            config: ServerConfig) -> Future[tuple[Parsed, float]]:
    """Parse ``spec`` in ``pool`` (a :class:`~dnsbl.spawn.Forker` or ``Spawner``)
    under its memory limit: a big file costs seconds of CPU, none of this
    process's GIL, and whatever it does to the parse (memory, time, a crash)
    ends in that process."""
    limits = config.limits
    return pool.submit(limited, limits.memory_for(spec.files), _parse_timed, spec.type,
                       spec.files, config.ttl, config.ttl_bounds, limits)


def _indexed(parsed: Parsed, seconds: float) -> Dataset:
    started = time.monotonic()
    dataset = index_dataset(parsed)
    dataset.load_seconds = seconds + time.monotonic() - started
    return dataset


def load_datasets(config: ServerConfig, pool: Executor | None = None
                  ) -> tuple[dict[DatasetKey, Dataset], list[ZoneFileError]]:
    """Load every configured dataset once (shared ones too): those that
    loaded, and why the others did not. Without a ``pool`` in this process."""
    datasets: dict[DatasetKey, Dataset] = {}
    errors: list[ZoneFileError] = []
    specs = dataset_specs(config)
    if pool is None:
        for key, spec in specs.items():
            try:
                datasets[key] = _indexed(*_parse_timed(spec.type, spec.files, config.ttl,
                                                       config.ttl_bounds, config.limits))
            except Exception as exc:  # noqa: BLE001 - one dataset's failure, reported
                errors.append(load_failure(key, exc))
        return datasets, errors
    futures = {key: _submit(pool, spec, config) for key, spec in specs.items()}
    for key, future in futures.items():
        try:
            datasets[key] = _indexed(*future.result())
        except Exception as exc:  # noqa: BLE001 - one dataset's failure, reported
            errors.append(load_failure(key, exc))
    return datasets, errors


async def load_dataset_async(key: DatasetKey, spec: DatasetConfig, config: ServerConfig,
                             pool: Executor) -> Dataset:
    """Load one dataset without blocking the event loop: parsed in ``pool``,
    indexed in a thread (quick, and it interleaves with queries).

    :raises ZoneFileError: with the reason of any failure (:func:`load_failure`).
    """
    try:
        parsed, seconds = await asyncio.wrap_future(_submit(pool, spec, config))
        return await asyncio.to_thread(_indexed, parsed, seconds)
    except Exception as exc:  # noqa: BLE001 - one failed load of this dataset
        raise load_failure(key, exc) from None


def load_snapshot(config: ServerConfig, pool: Executor | None = None,
                  allowlist: tuple[str, ...] | None = None) -> Snapshot:
    """Load every dataset and the RPZ ``allowlist`` files (None: those
    ``dnsbl serve`` needs), and assemble the zones.

    :raises LoadError: if any dataset or the allowlist failed; ``partial``
        holds the snapshot with the zones that could not load answering SERVFAIL.
    """
    datasets, errors = load_datasets(config, pool)
    files = served_allowlist_files(config) if allowlist is None else allowlist
    networks = None
    if files:
        try:
            networks = load_allowlist(files)
        except ZoneFileError as exc:
            errors.append(exc)
    snapshot = build_snapshot(config, datasets, networks)
    if errors:
        raise LoadError(errors, snapshot)
    return snapshot
