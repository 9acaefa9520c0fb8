"""What every provider simulator shares: fault kinds, counters, the URL line, process control.

Each simulator (``streams/devkit/sims/<provider name>.py``) is its own module and its
own process; this module names no provider. A simulator prints one line
``SIMULATOR_URL=http://127.0.0.1:<port>`` on stdout once listening, and
:class:`SimulatorProcess` (subclassed by each simulator) starts one as a child process,
waits for that line and for its health path, and stops it.

For the fleet (:mod:`streams.devkit.sims.fleet`), each simulator module also exposes
``fleet_process(*, latency_ms, jitter_ms, faults, hang_ms, seed, **options)`` returning
its process, whose :meth:`SimulatorProcess.links_by_reference` reads its ledger in one
shape: our reference -> link ids at that provider.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import orjson

URL_LINE_PREFIX = "SIMULATOR_URL="
FAULT_KINDS: tuple[str, ...] = (
    "error_5xx",
    "throttle_429",
    "slow",
    "timeout_before_create",
    "lost_after_create",
)
_JSON_HEADERS = {"Content-Type": "application/json"}


def _probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{key} must be a number in [0, 1]")
    return float(value)


def _non_negative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    return float(value)


class _Stats:
    __slots__ = ("requests", "statuses", "faults", "events")

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        # links_created, idempotent_replays, client_gone, insufficient_funds, ...
        self.events: dict[str, int] = {}

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "faults": dict(self.faults),
            "events": dict(self.events),
        }


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


# ------------------------------------------------------------------ process control

_REPO_ROOT = Path(__file__).resolve().parents[3]


class SimulatorProcess:
    """Runs a simulator as a child process (its own session) for tests and benchmarks.

    A separate process keeps the simulator's CPU off the caller's event loop, as a
    real provider would be. Credentials travel via the ``SIM_CREDENTIALS`` env var, not
    argv, so they never show in ``ps``. ``stop()`` is idempotent and registered with
    atexit, so a crashed test run does not leave a listener behind.

    A subclass sets ``argv`` (the command that runs its simulator module) and
    ``health_path`` (under its own control prefix), and reads its own ledger.
    """

    control_prefix = "/_sim"  # each provider's simulator names its own control prefix
    health_path = "/_sim/health"

    def __init__(
        self,
        *,
        argv: Sequence[str] = (),
        credentials: Mapping[str, Mapping[str, Any]] | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        stderr: Any = None,
    ) -> None:
        self.argv = list(argv)
        self._credentials = credentials
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._stderr = stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self.url: str = ""

    @property
    def worker_url(self) -> str:
        """What a worker's base-URL variable for this provider is set to: the API URL
        (the Prism server overrides it with its gRPC target, the control URL apart)."""
        return self.url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("simulator already started")
        if not self.argv:
            raise RuntimeError("no simulator command (argv) to run")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        if self._credentials is not None:
            env["SIM_CREDENTIALS"] = json.dumps({k: dict(v) for k, v in self._credentials.items()})
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, cwd=str(_REPO_ROOT), start_new_session=True,
        )
        atexit.register(self.stop)
        try:
            deadline = time.monotonic() + self._startup_timeout
            self.url = self._read_url_line(deadline)
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_url_line(self, deadline: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("simulator did not print its URL in time")
                if sel.select(remaining):
                    chunk = os.read(stdout.fileno(), 4096)
                    if not chunk:
                        raise RuntimeError(f"simulator exited early (code {self._proc.wait()})")
                    buf += chunk
        line = buf.split(b"\n", 1)[0].decode().strip()
        if not line.startswith(URL_LINE_PREFIX):
            raise RuntimeError(f"unexpected simulator output: {line!r}")
        return line[len(URL_LINE_PREFIX):]

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=1.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"simulator exited (code {self._proc.returncode})")
            if time.monotonic() > deadline:
                raise TimeoutError("simulator not healthy in time")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``. Safe to call any number of times."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    # small synchronous conveniences (stdlib only, so usable anywhere)
    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = orjson.dumps(payload) if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                result: dict[str, Any] = orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 400:  # a control endpoint rejected the patch: say why
                raise ValueError(orjson.loads(exc.read()).get("error", "rejected")) from None
            raise
        return result

    def configure(self, **patch: Any) -> dict[str, Any]:
        """Change behaviour at runtime, e.g. ``configure(error_5xx=0.1, latency_ms=50)``;
        a patch the simulator refuses raises ValueError naming why."""
        return self._call("POST", self.control_prefix + "/config", patch)

    def stats(self) -> dict[str, Any]:
        """The simulator's request, status, fault and event counters."""
        raise NotImplementedError

    def links_by_reference(self) -> dict[str, list[str]]:
        """Our reference -> link ids at this provider (duplicates visible), from its ledger."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
