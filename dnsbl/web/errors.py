"""API errors: a status, a message a user can act on, and the field at fault."""

from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers

    def response(self) -> JSONResponse:
        body: dict[str, object] = {"error": self.message, "status": self.status}
        if self.field:
            body["field"] = self.field
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def bad(field: str, message: str) -> ApiError:
    """A 400 that names the field: ``key: bad address '10.0.0.0/33'``."""
    return ApiError(400, f"{field}: {message}", field)
