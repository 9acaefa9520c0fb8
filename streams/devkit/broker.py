"""A real single-node Apache Kafka (KRaft) for tests, the demo and benchmarks.

Why: mocks hide exactly the behaviour a stream processor depends on (rebalances,
offsets, broker outages), so everything runs against a real broker. Resolution:

1. ``KAFKA_BOOTSTRAP_SERVERS`` set      -> use that broker as is (``ExternalBroker``).
2. a Docker engine answers             -> ``apache/kafka`` via testcontainers.
3. otherwise                           -> ``LocalKafka``: Kafka assembled from Maven
   Central jars (resolved once into a cache) and run as a local JVM.

CLI: ``python -m streams.devkit.broker [--data-dir D] [--port P] [--resolve-only]``.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from streams.devkit.netcut import TcpProxy

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

KAFKA_VERSION = "4.3.1"  # keep in step with <kafka.version> in kafka/pom.xml
POM = Path(__file__).with_name("kafka") / "pom.xml"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
HEAP_OPTS = os.environ.get("KAFKA_HEAP_OPTS", "-Xms512m -Xmx1g")

# Single-node settings shared by the local JVM and the container: replication
# factors of 1, no rebalance delay, tiny internal topics and small buffers so a
# test node starts fast and stays small.
COMMON_CONFIG: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "auto.create.topics.enable": "true",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}

# INFO to kafka.log, minus the ~1000-line config dumps each start; log4j2's own
# shutdown hook is off so Kafka's shutdown messages are not cut off.
LOG4J2 = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class Broker:
    """A Kafka broker the caller can start, stop and restart (chaos tests)."""

    bootstrap_servers: str = ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Stop, then start again on the same address with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop for good: the broker and anything that outlives its restarts."""
        self.stop()

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExternalBroker(Broker):
    """A broker someone else runs; its lifecycle is not ours to manage."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    root = os.environ.get("PAYOUT_STREAMS_CACHE") or Path.home() / ".cache" / "payout-streams"
    return Path(root) / f"kafka-{version}"


def resolve_kafka(version: str = KAFKA_VERSION) -> Path:
    """Return a directory of Kafka jars, fetching them with Maven on first use.

    The marker is written only after a complete copy, so an interrupted download is
    redone; a file lock keeps parallel test workers from resolving twice.
    """
    home = cache_dir(version)
    lib, marker = home / "lib", home / "resolved.ok"
    if marker.exists() and lib.is_dir():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and lib.is_dir():
            return lib
        marker.unlink(missing_ok=True)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("LocalKafka needs Maven (mvn) on PATH to fetch Kafka jars")
        shutil.rmtree(lib, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={lib}", f"-Dkafka.version={version}"]
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=1800)  # Maven's own network timeouts come first
        if done.returncode != 0 or not (lib / f"kafka_2.13-{version}.jar").exists():
            raise RuntimeError(f"resolving Kafka {version} failed ({' '.join(cmd)}):\n"
                               f"{done.stdout[-4000:]}{done.stderr[-4000:]}")
        partial = marker.with_suffix(".tmp")
        partial.write_text("\n".join(sorted(p.name for p in lib.glob("*.jar"))) + "\n")
        partial.replace(marker)
    return lib


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


def broker_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True once a Metadata v1 request lists at least one (unfenced) broker.

    A raw request instead of a client library: works from any thread or event
    loop, and listing a broker means the node has joined the cluster, not merely
    opened its socket.
    """
    client = b"payout-devkit"
    request = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            body = _recv_exact(sock, size)
    except OSError:
        return False
    correlation, brokers = struct.unpack(">ii", body[:8])
    return bool(correlation == 7 and brokers > 0)


def wait_until_ready(host: str, port: int, died: Callable[[], str | None],
                     timeout: float = READY_TIMEOUT_S) -> None:
    """Poll until the broker answers; ``died`` returns a diagnosis if it can't anymore."""
    deadline = time.monotonic() + timeout
    while not broker_ready(host, port):
        reason = died()
        if reason is not None:
            raise RuntimeError(f"Kafka at {host}:{port} did not come up: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka at {host}:{port} not ready after {timeout:.0f}s")
        time.sleep(0.1)


