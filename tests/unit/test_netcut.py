"""The TCP proxy chaos uses to cut one client off (streams.devkit.netcut), on an echo server."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from streams.devkit.netcut import TcpProxy


@pytest_asyncio.fixture()
async def echo() -> AsyncIterator[int]:
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            w.write(data)
            await w.drain()
        w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def roundtrip(port: int, payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        await w.drain()
        return await asyncio.wait_for(r.readexactly(len(payload)), timeout)
    finally:
        w.close()


async def test_forwards_both_ways_and_counts(echo: int) -> None:
    with TcpProxy("127.0.0.1", echo) as proxy:
        assert await roundtrip(proxy.port, b"hello") == b"hello"
        assert proxy.accepted == 1 and proxy.bytes_up == 5
        deadline = asyncio.get_running_loop().time() + 5
        while proxy.bytes_down < 5:  # counted after the echo is written on, so poll
            assert asyncio.get_running_loop().time() < deadline, proxy.bytes_down
            await asyncio.sleep(0.01)
        assert proxy.bytes_down == 5
        assert proxy.address == f"127.0.0.1:{proxy.port}"


async def test_a_blackhole_holds_old_and_new_connections_silent_until_restored(echo: int) -> None:
    with TcpProxy("127.0.0.1", echo) as proxy:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
        w.write(b"a")
        assert await asyncio.wait_for(r.readexactly(1), 5) == b"a"
        await asyncio.to_thread(proxy.cut, "blackhole")
        w.write(b"b")
        with pytest.raises(TimeoutError):  # a partition: no answer, no error
            await asyncio.wait_for(r.readexactly(1), 0.5)
        with pytest.raises(TimeoutError):  # a new connection is accepted, then silence
            await roundtrip(proxy.port, timeout=0.5)
        await asyncio.to_thread(proxy.restore)
        # The held connection was closed by the healing; a new one works again.
        assert await asyncio.wait_for(r.read(), 5) == b""
        w.close()
        assert await roundtrip(proxy.port) == b"ping"


async def test_refuse_closes_the_port_and_restore_reopens_the_same_one(echo: int) -> None:
    with TcpProxy("127.0.0.1", echo) as proxy:
        port = proxy.port
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"a")
        assert await asyncio.wait_for(r.readexactly(1), 5) == b"a"
        await asyncio.to_thread(proxy.cut, "refuse")
        try:  # the open connection is reset, not left hanging
            assert await asyncio.wait_for(r.read(), 5) == b""
        except ConnectionResetError:
            pass
        w.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await asyncio.to_thread(proxy.restore)
        assert proxy.port == port and await roundtrip(port) == b"ping"
        assert proxy.cuts == 1


def test_stop_is_idempotent_and_a_bad_mode_is_refused() -> None:
    proxy = TcpProxy("127.0.0.1", 9).start()
    with pytest.raises(ValueError, match="blackhole"):
        proxy.cut("sideways")  # type: ignore[arg-type]
    proxy.stop()
    proxy.stop()
