"""A controllable TCP proxy on loopback: cut one client off from a server, on demand.

Chaos needs a worker cut off from Kafka but not from the provider (issue 10), and a
provider that refuses connections for minutes, without root, network namespaces or
Docker. Put this proxy between the two and:

* ``cut("blackhole")`` is a network partition: connections stay open, new ones are
  accepted, and no byte moves either way, so the client sees timeouts, not errors.
  On :meth:`restore` the connections held through the cut are closed (a partition that
  heals leaves TCP connections timed out or broken; closing them is the honest
  simplification) and new ones are forwarded again.
* ``cut("refuse")`` is a server that is down: the listening socket closes, so connects
  get ECONNREFUSED, and open connections are reset. :meth:`restore` listens again on
  the same port.

The proxy runs its own event loop in a daemon thread, so a stalled caller's loop does
not stall the traffic it carries. ``stop()`` is idempotent and registered with atexit.
"""
from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["blackhole", "refuse"]
_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = listen_port
        self.accepted = 0
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0
        self.cuts = 0
        self._mode: Mode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._resume: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- control (any thread) -----------------------------------------------------

    def start(self) -> TcpProxy:
        if self._runner is not None:
            return self
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._runner = threading.Thread(target=serve, name=f"tcp-proxy-{self.target[1]}",
                                        daemon=True)
        self._runner.start()
        if not ready.wait(10):
            raise RuntimeError("the TCP proxy did not start listening within 10 s")
        atexit.register(self.stop)
        return self

    def cut(self, mode: Mode = "blackhole") -> None:
        if mode not in ("blackhole", "refuse"):
            raise ValueError(f"cut mode must be 'blackhole' or 'refuse', not {mode!r}")
        self.cuts += 1
        self._call(self._cut(mode))

    def restore(self) -> None:
        self._call(self._restore())

    def stop(self) -> None:
        loop, thread = self._loop, self._runner
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            self._call(self._close_all())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._runner = None
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the TCP proxy is not started")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # --- the proxy's loop ---------------------------------------------------------

    async def _listen(self) -> None:
        self._resume = asyncio.Event()
        self._resume.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self, mode: Mode) -> None:
        assert self._resume is not None
        self._mode = mode
        if mode == "blackhole":
            self._resume.clear()
            return
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Reset first: from Python 3.12, wait_closed() also waits for accepted connections.
        self._drop_connections(reset=True)
        if server is not None:
            await server.wait_closed()

    async def _restore(self) -> None:
        assert self._resume is not None
        mode, self._mode = self._mode, None
        if mode == "blackhole":
            self._drop_connections(reset=False)
        if self._server is None:
            await self._listen()
        self._resume.set()

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._drop_connections(reset=True)
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _drop_connections(self, *, reset: bool) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            if reset:
                transport.abort()
            else:
                transport.close()
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(client_w)
        try:
            assert self._resume is not None
            await self._resume.wait()  # a blackholed proxy accepts, then says nothing
            if client_w.is_closing():
                return
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            self._writers.discard(client_w)
            return
        self._writers.add(server_w)
        await asyncio.gather(self._pump(client_r, server_w, up=True),
                             self._pump(server_r, client_w, up=False),
                             return_exceptions=True)
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    up: bool) -> None:
        assert self._resume is not None
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            await self._resume.wait()  # held, not forwarded, while blackholed
            if writer.is_closing():
                break
            writer.write(data)
            await writer.drain()
            if up:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)
        if not writer.is_closing():
            writer.transport.abort()
