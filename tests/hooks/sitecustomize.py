"""Faults injected into the parse, for tests only: with this folder on
PYTHONPATH, every Python process started with DNSBL_TEST_PARSE_FAULT set
(the server, its workers, their parse children, forked or spawned) has the
dataset parser replaced by one that misbehaves on cue.

DNSBL_TEST_PARSE_FAULT=ACTION:MARKER: while the file MARKER exists and a
dataset's file names contain the text MARKER holds, its parse
- ``raise``: raises RuntimeError, an exception no parser code foresees;
- ``hang``: writes its pid to MARKER.<pid> and sleeps (for ten minutes).
"""

import os
import sys
import time

_SPEC = os.environ.get("DNSBL_TEST_PARSE_FAULT", "")


def _install(action: str, marker: str) -> None:
    import dnsbl.datasets as datasets

    real = datasets.collect

    def faulty(reader, default_ttl):
        try:
            with open(marker) as f:
                wanted = f.read().strip()
        except OSError:
            wanted = None
        if wanted is not None and any(wanted in path for path in reader.paths):
            if action == "raise":
                raise RuntimeError("injected fault")
            if action == "hang":
                # Written whole, then renamed: a reader never sees it empty.
                with open(f"{marker}-tmp{os.getpid()}", "w") as f:
                    f.write(str(os.getpid()))
                os.replace(f"{marker}-tmp{os.getpid()}", f"{marker}.{os.getpid()}")
                time.sleep(600)
        return real(reader, default_ttl)

    datasets.collect = faulty


if _SPEC:
    _action, _, _marker = _SPEC.partition(":")
    try:
        _install(_action, _marker)
    except ImportError:  # pragma: no cover - not this project's interpreter
        print("sitecustomize: dnsbl not importable; no fault injected", file=sys.stderr)
