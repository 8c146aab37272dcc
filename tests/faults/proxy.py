"""A fault-injecting HTTP/1.1 reverse proxy for the fault suite.

It sits on ``127.0.0.1:<free port>`` in front of the real S3 server and forwards each
request *byte-exactly*: the request line (method and raw request target, never
normalised), every header line as received (``Host`` included: the client signed the
proxy's ``host:port`` and SeaweedFS checks the signature against the ``Host`` it receives)
and the body, read by ``Content-Length``. Chunked request bodies and ``Expect:
100-continue`` are not supported (pos3lite uses neither); such a request is answered 501
and the connection closed.

Connections: the client side is kept alive (pos3lite pools connections) until the client
closes it or a fault closes it; each client connection has its own upstream connection,
reopened when the upstream closes it. Upstream responses are read whole (at most one part,
8 MiB, in this suite) and re-sent with ``Content-Length`` (``Transfer-Encoding`` and
``Connection`` headers from upstream are dropped).

Faults (decided per request from ``random.Random(seed)`` under a lock, so the *sequence*
of decisions is seeded; which request gets which decision depends on thread timing):

``reset``        read the request, then close with ``SO_LINGER 0`` (the client sees a TCP
                 reset); nothing is forwarded.
``error500``     answer 500 ``InternalError`` (S3 XML body); nothing is forwarded.
``slowdown503``  answer 503 ``SlowDown``; nothing is forwarded.
``truncate``     forward; send the head with the full ``Content-Length`` but only part of
                 the body, then close. Applies only to responses with a body (> 0 bytes,
                 not HEAD); otherwise the response is sent intact and counted in
                 ``not_applicable``.
``stall``        forward; send the head and part of the body (or nothing, for a response
                 without a body), then go silent for ``stall_seconds`` (longer than the
                 client's read timeout), then close. Wakes early when the proxy stops.
``delay``        sleep ``delay_range`` seconds before forwarding, then answer normally
                 (shorter than the client's read timeout: the request must still succeed).

Counters: ``injected`` per mode, ``not_applicable`` per mode, ``requests``, ``forwarded``,
``upstream_errors`` (the upstream itself failed: answered 502, not a planned fault).
``damaged_create_upload_ids`` lists the UploadIds of CreateMultipartUpload responses that a
fault kept from the client (truncated or stalled): the client cannot know them, so it can
neither complete nor abort those uploads.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MODES: tuple[str, ...] = ("reset", "error500", "slowdown503", "truncate", "stall", "delay")

_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_MAX_LINE = 65536


@dataclass(frozen=True)
class Decision:
    """One seeded draw: the mode (or None for no fault) and its parameters."""

    mode: str | None
    fraction: float = 0.0  # share of the body sent before a truncate/stall
    delay: float = 0.0  # seconds, for ``delay``


@dataclass
class _Request:
    method: str
    target: str
    head: bytes  # request line + header lines + blank line, exactly as received
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclass
class _Upstream:
    host: str
    port: int
    sock: socket.socket | None = None

    def exchange(self, req: _Request) -> tuple[http.client.HTTPResponse, bytes]:
        """Send ``req`` byte-exactly and read the whole response; one reconnect on a stale
        keep-alive connection."""
        for attempt in (1, 2):
            fresh = self.sock is None
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), timeout=60)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.sock.sendall(req.head + req.body)
                resp = http.client.HTTPResponse(self.sock, method=req.method)
                resp.begin()
                body = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if fresh or attempt == 2:
                    raise
                continue
            if resp.will_close:
                self.close()
            return resp, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


@dataclass
class FaultProxy:
    """The proxy; ``start()`` / ``stop()`` or use as a context manager.

    Args:
        upstream: ``http://host:port`` of the real server.
        seed: seed of the fault decisions.
        rates: probability of each mode per request (modes not named: 0). Default: 15 %
            in total, split evenly over the six modes.
        stall_seconds: how long ``stall`` stays silent.
        delay_range: ``(low, high)`` seconds for ``delay``.
        match: ``match(method, raw_target)``; when given, only matching requests may get a
            fault (targeted regression tests).
        max_faults: stop injecting after this many faults.
    """

    upstream: str
    seed: int
    rates: Mapping[str, float] | None = None
    stall_seconds: float = 3.0
    delay_range: tuple[float, float] = (0.3, 1.0)
    match: Callable[[str, str], bool] | None = None
    max_faults: int | None = None
    injected: Counter[str] = field(default_factory=Counter)
    not_applicable: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    forwarded: int = 0
    upstream_errors: int = 0
    damaged_create_upload_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rates is None:
            self.rates = {m: 0.15 / len(MODES) for m in MODES}
        unknown = set(self.rates) - set(MODES)
        if unknown:
            raise ValueError(f"unknown fault modes: {sorted(unknown)}")
        if sum(self.rates.values()) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        m = re.fullmatch(r"http://([^:/]+):(\d+)/?", self.upstream)
        if not m:
            raise ValueError(f"upstream must be http://host:port, got {self.upstream!r}")
        self._up_host, self._up_port = m.group(1), int(m.group(2))
        self._rng = random.Random(self.seed)
        self._decided = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        port = self._server.socket.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fault-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake stalled and idle handlers, join every handler thread."""
        self._stopping.set()
        if self._server is None:
            return
        self._server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads (block_on_close)
        if self._thread is not None:
            self._thread.join(10)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ decisions

    def decide(self, method: str = "", target: str = "") -> Decision:
        assert self.rates is not None
        eligible = self.match is None or self.match(method, target)
        with self._lock:
            self.requests += 1
            r = self._rng.random()
            fraction = self._rng.random()
            delay = self._rng.uniform(*self.delay_range)
            if not eligible or (self.max_faults is not None and self._decided >= self.max_faults):
                return Decision(None)
            acc = 0.0
            for mode in MODES:
                acc += self.rates.get(mode, 0.0)
                if r < acc:
                    self._decided += 1
                    return Decision(mode, fraction, delay)
        return Decision(None)

    def count(self, mode: str, *, applied: bool = True) -> None:
        with self._lock:
            (self.injected if applied else self.not_applicable)[mode] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self.seed,
                "rates": dict(self.rates or {}),
                "requests": self.requests,
                "forwarded": self.forwarded,
                "upstream_errors": self.upstream_errors,
                "injected": {m: self.injected[m] for m in MODES},
                "not_applicable": {m: self.not_applicable[m] for m in MODES},
                "damaged_create_upload_ids": list(self.damaged_create_upload_ids),
            }

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[_Handler], proxy: FaultProxy):
        self.proxy = proxy
        super().__init__(addr, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client went away mid-answer: expected under faults and kills


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        conn: socket.socket = self.request
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        proxy._track(conn, True)
        upstream = _Upstream(proxy._up_host, proxy._up_port)
        try:
            while not proxy._stopping.is_set():
                req = self._read_request()
                if req is None:
                    return
                if not self._serve(proxy, req, upstream):
                    return
        except _Unsupported:
            self.wfile.write(
                b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        except (OSError, ValueError):
            return
        finally:
            upstream.close()
            proxy._track(conn, False)

    # ------------------------------------------------------------------ parsing

    def _read_request(self) -> _Request | None:
        line = self.rfile.readline(_MAX_LINE)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(_MAX_LINE)
        if not line:
            return None
        parts = line.rstrip(b"\r\n").split(b" ")
        if len(parts) != 3:
            raise ValueError(f"bad request line {line!r}")
        head = [line]
        headers: list[tuple[str, str]] = []
        while True:
            hl = self.rfile.readline(_MAX_LINE)
            if not hl:
                return None
            head.append(hl)
            if hl in (b"\r\n", b"\n"):
                break
            name, _, value = hl.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        req = _Request(
            parts[0].decode("ascii"), parts[1].decode("latin-1"), b"".join(head), headers, b""
        )
        if req.header("transfer-encoding") or req.header("expect"):
            raise _Unsupported()
        n = int(req.header("content-length") or "0")
        if n:
            req.body = self.rfile.read(n)
            if len(req.body) != n:
                return None
        return req

    # ------------------------------------------------------------------ serving

    def _serve(self, proxy: FaultProxy, req: _Request, upstream: _Upstream) -> bool:
        """Answer one request; return False when the connection must end."""
        d = proxy.decide(req.method, req.target)
        client_close = (req.header("connection") or "").lower() == "close"
        if d.mode == "reset":
            proxy.count("reset")
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()
            return False
        if d.mode in ("error500", "slowdown503"):
            proxy.count(d.mode)
            status, reason, code = (
                (500, "Internal Server Error", "InternalError")
                if d.mode == "error500"
                else (503, "Slow Down", "SlowDown")
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>injected fault</Message>"
                f"<RequestId>fault-{proxy.requests}</RequestId></Error>"
            ).encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\n"
                "Content-Type: application/xml\r\n"
                f"Content-Length: {0 if req.method == 'HEAD' else len(body)}\r\n"
                f"x-amz-request-id: fault-{proxy.requests}\r\n"
                "\r\n"
            ).encode()
            self.wfile.write(head if req.method == "HEAD" else head + body)
            return not client_close
        if d.mode == "delay":
            proxy.count("delay")
            if proxy._stopping.wait(d.delay):
                return False
        try:
            resp, body = upstream.exchange(req)
        except (OSError, http.client.HTTPException):
            with proxy._lock:
                proxy.upstream_errors += 1
            msg = b"upstream failed"
            self.wfile.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(msg), msg)
            )
            return False
        with proxy._lock:
            proxy.forwarded += 1
        head = self._response_head(req, resp, body)
        has_body = req.method != "HEAD" and len(body) > 0
        if d.mode in ("truncate", "stall"):
            if d.mode == "truncate" and not has_body:
                proxy.count("truncate", applied=False)
            else:
                proxy.count(d.mode)
                if req.method == "POST" and "uploads" in req.target.split("?", 1)[-1]:
                    m = _UPLOAD_ID.search(body)
                    if m and resp.status == 200:
                        with proxy._lock:
                            proxy.damaged_create_upload_ids.append(m.group(1).decode())
                cut = int(len(body) * d.fraction) if has_body else 0
                if d.mode == "stall" and not has_body:
                    proxy._stopping.wait(proxy.stall_seconds)  # silent before the head
                    return False
                self.wfile.write(head + body[:cut])
                if d.mode == "stall":
                    proxy._stopping.wait(proxy.stall_seconds)
                return False
        self.wfile.write(head if req.method == "HEAD" else head + body)
        return not client_close

    @staticmethod
    def _response_head(req: _Request, resp: http.client.HTTPResponse, body: bytes) -> bytes:
        lines = [f"HTTP/1.1 {resp.status} {resp.reason}\r\n"]
        keep_length = req.method == "HEAD" or resp.status in (204, 304)
        for name, value in resp.getheaders():
            low = name.lower()
            if low in ("transfer-encoding", "connection", "keep-alive"):
                continue
            if low == "content-length" and not keep_length:
                continue
            lines.append(f"{name}: {value}\r\n")
        if not keep_length:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")


class _Unsupported(ValueError):
    """A request the proxy does not forward (chunked body, Expect)."""
