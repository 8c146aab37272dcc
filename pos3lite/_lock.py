"""A lease lock on one S3 object, built on conditional writes, that survives crashed holders.

(The module is ``_lock`` because ``pos3lite.lock`` is the public function, as ``_mirror``
holds ``pos3lite.mirror``.)

Rules (after the DynamoDB Lock Client: leases without shared clocks):

* The lock is one small JSON object: ``{"token": n, "state": "held" | "released", ...}``.
* Acquire creates it with ``PUT If-None-Match: *``. If it exists, a waiter takes it over
  with ``PUT If-Match: <ETag it read>`` when it was released, or when its ETag has not
  changed for ``lease x 1.5`` seconds measured on the waiter's own monotonic clock (no
  comparison of clocks across machines). A takeover writes ``token + 1``, so the fencing
  token rises strictly from holder to holder; the lock object is never deleted (that would
  restart the count).
* The holder renews every ``lease / 3`` seconds with ``If-Match`` on its last ETag (each
  renewal changes the ETag). A failed renewal marks the lock lost: ``ensure()`` then raises
  LockLostError and ``remaining()`` is 0. The holder's own lease is measured from the start
  of its last confirmed write, so it ends before any waiter may take over.
* Only ``s3:GetObject`` and ``s3:PutObject`` are needed; no listing, no versioning, no
  clock reads from the server, and nothing depends on the ETag being an MD5 (SSE-KMS is
  fine). Endpoints that do not enforce conditional writes are refused.

Spec: S3 User Guide "Conditional requests" (``If-None-Match``/``If-Match`` on PutObject);
Kleppmann, "How to do distributed locking" (fencing tokens).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from .errors import (
    ConditionalWritesUnsupportedError,
    ConfigError,
    InvalidURLError,
    LockLostError,
    NotFoundError,
    Pos3liteError,
    PreconditionFailedError,
)
from .urls import parse_s3_url

__all__ = ["Lock", "ObjectStore"]

logger = logging.getLogger(__name__)

_FORMAT = "pos3lite-lock/1"


class _Tagged(Protocol):
    @property
    def etag(self) -> str: ...


class _Body(Protocol):
    @property
    def info(self) -> _Tagged: ...

    def readall(self) -> bytes: ...

    def close(self) -> None: ...


class ObjectStore(Protocol):
    """What the lock needs from :class:`pos3lite.Client` (kept as a protocol so this module
    does not import the object API that builds locks)."""

    def put(
        self,
        url: str,
        data: bytes,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> _Tagged: ...

    def get(self, url: str) -> _Body: ...

    def check_conditional_writes(self, url: str) -> bool: ...

    def _endpoint(self, url: str) -> str: ...


class Lock:
    """A lease lock on the object at ``url`` (see the module rules).

    Args:
        client: the :class:`~pos3lite.Client` used for requests.
        url: ``s3://[profile@]bucket/key`` of the lock object.
        lease: seconds a holder keeps the lock without renewing (> 0); renewals run every
            ``lease / 3`` on a daemon thread; waiters take over after ``lease x 1.5``.
        poll: seconds between a waiter's reads (default ``min(lease / 6, 1)``, jittered).
        clock, sleep: injected ``time.monotonic`` and ``time.sleep`` (tests).

    Use ``with lock:`` or :meth:`acquire` / :meth:`release`. One Lock object is one holder;
    it is not re-entrant.
    """

    def __init__(
        self,
        client: ObjectStore,
        url: str,
        *,
        lease: float = 30.0,
        poll: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:
            raise ConfigError(f"lease must be a positive number of seconds, got {lease!r}")
        self._client = client
        self._url = url
        parsed = parse_s3_url(url)  # validate the URL now
        if not parsed.key or parsed.key.endswith("/"):
            raise InvalidURLError(f"a lock needs an object key, not a prefix: {url!r}")
        self.lease = float(lease)
        self._poll = poll if poll is not None else min(self.lease / 6, 1.0)
        self._clock = clock
        self._sleep = sleep
        self._holder = uuid.uuid4().hex
        self._mutex = threading.Lock()
        self._token: int | None = None
        self._etag: str | None = None
        self._beat = 0
        self._confirmed_at = 0.0
        self._held = False
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "lost" if self._lost else "held" if self._held else "unlocked"
        return f"Lock({self._url!r}, lease={self.lease}, token={self._token}, {state})"

    @property
    def url(self) -> str:
        """The lock object's URL."""
        return self._url

    @property
    def token(self) -> int | None:
        """The fencing token (int) of this holder's grant, ``None`` before the first acquire.
        Strictly increasing across holders: pass it to the resource you protect and have it
        refuse writes carrying a smaller token."""
        return self._token

    # ------------------------------------------------------------------ acquire

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock.

        Args:
            blocking: False returns at once if the lock is held (a released lock is still
                taken; an abandoned one only after ``lease x 1.5`` of watching, so only a
                blocking call takes over from a crashed holder).
            timeout: seconds to wait at most (``None``: no limit).

        Returns:
            True when acquired (``token`` is set), False when not within the limits.

        Raises:
            ConditionalWritesUnsupportedError: the endpoint ignores conditional writes.
            ConfigError: the object at ``url`` is not a lock; RuntimeError: already held.
            S3Error, TransportError: requests failed after retries.
        """
        if self._held:
            raise RuntimeError(f"{self!r} is already held by this Lock object")
        if not self._client.check_conditional_writes(self._url):
            raise ConditionalWritesUnsupportedError(
                self._client._endpoint(self._url),
                "check_conditional_writes() saw If-None-Match or If-Match ignored",
            )
        deadline = None if timeout is None else self._clock() + max(0.0, timeout)
        seen_etag: str | None = None
        seen_since = 0.0
        while True:
            if self._write_new(1, if_none_match="*"):
                return True
            try:
                state, etag = self._read()
            except NotFoundError:
                continue  # it was deleted in between: try to create it again
            now = self._clock()
            if etag != seen_etag:
                seen_etag, seen_since = etag, now
            released = state.get("state") == "released"
            expired = now - seen_since >= self.lease * 1.5
            if released or expired:
                if expired and not released:
                    logger.warning(
                        "taking over lock %s: its ETag has not changed for %.1f s (lease %.1f s)",
                        self._url,
                        now - seen_since,
                        self.lease,
                    )
                if self._write_new(_token_of(state) + 1, if_match=etag):
                    return True
                continue  # another waiter was faster: read again
            if not blocking:
                return False
            wait = self._poll * (0.5 + random.random())
            wait = min(wait, max(0.0, seen_since + self.lease * 1.5 - now) + 0.01)
            if deadline is not None:
                if now >= deadline:
                    return False
                wait = min(wait, deadline - now)
            self._sleep(wait)

    def _read(self) -> tuple[dict[str, object], str]:
        reader = self._client.get(self._url)
        try:
            body = reader.readall()
            etag = reader.info.etag
        finally:
            reader.close()
        try:
            state = json.loads(body)
            if not isinstance(state, dict) or state.get("format") != _FORMAT:
                raise ValueError("not a lock")
            _token_of(state)
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{self._url} exists and is not a pos3lite lock object; refusing to overwrite it"
            ) from None
        return state, etag

    def _body(self, token: int, state: str) -> bytes:
        return json.dumps(
            {
                "format": _FORMAT,
                "token": token,
                "state": state,
                "holder": self._holder,
                "beat": self._beat,
                "lease": self.lease,
            },
            sort_keys=True,
        ).encode()

    def _write_new(
        self, token: int, *, if_none_match: str | None = None, if_match: str | None = None
    ) -> bool:
        """Try to become the holder with ``token``; False when the condition failed."""
        self._beat = 0
        started = self._clock()
        try:
            result = self._client.put(
                self._url,
                self._body(token, "held"),
                if_none_match=if_none_match,
                if_match=if_match,
                content_type="application/json",
            )
        except (PreconditionFailedError, NotFoundError):
            return False
        with self._mutex:
            self._token, self._etag, self._confirmed_at = token, result.etag, started
            self._held, self._lost = True, None
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"pos3lite-lock-{token}", daemon=True
        )
        self._thread.start()
        logger.info("acquired lock %s with token %d", self._url, token)
        return True

    # ------------------------------------------------------------------ holding

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._renew()
            except LockLostError as exc:
                logger.error("%s", exc)
                return

    def _renew(self) -> None:
        """Rewrite the lock object with ``If-Match`` on our last ETag (a new ETag each time).
        Any failure marks the lock lost and raises LockLostError."""
        with self._mutex:
            if not self._held:
                raise LockLostError(self._url, self._token, "not held")
            if self._lost:
                raise LockLostError(self._url, self._token, self._lost)
            assert self._token is not None and self._etag is not None
            self._beat += 1
            started = self._clock()
            try:
                result = self._client.put(
                    self._url,
                    self._body(self._token, "held"),
                    if_match=self._etag,
                    content_type="application/json",
                )
            except (PreconditionFailedError, NotFoundError):
                self._lost = "another holder took it over (the ETag changed)"
                raise LockLostError(self._url, self._token, self._lost) from None
            except Pos3liteError as exc:
                self._lost = f"renewal failed: {exc}"
                raise LockLostError(self._url, self._token, self._lost) from exc
            if started - self._confirmed_at >= self.lease:
                # Renewed, but the lease had run out in between: a waiter may have seen it
                # expire. Our write won (If-Match held), so no one took over; keep going.
                logger.warning(
                    "lock %s renewed %.1f s after its lease ended",
                    self._url,
                    started - self._confirmed_at - self.lease,
                )
            self._etag, self._confirmed_at = result.etag, started

    def remaining(self) -> float:
        """Seconds of lease left (0.0 when not held or lost), measured from the start of the
        last confirmed write on this process's monotonic clock."""
        # No mutex: a renewal in flight holds it for a round trip, and these reads are
        # single attribute loads.
        if not self._held or self._lost:
            return 0.0
        return max(0.0, self.lease - (self._clock() - self._confirmed_at))

    def ensure(self) -> None:
        """Confirm the lock now (a renewal write) before an action that needs it.

        Raises:
            LockLostError: not held, the lease ran out, or another holder has it.
        """
        if self.remaining() <= 0.0:
            with self._mutex:
                if self._held and not self._lost:
                    self._lost = "the lease ran out before it was renewed"
            raise LockLostError(self._url, self._token, self._lost or "not held")
        self._renew()

    # ------------------------------------------------------------------ release

    def release(self) -> None:
        """Stop renewing and mark the lock released (``If-Match`` on our ETag), so the next
        waiter takes it at once with the next token.

        Raises:
            LockLostError: the lock had been lost (the protected work may have overlapped
                another holder's); RuntimeError: not held.
        """
        if not self._held:
            raise RuntimeError(f"release of an unlocked {self!r}")
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._mutex:
            self._held = False
            lost, self._lost = self._lost, None
            etag, self._etag = self._etag, None
            token = self._token
        if lost:
            raise LockLostError(self._url, token, lost)
        assert token is not None and etag is not None
        self._beat += 1
        try:
            self._client.put(
                self._url,
                self._body(token, "released"),
                if_match=etag,
                content_type="application/json",
            )
        except (PreconditionFailedError, NotFoundError):
            raise LockLostError(self._url, token, "taken over before release") from None
        logger.info("released lock %s (token %d)", self._url, token)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except LockLostError as lost:
            if exc_type is None:
                raise
            logger.error("%s (while handling %r)", lost, exc)


def _token_of(state: dict[str, object]) -> int:
    token = state["token"]
    if isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise ValueError(f"bad token {token!r}")
    return token
