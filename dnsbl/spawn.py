"""Run a function in a process of its own, spawned for that one call.

Parsing a big zone takes seconds of CPU and leaves garbage behind. In a child
process it holds none of the server's GIL, and its memory goes back to the
system when the child ends. ``ProcessPoolExecutor(max_tasks_per_child=1)`` does
the same, but on Python 3.11 its manager thread can crash when the pool is shut
down without waiting while a worker retires; one child and one waiting thread
per call share no state that could race.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class ProcessDied(Exception):
    """The child ended without handing back a result (killed, out of memory)."""


def _child() -> None:
    """In the child: read (fn, args, kwargs) from stdin, write (ok, value) to stdout."""
    try:
        fn, args, kwargs = pickle.load(sys.stdin.buffer)
    except EOFError:  # the parent went away before asking: nothing to do
        raise SystemExit(1) from None
    try:
        outcome = (True, fn(*args, **kwargs))
    except BaseException as exc:  # handed to the parent, which decides
        outcome = (False, exc)
    try:
        pickle.dump(outcome, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the parent went away (stopped while we parsed)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        raise SystemExit(1) from None


# A fresh interpreter (not a fork: the server runs threads, and a fork copies
# their locks), started with subprocess rather than multiprocessing, which
# would also start a resource-tracker process that lives as long as we do.
_COMMAND = [sys.executable, "-c", "from dnsbl.spawn import _child; _child()"]


class Spawner(Executor):
    """An executor running each call in a fresh spawned process, at most
    ``workers`` at a time."""

    def __init__(self, workers: int = 1) -> None:
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._lock = threading.Lock()
        self._children: set[Any] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        thread = threading.Thread(target=self._run, args=(future, fn, args, kwargs),
                                  name="dnsbl-spawn", daemon=True)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            self._threads.add(thread)
        thread.start()
        return future

    def _run(self, future: Future, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            with self._slots:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    ok, value = self._call(fn, args, kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                    return
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _call(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bool, Any]:
        with self._lock:
            if self._closed:
                raise ProcessDied("shut down before it started")
            child = subprocess.Popen(_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._children.add(child)
        try:
            assert child.stdin is not None and child.stdout is not None
            try:
                pickle.dump((fn, args, kwargs), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                child.stdin.close()
                return pickle.load(child.stdout)
            except (EOFError, BrokenPipeError, pickle.UnpicklingError):
                child.wait()
                raise ProcessDied(f"it ended with exit code {child.returncode}") from None
        finally:
            child.stdout.close()  # type: ignore[union-attr]
            child.wait()
            with self._lock:
                self._children.discard(child)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop: children still running are terminated (their calls fail with
        :class:`ProcessDied`); with ``wait``, return once they are gone."""
        with self._lock:
            self._closed = True
            children = list(self._children)
            threads = list(self._threads)
        for child in children:
            child.terminate()
        if wait:
            for thread in threads:
                thread.join()
