"""Run a function in a process of its own, for that one call.

Parsing a big zone takes seconds of CPU and leaves garbage behind. In a child
process it holds none of the server's GIL, and its memory goes back to the
system when the child ends. ``ProcessPoolExecutor(max_tasks_per_child=1)`` does
the same, but on Python 3.11 its manager thread can crash when the pool is shut
down without waiting while a worker retires; one child and one waiting thread
per call share no state that could race.

:class:`Spawner` starts a fresh interpreter, safe at any time. :class:`Forker`
forks, which is only safe while the process has one thread: at start-up, where
it saves the new interpreter's start and imports (a tenth of a second).

Either child dies with its parent (``PR_SET_PDEATHSIG``), keeps none of its
listening sockets, and is killed past the executor's ``timeout``; run in it
through :func:`limited`, a call gets a memory limit too. So a file that makes
a parse hang or grow costs one failed load, never the server or its port.
"""
from __future__ import annotations

import ctypes
import gc
import os
import pickle
import resource
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import IO, Any


class ProcessDied(Exception):
    """The child ended without handing back a result (killed, out of memory)."""


class ProcessTimeout(ProcessDied):
    """The child ran past its time and was killed."""


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when the thread that
    started it ends; exit at once if its parent (pid ``parent``) is gone
    already. Nothing to do where there is no prctl (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # it went before the prctl took effect
        os._exit(1)


def _drop_sockets(keep: int) -> None:
    """In a forked child: /dev/null in place of every inherited socket, so a
    child never holds the server's port. (Closing would free the numbers for
    a file opened later, which the parent's socket objects still name.)"""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd in (keep, null):
                continue
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
    except OSError:  # pragma: no cover - no /proc
        pass
    finally:
        os.close(null)


def _address_space() -> int:
    """Bytes of address space this process has mapped now."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):  # pragma: no cover - no /proc
        return 0


def limited(memory: int, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` allowed ``memory`` more bytes of address space
    than the process has now (RLIMIT_AS), past which allocations fail with
    MemoryError. Only in a child process of its own: the limit stays."""
    if memory > 0:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = _address_space() + memory
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return fn(*args, **kwargs)


def _child() -> None:
    """In the child: read (fn, args, kwargs) from stdin, write (ok, value) to stdout."""
    die_with_parent(int(sys.argv[1]))
    try:
        fn, args, kwargs = pickle.load(sys.stdin.buffer)
    except EOFError:  # the parent went away before asking: nothing to do
        raise SystemExit(1) from None
    try:
        _answer(fn, args, kwargs, sys.stdout.buffer)
    except BrokenPipeError:  # the parent went away (stopped while we parsed)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        raise SystemExit(1) from None


#: The exit code of a child whose call ran out of memory. Pickling the
#: MemoryError (its traceback holds the frames that filled the memory) or
#: the result can itself fail at the limit, so the code says it instead.
_OUT_OF_MEMORY = 86


def _answer(fn: Callable[..., Any], args: tuple, kwargs: dict, out: IO[bytes]) -> None:
    """Call ``fn`` and write (ok, result or exception) to ``out``."""
    try:
        try:
            outcome = (True, fn(*args, **kwargs))
        except MemoryError:
            raise
        except BaseException as exc:  # handed to the parent, which decides
            outcome = (False, exc)
        pickle.dump(outcome, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
    except MemoryError:
        os._exit(_OUT_OF_MEMORY)  # whatever was written is cut short: the parent reads no answer


def _outcome(stream: IO[bytes], wait: Callable[[], int]) -> tuple[bool, Any]:
    """The (ok, value) a child wrote; :class:`ProcessDied` if it wrote none."""
    try:
        return pickle.load(stream)
    except (EOFError, pickle.UnpicklingError):
        code = wait()
        if code == _OUT_OF_MEMORY:
            return False, MemoryError("the call ran out of memory")
        raise ProcessDied(f"it ended with exit code {code}") from None


# A fresh interpreter (not a fork: the server runs threads, and a fork copies
# their locks), started with subprocess rather than multiprocessing, which
# would also start a resource-tracker process that lives as long as we do.
_COMMAND = [sys.executable, "-c", "from dnsbl.spawn import _child; _child()"]


def _timed_out(timeout: float | None) -> ProcessTimeout:
    return ProcessTimeout(f"it ran for more than {timeout:g}s and was killed")


class Spawner(Executor):
    """An executor running each call in a fresh spawned process, at most
    ``workers`` at a time, each killed after ``timeout`` seconds."""

    def __init__(self, workers: int = 1, timeout: float | None = None) -> None:
        self._timeout = timeout
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
            # The thread that starts it waits for it: PR_SET_PDEATHSIG holds.
            child = subprocess.Popen([*_COMMAND, str(os.getpid())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
            self._children.add(child)
        timer = threading.Timer(self._timeout, child.kill) if self._timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            assert child.stdin is not None and child.stdout is not None
            try:
                pickle.dump((fn, args, kwargs), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                child.stdin.close()
                return _outcome(child.stdout, child.wait)
            except (BrokenPipeError, ProcessDied) as exc:
                if timer is not None and timer.finished.is_set():
                    raise _timed_out(self._timeout) from None
                if isinstance(exc, ProcessDied):
                    raise
                raise ProcessDied(f"it ended with exit code {child.wait()}") from None
        finally:
            if timer is not None:
                timer.cancel()
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


class Forker(Executor):
    """An executor forking a child for each call in the calling thread, at most
    ``workers`` at a time; a result is read when asked for. Only for a process
    with one thread (at start-up): a fork copies the calling thread alone, and a
    lock that another thread held would stay held in the child."""

    def __init__(self, workers: int = 1, timeout: float | None = None) -> None:
        self._workers = max(1, workers)
        self._timeout = timeout
        self._calls: list[_Forked] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if threading.active_count() > 1:
            raise RuntimeError("Forker needs a process with one thread")
        # Only calls still running are kept: a done one holds its result, which
        # is the caller's to keep or drop.
        self._calls = [call for call in self._calls if not call.done()]
        for call in self._calls[:max(0, len(self._calls) - self._workers + 1)]:  # oldest first
            call.collect()
        read, write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: answer, then leave without running the parent's exit code
            code = 0
            try:
                die_with_parent(parent)
                # Default signal actions: a SIGTERM meant for the parent's
                # process group ends the child too.
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _drop_sockets(write)
                # What the parent built is never garbage here: the collector
                # need not walk it (nor touch, and so copy, its pages).
                gc.freeze()
                os.close(read)
                with os.fdopen(write, "wb") as out:
                    _answer(fn, args, kwargs, out)
            except BaseException:  # noqa: BLE001 - the parent sees no answer and reports it
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        call = _Forked(pid, os.fdopen(read, "rb"), self._timeout)
        self._calls.append(call)
        return call

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the children whose results were not read."""
        for call in self._calls:
            call.stop()
        self._calls = []


class _Forked(Future):
    """A call running in a forked child."""

    def __init__(self, pid: int, stream: IO[bytes], timeout: float | None) -> None:
        super().__init__()
        self.set_running_or_notify_cancel()
        self._pid = pid
        self._stream = stream
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._exit_code: int | None = None

    def result(self, timeout: float | None = None) -> Any:
        self.collect()
        return super().result(timeout)

    def stop(self) -> None:
        if not self.done():
            os.kill(self._pid, signal.SIGKILL)
            self.collect()

    def collect(self) -> None:
        """Wait for the child and read what it wrote."""
        if self.done():
            return
        if self._deadline is not None and not select.select(
                [self._stream], [], [], max(0.0, self._deadline - time.monotonic()))[0]:
            os.kill(self._pid, signal.SIGKILL)
            self._stream.close()
            self._wait()
            self.set_exception(_timed_out(self._timeout))
            return
        try:
            ok, value = _outcome(self._stream, self._wait)
        except ProcessDied as exc:
            self.set_exception(exc)
        else:
            (self.set_result if ok else self.set_exception)(value)
        finally:
            self._stream.close()
            self._wait()

    def _wait(self) -> int:
        if self._exit_code is None:
            self._exit_code = os.waitstatus_to_exitcode(os.waitpid(self._pid, 0)[1])
        return self._exit_code
