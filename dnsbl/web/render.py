"""HTML pages from the Jinja2 templates beside this module, every value escaped."""

from __future__ import annotations

import os
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
    autoescape=True, undefined=jinja2.StrictUndefined)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
