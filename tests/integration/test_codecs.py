"""Compressed batches, real broker: every Kafka codec is read, and a worker that could not
read one refuses to start instead of crash-looping on the batch.

Where the broker is the local JVM, the tests also read its log segments, to prove the
batches really were stored compressed with the codec under test (a producer that silently
sent them uncompressed would otherwise pass).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.memory_records import MemoryRecords

from streams import events
from streams.config import load_settings
from streams.connectors.base import link_reference
from streams.devkit.broker import Broker, LocalKafka, _java, resolve_kafka
from streams.devkit.harness import REPO_ROOT, TOPICS, OutcomeReader, run_worker_expecting_exit
from streams.devkit.sims.razorpay import RazorpaySimulatorProcess
from streams.devkit.traffic import key_of, valid_request

pytestmark = pytest.mark.integration
DEADLINE_S = 120
BATCH = 40
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def requests_for(run_id: str, codec: str) -> list[tuple[bytes, bytes]]:
    """A batch of valid requests keyed by link key, distinct per test and codec."""
    requests = [valid_request(n, run=f"{run_id}-{codec}") for n in range(BATCH)]
    return [(key_of(r), orjson.dumps(r)) for r in requests]


def stored_codecs(broker: Broker, topic: str, keys: set[bytes]) -> dict[bytes, set[str]] | None:
    """Per key, the codecs of the broker's stored batches holding it; None if not local."""
    if not isinstance(broker, LocalKafka):
        return None
    found: dict[bytes, set[str]] = {}
    partition_dir = re.compile(rf"{re.escape(topic)}-\d+")
    for directory in (broker.data_dir / "logs").iterdir():
        if not partition_dir.fullmatch(directory.name):
            continue
        for segment in sorted(directory.glob("*.log")):
            records = MemoryRecords(segment.read_bytes())
            while (batch := records.next_batch()) is not None:
                if batch.is_control_batch:
                    continue
                codec = CODEC_NAMES[batch.compression_type]
                for record in batch:
                    if record.key in keys:
                        found.setdefault(record.key, set()).add(codec)
    return found


async def assert_one_created_outcome_each(broker: Broker, simulator: RazorpaySimulatorProcess,
                                          reader: OutcomeReader, keys: list[str]) -> None:
    assert await reader.wait_for(keys, DEADLINE_S) == set()
    by_receipt = simulator.ledger()["by_receipt"]
    for key in keys:
        [outcome] = reader.outcomes.for_key(key)
        assert outcome["event_type"] == TOPICS.created, outcome
        errors = [e.message for e in events.validator_for(outcome["event_type"]).iter_errors(outcome)]
        assert errors == []
        assert by_receipt.get(link_reference(key)) == [outcome["connector_payout_id"]]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_requests_compressed_with_each_codec_get_one_outcome_each(
        broker: Broker, simulator: RazorpaySimulatorProcess, worker, run_id: str, codec: str) -> None:
    records = requests_for(run_id, codec)
    keys = [k.decode() for k, _ in records]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all",
                                    compression_type=codec, linger_ms=50)
        await producer.start()
        try:
            sent = [await producer.send(TOPICS.requested, value, key=key) for key, value in records]
            for delivery in sent:
                await delivery
        finally:
            await producer.stop()
        await assert_one_created_outcome_each(broker, simulator, reader, keys)

    stored = stored_codecs(broker, TOPICS.requested, {k for k, _ in records})
    if stored is not None:
        assert stored == {k: {codec} for k, _ in records}
    # The worker's own producer compresses too: its outcomes carry its configured codec.
    outcomes = stored_codecs(broker, TOPICS.created, {k for k, _ in records})
    if outcomes is not None:
        expected = load_settings().producer_compression
        assert outcomes == {k: {expected} for k, _ in records}


