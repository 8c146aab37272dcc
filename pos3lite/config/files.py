"""Home folder, INI files and the AWS shared-file locations; no auth, no network.

Rules: nothing is read at import time; every ``environ=None`` parameter means
:data:`os.environ` at call time; INI files are read with interpolation off (``%`` in a secret
is literal) and errors never quote a line (it could hold a secret).

Spec: AWS SDKs and Tools Reference Guide, "Shared config and credentials files" (locations,
``[profile x]`` section names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import configparser

__all__ = [
    "IniReadError",
    "config_sections",
    "expand_user",
    "home_dir",
    "read_ini",
    "shared_config_path",
    "shared_credentials_path",
]


class IniReadError(Exception):
    """An INI file exists but could not be read or parsed; the message holds no file content."""


def home_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the user's home directory, or ``None`` when it cannot be determined.

    ``$HOME`` first, then the passwd entry of the current uid. Unlike :meth:`Path.home`, this
    never raises: arbitrary-uid containers have neither.
    """
    env = os.environ if environ is None else environ
    home = env.get("HOME")
    if home:
        return Path(home)
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, AttributeError):
        return None


def expand_user(path: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Expand a leading ``~`` or ``~/`` using :func:`home_dir`; ``None`` if there is no home.

    ``~user`` forms are left to :func:`os.path.expanduser`.
    """
    if path == "~" or path.startswith("~/"):
        home = home_dir(environ)
        if home is None:
            return None
        return home / path[2:] if len(path) > 1 else home
    if path.startswith("~"):
        expanded = os.path.expanduser(path)
        return None if expanded.startswith("~") else Path(expanded)
    return Path(path)


def read_ini(path: Path) -> configparser.ConfigParser | None:
    """Read an INI file with interpolation off; ``None`` if the file does not exist.

    Raises:
        IniReadError: the file exists but is unreadable or malformed. The message names the
            path and the line number, never a line's text (it could hold a secret).
    """
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IniReadError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise IniReadError(f"cannot read {path}: not valid UTF-8") from None
    except configparser.Error as exc:
        raise IniReadError(f"cannot parse {path}: {_describe_ini_error(exc)}") from None
    return parser


def _describe_ini_error(exc: Exception) -> str:
    # configparser messages quote the offending line, which may be a secret: keep only the
    # error type and the line numbers.
    import configparser

    kind = type(exc).__name__
    lineno = getattr(exc, "lineno", None)
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"{kind} at line {lineno}"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        return f"{kind} at line(s) {lines}"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"{kind}: option {exc.option!r} repeated in section {exc.section!r}"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"{kind}: section {exc.section!r} repeated"
    return f"{kind} at line {lineno}" if lineno is not None else kind


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _get(env: Mapping[str, str], name: str) -> str | None:
    """An environment variable, with the empty string treated as unset."""
    value = env.get(name)
    return value if value else None


def shared_credentials_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$AWS_SHARED_CREDENTIALS_FILE`` or ``~/.aws/credentials``; ``None`` without a home."""
    env = _env(environ)
    override = _get(env, "AWS_SHARED_CREDENTIALS_FILE")
    return expand_user(override, env) if override else _in_home(env, ".aws", "credentials")


def shared_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$AWS_CONFIG_FILE`` or ``~/.aws/config``; ``None`` without a home."""
    env = _env(environ)
    override = _get(env, "AWS_CONFIG_FILE")
    return expand_user(override, env) if override else _in_home(env, ".aws", "config")


def _in_home(env: Mapping[str, str], *parts: str) -> Path | None:
    home = home_dir(env)
    return None if home is None else home.joinpath(*parts)


def config_sections(profile: str) -> list[str]:
    """The section names of AWS profile ``profile`` in the shared config file."""
    # The config file names profiles "[profile x]"; the default profile is "[default]"
    # (botocore also accepts "[profile default]").
    if profile == "default":
        return ["default", "profile default"]
    return [f"profile {profile}"]
