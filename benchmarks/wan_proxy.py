"""A TCP proxy that delays every byte the server sends by a fixed time (a WAN stand-in).

Usage::

    python benchmarks/wan_proxy.py --listen-port 0 --target 127.0.0.1:PORT --delay-ms 20

Prints ``LISTENING <port>`` on stdout once it accepts connections. Each chunk read from the
server is written to the client ``delay`` seconds after it arrived, in order (a delay line:
latency without a bandwidth cap), so every response, and every part of a streamed one,
arrives 20 ms late, as if the server were 20 ms away; requests go out at once. It runs
alone in its process, so a harness can read its CPU from ``/proc/<pid>/stat`` and report
it next to the tools it served. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.write_eof()


async def delayed_pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(1 << 16):
                queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((time.monotonic() + delay, b""))

    task = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(Exception):
            writer.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        task.cancel()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--target", required=True, help="host:port of the server")
    ap.add_argument("--delay-ms", type=float, default=20.0)
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    delay = args.delay_ms / 1000

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            c_writer.close()
            return
        up = asyncio.create_task(pump(c_reader, s_writer))
        down = asyncio.create_task(delayed_pump(s_reader, c_writer, delay))
        await asyncio.gather(up, down, return_exceptions=True)
        for w in (s_writer, c_writer):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen_port, backlog=512)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
