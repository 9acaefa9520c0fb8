"""Every answer of the worker's web server that is not a view's own is JSON too.

An unknown path, a wrong method, a body too large or a view that raised would be
aiohttp's text/plain page (a 500 with a traceback in the log for the last). Here each
becomes ``{"error": {"code", "message", "field"}}`` with its 4xx status, and an
unexpected exception a 500 with no detail (its traceback stays in the log, without
the request body, which may carry PII).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
          400: "bad_request", 415: "unsupported_media_type"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "http_error")
        return web.json_response(error_body(code, exc.reason or code), status=exc.status)
    except Exception as exc:
        log.error("%s %s raised %s", request.method, request.path[:200],
                  type(exc).__name__, exc_info=exc)
        return web.json_response(error_body("internal_error", "the request could not be "
                                            "handled"), status=500)
