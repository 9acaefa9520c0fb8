"""The Faust private-API reaches: one module, checked at startup against what it was written for."""
from __future__ import annotations

import asyncio
import importlib.metadata
import re
import subprocess
import sys
import textwrap
import threading
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import faust.streams
import pytest
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from streams import faust_internals
from streams.faust_internals import (
    ALLOW_UNTESTED_ENV,
    REACHES,
    TESTED_VERSIONS,
    HookableApp,
    HookableWorker,
    check_versions,
    committed_offset,
    missing_internals,
    seek_without_wait,
    version_mismatches,
)
from streams.shutdown import BoundedShutdownApp, PayoutWorker

ROOT = Path(__file__).resolve().parents[2]
REQ = TP("payout-link-requested", 3)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _refused(capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None) -> str:
    with pytest.raises(SystemExit) as exited:
        check_versions("payout worker", env={} if env is None else env)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    return _one_line(err)


def _installed_except(**versions: str) -> Any:
    real = importlib.metadata.version

    def version(dist: str) -> str:
        if dist in versions:
            if versions[dist] == "":
                raise importlib.metadata.PackageNotFoundError(dist)
            return versions[dist]
        return real(dist)

    return version


# --- the happy path --------------------------------------------------------------------


def test_the_installed_versions_pass_with_every_internal_present(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert missing_internals() == []
    assert version_mismatches() == []
    check_versions("payout worker", env={})
    assert capsys.readouterr() == ("", "")


def test_the_tested_versions_are_the_pinned_ones() -> None:
    """Bumping a pin in pyproject.toml without re-checking the reaches fails here."""
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dist in ("faust-streaming", "aiokafka"):
        pinned = [p for p in pins if re.match(rf"{dist}(\[[^\]]*\])?==", p)]
        assert len(pinned) == 1, (dist, pins)
        assert pinned[0].split("==")[1] == TESTED_VERSIONS[dist]


# --- versions --------------------------------------------------------------------------


def test_a_wrong_faust_version_refuses_to_start(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(importlib.metadata, "version",
                        _installed_except(**{"faust-streaming": "0.16.0"}))
    line = _refused(capsys)
    assert line.startswith("payout worker: cannot start: untested faust-streaming 0.16.0 "
                           "(tested: 0.15.3)")
    assert "mode-streaming 0.7.1" in line and "aiokafka 0.14.0" in line  # what it was written for
    assert f"{ALLOW_UNTESTED_ENV}=1" in line


@pytest.mark.parametrize("dist", ["mode-streaming", "aiokafka"])
def test_a_wrong_mode_or_aiokafka_version_refuses_too(
        dist: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(importlib.metadata, "version", _installed_except(**{dist: "9.9.9"}))
    assert f"untested {dist} 9.9.9 (tested: {TESTED_VERSIONS[dist]})" in _refused(capsys)


def test_a_missing_distribution_refuses(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(importlib.metadata, "version",
                        _installed_except(**{"mode-streaming": ""}))
    assert "mode-streaming not installed (tested: 0.7.1)" in _refused(capsys)


def test_the_override_turns_an_untested_version_into_one_warning(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(importlib.metadata, "version",
                        _installed_except(**{"aiokafka": "0.15.0"}))
    check_versions("payout worker", env={ALLOW_UNTESTED_ENV: "1"})
    out, err = capsys.readouterr()
    assert out == ""
    line = _one_line(err)
    assert line.startswith("payout worker: warning: untested aiokafka 0.15.0 (tested: 0.14.0)")
    assert f"starting anyway ({ALLOW_UNTESTED_ENV}=1)" in line


@pytest.mark.parametrize("value", ["0", "", "true", "yes"])
def test_only_the_value_1_overrides(value: str, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(importlib.metadata, "version",
                        _installed_except(**{"faust-streaming": "0.15.4"}))
    _refused(capsys, {ALLOW_UNTESTED_ENV: value})


# --- private attributes ----------------------------------------------------------------


def test_a_missing_private_method_refuses_naming_it_even_with_the_override(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delattr(AIOKafkaConsumerThread, "_ensure_consumer")
    line = _refused(capsys, {ALLOW_UNTESTED_ENV: "1"})
    assert line.startswith("payout worker: cannot start: Faust internals it relies on are "
                           "missing: faust.transport.drivers.aiokafka.AIOKafkaConsumerThread."
                           "_ensure_consumer, used by seek_without_wait, committed_offset")
    assert "streams/faust_internals.py" in line


def test_a_missing_class_attribute_refuses_naming_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delattr(ProducerBuffer, "max_messages")
    assert ("faust.transport.producer.ProducerBuffer.max_messages, used by "
            "set_changelog_buffer_limit") in _refused(capsys)


def test_an_instance_attribute_no_longer_set_by_init_refuses_naming_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``_unacked_messages`` exists only on instances: the check reads what __init__ sets."""

    def init_without_tracking(self: Any, *args: Any, **kwargs: Any) -> None:
        self._read_offset = {}
        self._committed_offset = {}

    monkeypatch.setattr(BaseConsumer, "__init__", init_without_tracking)
    line = _refused(capsys)
    assert "faust.transport.drivers.aiokafka.Consumer._unacked_messages, used by " \
           "release_unacked" in line
    assert "_read_offset" not in line and "_committed_offset" not in line


def test_an_ack_path_that_no_longer_calls_consumer_ack_refuses(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The ack guard works only while Faust's final ack calls ``consumer.ack``."""

    def on_final_ack(self: Any, consumer: Any) -> bool:
        return BaseConsumer.ack(consumer, self)  # bypasses a per-instance replacement

    monkeypatch.setattr(ConsumerMessage, "on_final_ack", on_final_ack)
    assert ("faust.types.tuples.ConsumerMessage.on_final_ack (calling consumer.ack), used "
            "by replace_consumer_ack") in _refused(capsys)


def test_a_current_event_no_longer_kept_in_a_contextvar_refuses(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(faust.streams, "_current_event", threading.local())
    assert "faust.streams._current_event" in _refused(capsys)


def test_every_reach_is_named_once() -> None:
    names = [reach.name for reach in REACHES]
    assert len(names) == len(set(names))


def test_no_other_module_reaches_the_private_attributes() -> None:
    """One place: a new reach goes into streams/faust_internals.py, with its reason."""
    private = {r.attribute for r in REACHES if r.attribute.startswith("_")}
    private |= {"_sensor_on_set", "max_messages", "shutdown_timeout"}
    pattern = re.compile(rf"\.({'|'.join(sorted(map(re.escape, private)))})\b")
    offenders = []
    for path in sorted((ROOT / "streams").rglob("*.py")):
        if path.name == "faust_internals.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) or '"_thread"' in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# --- the worker runs the check ---------------------------------------------------------


def test_the_worker_runs_the_check_at_startup() -> None:
    script = textwrap.dedent("""
        import importlib.metadata, runpy, sys
        real = importlib.metadata.version
        importlib.metadata.version = (
            lambda d: "0.16.0" if d == "faust-streaming" else real(d))
        sys.argv = ["streams", "worker"]
        runpy.run_module("streams", run_name="__main__")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    line = _one_line(done.stderr)
    assert line.startswith("payout worker: cannot start: untested faust-streaming 0.16.0")
    assert "Traceback" not in done.stderr


# --- the reaches behave as the code they replaced --------------------------------------


class FakeAiokafkaConsumer:
    def __init__(self) -> None:
        self.sought: list[tuple[Any, int]] = []
        self.loop_thread: list[str] = []

    def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))

    async def committed(self, tp: Any) -> int | None:
        return {("payout-link-requested", 3): 41}.get((tp.topic, tp.partition))


class FakeConsumerThread:
    def __init__(self) -> None:
        self.consumer = FakeAiokafkaConsumer()
        self.calls = 0
        self.shutdown_timeout = 60.0

    def _ensure_consumer(self) -> FakeAiokafkaConsumer:
        return self.consumer

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        self.calls += 1
        return await fun(*args)


class ThreadedConsumer:
    def __init__(self) -> None:
        self._thread = FakeConsumerThread()
        self._read_offset: dict[TP, int | None] = {REQ: 90}
        self._gap: dict[TP, IntervalTree] = defaultdict(IntervalTree)


async def test_a_seek_runs_in_the_consumer_thread_and_moves_faust_s_read_offset() -> None:
    consumer = ThreadedConsumer()
    await seek_without_wait(consumer, REQ, 17)  # type: ignore[arg-type]
    [(ktp, offset)] = consumer._thread.consumer.sought
    assert (ktp.topic, ktp.partition, offset) == (REQ.topic, REQ.partition, 17)
    assert consumer._thread.calls == 1
    assert consumer._read_offset[REQ] == 17
    await seek_without_wait(consumer, REQ, 0)  # type: ignore[arg-type]
    assert consumer._read_offset[REQ] is None  # as Faust's own seek records offset 0


async def test_a_seek_back_forgets_the_holes_faust_recorded_from_there_on() -> None:
    consumer = ThreadedConsumer()
    consumer._gap[REQ].addi(5, 9)
    consumer._gap[REQ].addi(20, 41)
    await seek_without_wait(consumer, REQ, 30)  # type: ignore[arg-type]
    assert sorted((i.begin, i.end) for i in consumer._gap[REQ]) == [(5, 9), (20, 30)]


async def test_the_committed_offset_is_asked_of_the_broker_through_the_thread() -> None:
    consumer = ThreadedConsumer()
    assert await committed_offset(consumer, REQ) == 41  # type: ignore[arg-type]
    assert await committed_offset(consumer, TP("payout-link-requested", 4)) is None  # type: ignore[arg-type]
    assert consumer._thread.calls == 2


def test_the_consumer_thread_stop_is_bounded() -> None:
    consumer = ThreadedConsumer()
    faust_internals.limit_consumer_thread_stop(consumer, 5.0)  # type: ignore[arg-type]
    assert consumer._thread.shutdown_timeout == 5.0
    faust_internals.limit_consumer_thread_stop(object(), 5.0)  # type: ignore[arg-type]


def test_the_changelog_buffer_limit_is_set_on_the_producer_buffer() -> None:
    class Buffer:
        max_messages = 100

    class App:
        class producer:
            buffer = Buffer()

    faust_internals.set_changelog_buffer_limit(App, 1000)  # type: ignore[arg-type]
    assert App.producer.buffer.max_messages == 1000


def test_the_private_hooks_forward_to_the_public_overrides() -> None:
    """The shutdown code overrides only public names; Faust's private hooks reach them."""
    for name in ("_on_sigterm", "_on_sigint", "_crash", "_shutdown_loop"):
        assert getattr(PayoutWorker, name) is getattr(HookableWorker, name)
    for name in ("_consumer_wait_empty", "_new_consumer"):
        assert getattr(BoundedShutdownApp, name) is getattr(HookableApp, name)

    calls: list[tuple[str, Any]] = []

    class Recorder:
        def on_sigterm(self) -> None:
            calls.append(("sigterm", None))

        def on_sigint(self) -> None:
            calls.append(("sigint", None))

        def on_crash(self, reason: BaseException) -> None:
            calls.append(("crash", reason))

        def shutdown_loop(self) -> None:
            calls.append(("shutdown_loop", None))

        async def consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
            calls.append(("wait_empty", consumer))

        def new_consumer(self) -> str:
            calls.append(("new_consumer", None))
            return "consumer"

    recorder, boom = Recorder(), RuntimeError("boom")
    HookableWorker._on_sigterm(recorder)  # type: ignore[arg-type]
    HookableWorker._on_sigint(recorder)  # type: ignore[arg-type]
    HookableWorker._crash(recorder, boom)  # type: ignore[arg-type]
    HookableWorker._shutdown_loop(recorder)  # type: ignore[arg-type]
    asyncio.run(HookableApp._consumer_wait_empty(recorder, "c", None))  # type: ignore[arg-type]
    assert HookableApp._new_consumer(recorder) == "consumer"  # type: ignore[arg-type]
    assert calls == [("sigterm", None), ("sigint", None), ("crash", boom),
                     ("shutdown_loop", None), ("wait_empty", "c"), ("new_consumer", None)]
