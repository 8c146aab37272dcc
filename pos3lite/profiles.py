"""Named S3 profiles: the :class:`Profile` value, the registry, and resolution.

Profiles come from two registries: code (:func:`register_profile`, kept in ``_PROFILES``) and
a ``profiles.toml`` file, loaded lazily the first time an unknown name is looked up, at most
once per process, all or nothing. Code registrations always win over file entries.

The file is the first of: ``$POS3LITE_PROFILES_FILE``, ``$POS3_PROFILES_FILE`` (pos3),
``$XDG_CONFIG_HOME/pos3lite/profiles.toml``, ``~/.config/pos3lite/profiles.toml``, then pos3's
``$XDG_CONFIG_HOME/pos3/profiles.toml`` and ``~/.config/pos3/profiles.toml``. A variable that
is set selects its file even if the file is missing (an empty registry; the CLI reports it);
the other candidates count only if the file exists. When pos3lite's default file is chosen,
pos3's default file is read too and merged under it (pos3lite's entries win per name).
Format::

    [profiles.minio]
    endpoint = "http://127.0.0.1:9000"     # required
    region = "us-east-1"                   # optional
    public = false                         # a real TOML boolean
    local_name = "minio"                   # cache folder name, default: the table name
    addressing_style = "path"              # "auto" | "path" | "virtual"
    credentials_file = "minio.creds"       # INI; relative to this file's folder
    use_ambient_credentials = false        # a TOML boolean; see Profile
    verify_etag = "auto"                   # "auto" | "on" | "off"; see Profile
    folder_markers = true                  # a TOML boolean; see Profile

Stricter than pos3, on purpose: unknown keys (typos like ``reigon``) and a non-boolean
``public`` (pos3 read ``public = "false"`` as true) are errors; the credentials file is read
with interpolation off (pos3 failed on a ``%`` in a secret); every failure is a
:class:`~pos3lite.errors.ProfileError` naming the file and profile, never a secret.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProfileError

__all__ = [
    "Profile",
    "effective_profile",
    "load_registry",
    "profiles_file",
    "register_profile",
    "resolve_profile",
]

logger = logging.getLogger(__name__)

ADDRESSING_STYLES = ("auto", "path", "virtual")

_TABLE_KEYS = frozenset(
    {
        "endpoint",
        "region",
        "public",
        "local_name",
        "addressing_style",
        "credentials_file",
        "use_ambient_credentials",
        "verify_etag",
        "folder_markers",
    }
)
VERIFY_ETAG = ("auto", "on", "off")


@dataclass(frozen=True)
class Profile:
    """Configuration for an S3 or S3-compatible endpoint (pos3-compatible, hashable).

    Attributes:
        local_name: the cache-path folder for this profile; ``"_"`` is reserved for "no
            profile"; only ``str.isalnum()`` characters, ``-`` and ``_``.
        endpoint: ``http(s)://host[:port]``, or ``None`` for AWS S3 (the endpoint then comes
            from the environment or the region, see ``auth.credentials.resolve_endpoint``).
        public: anonymous access; no credentials are looked up and requests are not signed.
        region: the signing region, or ``None`` (see ``auth.credentials.resolve_region``).
        access_key, secret_key, session_token: explicit credentials, isolated from the
            ambient AWS configuration; the first two are set together. Hidden from ``repr``.
        addressing_style: ``"path"`` (``endpoint/bucket/key``), ``"virtual"``
            (``bucket.endpoint/key``) or ``"auto"``: path style for custom endpoints,
            virtual-hosted for AWS except for bucket names with dots. New in pos3lite.
        use_ambient_credentials: let a custom (non-AWS) endpoint receive credentials from
            the instance metadata service, a container endpoint or web identity. Off by
            default: those are AWS-issued session credentials, and a custom endpoint gets
            only keys from the environment and the shared credentials files (as with pos3
            and boto3, which is how MinIO users work). New in pos3lite.
        verify_etag: ``"auto"`` (an ETag counts as the MD5 of the bytes until the endpoint
            shows it is not), ``"on"`` or ``"off"``; see ``S3Client``. New in pos3lite.
        folder_markers: upload empty local folders as zero-byte ``name/`` objects (default);
            ``False`` skips them, for servers that store ``x/`` as a file ``x``. New in
            pos3lite.

    Raises:
        ProfileError: a rule above is broken. Messages never contain the secret values.
    """

    local_name: str
    endpoint: str | None
    public: bool = False
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: str = "auto"
    use_ambient_credentials: bool = False
    verify_etag: str = "auto"
    folder_markers: bool = True

    def __post_init__(self) -> None:
        if self.local_name == "_":
            raise ProfileError("Profile local_name cannot be '_' (reserved for default)")
        if (
            not isinstance(self.local_name, str)
            or not self.local_name
            or not all(c.isalnum() or c in "-_" for c in self.local_name)
        ):
            raise ProfileError(
                f"Invalid local_name {self.local_name!r}: use only alphanumeric, dash, underscore"
            )
        if self.endpoint is not None and (
            not isinstance(self.endpoint, str)
            or not self.endpoint.lower().startswith(("http://", "https://"))
        ):
            raise ProfileError(
                f"Invalid endpoint {self.endpoint!r} for profile {self.local_name!r}: "
                "must start with http:// or https://"
            )
        if not isinstance(self.public, bool):
            raise ProfileError(
                f"Invalid public={self.public!r} for profile {self.local_name!r}: "
                "must be True or False"
            )
        if self.region is not None and not isinstance(self.region, str):
            raise ProfileError(
                f"Invalid region {self.region!r} for profile {self.local_name!r}: must be a string"
            )
        if self.addressing_style not in ADDRESSING_STYLES:
            raise ProfileError(
                f"Invalid addressing_style {self.addressing_style!r} for profile "
                f"{self.local_name!r}: use one of {', '.join(ADDRESSING_STYLES)}"
            )
        for flag in ("use_ambient_credentials", "folder_markers"):
            if not isinstance(getattr(self, flag), bool):
                raise ProfileError(
                    f"Invalid {flag}={getattr(self, flag)!r} for profile {self.local_name!r}: "
                    "must be True or False"
                )
        if self.verify_etag not in VERIFY_ETAG:
            raise ProfileError(
                f"Invalid verify_etag {self.verify_etag!r} for profile {self.local_name!r}: "
                f"use one of {', '.join(VERIFY_ETAG)}"
            )
        # One key without the other would silently fall back to the ambient chain and
        # route requests to the wrong account.
        if bool(self.access_key) != bool(self.secret_key):
            raise ProfileError(
                f"Profile {self.local_name!r}: access_key and secret_key must be set together "
                "(or both omitted to use the default credential chain)."
            )


# Code registrations (register_profile). Always consulted first. pos3 re-exports this dict;
# it is never rebound, only mutated.
_PROFILES: dict[str, Profile] = {}
# The last successful load of the registry file. Replaced as a whole (never mutated), so
# readers without the lock always see a complete snapshot.
_REGISTRY_PROFILES: dict[str, Profile] = {}
_REGISTRY_LOADED = False
_REGISTRY_PATH: Path | None = None
_REGISTRY_LOCK = threading.Lock()
_CODE_LOCK = threading.Lock()


def register_profile(
    name: str,
    endpoint: str | None,
    public: bool = False,
    region: str | None = None,
    local_name: str | None = None,
    *,
    addressing_style: str = "auto",
) -> None:
    """Register a named profile in code (pos3-compatible).

    Args:
        name: the name used in ``s3://<name>@bucket/key`` and ``profile=`` arguments.
        endpoint, public, region, addressing_style: see :class:`Profile`.
        local_name: the cache folder name; defaults to ``name``.

    Re-registering an equal config is a no-op. A code registration wins over a
    ``profiles.toml`` entry of the same name, whatever the order. Credentials cannot be set
    here (as in pos3); use a ``credentials_file`` in ``profiles.toml``, the environment, or
    pass a :class:`Profile` object.

    Raises:
        ProfileError: invalid values (see :class:`Profile`), an empty name, or ``name`` is
            already registered with a different config.
    """
    if not isinstance(name, str) or not name:
        raise ProfileError(f"Invalid profile name {name!r}: must be a non-empty string")
    config = Profile(
        local_name=local_name or name,
        endpoint=endpoint,
        public=public,
        region=region,
        addressing_style=addressing_style,
    )
    with _CODE_LOCK:
        existing = _PROFILES.get(name)
        if existing is not None and existing != config:
            raise ProfileError(f"Profile '{name}' already registered with different config")
        _PROFILES[name] = config


def resolve_profile(value: str | Profile | None) -> Profile | None:
    """Turn a profile argument into a :class:`Profile`.

    Args:
        value: ``None`` (the ambient environment), a :class:`Profile` (returned as is), or a
            name, looked up in code registrations, then in ``profiles.toml`` (loaded on the
            first miss).

    Returns:
        The profile, or ``None`` for ``None``.

    Raises:
        ProfileError: an unknown name, or a broken ``profiles.toml``.
        TypeError: ``value`` is of another type.
    """
    if value is None or isinstance(value, Profile):
        return value
    if not isinstance(value, str):
        raise TypeError(f"profile must be a name, a Profile or None, not {type(value).__name__}")
    found = _PROFILES.get(value)
    if found is not None:
        return found
    if value not in _REGISTRY_PROFILES:
        load_registry()
    found = _PROFILES.get(value) or _REGISTRY_PROFILES.get(value)
    if found is not None:
        return found
    where = _REGISTRY_PATH if _REGISTRY_LOADED else profiles_file()
    location = str(where) if where is not None else "a profiles.toml (see POS3LITE_PROFILES_FILE)"
    raise ProfileError(
        f"Unknown profile: '{value}'. Register with pos3lite.register_profile() "
        f"or define it in {location}."
    )


def effective_profile(
    url_profile: str | None, arg: str | Profile | None, default: Profile | None
) -> Profile | None:
    """The profile for one operation: URL userinfo > ``profile=`` argument > mirror default.

    Args:
        url_profile: the name from ``s3://<name>@bucket/key``, or ``None``.
        arg: the operation's ``profile=`` argument.
        default: the mirror's ``default_profile``.

    Returns:
        The first of these that is set, resolved; ``None`` means the ambient environment.

    Raises:
        ProfileError: the chosen name is unknown.
    """
    if url_profile is not None:
        return resolve_profile(url_profile)
    if arg is not None:
        return resolve_profile(arg)
    return default


# --------------------------------------------------------------------------------------------
# The registry file
# --------------------------------------------------------------------------------------------


def profiles_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the registry file is, or would be.

    Returns:
        The file named by ``$POS3LITE_PROFILES_FILE`` or ``$POS3_PROFILES_FILE`` if set
        (existing or not); else the first existing default candidate (pos3lite's, then
        pos3's); else pos3lite's preferred default path; ``None`` if there is no home
        directory and no ``$XDG_CONFIG_HOME``. Never raises for a missing HOME.
    """
    from .config.files import expand_user, home_dir

    env = os.environ if environ is None else environ
    for var in ("POS3LITE_PROFILES_FILE", "POS3_PROFILES_FILE"):
        override = env.get(var)
        if override:
            expanded = expand_user(override, env)
            return expanded if expanded is not None else Path(override)
    bases: list[Path] = []
    xdg = env.get("XDG_CONFIG_HOME")
    # XDG Base Directory Specification: relative paths in these variables are invalid and
    # must be ignored.
    if xdg and os.path.isabs(xdg):
        bases.append(Path(xdg))
    home = home_dir(env)
    if home is not None:
        bases.append(home / ".config")
    candidates = [base / app / "profiles.toml" for app in ("pos3lite", "pos3") for base in bases]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0] if candidates else None


