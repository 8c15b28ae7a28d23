"""Transfer state: the SOA serial of each transferable zone, kept so that it
never goes back, across reloads and restarts.

Secondaries take a zone again only when its serial is greater (RFC 1982
arithmetic) than theirs. A serial made from a file's mtime goes back when
the clock does, or when an older copy of a file is put back; one from the
file's own ``$SOA`` goes back when a generator forgets it. So every served
change gets ``max(the data's serial, the last one + 1)``, and the last one
is written to a small file per zone (``STATE_DIR/ZONE.serial``), replaced
whole by a rename. With it goes a fingerprint of the data the serial was
given to: a restart, or a second worker process, that loads the same data
gets the same serial rather than a new one; a lock file keeps two workers
from both taking "the last + 1".
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

SERIAL_SPACE = 1 << 32
_HALF = 1 << 31


def newer(a: int, b: int) -> bool:
    """Whether serial ``a`` is greater than ``b`` (RFC 1982 section 3.2)."""
    return a != b and ((a - b) % SERIAL_SPACE) < _HALF


def next_serial(last: int, candidate: int) -> int:
    """The serial of a new version: the data's own if it is newer than the
    last one served, else the last one plus 1."""
    candidate %= SERIAL_SPACE
    return candidate if newer(candidate, last) else (last + 1) % SERIAL_SPACE


class SerialState:
    """The last serial of each zone, with the fingerprint of its data; on
    disk under ``directory``, or in memory when that is None or cannot be
    written (logged once: the serial then holds only while this process runs)."""

    def __init__(self, directory: str | None) -> None:
        self._directory = directory
        self._memory: dict[str, tuple[int, str]] = {}
        self._broken = directory is None

    def serial(self, zone: str, fingerprint: str, candidate: int) -> int:
        """The serial to serve ``zone`` with, holding data ``fingerprint``
        whose own serial is ``candidate``."""
        with self._locked(zone):
            stored = self._read(zone)
            if stored is not None and stored[1] == fingerprint:
                return stored[0]  # this data has its serial already
            serial = candidate % SERIAL_SPACE if stored is None else next_serial(stored[0],
                                                                                 candidate)
            self._write(zone, serial, fingerprint)
            return serial

    def _path(self, zone: str, suffix: str) -> str:
        assert self._directory is not None
        return os.path.join(self._directory, f"{zone}.{suffix}")

    @contextmanager
    def _locked(self, zone: str) -> Iterator[None]:
        if self._broken:
            yield
            return
        try:
            os.makedirs(self._directory or ".", mode=0o755, exist_ok=True)
            fd = os.open(self._path(zone, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self._give_up(exc)
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, zone: str) -> tuple[int, str] | None:
        if self._broken:
            return self._memory.get(zone)
        path = self._path(zone, "serial")
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
            serial, fingerprint = data["serial"], data["fingerprint"]
            if not isinstance(serial, int) or not 0 <= serial < SERIAL_SPACE:
                raise ValueError(f"bad serial {serial!r}")
            return serial, str(fingerprint)
        except FileNotFoundError:
            return self._memory.get(zone)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable: start from what this process knows, or the data's own.
            log.error("%s: cannot read the zone's last serial (%s); going on from %s", path,
                      exc, "this process's" if zone in self._memory else "the data's serial")
            return self._memory.get(zone)

    def _write(self, zone: str, serial: int, fingerprint: str) -> None:
        self._memory[zone] = (serial, fingerprint)
        if self._broken:
            return
        path = self._path(zone, "serial")
        try:
            fd, temporary = tempfile.mkstemp(dir=self._directory, prefix=f".{zone}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    json.dump({"serial": serial, "fingerprint": fingerprint}, file)
                    file.write("\n")
                    file.flush()
                    os.fsync(file.fileno())
                os.chmod(temporary, 0o644)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        log.error("cannot keep zone serials in %s (%s): they hold only while this process "
                  "runs, and may go back after a restart", self._directory,
                  exc.strerror or exc)
        self._broken = True
