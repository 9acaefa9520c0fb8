"""Startup checks: every Kafka codec decodable, the producer codec a known one."""
from __future__ import annotations

import pytest
from aiokafka import codec

from streams import preflight
from streams.config import Settings, load_settings


def test_this_install_decodes_every_kafka_codec() -> None:
    assert preflight.missing_codecs() == []


def test_without_cramjam_snappy_lz4_and_zstd_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "cramjam", None)
    assert preflight.missing_codecs() == ["snappy", "lz4", "zstd"]


def test_a_codec_that_cannot_round_trip_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(payload: bytes, level: int = 9) -> bytes:
        raise AttributeError("module 'cramjam' has no attribute 'lz4'")

    monkeypatch.setattr(codec, "lz4_encode", broken)
    assert preflight.missing_codecs() == ["lz4"]


def test_require_codecs_refuses_with_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(codec, "cramjam", None)
    with pytest.raises(SystemExit) as exited:
        preflight.require_codecs("payout worker")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("payout worker: ")
    assert "snappy, lz4, zstd" in err and "gzip" not in err
    assert "pip install 'aiokafka[lz4,snappy,zstd]'" in err


def test_require_codecs_is_silent_when_all_are_there(capsys: pytest.CaptureFixture[str]) -> None:
    preflight.require_codecs("payout worker")
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("value, expected", [
    ("none", None), ("gzip", "gzip"), ("snappy", "snappy"), ("lz4", "lz4"), ("zstd", "zstd"),
])
def test_compression_type_maps_the_setting_to_aiokafka(value: str, expected: str | None) -> None:
    assert preflight.compression_type(value) == expected


@pytest.mark.parametrize("value", ["", "LZ4", "brotli", "None", " zstd"])
def test_unknown_compression_is_a_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="PAYOUT_PRODUCER_COMPRESSION"):
        preflight.compression_type(value)


def test_require_valid_compression_refuses_with_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        preflight.require_valid_compression("brotli\n" + "x" * 500)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'brotli\\n" in err and "none|gzip|snappy|lz4|zstd" in err
    assert len(err) < 200  # the value is cut, not echoed whole


def test_require_valid_compression_accepts_every_choice(capsys: pytest.CaptureFixture[str]) -> None:
    for value in preflight.COMPRESSION_CHOICES:
        preflight.require_valid_compression(value)
    assert capsys.readouterr() == ("", "")


def test_settings_default_and_environment() -> None:
    default = Settings.model_fields["producer_compression"].default
    assert default in preflight.COMPRESSION_CHOICES
    assert load_settings({}).producer_compression == default
    assert load_settings({"PAYOUT_PRODUCER_COMPRESSION": "zstd"}).producer_compression == "zstd"