def load_registry(path: str | os.PathLike[str] | None = None, force: bool = False) -> None:
    """Load the ``profiles.toml`` registry (once per process unless ``force``).

    Args:
        path: the file to load; ``None`` uses :func:`profiles_file`.
        force: reload even if already loaded; entries gone from the file are dropped.

    Every table is built before any is committed, so one bad entry changes nothing: the
    previous snapshot stays, and a registry that had never loaded stays unloaded (the next
    lookup of an unknown name tries again). A successful load replaces the snapshot as a
    whole. A missing file is an empty registry.

    Raises:
        ProfileError: the file is unreadable or not valid TOML, or an entry is invalid (an
            unknown key, a wrong type, a broken ``credentials_file``...). The message names
            the file and profile and never contains a secret.
    """
    global _REGISTRY_PROFILES, _REGISTRY_LOADED, _REGISTRY_PATH
    with _REGISTRY_LOCK:
        if _REGISTRY_LOADED and not force:
            return
        registry_path = Path(path) if path is not None else profiles_file()
        new_profiles = _read_registry(registry_path) if registry_path is not None else {}
        if path is None:
            # pos3's file is read as well; pos3lite's entries win per name (issue 13).
            new_profiles = {**_pos3_registry(registry_path), **new_profiles}
        _REGISTRY_PROFILES = new_profiles
        _REGISTRY_PATH = registry_path
        _REGISTRY_LOADED = True
        logger.debug("loaded %d profile(s) from %s", len(new_profiles), registry_path)