_RUN_MARK = "--- devkit: starting Kafka"


def _cluster_id() -> str:
    while True:  # a leading '-' would be read as a command-line option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise RuntimeError("LocalKafka needs a Java 17+ runtime (java on PATH or JAVA_HOME)")
    return java


class LocalKafka(Broker):
    """Kafka as a child JVM; data, config and kafka.log live in ``data_dir``.

    ``cuttable=True`` adds a third listener whose advertised address is a
    :class:`~streams.devkit.netcut.TcpProxy` in front of it: Kafka advertises per
    listener, so a client bootstrapped at :attr:`cuttable_bootstrap` reaches the broker
    only through the proxy (``self.proxy.cut()`` cuts that client alone off), while
    every other client uses the plain listener. The proxy and the ports outlive broker
    restarts; :meth:`close` (the context manager's exit) stops the proxy too.
    """

    def __init__(self, data_dir: Path, port: int = 0, version: str = KAFKA_VERSION, *,
                 cuttable: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.version = version
        self.port = port or free_port()
        self.controller_port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.proxy: TcpProxy | None = None
        self.cuttable_port = 0
        self.cuttable_bootstrap = ""
        if cuttable:
            self.cuttable_port = free_port()
            self.proxy = TcpProxy("127.0.0.1", self.cuttable_port).start()
            self.cuttable_bootstrap = self.proxy.address
        self.log_file = self.data_dir / "kafka.log"
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    def _write_config(self) -> Path:
        config = dict(COMMON_CONFIG)
        listeners = f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        advertised = f"PLAINTEXT://127.0.0.1:{self.port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.proxy is not None:
            listeners += f",CUTTABLE://127.0.0.1:{self.cuttable_port}"
            advertised += f",CUTTABLE://{self.proxy.address}"
            protocols += ",CUTTABLE:PLAINTEXT"
        config.update({
            "listeners": listeners,
            "advertised.listeners": advertised,
            "listener.security.protocol.map": protocols,
            "inter.broker.listener.name": "PLAINTEXT",
            # Static quorum: the voter lives in config, not in the log, so a data
            # dir stays usable even if a later run picks other ports.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.data_dir / "logs"),
        })
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)
        return path

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.is_running():
            return
        lib = resolve_kafka(self.version)
        java = _java()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        classpath = f"{lib}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            fmt = subprocess.run(
                [java, "-cp", classpath, f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                 "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)],
                stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        cmd = [java, *HEAP_OPTS.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
               f"-Dkafka.logs.dir={self.data_dir}", "-cp", classpath, "kafka.Kafka", str(config)]
        with open(self.log_file, "ab") as log:
            log.write(f"{_RUN_MARK} {self.version} on {self.bootstrap_servers}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, cwd=self.data_dir, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._proc.pid
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            wait_until_ready("127.0.0.1", self.port, self._diagnose)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- tail of {self.log_file}:\n{self.log_tail()}") from None
        except BaseException:
            self.stop()
            raise

    def _diagnose(self) -> str | None:
        if self._proc is not None and self._proc.poll() is not None:
            return f"the JVM exited with code {self._proc.returncode}"
        return None

    def log_tail(self, lines: int = 25) -> str:
        """The latest run's first errors (usually the cause) and its last lines."""
        try:
            run = self.log_file.read_text(errors="replace").rsplit(_RUN_MARK, 1)[-1].splitlines()
        except OSError:
            return "(no kafka.log)"
        errors = [ln for ln in run if " ERROR " in ln or " FATAL " in ln or ln.startswith("Caused by")]
        head = ["first errors:", *errors[:8], "last lines:"] if errors else []
        return "\n".join(head + run[-lines:])

    def close(self) -> None:
        """Stop the broker and the cuttable listener's proxy."""
        try:
            self.stop()
        finally:
            if self.proxy is not None:
                self.proxy.stop()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Kafka shuts down cleanly), then SIGKILL after ``timeout``; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class ContainerKafka(Broker):
    """``apache/kafka`` through testcontainers, pinned to a fixed host port so a
    restart keeps both the address and the container's data."""

    def __init__(self, port: int = 0, version: str = KAFKA_VERSION) -> None:
        self.image = f"apache/kafka:{version}"
        self.port = port or free_port()
        self._container: DockerContainer | None = None  # once started
        self.host = "127.0.0.1"
        self.bootstrap_servers = f"{self.host}:{self.port}"

    def start(self) -> None:
        from testcontainers.core.container import DockerContainer

        if self._container is not None:
            return
        container = DockerContainer(self.image)
        try:  # the advertised address must be known before the container starts
            host = container.get_container_host_ip()
        except Exception:  # modes that need a running container (Docker-in-Docker)
            host = "localhost"
        local = host in ("localhost", "127.0.0.1")
        self.host = "127.0.0.1" if local else host
        self.bootstrap_servers = f"{self.host}:{self.port}"
        # docker-py takes (host_ip, port); testcontainers annotates only str | int.
        container.with_bind_ports(9092, ("127.0.0.1", self.port) if local else self.port)  # type: ignore[arg-type]
        config = dict(COMMON_CONFIG)
        config.update({
            # Clients use PLAINTEXT (the mapped host port); the broker talks to
            # itself (e.g. transaction markers) over BROKER inside the container.
            "listeners": "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:19092,CONTROLLER://localhost:9093",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap_servers},BROKER://localhost:19092",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "BROKER",
            "controller.quorum.voters": "1@localhost:9093",
            "log.dirs": "/tmp/kraft-combined-logs",
        })
        for key, value in config.items():
            container.with_env("KAFKA_" + key.upper().replace(".", "_"), value)
        container.with_env("KAFKA_HEAP_OPTS", HEAP_OPTS).with_env("CLUSTER_ID", _cluster_id())
        container.start()
        self._container = container
        atexit.register(self.stop)
        self._wait()

    def _wait(self) -> None:
        def died() -> str | None:
            wrapped = self._container.get_wrapped_container()  # type: ignore[union-attr]
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                return f"container {wrapped.status}:\n{wrapped.logs(tail=40).decode(errors='replace')}"
            return None

        wait_until_ready(self.host, self.port, died)

    def restart(self) -> None:
        if self._container is None:
            return self.start()
        self._container.get_wrapped_container().restart(timeout=int(STOP_TIMEOUT_S))
        self._wait()

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers; fails fast (no socket -> immediate error)."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)  # type: ignore[arg-type]  # requests takes a float
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def broker_from_environment(workdir: Path, *, port: int = 0, cuttable: bool = False) -> Broker:
    """Pick the broker for this machine (see module docstring); not yet started.

    ``cuttable``: with a listener one client can be cut off from (:class:`LocalKafka`);
    only the local launcher has one.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if cuttable:
        if external:
            raise RuntimeError("a cuttable listener needs the local Kafka launcher "
                               "(unset KAFKA_BOOTSTRAP_SERVERS)")
        return LocalKafka(Path(workdir), port=port, cuttable=True)
    if external:
        return ExternalBroker(external)
    if docker_available():
        return ContainerKafka(port=port)
    return LocalKafka(Path(workdir), port=port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.devkit.broker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="broker data dir (default: a temp dir, removed on exit)")
    parser.add_argument("--port", type=int, default=0, help="client port (0 = a free port)")
    parser.add_argument("--resolve-only", action="store_true", help="only fetch the Kafka jars into the cache")
    args = parser.parse_args(argv)
    if args.resolve_only:
        print(f"Kafka {KAFKA_VERSION} jars in {resolve_kafka()}", file=sys.stderr)
        return 0

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="payout-kafka-"))
    broker = broker_from_environment(data_dir, port=args.port)
    try:
        broker.start()
        print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
        while not stopping.wait(0.5):  # also notice a broker that died on its own
            if isinstance(broker, LocalKafka) and not broker.is_running():
                print(f"Kafka exited unexpectedly:\n{broker.log_tail()}", file=sys.stderr)
                return 1
        return 0
    finally:
        broker.stop()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
