"""Checks a process runs before it touches Kafka: refuse to start rather than crash-loop.

A consumer that meets a batch compressed with a codec it cannot decode raises inside
Faust's fetcher, restarts into the same batch and raises again: the partition stops for
good, behind a live-looking process. aiokafka implements snappy, lz4 and zstd through
the optional ``cramjam`` package, so whether a worker can read every batch a producer
may write depends on the install, and is checked here, once, at startup.

Configuration errors follow the project's rule: one clear line on stderr, exit code 2,
no traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

# Every codec a Kafka producer may choose; a consumer must read them all.
CODECS: tuple[str, ...] = ("gzip", "snappy", "lz4", "zstd")
# Values of PAYOUT_PRODUCER_COMPRESSION: "none" sends batches uncompressed.
COMPRESSION_CHOICES: tuple[str, ...] = ("none", *CODECS)
COMPRESSION_ENV = "PAYOUT_PRODUCER_COMPRESSION"
CODECS_FIX = "pip install 'aiokafka[lz4,snappy,zstd]'"

_PROBE = b"payout-link-requested " * 8


def _codec_works(name: str) -> bool:
    """Whether aiokafka has the codec's library and a tiny batch survives a round trip.

    The round trip also catches a library that imports but lacks the codec (an old or
    broken ``cramjam``); it costs well under a millisecond for all four codecs.
    """
    from aiokafka import codec

    has: Callable[[], bool] = getattr(codec, f"has_{name}")
    if not has():
        return False
    encode: Callable[[bytes], bytes] = getattr(codec, f"{name}_encode")
    decode: Callable[[bytes], bytes] = getattr(codec, f"{name}_decode")
    try:
        return bytes(decode(encode(_PROBE))) == _PROBE
    except Exception:  # any failure means this process cannot read such batches
        return False


def missing_codecs() -> list[str]:
    """The Kafka compression codecs this process cannot decode, in ``CODECS`` order."""
    return [name for name in CODECS if not _codec_works(name)]


def refuse(message: str) -> NoReturn:
    """Stop the process on bad configuration: one line on stderr, exit code 2."""
    print(" ".join(message.split()), file=sys.stderr, flush=True)
    raise SystemExit(2)


def require_codecs(program: str) -> None:
    """Exit with code 2 unless every Kafka codec can be decoded (see module docstring)."""
    missing = missing_codecs()
    if missing:
        refuse(f"{program}: cannot start: Kafka compression codec(s) {', '.join(missing)} "
               f"not available, so batches compressed with them could not be read; "
               f"fix: {CODECS_FIX}")


def compression_type(value: str) -> str | None:
    """aiokafka's ``compression_type`` for a PAYOUT_PRODUCER_COMPRESSION value ("none" → None).

    Raises ``ValueError`` for anything but ``COMPRESSION_CHOICES``.
    """
    if value not in COMPRESSION_CHOICES:
        raise ValueError(f"{COMPRESSION_ENV}={value[:40]!r} is not one of "
                         f"{'|'.join(COMPRESSION_CHOICES)}")
    return None if value == "none" else value


def require_valid_compression(value: str, program: str = "payout worker") -> None:
    """Exit with code 2 when PAYOUT_PRODUCER_COMPRESSION holds an unknown codec."""
    try:
        compression_type(value)
    except ValueError as exc:
        refuse(f"{program}: cannot start: {exc}")