# pos3's private name, kept for code and tests written against pos3.
_load_profile_registry = load_registry


def _pos3_registry(chosen: Path | None) -> dict[str, Profile]:
    """pos3's default ``profiles.toml`` (the first that exists) when the chosen file is
    pos3lite's default one (no ``$POS3LITE_PROFILES_FILE``/``$POS3_PROFILES_FILE``), else ``{}``."""
    if chosen is None or chosen.parent.name != "pos3lite":
        return {}
    if os.environ.get("POS3LITE_PROFILES_FILE") or os.environ.get("POS3_PROFILES_FILE"):
        return {}
    from .config.files import home_dir

    xdg = os.environ.get("XDG_CONFIG_HOME")
    home = home_dir()
    bases = [Path(xdg)] if xdg and os.path.isabs(xdg) else []
    bases += [home / ".config"] if home is not None else []
    for base in bases:
        candidate = base / "pos3" / "profiles.toml"
        if candidate.is_file():
            return _read_registry(candidate)
    return {}


def _reset_for_tests() -> None:
    """Clear the code and file registries and mark the file as not loaded."""
    global _REGISTRY_PROFILES, _REGISTRY_LOADED, _REGISTRY_PATH
    with _REGISTRY_LOCK, _CODE_LOCK:
        _PROFILES.clear()
        _REGISTRY_PROFILES = {}
        _REGISTRY_LOADED = False
        _REGISTRY_PATH = None


