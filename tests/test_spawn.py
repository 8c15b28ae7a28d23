"""The executors that parse zones in child processes: results, errors and deaths
come back to the server as they happened in the child."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers import scaled

SCRIPT = """
import operator, os, sys, threading
from dnsbl.spawn import Forker, ProcessDied, Spawner, limited

pool = {kind}(2)
calls = [pool.submit(operator.add, 2, 3), pool.submit(int, "x"),
         pool.submit(os._exit, 3), pool.submit(limited, 64 << 20, bytearray, 1 << 40),
         pool.submit(operator.mul, 6, 7)]
for call in calls:
    try:
        print("ok", call.result())
    except ProcessDied as exc:
        print("died", exc)
    except Exception as exc:
        print("raised", type(exc).__name__)
pool.shutdown()
print("threads", threading.active_count())
"""


@pytest.mark.parametrize("kind", ["Spawner", "Forker"])
def test_results_errors_and_deaths_come_back_in_order(kind):
    # In a process of its own: a Forker needs a process with one thread.
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(kind=kind)],
                            capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ok 5", "raised ValueError", "died it ended with exit code 3", "raised MemoryError",
        "ok 42", "threads 1"]


def test_forker_refuses_a_process_with_threads():
    script = textwrap.dedent("""
        import operator, threading
        from dnsbl.spawn import Forker
        stop = threading.Event()
        threading.Thread(target=stop.wait).start()
        try:
            Forker().submit(operator.add, 1, 2)
        except RuntimeError as exc:
            print(exc)
        finally:
            stop.set()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=scaled(60))
    assert result.stdout.strip() == "Forker needs a process with one thread", result.stderr


def test_forker_keeps_no_result_after_shutdown():
    # A parsed zone is tens of MB: once the caller drops it, the pool must not hold it.
    script = textwrap.dedent("""
        import argparse, gc, weakref
        from dnsbl.spawn import Forker
        pool = Forker()
        future = pool.submit(argparse.Namespace, data="x" * 1000)
        result = weakref.ref(future.result())
        del future
        pool.shutdown()
        gc.collect()
        print("released" if result() is None else "held")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=scaled(60))
    assert result.stdout.strip() == "released", result.stderr


def test_forker_runs_up_to_its_workers_at_once(tmp_path):
    # Three children that each wait (at most 10 s) until all three have started:
    # they all return True only if the pool ran them side by side.
    script = textwrap.dedent("""
        import sys, time
        from dnsbl.spawn import Forker
        path = sys.argv[1]
        def meet(count):
            with open(path, "a") as f:
                f.write("here\\n")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with open(path) as f:
                    if len(f.readlines()) >= count:
                        return True
                time.sleep(0.01)
            return False
        pool = Forker(4)
        calls = [pool.submit(meet, 3) for _ in range(3)]
        print([call.result() for call in calls])
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "met")],
                            capture_output=True, text=True, timeout=scaled(60))
    assert result.stdout.strip() == "[True, True, True]", result.stderr
