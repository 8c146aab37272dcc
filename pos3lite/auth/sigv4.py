"""AWS Signature Version 4 (SigV4) request signing, as a pure module.

Every step of the signing process is its own function, so each step can be
checked against the published conformance vectors:

1. :func:`canonical_request` (with :func:`encode_path`, :func:`canonical_query`
   and :func:`canonical_headers`),
2. :func:`string_to_sign` over the credential :func:`scope`,
3. :func:`signing_key` derived from the secret key,
4. :func:`signature`.

:func:`sign_headers` (the ``Authorization`` header form) and :func:`presign`
(the query-parameter / presigned URL form) put the steps together.
:func:`chunk_string_to_sign` and :func:`chunk_signature` sign the chunks of a
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` upload.

Specifications followed (AWS documentation page titles):

* IAM: "Create a canonical request for IAM" and "Signature Version 4 signing
  process" (the generic algorithm).
* Amazon S3 API Reference: "Authenticating Requests: Using the Authorization
  Header (AWS Signature Version 4)", "Authenticating Requests: Using Query
  Parameters" and "Signature Calculations for the Authorization Header:
  Transferring Payload in Multiple Chunks (Chunked Upload)".

S3 rules apply throughout: the path is never normalised (``.``, ``..`` and
``//`` are kept) and is URI-encoded exactly once.

The module has no I/O, no clock and no global state: the time is always an
argument, and functions return new objects instead of changing their inputs.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote as _quote

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "STREAMING_PAYLOAD",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "chunk_signature",
    "chunk_string_to_sign",
    "encode_path",
    "presign",
    "scope",
    "sign_headers",
    "signature",
    "signing_key",
    "string_to_sign",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
"""Algorithm name used in the string to sign and the ``Authorization`` header."""

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
"""S3 payload hash placeholder: the body is not covered by the signature."""

STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
"""S3 payload hash placeholder for a chunked upload with signed chunks."""

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""Lowercase hex SHA-256 of the empty byte string."""

_CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
_TERMINATOR = "aws4_request"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_MAX_EXPIRES = 7 * 24 * 60 * 60  # 604800 seconds, the SigV4 presign limit

_FOLD_WS = re.compile(r"[ \t]+")
_DATE_RE = re.compile(r"[0-9]{8}")

