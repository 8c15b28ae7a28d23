"""The suite's own timing helpers: bounded, scaled, and saying what they waited for."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, TIME_FACTOR, retry, scaled, wait_for


def test_wait_for_returns_once_the_condition_holds():
    due = time.monotonic() + 0.05
    waited = wait_for(lambda: time.monotonic() >= due)
    assert 0.04 <= waited < scaled(5)


def test_wait_for_fails_after_its_bound_naming_what_it_waited_for():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"the impossible not reached within [\d.]+ s"):
        wait_for(lambda: False, timeout=0.1, what="the impossible")
    assert scaled(0.1) <= time.monotonic() - started < scaled(0.1) + scaled(5)


def test_retry_asks_again_only_for_the_errors_named():
    tries = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise TimeoutError
        return "answer"

    assert retry(flaky, (TimeoutError,)) == "answer" and len(tries) == 3
    with pytest.raises(ValueError):
        retry(lambda: int("x"), (TimeoutError,))
    with pytest.raises(TimeoutError):
        retry(lambda: (_ for _ in ()).throw(TimeoutError()), (TimeoutError,), timeout=0.05)


def _factor_in_a_new_process(value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from tests.helpers import TIME_FACTOR; "
                           "print(TIME_FACTOR)"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DNSBL_TEST_TIME_FACTOR": value},
                          timeout=scaled(60))


def test_time_factor_is_measured_and_can_be_raised_not_lowered():
    assert TIME_FACTOR >= 1
    assert float(_factor_in_a_new_process("50").stdout) == 50
    assert float(_factor_in_a_new_process("0.1").stdout) >= 1
    bad = _factor_in_a_new_process("fast")
    assert bad.returncode != 0
    assert "DNSBL_TEST_TIME_FACTOR must be a number, e.g. 3" in bad.stderr


def test_silence_and_a_reply_are_told_apart(serve, zone_file):
    acl = zone_file(["127.0.0.5 :ignore"])
    client = serve(f"bl.test:ip4set:{zone_file(['127.0.0.2'])}", f"bl.test:acl:{acl}")
    answered = client.ask_or_silence("2.0.0.127.bl.test", source="127.0.0.4")
    assert answered is not None and answered.answer
    assert client.ask_or_silence("2.0.0.127.bl.test", source="127.0.0.5") is None
