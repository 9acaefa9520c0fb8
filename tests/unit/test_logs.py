"""Issue 13: log lines carry the link's correlation id, mask PII, and can be JSON."""
from __future__ import annotations

import asyncio
import io
import logging

import orjson

from streams import logs


def test_pii_is_masked() -> None:
    line = "customer ana.lima@example.com called +91 98765 43210 about 2323230041626905"
    masked = logs.mask_pii(line)
    assert "ana.lima" not in masked and "example" not in masked and "a***@***.com" in masked
    assert "98765" not in masked and "***10" in masked
    assert "2323230041626905" not in masked and "***05" in masked
    assert logs.mask_pii("partition 3 offset 17, 200 ms, pl2_0a1b2c3d") == \
        "partition 3 offset 17, 200 ms, pl2_0a1b2c3d"


def test_json_lines_carry_the_correlation_id_of_the_work_they_are_about() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger("test-logs")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.INFO)
    logs.install(root, "json")

    async def work() -> None:
        root.info("creating the link for %s", "x@y.org")

    async def main() -> None:
        token = logs.CORRELATION.set("pl2_0a1b2c3d")
        try:
            task = asyncio.create_task(work())  # copies the context, as KeyedInFlight does
        finally:
            logs.CORRELATION.reset(token)
        await task
        root.info("not about a link")

    asyncio.run(main())
    about, other = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert about["correlation_id"] == "pl2_0a1b2c3d" and about["level"] == "INFO"
    assert about["message"] == "creating the link for x***@***.org"
    assert other["correlation_id"] is None and other["ts"].endswith("Z")


def test_masking_keeps_records_formattable_by_modes_handler() -> None:
    """mode's formatter wraps a non-tuple ``args`` into a tuple and formats again: a
    masked record must not leave ``args`` None (every line became a logging error)."""
    from mode.utils.logging import DefaultFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "mail %s at 100%%",
                               ("a@b.com",), None)
    assert logs.LinkContext().filter(record)
    assert DefaultFormatter("%(message)s").format(record) == "mail a***@***.com at 100%"
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "offset %d", (17,), None)
    assert logs.LinkContext().filter(plain) and plain.args == (17,)  # untouched
