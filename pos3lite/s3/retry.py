"""When and how long to retry an S3 request; pure (no clock, no randomness of its own).

:class:`Retry` is a frozen value: :meth:`Retry.increment` returns the next state instead of
mutating, and :meth:`Retry.backoff` takes the random draw as an argument, so tests are
deterministic (style: urllib3 ``util/retry.py``). Exactly one layer retries: the S3 client;
the transport never does.

Retryable, following the AWS SDKs' "standard" retry mode (AWS SDKs and Tools Reference
Guide, "Retry behavior"):

* throttling codes (``SlowDown``, ``Throttling``, ``RequestLimitExceeded``, ...);
* transient codes (``RequestTimeout``, ``InternalError``, ``ServiceUnavailable``, ...);
* HTTP 500, 502, 503 and 504 whatever the code;
* transport failures: connection refused or reset, connect and read timeouts, bodies cut
  short (:class:`~pos3lite.errors.TransportError`), but not a TLS certificate that failed
  verification (:class:`~pos3lite.errors.CertificateError`), which is final;
* 2xx answers that could not be parsed (``MalformedResponse``);
* checksum mismatches (``BadDigest``, ``XAmzContentSHA256Mismatch``, and
  :class:`~pos3lite.errors.ChecksumMismatchError` from our own download check).

Backoff is exponential with full jitter: ``uniform(0, min(cap, base * 2 ** (attempt - 1)))``
seconds ("Exponential Backoff And Jitter", AWS Architecture Blog), capped at 20 s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import CertificateError, ChecksumMismatchError, S3Error, TransportError

__all__ = ["RETRYABLE_STATUS", "THROTTLING_CODES", "TRANSIENT_CODES", "Retry", "is_retryable"]

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
        "IDPCommunicationError",
        # 409 on a conditional write racing another ("Conditional requests", S3 guide).
        "ConditionalRequestConflict",
        # Our own code for a 2xx answer we could not parse (a proxy's HTML page, a body cut
        # mid-XML): another attempt usually reaches the real server (pos3lite.s3.client).
        "MalformedResponse",
    }
)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """True if ``exc`` is worth another attempt (see the module rules).

    A TLS certificate that failed verification is not: it fails the same way every time.
    """
    if isinstance(exc, CertificateError):
        return False
    if isinstance(exc, (TransportError, ChecksumMismatchError)):
        return True
    if isinstance(exc, S3Error):
        return (
            exc.code in THROTTLING_CODES
            or exc.code in TRANSIENT_CODES
            or exc.status in RETRYABLE_STATUS
        )
    return False


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry state for one request.

    Attributes:
        max_attempts: total attempts including the first (>= 1); default 5.
        base: backoff base in seconds (the first retry waits up to ``base``).
        cap: the longest single wait in seconds (20 s).
        attempt: the attempt about to be made, starting at 1.
    """

    max_attempts: int = 5
    base: float = 0.25
    cap: float = 20.0
    attempt: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")

    def can_retry(self, exc: BaseException) -> bool:
        """True if ``exc`` is retryable and attempts remain."""
        return self.attempt < self.max_attempts and is_retryable(exc)

    def increment(self) -> Retry:
        """The state for the next attempt."""
        return replace(self, attempt=self.attempt + 1)

    def backoff(self, draw: float) -> float:
        """Seconds to wait before the next attempt, given a uniform draw in [0, 1)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** (self.attempt - 1))
        return max(0.0, min(1.0, draw)) * ceiling