# Query parameter names that presign() adds itself; callers must not pass them.
_PRESIGN_PARAMS = frozenset(
    name.lower()
    for name in (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    )
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """AWS credentials used to sign requests.

    ``access_key`` is the access key id (it appears in the signed request).
    ``secret_key`` and ``token`` (the session token of temporary credentials)
    are secrets and are left out of ``repr()``. ``expiration`` is an aware UTC
    datetime for temporary credentials, ``None`` for long-term keys; this
    module does not look at it (callers refresh credentials before it passes).
    """

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None


# --------------------------------------------------------------------------
# Step 1: canonical request
# --------------------------------------------------------------------------


def uri_encode(value: str, *, safe: str = "") -> str:
    """URI-encode ``value`` the way SigV4 requires.

    The RFC 3986 unreserved characters ``A-Z a-z 0-9 - . _ ~`` are kept, and
    so are the ASCII characters listed in ``safe`` (for example ``"/"`` for
    paths). Every other character is encoded as UTF-8 and each byte written
    as ``%XX`` with uppercase hex digits. A space becomes ``%20`` (never
    ``+``) and ``+`` becomes ``%2B``.

    Spec: "Create a canonical request for IAM" (URI-encode rules); S3
    "Authenticating Requests: Using the Authorization Header (AWS Signature
    Version 4)" (``UriEncode()``).

    Args:
        value: the decoded text to encode.
        safe: extra ASCII characters to leave unencoded; non-ASCII
            characters in ``safe`` are ignored.

    Returns:
        The encoded string (ASCII only).

    Raises:
        UnicodeEncodeError: if ``value`` holds a lone surrogate, which has no
            UTF-8 form.
    """
    # urllib.parse.quote keeps exactly the unreserved set (``~`` included since Python
    # 3.7) plus the ASCII characters of ``safe``, writes uppercase ``%XX`` of the UTF-8
    # bytes, and returns an all-safe value without a per-byte loop: it is this rule, in C
    # for the common case of a key that needs no encoding.
    return _quote(value, safe=safe, encoding="utf-8", errors="strict")


def encode_path(path: str) -> str:
    """Encode a decoded S3 path once, keeping ``/``: ``uri_encode(path, safe="/")``.

    ``"/bucket/a b/c+d"`` becomes ``"/bucket/a%20b/c%2Bd"``. The path is not
    normalised: ``.``, ``..`` and repeated ``/`` are kept as given, which is
    what S3 requires (S3 "Authenticating Requests: Using the Authorization
    Header (AWS Signature Version 4)", canonical URI). The result is both the
    path to send on the wire and the canonical URI of the canonical request.

    Args:
        path: the decoded path, such as ``"/" + bucket + "/" + key``.

    Returns:
        The encoded path (ASCII only).

    Raises:
        UnicodeEncodeError: if ``path`` holds a lone surrogate.
    """
    return uri_encode(path, safe="/")


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """Build the canonical query string from decoded ``(name, value)`` pairs.

    Each name and value is :func:`uri_encode`-d (``/`` included), the pairs are
    sorted by encoded name and then by encoded value (so a repeated name keeps
    all its values, in sorted order), and joined as ``n=v&n=v``. A parameter
    with an empty value gives ``n=``. The result is also a valid URL query
    string, so a client can send it as is.

    Spec: "Create a canonical request for IAM" (canonical query string); S3
    "Authenticating Requests: Using the Authorization Header (AWS Signature
    Version 4)" (``CanonicalQueryString``).

    Args:
        params: decoded query parameters in any order; repeats allowed.

    Returns:
        The canonical query string, ``""`` when ``params`` is empty.

    Raises:
        UnicodeEncodeError: if a name or value holds a lone surrogate.
    """
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in params)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _check_header_text(name: str, text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"header {name!r}: CR or LF is not allowed in a header name or value")


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """Build the canonical headers block and the signed headers list.

    Header names are lowercased; values have leading and trailing spaces and
    tabs removed and each inner run of spaces/tabs folded to one space. Names
    that differ only in case are merged into one entry whose values are
    joined with ``,`` in the mapping's order. Entries are sorted by name.

    Spec: "Create a canonical request for IAM" (canonical headers, signed
    headers); S3 "Authenticating Requests: Using the Authorization Header (AWS
    Signature Version 4)".

    Args:
        headers: the headers to sign, ``{name: value}`` (any case).

    Returns:
        ``(block, signed_headers)``: ``block`` is ``"name:value\\n"`` for each
        header (every line ends in ``"\\n"``); ``signed_headers`` is the
        sorted lowercase names joined by ``";"``, such as ``"host;x-amz-date"``.

    Raises:
        ValueError: if a name is empty or holds whitespace or ``:``, or if a
            name or value holds CR or LF.
    """
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        _check_header_text(name, name)
        _check_header_text(name, value)
        lname = name.strip().lower()
        if not lname or lname != name.lower() or ":" in lname or " " in lname or "\t" in lname:
            raise ValueError(f"invalid header name {name!r}")
        folded = value.strip(" \t")
        if "  " in folded or "\t" in folded:  # the regex only when there is a run to fold
            folded = _FOLD_WS.sub(" ", folded)
        merged.setdefault(lname, []).append(folded)
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str,
) -> str:
    """Build the SigV4 canonical request.

    The result is the six lines ``method``, canonical URI, canonical query
    string, canonical headers (each ending in a newline, so a blank line
    follows), signed headers and payload hash, joined by ``"\\n"``.

    Spec: "Create a canonical request for IAM"; S3 "Authenticating Requests:
    Using the Authorization Header (AWS Signature Version 4)" (canonical
    request).

    Args:
        method: the HTTP method as sent, such as ``"GET"``.
        path: the ALREADY-ENCODED path exactly as sent on the wire (for S3,
            :func:`encode_path` of the decoded path). It is used as is: no
            normalisation of ``.``, ``..`` or ``//`` and no second encoding.
            ``""`` means ``"/"``.
        query: decoded ``(name, value)`` query parameters, see
            :func:`canonical_query`.
        headers: every header to sign, see :func:`canonical_headers`.
        payload_hash: lowercase hex SHA-256 of the body, or
            :data:`UNSIGNED_PAYLOAD` / :data:`STREAMING_PAYLOAD` for S3.

    Returns:
        The canonical request text (no trailing newline).

    Raises:
        ValueError: for an invalid header, see :func:`canonical_headers`.
    """
    block, signed = canonical_headers(headers)
    return "\n".join((method, path or "/", canonical_query(query), block, signed, payload_hash))


