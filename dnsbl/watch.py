"""Notice replaced zone files at once, through Linux inotify.

Polling every ``check_interval`` notices a change half an interval late on
average; a new file is then live in parse time plus up to a second. inotify
wakes the reloader when a watched file is renamed into place, written and
closed, removed, or touched. It only wakes: the reloader still compares
(mtime, size, inode) and decides, and polling stays on as the backstop
(network file systems send no events, and the event queue can overflow).

Directories are watched, not files: a rename replaces the file's inode, and
a watch on the old inode would hear nothing more. A file still being written
wakes nothing until it is closed, so a half-copied file is not read early.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

_IN_ATTRIB = 0x004  # touch: rbldnsd operators touch a file to have it re-read
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_DELETE = 0x200
_IN_Q_OVERFLOW = 0x4000  # events were lost: check everything
_MASK = _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_DELETE
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class FileWatch:
    """Calls ``changed`` when one of ``paths`` may have changed."""

    def __init__(self, paths: Iterable[str], changed: Callable[[], object]) -> None:
        self._changed = changed
        #: directory -> the names in it that matter; a symlinked file is
        #: watched under its link's name and its target's.
        self._names: dict[str, set[str]] = {}
        for path in paths:
            for real in {os.path.abspath(path), os.path.realpath(path)}:
                directory, name = os.path.split(real)
                self._names.setdefault(directory, set()).add(name)
        self._by_wd: dict[int, set[str]] = {}
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Watch from ``loop``; False where inotify is not available (polling only)."""
        libc = _libc()
        if libc is None:
            return False
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.warning("cannot watch zone files (%s); polling only",
                        os.strerror(ctypes.get_errno()))
            return False
        for directory, names in self._names.items():
            wd = libc.inotify_add_watch(fd, os.fsencode(directory), _MASK)
            if wd < 0:  # a missing directory: polling notices when it appears
                log.warning("cannot watch %s (%s); polling it only", directory,
                            os.strerror(ctypes.get_errno()))
                continue
            self._by_wd.setdefault(wd, set()).update(names)
        self._fd = fd
        self._loop = loop
        loop.add_reader(fd, self._read)
        return True

    def close(self) -> None:
        if self._fd is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        if any(self._matters(wd, mask, name) for wd, mask, name in _events(data)):
            self._changed()

    def _matters(self, wd: int, mask: int, name: bytes) -> bool:
        if mask & _IN_Q_OVERFLOW:
            return True
        return os.fsdecode(name) in self._by_wd.get(wd, ())


def _events(data: bytes) -> Iterable[tuple[int, int, bytes]]:
    offset = 0
    while offset + _EVENT.size <= len(data):
        wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        yield wd, mask, data[offset:offset + length].rstrip(b"\0")
        offset += length


def _libc() -> ctypes.CDLL | None:
    try:
        # The process's own symbols, libc's among them: find_library("c")
        # would run ldconfig in a subprocess to find the same library.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):  # not Linux, or a libc without inotify
        return None
    return libc