def _read_registry(path: Path) -> dict[str, Profile]:
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ProfileError(
            f"Cannot read profiles file {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise ProfileError(f"Cannot read profiles file {path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"Invalid TOML in profiles file {path}: {exc}") from None

    unknown_top = sorted(set(data) - {"profiles"})
    if unknown_top:
        raise ProfileError(
            f"Unknown top-level key(s) {', '.join(map(repr, unknown_top))} in {path}; "
            "define profiles as [profiles.<name>] tables"
        )
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ProfileError(f"'profiles' in {path} must be a table of [profiles.<name>] tables")
    return {name: _profile_from_table(name, cfg, path) for name, cfg in tables.items()}


def _profile_from_table(name: str, cfg: Any, source: Path) -> Profile:
    where = f"profile '{name}' in {source}"
    if not isinstance(cfg, dict):
        raise ProfileError(f"Invalid {where}: must be a table")
    unknown = sorted(set(cfg) - _TABLE_KEYS)
    if unknown:
        raise ProfileError(
            f"Unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
            f"allowed: {', '.join(sorted(_TABLE_KEYS))}"
        )
    endpoint = cfg.get("endpoint")
    if not endpoint:
        raise ProfileError(f"Invalid {where}: missing required 'endpoint'")
    for key in (
        "endpoint",
        "region",
        "local_name",
        "addressing_style",
        "credentials_file",
        "verify_etag",
    ):
        if key in cfg and not isinstance(cfg[key], str):
            raise ProfileError(f"Invalid {where}: {key!r} must be a string, got {cfg[key]!r}")
    public = cfg.get("public", False)
    for flag in ("public", "use_ambient_credentials", "folder_markers"):
        value = cfg.get(flag, flag == "folder_markers")
        if not isinstance(value, bool):
            raise ProfileError(
                f"Invalid {where}: {flag!r} must be a TOML boolean (true or false), got {value!r}"
            )

    access_key = secret_key = session_token = None
    creds_file = cfg.get("credentials_file")
    if creds_file:
        access_key, secret_key, session_token = _load_credentials_file(creds_file, name, source)

    try:
        return Profile(
            local_name=cfg.get("local_name", name),
            endpoint=endpoint,
            public=public,
            region=cfg.get("region"),
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            addressing_style=cfg.get("addressing_style", "auto"),
            use_ambient_credentials=cfg.get("use_ambient_credentials", False),
            verify_etag=cfg.get("verify_etag", "auto"),
            folder_markers=cfg.get("folder_markers", True),
        )
    except ProfileError as exc:
        raise ProfileError(f"Invalid {where}: {exc}") from None


def _load_credentials_file(
    creds_file: str, profile_name: str, source: Path
) -> tuple[str, str, str | None]:
    """Read ``[<profile>]`` (else ``[default]``) from an INI credentials file.

    ``~`` is expanded; a relative path resolves against the registry file's folder (not the
    working directory). There is no fallback to another section or to the ambient chain:
    either would route requests to the wrong account.
    """
    from .config.files import IniReadError, expand_user, read_ini

    where = f"credentials_file of profile '{profile_name}' in {source}"
    creds_path = expand_user(creds_file)
    if creds_path is None:
        raise ProfileError(f"Cannot expand {creds_file!r} ({where}): no home directory")
    if not creds_path.is_absolute():
        creds_path = source.parent / creds_path
    try:
        parser = read_ini(creds_path)
    except IniReadError as exc:
        raise ProfileError(f"Invalid {where}: {exc}") from None
    if parser is None:
        raise ProfileError(f"Profile credentials_file not found or unreadable: {creds_path}")
    if parser.has_section(profile_name):
        section = profile_name
    elif parser.has_section("default"):
        section = "default"
    else:
        raise ProfileError(
            f"Credentials file {creds_path} must contain a [{profile_name}] or [default] "
            f"section; found sections: {parser.sections()}"
        )
    sec = parser[section]
    access_key = sec.get("aws_access_key_id") or None
    secret_key = sec.get("aws_secret_access_key") or None
    if access_key is None or secret_key is None:
        raise ProfileError(
            f"Credentials section '{section}' in {creds_path} must define both "
            "'aws_access_key_id' and 'aws_secret_access_key'."
        )
    return access_key, secret_key, sec.get("aws_session_token") or None