# --------------------------------------------------------------------------
# Step 2: string to sign
# --------------------------------------------------------------------------


def _utc(timestamp: datetime) -> datetime:
    """An aware datetime converted to UTC; a naive one is taken as UTC."""
    if timestamp.tzinfo is None:
        return timestamp
    return timestamp.astimezone(UTC).replace(tzinfo=None)


def _amz_date(timestamp: datetime) -> str:
    """``YYYYMMDD'T'HHMMSS'Z'`` (ISO 8601 basic format, UTC)."""
    t = _utc(timestamp)
    # Formatted by hand: strftime costs several times more, and this runs twice a request.
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scope(*, date: str, region: str, service: str) -> str:
    """Build the credential scope ``date/region/service/aws4_request``.

    Spec: "Signature Version 4 signing process" (credential scope).

    Args:
        date: the UTC date of the request, ``"YYYYMMDD"``.
        region: such as ``"us-east-1"``.
        service: such as ``"s3"``.

    Returns:
        For example ``"20150830/us-east-1/service/aws4_request"``.
    """
    return f"{date}/{region}/{service}/{_TERMINATOR}"


def string_to_sign(*, timestamp: datetime, scope: str, canonical_request: str) -> str:
    """Build the SigV4 string to sign.

    The four lines are :data:`ALGORITHM`, the request time as
    ``YYYYMMDD'T'HHMMSS'Z'``, the credential scope, and the lowercase hex
    SHA-256 of the UTF-8 canonical request.

    Spec: "Signature Version 4 signing process" (create a string to sign);
    S3 "Authenticating Requests: Using the Authorization Header (AWS
    Signature Version 4)".

    Args:
        timestamp: the request time; an aware datetime (converted to UTC) or a
            naive datetime taken as UTC. Sub-second parts are dropped.
        scope: from :func:`scope`; its date must be the date of ``timestamp``.
        canonical_request: from :func:`canonical_request`.

    Returns:
        The string to sign (no trailing newline).
    """
    return "\n".join(
        (
            ALGORITHM,
            _amz_date(timestamp),
            scope,
            _sha256_hex(canonical_request.encode("utf-8")),
        )
    )


