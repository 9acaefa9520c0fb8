"""No crash loops: a record that killed the process is recognised when it comes back.

All the work that depends on a record's bytes and could take the process down rather
than raise -- parsing (orjson, the stdlib decoder), schema validation (Rust), the
provider transform and its encoding -- runs in one serialized step in the agent's loop
(:meth:`streams.processor.RequestProcessor.accept`). Before that step the record's
coordinates and the stage it is in are written to a one-slot **crash marker**, a
memory-mapped file in the worker's data directory: a plain memory store per record,
which the kernel keeps even when the process dies by SIGKILL, SIGSEGV or abort.
After the step the slot is cleared.

On the next start a set marker names the record that was in the risky step when the
process died. That alone does not prove it guilty (a SIGKILL may have landed in the
step), so when the record arrives again it is first run through the same step in a
**separate process** (``python -m streams.poison``). If that process dies too, the
record is poison and is routed without being handled here: a dead letter when it
died while parsing, else a request failure ``processing_error``. If it survives, the
record is handled as usual. Either way this worker never dies on it twice.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import mmap
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class Stage(enum.IntEnum):
    PARSE = 1
    VALIDATE = 2
    TRANSFORM = 3


_HEADER = struct.Struct(">BBiqH")  # set flag, stage, partition, offset, topic length
_SLOT = 512  # one slot: the header and a topic name (Kafka caps names at 249 characters)
_MAX_TOPIC = _SLOT - _HEADER.size
_SUSPECT_SLOTS = 15  # suspects still to be judged, kept across restarts
_SIZE = _SLOT * (1 + _SUSPECT_SLOTS)


@dataclass(frozen=True)
class Suspect:
    """A record that was in the risky step when a previous process died.

    ``confirmed``: an isolated run died on it too. Kept on file after it is routed,
    because a worker killed before that record's offset is committed meets it again.
    """

    topic: str
    partition: int
    offset: int
    stage: Stage
    confirmed: bool = False


class CrashMarker:
    """Slot 0: the record in the risky step now. Slots 1..15: suspects not yet judged.

    A suspect stays on file until it is judged, so a worker that dies again before the
    suspect comes back (a SIGKILL during startup, say) does not forget it.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        suspects = [s for s in (self._read(i) for i in range(1, 1 + _SUSPECT_SLOTS)) if s]
        current = self._read(0)
        if current is not None and not any(_same(current, s) for s in suspects):
            suspects.append(current)
        if len(suspects) > _SUSPECT_SLOTS:  # make room: confirmed ones go first, oldest first
            confirmed = [s for s in suspects if s.confirmed]
            drop = set(map(id, confirmed[:len(suspects) - _SUSPECT_SLOTS]))
            suspects = [s for s in suspects if id(s) not in drop][-_SUSPECT_SLOTS:]
        self._suspects = suspects
        self._persist()
        self.clear()

    @property
    def suspect(self) -> Suspect | None:
        """The most recent suspect (for tests and logs)."""
        return self._suspects[-1] if self._suspects else None

    def _read(self, slot: int) -> Suspect | None:
        base = slot * _SLOT
        flag, stage, partition, offset, length = _HEADER.unpack_from(self._map, base)
        if flag not in (1, 2) or not 0 < length <= _MAX_TOPIC:
            return None
        try:
            topic = bytes(self._map[base + _HEADER.size:base + _HEADER.size + length]).decode()
            return Suspect(topic, partition, offset, Stage(stage), confirmed=flag == 2)
        except ValueError:
            return None

    def _write(self, slot: int, topic: str, partition: int, offset: int, stage: int,
               flag: int = 1) -> None:
        base = slot * _SLOT
        encoded = topic.encode()[:_MAX_TOPIC]
        self._map[base + _HEADER.size:base + _HEADER.size + len(encoded)] = encoded
        _HEADER.pack_into(self._map, base, flag, stage, partition, offset, len(encoded))

    def _persist(self) -> None:
        for slot in range(1, 1 + _SUSPECT_SLOTS):
            if slot <= len(self._suspects):
                s = self._suspects[slot - 1]
                self._write(slot, s.topic, s.partition, s.offset, s.stage,
                            2 if s.confirmed else 1)
            else:
                self._map[slot * _SLOT] = 0

    def enter(self, topic: str, partition: int, offset: int) -> None:
        self._write(0, topic, partition, offset, Stage.PARSE)

    def stage(self, stage: Stage) -> None:
        self._map[1] = stage

    def clear(self) -> None:
        self._map[0] = 0

    def is_suspect(self, topic: str, partition: int, offset: int) -> Suspect | None:
        if not self._suspects:  # nearly always: one falsy check per record
            return None
        for s in self._suspects:
            if (s.topic, s.partition, s.offset) == (topic, partition, offset):
                return s
        return None

    def judged(self, suspect: Suspect, *, poison: bool, stage: Stage | None = None) -> None:
        """Acquitted: forgotten. Poison: kept as confirmed (with the stage it died in),
        so it is never run again."""
        rest = [s for s in self._suspects if not _same(s, suspect)]
        if poison:
            rest.append(Suspect(suspect.topic, suspect.partition, suspect.offset,
                                stage or suspect.stage, confirmed=True))
        self._suspects = rest
        self._persist()

    def close(self) -> None:
        self._map.close()


def _same(a: Suspect, b: Suspect) -> bool:
    return (a.topic, a.partition, a.offset) == (b.topic, b.partition, b.offset)


@dataclass(frozen=True)
class Verdict:
    poison: bool
    stage: Stage | None  # the stage the isolated run died in
    detail: str


ISOLATION_TIMEOUT_S = 60.0


async def isolate(value: bytes | None, env: dict[str, str] | None = None,
                  timeout_s: float = ISOLATION_TIMEOUT_S, kind: str = "request") -> Verdict:
    """Run the risky step on ``value`` in a child process; did it die there too?

    ``kind``: which step (``request`` or ``command``, :func:`streams.intake.risky_step`).
    """
    if value is None:
        return Verdict(False, None, "tombstone")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.poison", kind, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(value), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Verdict(True, _last_stage(b""), f"the step did not finish in {timeout_s:.0f}s")
    reached = _last_stage(out)
    if proc.returncode == 0 and out.rstrip().endswith(b"ok"):
        return Verdict(False, None, "the isolated run finished")
    how = (f"signal {-proc.returncode}" if proc.returncode is not None and proc.returncode < 0
           else f"exit code {proc.returncode}")
    return Verdict(True, reached, f"the isolated run died ({how})")


def _last_stage(out: bytes) -> Stage:
    stage = Stage.PARSE
    for line in out.split():
        if line.isdigit() and int(line) in Stage._value2member_map_:
            stage = Stage(int(line))
    return stage


def _run_risky_step(value: bytes, kind: str = "request") -> None:
    """The child's side: the same pure steps the agent runs, reporting each stage."""
    from streams.intake import risky_step  # the worker's own code, not a copy

    def report(stage: Stage) -> None:
        sys.stdout.write(f"{int(stage)}\n")
        sys.stdout.flush()

    risky_step(value, report, kind)
    sys.stdout.write("ok\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _run_risky_step(sys.stdin.buffer.read(), sys.argv[1] if len(sys.argv) > 1 else "request")
