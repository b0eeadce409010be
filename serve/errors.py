"""Every error the service returns is JSON ``{"error": {"code": ..., "message": ...}}``.

``code`` is stable and machine-readable (clients branch on it); ``message`` is for people
and may change. Errors never echo the request body: no audio, no embeddings, no API key.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("serve")


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[str] | None = None  # for invalid_request: the request fields at fault


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raised anywhere in a request; turned into an ErrorResponse with this status."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 fields: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.fields = fields


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   fields: list[str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, fields=fields))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


# The status codes an endpoint may answer with, for the OpenAPI schema.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


# Codes of HTTP errors Starlette raises itself (unknown route, wrong method, ...).
_HTTP_CODES = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed", 413: "upload_too_large"}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.code, err.message, headers=err.headers, fields=err.fields)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own detail includes the offending input: for an upload that could be
        # audio bytes, so only the field locations and the reasons are returned.
        problems = [(".".join(str(p) for p in e.get("loc", ())[1:]) or "body", e.get("msg", "")) for e in err.errors()]
        message = "; ".join(f"{where}: {why}" for where, why in problems) or "invalid request"
        return error_response(422, "invalid_request", message, fields=sorted({w for w, _ in problems}))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(err.status_code, f"http_{err.status_code}")
        return error_response(err.status_code, code, str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # The traceback goes to the log (it holds no request data); the client gets no internals.
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the server failed to handle this request")