# --------------------------------------------------------------------------
# Steps 3 and 4: signing key and signature
# --------------------------------------------------------------------------


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(*, secret_key: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key.

    ``HMAC("AWS4" + secret_key, date)``, then HMAC with ``region``, with
    ``service`` and with ``"aws4_request"`` in turn (HMAC-SHA256). The key only
    depends on the date, so a caller may cache it for a day per region and
    service.

    Spec: "Signature Version 4 signing process" (derive a signing key).

    Args:
        secret_key: the secret access key.
        date: the UTC date of the scope, ``"YYYYMMDD"``.
        region: such as ``"us-east-1"``.
        service: such as ``"s3"``.

    Returns:
        The 32-byte signing key.

    Raises:
        ValueError: if ``date`` is not 8 digits.
    """
    if not _DATE_RE.fullmatch(date):
        raise ValueError(f"signing key date must be YYYYMMDD, got {date!r}")
    return _derive_key(secret_key, date, region, service)


@functools.lru_cache(maxsize=32)
def _derive_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    # The key changes once a day per region and service: derive it once, not per request.
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, _TERMINATOR)


def signature(*, signing_key: bytes, string_to_sign: str) -> str:
    """Compute the signature: lowercase hex ``HMAC-SHA256(signing_key, string_to_sign)``.

    Spec: "Signature Version 4 signing process" (calculate the signature).

    Args:
        signing_key: from :func:`signing_key`.
        string_to_sign: from :func:`string_to_sign` or
            :func:`chunk_string_to_sign`.

    Returns:
        64 lowercase hex digits.
    """
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------
# Header form and query (presigned) form
# --------------------------------------------------------------------------


def _find(headers: Mapping[str, str], name: str) -> str | None:
    """The key in ``headers`` equal to ``name`` ignoring case, or None."""
    lname = name.lower()
    for key in headers:
        if key.lower() == lname:
            return key
    return None


def _put(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name`` ignoring case, keeping the caller's spelling of the key."""
    key = _find(headers, name)
    headers[name if key is None else key] = value


def _require_host(headers: Mapping[str, str]) -> None:
    if _find(headers, "host") is None:
        raise ValueError("headers must contain 'host' (SigV4 always signs the Host header)")


def sign_headers(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
    add_content_sha256: bool = True,
    token_signed: bool = True,
) -> dict[str, str]:
    """Sign a request with the ``Authorization`` header.

    The input is not changed. The returned dict holds the input headers plus:

    * ``x-amz-date``: ``now`` as ``YYYYMMDD'T'HHMMSS'Z'``. If the input
      already has an ``x-amz-date`` header (any case), its value is used as
      the request time instead of ``now``.
    * ``x-amz-security-token``: ``credentials.token``, when set.
    * ``x-amz-content-sha256``: ``payload_hash``, when ``add_content_sha256``
      (S3 always requires it; generic services do not).
    * ``Authorization``: ``AWS4-HMAC-SHA256 Credential=<access key>/<scope>,
      SignedHeaders=<signed headers>, Signature=<signature>``.

    Every header of the result except ``Authorization`` is signed, except the
    token header when ``token_signed`` is false (it is then added after
    signing, as some non-S3 services require). If the input already has one of
    the added headers (any case), its key spelling is kept and the value is
    replaced (``x-amz-date`` excepted, see above). An ``Authorization`` header
    in the input is dropped and replaced.

    Spec: S3 "Authenticating Requests: Using the Authorization Header (AWS
    Signature Version 4)"; "Signature Version 4 signing process".

    Args:
        method: the HTTP method, such as ``"PUT"``.
        path: the encoded wire path, see :func:`canonical_request`.
        query: decoded query parameters, see :func:`canonical_query`.
        headers: the headers to send; must contain ``host`` (any case).
        payload_hash: lowercase hex SHA-256 of the body, or
            :data:`UNSIGNED_PAYLOAD` / :data:`STREAMING_PAYLOAD`.
        credentials: the keys to sign with.
        region: such as ``"us-east-1"``.
        service: such as ``"s3"``.
        now: the request time, an aware datetime or a naive UTC datetime.
        add_content_sha256: add and sign ``x-amz-content-sha256``.
        token_signed: sign the session token header (default) or add it after
            signing.

    Returns:
        A new ``{name: value}`` dict of all headers to send.

    Raises:
        ValueError: if ``host`` is missing, if a given ``x-amz-date`` is not
            ``YYYYMMDD'T'HHMMSS'Z'``, or for an invalid header (see
            :func:`canonical_headers`).
    """
    _require_host(headers)
    out = {k: v for k, v in headers.items() if k.lower() != "authorization"}

    date_key = _find(out, "x-amz-date")
    if date_key is None:
        timestamp = _utc(now)
        out["x-amz-date"] = _amz_date(timestamp)
    else:
        try:
            timestamp = datetime.strptime(out[date_key].strip(), _AMZ_DATE_FORMAT)
        except ValueError:
            raise ValueError(
                f"x-amz-date must be YYYYMMDD'T'HHMMSS'Z', got {out[date_key]!r}"
            ) from None

    token = credentials.token
    if token is not None and token_signed:
        _put(out, "x-amz-security-token", token)
    if add_content_sha256:
        _put(out, "x-amz-content-sha256", payload_hash)

    signed = out
    if token is not None and not token_signed:
        signed = {k: v for k, v in out.items() if k.lower() != "x-amz-security-token"}

    # canonical_request() inlined, so the canonical headers are built once, not twice
    block, signed_names = canonical_headers(signed)
    creq = "\n".join(
        (method, path or "/", canonical_query(query), block, signed_names, payload_hash)
    )
    date = f"{timestamp.year:04d}{timestamp.month:02d}{timestamp.day:02d}"
    cred_scope = scope(date=date, region=region, service=service)
    sts = string_to_sign(timestamp=timestamp, scope=cred_scope, canonical_request=creq)
    key = signing_key(secret_key=credentials.secret_key, date=date, region=region, service=service)
    sig = signature(signing_key=key, string_to_sign=sts)

    if token is not None and not token_signed:
        _put(out, "x-amz-security-token", token)
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{cred_scope}, "
        f"SignedHeaders={signed_names}, Signature={sig}"
    )
    return out


