"""Python made slower, for running the test suite as on a slower host.

On PYTHONPATH (benchmarks/noisy_host.sh puts it there), this runs at start-up
in every Python process: the suite, and each server it starts. A profile hook
called on every function call and return makes pure-Python code several times
slower, without changing what it does; DNSBL_SLOW_PYTHON=0 turns it off.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType
from typing import Any


def _burn(frame: FrameType, event: str, arg: Any) -> None:
    # A little work per event: how much sets how much slower Python runs.
    for _ in range(_ROUNDS):
        pass


_ROUNDS = int(os.environ.get("DNSBL_SLOW_PYTHON", "1"))
if _ROUNDS > 0:
    sys.setprofile(_burn)
    threading.setprofile(_burn)  # threads started from now on: the servers' loops
