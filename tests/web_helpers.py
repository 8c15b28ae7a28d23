"""`dnsbl web` as a real process on a free loopback port, and HTTP to it."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import ROOT, Ledger, free_port, scaled, wait_for


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Web:
    """One `python -m dnsbl web` child; stop() ends it whatever happened."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dnsbl", "web", "--config", str(ledger.config),
             "--listen", f"127.0.0.1:{self.port}"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self._up(), scaled(30), what="dnsbl web answering")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("dnsbl web exited:\n" + "".join(self.log))
        try:
            return self.request("GET", "/api/v1/openapi.json").status == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                token: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if isinstance(body, dict):
            body = json.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(30))
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            cookies = {}
            for value in response.headers.get_all("set-cookie") or []:
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read(), cookies)
        finally:
            connection.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def make_token(ledger: Ledger, *args: str) -> str:
    """`dnsbl ledger token create ARGS` -> the token it printed alone."""
    out = ledger.ok("token", "create", *args)
    assert re.fullmatch(r"dnsbl_[A-Za-z0-9_-]{43}\n", out), out
    return out.strip()