def presign(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
    expires: int,
    payload_hash: str = UNSIGNED_PAYLOAD,
    token_signed: bool = True,
) -> list[tuple[str, str]]:
    """Sign a request with query parameters (a presigned URL).

    Returns the complete decoded query: the input ``query`` pairs, then
    ``X-Amz-Algorithm``, ``X-Amz-Credential`` (``<access key>/<scope>``),
    ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``,
    ``X-Amz-Security-Token`` (when ``credentials.token`` is set) and, last,
    ``X-Amz-Signature``. Only the given ``headers`` are signed, and they must
    be sent with the request (usually just ``host``). When ``token_signed``
    is false the token parameter is left out of the canonical request and
    added after signing (still before ``X-Amz-Signature``). Encode the result
    with :func:`canonical_query` (or pair by pair with :func:`uri_encode`) to
    build the URL.

    Spec: S3 "Authenticating Requests: Using Query Parameters (AWS Signature
    Version 4)"; "Signature Version 4 signing process".

    Args:
        method: the HTTP method the URL will be used with.
        path: the encoded wire path, see :func:`canonical_request`.
        query: decoded query parameters; must not already hold any of the
            ``X-Amz-*`` parameters listed above.
        headers: the headers to sign; must contain ``host`` (any case).
        credentials: the keys to sign with.
        region: such as ``"us-east-1"``.
        service: such as ``"s3"``.
        now: the signing time, an aware datetime or a naive UTC datetime.
        expires: validity in seconds, 1 to 604800 (7 days).
        payload_hash: :data:`UNSIGNED_PAYLOAD` (S3 default) or the lowercase
            hex SHA-256 of the body.
        token_signed: sign the ``X-Amz-Security-Token`` parameter (default).

    Returns:
        A new list of decoded ``(name, value)`` pairs.

    Raises:
        ValueError: if ``expires`` is out of range or not an int, if ``host``
            is missing, if ``query`` already holds a presign parameter, or for
            an invalid header (see :func:`canonical_headers`).
    """
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise ValueError(f"expires must be an int number of seconds, got {expires!r}")
    if not 1 <= expires <= _MAX_EXPIRES:
        raise ValueError(f"expires must be between 1 and {_MAX_EXPIRES} seconds, got {expires}")
    _require_host(headers)
    for name, _ in query:
        if name.lower() in _PRESIGN_PARAMS:
            raise ValueError(f"query already contains presign parameter {name!r}")

    timestamp = _utc(now)
    amz_date = _amz_date(timestamp)
    date = amz_date[:8]
    cred_scope = scope(date=date, region=region, service=service)
    _, signed_names = canonical_headers(headers)

    params = list(query)
    params += [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key}/{cred_scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", signed_names),
    ]
    token = credentials.token
    if token is not None and token_signed:
        params.append(("X-Amz-Security-Token", token))

    creq = canonical_request(
        method=method, path=path, query=params, headers=headers, payload_hash=payload_hash
    )
    sts = string_to_sign(timestamp=timestamp, scope=cred_scope, canonical_request=creq)
    key = signing_key(secret_key=credentials.secret_key, date=date, region=region, service=service)

    if token is not None and not token_signed:
        params.append(("X-Amz-Security-Token", token))
    params.append(("X-Amz-Signature", signature(signing_key=key, string_to_sign=sts)))
    return params


