"""The worker's log lines: a correlation id on every line about a link, PII masked, and
(``PAYOUT_LOG_FORMAT=json``) one JSON object per line for log pipelines.

The correlation id is the key the work runs under (:class:`streams.inflight.KeyedInFlight`):
a link's reference (``pl2_`` + its link key's hash) for everything about the link —
settlement, webhooks, polls, cancels — and ``topic/partition/offset`` for a record that
is not (yet) a link. It rides in a ContextVar that each piece of work's task copies, so
every line logged while handling a link carries it without being passed around.

Masking is a filter on the root handlers, so it covers Faust's, aiokafka's and our own
lines alike: e-mail addresses keep one character of the local part and the domain's
last label, long digit runs (phone and account numbers) keep their last two digits.
Secrets are never logged in the first place (credentials' ``repr`` hides them); the
integration tests scan every log line for them.
"""
from __future__ import annotations

import contextvars
import logging
import re
import time
from typing import Any

import orjson

CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "payout_correlation", default=None)

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@[A-Za-z0-9.-]*?(\.[A-Za-z]{2,})\b")
_DIGITS = re.compile(r"(?<![\w.])\+?\d[\d \-]{7,}(\d{2})(?![\w.])")


def mask_pii(text: str) -> str:
    text = _EMAIL.sub(r"\1***@***\2", text)
    return _DIGITS.sub(r"***\1", text)


class LinkContext(logging.Filter):
    """Adds ``correlation_id`` to every record and masks PII in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = CORRELATION.get()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        masked = mask_pii(message)
        if masked != message:  # else the record stays as it was made
            record.msg, record.args = masked, ()
        return True


class JsonLines(logging.Formatter):
    """``{"ts", "level", "logger", "message", "correlation_id", "pid", "exc"?}``, UTC."""

    @staticmethod
    def converter(secs: float | None = None) -> time.struct_time:
        return time.gmtime(secs)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None),
            "pid": record.process,
        }
        if record.exc_info:
            line["exc"] = mask_pii(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


def install(root: logging.Logger, log_format: str) -> None:
    """Called once Faust has set up the root logger (``Worker.on_setup_root_logger``)."""
    for handler in root.handlers:
        if not any(isinstance(f, LinkContext) for f in handler.filters):
            handler.addFilter(LinkContext())
        if log_format == "json":
            handler.setFormatter(JsonLines())
