"""Parse and format ``s3://[profile@]bucket/key`` URLs; pure (standard library only).

Rules, and where they differ from pos3 0.4.0:

* The scheme is matched case-insensitively (RFC 3986 section 3.1: "schemes are
  case-insensitive"), so ``S3://bkt/x`` is an S3 URL. pos3 treated it as a local path.
* Everything after the first ``/`` following the authority is the key, literally: ``?`` and
  ``#`` belong to the key (S3 keys may contain them; pos3's ``urlparse`` silently cut the key
  there), and percent-escapes are not decoded. Leading slashes are dropped (as pos3 did), a
  trailing slash is kept because it means "list as a prefix", and empty segments (``a//b``)
  are kept.
* ``profile@`` in the authority selects a profile; the split is at the last ``@``. An empty
  profile is an error, and so is ``profile:password@``: a password in a URL leaks into shell
  history and logs, and pos3 silently ignored it. The message never repeats the password.
* Bucket names follow the S3 naming rules (3-63 characters of ``a-z 0-9 . -``, no ``..``, no
  leading or trailing ``.`` or ``-``), relaxed to also accept upper case and ``_`` for legacy
  AWS buckets and S3-compatible stores.
* A key with a ``.`` or ``..`` segment, a backslash or a NUL is refused: its cache path would
  escape the bucket's folder (pos3 bug: ``s3://bkt/..`` wiped the caches of other buckets).

The normalised form (:meth:`S3URL.normalized`) drops the profile and the slashes around the
key; it is the registration identity and the form in which pos3lite prints URLs, as in pos3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidURLError
from .keys import check_relative_key

__all__ = ["S3URL", "check_local_path", "check_relative_key", "is_s3_url", "parse_s3_url"]

_SCHEME = "s3://"
_OTHER_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


@dataclass(frozen=True, slots=True)
class S3URL:
    """A parsed ``s3://[profile@]bucket/key`` URL.

    Attributes:
        bucket: the bucket name, validated.
        key: the raw key (not percent-decoded, leading ``/`` removed, trailing ``/`` kept: it
            carries the "list as a prefix" intent). May be empty (the whole bucket).
        profile: the profile name from the URL's userinfo, or ``None``.

    Build it with :func:`parse_s3_url`. Direct construction validates the same rules and
    raises :class:`~pos3lite.errors.InvalidURLError`.
    """

    bucket: str
    key: str
    profile: str | None = None

    def __post_init__(self) -> None:
        _check_bucket(self.bucket)
        if self.profile is not None:
            _check_profile(self.profile)
        _check_url_key(self.key, self._display())

    @property
    def prefix(self) -> str:
        """The key without leading or trailing slashes (``"data/x"`` for ``"data/x/"``)."""
        return self.key.strip("/")

    def normalized(self) -> str:
        """Return ``"s3://bucket/<prefix>"``, or ``"s3://bucket"`` for an empty prefix.

        The profile is dropped. This is the identity under which mirrors register URLs and the
        form used for output, as in pos3.
        """
        prefix = self.prefix
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def child(self, relative: str) -> str:
        """Return ``"s3://bucket/<prefix>/<relative>"`` (no profile), used to print keys.

        ``relative`` is appended as given (leading slashes dropped); with an empty prefix the
        result is ``"s3://bucket/<relative>"``.
        """
        relative = relative.lstrip("/")
        prefix = self.prefix
        if not prefix:
            return f"s3://{self.bucket}/{relative}"
        return f"s3://{self.bucket}/{prefix}/{relative}"

    def _display(self) -> str:
        userinfo = f"{self.profile}@" if self.profile is not None else ""
        return f"s3://{userinfo}{self.bucket}/{self.key}"


def is_s3_url(value: str) -> bool:
    """Return whether ``value`` starts with the ``s3://`` scheme, in any letter case.

    Only the scheme is checked; :func:`parse_s3_url` validates the rest. RFC 3986 section 3.1
    makes schemes case-insensitive, so ``"S3://b/k"`` is an S3 URL (pos3 treated it as a
    local path).
    """
    # Non-strings (Path objects) are local paths, never URLs.
    return isinstance(value, str) and value[: len(_SCHEME)].lower() == _SCHEME


def check_local_path(value: object) -> None:
    """Refuse a string that is a URL of another scheme (``http://``, ``gs://``, ...).

    pos3 treated every non-``s3://`` string as a local path, so ``download("gs://b/k")``
    silently returned ``./gs:/b/k``. A string of the form ``scheme://`` is never meant as a
    local path. Raises InvalidURLError naming the value.
    """
    if isinstance(value, str) and _OTHER_SCHEME.match(value) and not is_s3_url(value):
        raise InvalidURLError(f"not an s3:// URL: {value!r}")


def parse_s3_url(value: str) -> S3URL:
    """Parse ``s3://[profile@]bucket[/key]`` into an :class:`S3URL`.

    Args:
        value: the URL text. ``?`` and ``#`` are part of the key; nothing is percent-decoded.

    Returns:
        The parsed, validated URL.

    Raises:
        InvalidURLError: ``value`` is not an ``s3://`` URL; the profile selector is empty or
            carries a password; the bucket name is invalid; or the key has a ``.``/``..``
            segment, a backslash or a NUL (its cache path would escape its folder).
    """
    if not is_s3_url(value):
        raise InvalidURLError(f"not an s3:// URL: {value!r}")
    rest = value[len(_SCHEME) :]
    authority, _, key = rest.partition("/")
    profile: str | None = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        if ":" in userinfo:
            # Name the profile part only: whatever follows ":" is a secret.
            name = userinfo.partition(":")[0]
            raise InvalidURLError(
                f"passwords are not accepted in s3 URLs (profile {name!r} in "
                f"s3://{name}:***@{authority}/...); put credentials in a profile instead"
            )
        if not userinfo:
            raise InvalidURLError(
                f"empty profile selector in s3 URL {value!r}: use s3://<profile>@bucket/key "
                "or omit the '@'"
            )
        profile = userinfo
    # pos3 compatibility: "s3://bkt//x" addresses the key "x".
    key = key.lstrip("/")
    try:
        _check_bucket(authority)
    except InvalidURLError as exc:
        raise InvalidURLError(f"{exc} in {value!r}") from None
    return S3URL(bucket=authority, key=key, profile=profile)


def _check_bucket(bucket: str) -> None:
    # AWS "Bucket naming rules" (general purpose buckets), relaxed for upper case and "_".
    if not bucket:
        raise InvalidURLError("empty bucket name")
    if not 3 <= len(bucket) <= 63:
        raise InvalidURLError(f"invalid bucket name {bucket!r}: must be 3 to 63 characters long")
    bad = sorted(set(bucket) - _BUCKET_CHARS)
    if bad:
        raise InvalidURLError(
            f"invalid bucket name {bucket!r}: characters {''.join(bad)!r} are not allowed "
            "(use letters, digits, '.', '-' and '_')"
        )
    if bucket[0] in ".-" or bucket[-1] in ".-":
        raise InvalidURLError(
            f"invalid bucket name {bucket!r}: must not start or end with '.' or '-'"
        )
    if ".." in bucket:
        raise InvalidURLError(f"invalid bucket name {bucket!r}: must not contain '..'")


def _check_profile(profile: str) -> None:
    if not profile:
        raise InvalidURLError("empty profile selector in s3 URL")
    if ":" in profile or "/" in profile:
        # Only the part before ":" is shown: what follows would be a password.
        raise InvalidURLError(
            f"invalid profile selector {profile.partition(':')[0]!r}: ':' and '/' are not allowed"
        )


def _check_url_key(key: str, url: str) -> None:
    if "\\" in key:
        raise InvalidURLError(f"unsafe key in {url!r}: contains a backslash")
    if "\x00" in key:
        raise InvalidURLError(f"unsafe key in {url!r}: contains a NUL byte")
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise InvalidURLError(
                f"unsafe key in {url!r}: a {segment!r} segment would escape the bucket's folder"
            )
