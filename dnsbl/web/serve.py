"""``dnsbl web``: the application on uvicorn, on loopback unless configured."""

from __future__ import annotations

import sys

from dnsbl.config import parse_listen
from dnsbl.ledger.config import LedgerConfig


def run(config: LedgerConfig, listen: str | None) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code."""
    import uvicorn

    from dnsbl.web.app import build_app

    where = parse_listen(listen or config.web.listen)
    try:
        app = build_app(config)
    except Exception as exc:  # the ledger cannot be opened: say which and why
        print(f"dnsbl web: {exc}", file=sys.stderr)
        return 3
    server = uvicorn.Server(uvicorn.Config(
        app, host=where.host, port=where.port, loop="uvloop", lifespan="on",
        log_level="warning", access_log=False,
        # X-Forwarded-For and -Proto are believed only from a proxy on this host.
        proxy_headers=True, forwarded_allow_ips="127.0.0.1,::1",
        server_header=False))
    print(f"dnsbl web: serving http://{where} (ledger {config.database})", flush=True)
    server.run()
    return 0