# --------------------------------------------------------------------------
# Chunked upload (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)
# --------------------------------------------------------------------------


def chunk_string_to_sign(
    *, timestamp: datetime, scope: str, previous_signature: str, chunk: bytes
) -> str:
    """Build the string to sign of one chunk of a chunked (streaming) upload.

    The six lines are ``AWS4-HMAC-SHA256-PAYLOAD``, the request time as
    ``YYYYMMDD'T'HHMMSS'Z'``, the credential scope, the previous signature
    (the seed signature from the ``Authorization`` header for the first
    chunk), the hex SHA-256 of the empty string, and the hex SHA-256 of the
    chunk data.

    Spec: S3 "Signature Calculations for the Authorization Header:
    Transferring Payload in Multiple Chunks (Chunked Upload) (AWS Signature
    Version 4)".

    Args:
        timestamp: the request time (the ``x-amz-date`` of the request), an
            aware datetime or a naive UTC datetime.
        scope: the credential scope of the request, from :func:`scope`.
        previous_signature: 64 lowercase hex digits.
        chunk: the chunk data; ``b""`` for the final chunk.

    Returns:
        The chunk string to sign (no trailing newline).
    """
    return "\n".join(
        (
            _CHUNK_ALGORITHM,
            _amz_date(timestamp),
            scope,
            previous_signature,
            EMPTY_SHA256,
            _sha256_hex(chunk),
        )
    )


def chunk_signature(
    *,
    signing_key: bytes,
    timestamp: datetime,
    scope: str,
    previous_signature: str,
    chunk: bytes,
) -> str:
    """Sign one chunk of a ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` upload.

    The chunk is sent as ``hex(len(chunk)) + ";chunk-signature=" +
    signature + "\\r\\n" + chunk + "\\r\\n"``, ending with a zero-length chunk;
    each signature chains to the previous one.

    Spec: S3 "Signature Calculations for the Authorization Header:
    Transferring Payload in Multiple Chunks (Chunked Upload) (AWS Signature
    Version 4)".

    Args:
        signing_key: the request's signing key, from :func:`signing_key`.
        timestamp: the request time, see :func:`chunk_string_to_sign`.
        scope: the request's credential scope.
        previous_signature: the seed signature for the first chunk, then the
            signature of the chunk before.
        chunk: the chunk data; ``b""`` for the final chunk.

    Returns:
        64 lowercase hex digits.
    """
    sts = chunk_string_to_sign(
        timestamp=timestamp, scope=scope, previous_signature=previous_signature, chunk=chunk
    )
    return signature(signing_key=signing_key, string_to_sign=sts)