JAVA_PRODUCER = textwrap.dedent("""\
    import java.io.BufferedReader;
    import java.io.InputStreamReader;
    import java.nio.charset.StandardCharsets;
    import java.util.ArrayList;
    import java.util.List;
    import java.util.Properties;
    import java.util.concurrent.Future;
    import org.apache.kafka.clients.producer.KafkaProducer;
    import org.apache.kafka.clients.producer.ProducerRecord;
    import org.apache.kafka.clients.producer.RecordMetadata;
    import org.apache.kafka.common.serialization.ByteArraySerializer;

    /** Sends stdin lines "key|value" with Kafka's own client: args bootstrap topic codec. */
    public class CompressedProducer {
        public static void main(String[] args) throws Exception {
            Properties props = new Properties();
            props.put("bootstrap.servers", args[0]);
            props.put("compression.type", args[2]);
            props.put("acks", "all");
            props.put("linger.ms", "100");
            props.put("key.serializer", ByteArraySerializer.class.getName());
            props.put("value.serializer", ByteArraySerializer.class.getName());
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
                 BufferedReader in = new BufferedReader(
                         new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    int bar = line.indexOf('|');
                    sent.add(producer.send(new ProducerRecord<>(args[1],
                            line.substring(0, bar).getBytes(StandardCharsets.UTF_8),
                            line.substring(bar + 1).getBytes(StandardCharsets.UTF_8))));
                }
                producer.flush();
                for (Future<RecordMetadata> delivery : sent) {
                    delivery.get();  // throws unless the broker acknowledged the record
                }
            }
            System.out.println("sent " + sent.size());
        }
    }
    """)


def produce_with_kafkas_java_client(bootstrap: str, records: list[tuple[bytes, bytes]],
                                    codec: str, workdir: Path) -> str:
    """Run JAVA_PRODUCER (single-file source launch) on Kafka's jars; returns its stdout."""
    source = workdir / "CompressedProducer.java"
    source.write_text(JAVA_PRODUCER)
    lines = b"".join(key + b"|" + value + b"\n" for key, value in records)
    assert all(b"|" not in key and b"\n" not in value for key, value in records)
    proc = subprocess.Popen(
        [_java(), "-cp", f"{resolve_kafka()}/*", str(source), bootstrap, TOPICS.requested, codec],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        out, err = proc.communicate(lines, timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode()


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
async def test_requests_from_kafkas_java_client_get_one_outcome_each(
        broker: Broker, simulator: RazorpaySimulatorProcess, worker, run_id: str, codec: str,
        tmp_path: Path) -> None:
    records = requests_for(f"{run_id}-java", codec)
    keys = [k.decode() for k, _ in records]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        out = produce_with_kafkas_java_client(broker.bootstrap_servers, records, codec, tmp_path)
        assert f"sent {len(records)}" in out
        await assert_one_created_outcome_each(broker, simulator, reader, keys)

    stored = stored_codecs(broker, TOPICS.requested, {k for k, _ in records})
    if stored is not None:
        assert stored == {k: {codec} for k, _ in records}


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        # Nothing listens here: a worker that got past its checks would not reach Kafka.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "PAYOUT_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO_ROOT),
    })
    env.pop("PAYOUT_PRODUCER_COMPRESSION", None)
    env.update(extra)
    return env


def test_worker_without_cramjam_refuses_to_start(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "cramjam.py").write_text('raise ImportError("cramjam hidden by the test")\n')
    env = worker_env(tmp_path, PYTHONPATH=os.pathsep.join([str(shadow), str(REPO_ROOT)]))

    done = run_worker_expecting_exit(env)

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "snappy, lz4, zstd" in line and "gzip" not in line
    assert "pip install 'aiokafka[lz4,snappy,zstd]'" in line


def test_worker_with_an_unknown_producer_codec_refuses_to_start(tmp_path: Path) -> None:
    done = run_worker_expecting_exit(worker_env(tmp_path, PAYOUT_PRODUCER_COMPRESSION="lz5"))

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "PAYOUT_PRODUCER_COMPRESSION: 'lz5' should be 'none', 'gzip', 'snappy', 'lz4' or " \
           "'zstd'" in line
