"""Log lines for the journal (JOURNAL_STREAM), and JSON times in UTC."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import ROOT, wait_for


@pytest.fixture
def logged(tmp_path):
    """logged(*serve_args, journal=True) -> (process, log path): `dnsbl serve` with
    stderr in a file, and JOURNAL_STREAM naming that file (as systemd names
    the journal's socket) or another one."""
    started: list[subprocess.Popen] = []

    def _start(*args: str, journal: bool = True) -> tuple[subprocess.Popen, Path]:
        path = tmp_path / f"stderr{len(started)}.log"
        with open(path, "w") as err:
            st = os.fstat(err.fileno())
            inode = st.st_ino if journal else st.st_ino + 1  # a stream redirected since
            proc = subprocess.Popen(
                [sys.executable, "-m", "dnsbl", "serve", *args, "--metrics", "none",
                 "--control", "none"],
                cwd=ROOT, stderr=err,
                env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{inode}"})
        started.append(proc)
        return proc, path

    yield _start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def lines_when(path: Path, needle: str) -> list[str]:
    """The file's lines once one holds ``needle`` (bounded wait)."""
    wait_for(lambda: needle in path.read_text(), timeout=30)
    return path.read_text().splitlines()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_journal_lines_carry_their_priority_and_no_timestamp(logged, zone_file, workers):
    zone = zone_file(["127.0.0.2", "bad-line"])
    proc, path = logged("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                        "--workers", workers)
    lines = lines_when(path, "<6>ready")
    assert all(re.match(r"<[3467]>", line) for line in lines), lines
    assert not any(re.match(r"<\d>\d{4}-", line) for line in lines)  # the journal stamps
    assert sum(line.startswith("<4>") and "invalid address 'bad-line'" in line
               for line in lines) == int(workers)
    assert lines[0].startswith("<6>dnsbl ")
    proc.terminate()
    assert proc.wait(30) == 0


def test_errors_are_priority_3(logged, tmp_path):
    proc, path = logged("--zone", f"bl.test:ip4set:{tmp_path / 'missing.zone'}")
    assert proc.wait(30) == 3
    [line] = path.read_text().splitlines()
    assert line.startswith("<3>cannot start: ")


def test_not_the_journal_when_stderr_is_another_file(logged, zone_file):
    proc, path = logged("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                        "--listen", "127.0.0.1:0", "--workers", "1", journal=False)
    lines = lines_when(path, " INFO ready")
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ", line) for line in lines)


def test_json_times_are_utc_with_a_zone_and_left_to_the_journal(logged, zone_file):
    zone = zone_file(["127.0.0.2"])
    args = ("--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0", "--workers", "1",
            "--log-format", "json")
    before = time.time()
    _proc, path = logged(*args, journal=False)
    entries = [json.loads(line) for line in lines_when(path, '"message": "ready"')]
    for entry in entries:
        assert entry["time"].endswith("Z"), entry
        when = datetime.fromisoformat(entry["time"])
        assert when.tzinfo == UTC
        assert before - 1 <= when.timestamp() <= time.time() + 1
    _proc, path = logged(*args)
    lines = lines_when(path, '"message": "ready"')
    assert all(line.startswith("<6>{") or line.startswith("<4>{") for line in lines), lines
    assert all("time" not in json.loads(line[3:]) for line in lines)
