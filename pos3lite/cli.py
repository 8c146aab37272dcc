"""Command line: ``pos3lite ls | download | upload | sync | server`` (pos3's CLI, plus more).

Rules (what ``aws s3`` and rclone users expect):

* stdout carries only the result: the listing (``ls``), the local path (``download``,
  ``sync``), the plan (``--dry-run``, in ``aws s3 sync --dryrun`` style) or the ``export``
  lines (``server``). Progress bars, ``-v`` lines and the summary go to stderr.
* ``-v`` prints one line per finished file (``download: s3://b/k to path``, ``upload: path
  to s3://b/k``, ``delete: x``) and a closing summary (files, bytes, seconds, rate);
  ``-q`` prints only errors. The progress bar (bytes and files) stays on screen at the end
  and is off when stderr is not a terminal; ``--progress``/``--no-progress`` override.
* Exit status: 0 success; 1 a transfer, S3, credential, configuration or local file error,
  reported as exactly one line on stderr (the first failure and a count of the others;
  ``-v`` lists them all), never a traceback; 2 usage errors (a bad flag value names the
  flag); 130 interrupted. A closed stdout (``| head``) ends the run quietly.
* ``--delete`` is off by default (the API defaults to on); ``--exclude`` repeats.
* Single objects follow ``aws s3 cp``: an existing folder or a trailing ``/`` as the
  destination means "into this folder", keeping the object's or file's name.
* The profile: ``s3://profile@bucket/...`` > ``--profile``; a name is looked up in
  pos3lite's profiles first, then as an AWS shared-config profile (``AWS_PROFILE``);
  ``--endpoint-url`` and ``--region`` override what the profile or the environment say.

Each transfer command runs in one short-lived ``mirror()``; ``upload`` is one-shot. This
module is an entry point: it builds the S3 client ``ls`` uses and installs the progress
factory (:func:`pos3lite.progress.use_factory`) that counts and prints what the mirror does.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import (
    ConfigError,
    InvalidURLError,
    NotFoundError,
    Pos3liteError,
    ProfileError,
    RemoteNotFoundError,
    S3Error,
    TransferError,
    TransportError,
)
from .progress import RunReport, use_factory
from .urls import S3URL, is_s3_url, parse_s3_url

if TYPE_CHECKING:
    from .profiles import Profile
    from .s3.client import S3Client

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

logger = logging.getLogger("pos3lite.cli")


class CLIError(Exception):
    """A failure the CLI reports as one line, exit 1 (the message is final)."""


# ------------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 55535:  # weed binds ports up to 10000 above the S3 port
        raise argparse.ArgumentTypeError(f"must be at most 55535, got {value}")
    return value


def _endpoint(text: str) -> str:
    if not re.match(r"https?://[^/\s]+", text, re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"must be http(s)://host[:port], got {text!r}")
    return text


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty, got {text!r}")
    return text


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pos3lite", description="Mirror S3 prefixes to local folders and back."
    )
    parser.add_argument("--version", action="version", version=f"pos3lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("common options")
        g.add_argument(
            "--profile",
            metavar="NAME",
            type=_nonempty,
            help="pos3lite profile, else AWS shared-config profile (the URL's profile@ wins)",
        )
        g.add_argument(
            "--endpoint-url", metavar="URL", type=_endpoint, help="S3 endpoint, http(s)://host"
        )
        g.add_argument("--region", metavar="REGION", type=_nonempty, help="signing region")
        g.add_argument(
            "--cache-root",
            metavar="DIR",
            help="cache root (default $POS3LITE_CACHE_ROOT or ~/.cache/positronic/s3/)",
        )
        g.add_argument(
            "--workers", type=_positive_int, default=10, metavar="N", help="worker threads"
        )
        loud = g.add_mutually_exclusive_group()
        loud.add_argument(
            "-v", "--verbose", action="store_true", help="a line per file, a summary, all errors"
        )
        loud.add_argument("-q", "--quiet", action="store_true", help="print only errors")
        g.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="progress bar on stderr (default: when stderr is a terminal)",
        )

    p_ls = sub.add_parser(
        "ls", help="list buckets, an s3:// prefix or a local folder (exit 1 if missing)"
    )
    p_ls.add_argument("prefix", nargs="?", default="s3://", help="s3://[profile@][bucket/key]")
    p_ls.add_argument("-r", "--recursive", action="store_true", help="every key, not folders")
    p_ls.add_argument("-l", "--long", action="store_true", help="add LastModified and size")
    common(p_ls)

    for name, helptext in (
        ("download", "mirror an s3:// URL into a local folder; prints the local path"),
        ("upload", "mirror a local folder (or one file) to an s3:// URL (one shot)"),
        ("sync", "download, then upload local changes back (one shot); prints the local path"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("url")
        p.add_argument("--local", metavar="PATH", help="local folder (default: the cache path)")
        p.add_argument(
            "--delete",
            action="store_true",
            help="delete files missing from the source (off by default)",
        )
        p.add_argument(
            "--exclude",
            metavar="PATTERN",
            action="append",
            default=[],
            help="glob excluded on both sides (repeatable)",
        )
        p.add_argument(
            "-n", "--dry-run", action="store_true", help="print the plan, change nothing"
        )
        p.add_argument(
            "--compare",
            choices=("size_mtime", "size", "checksum"),
            default="size_mtime",
            help="change detection (default size_mtime)",
        )
        common(p)

    p_server = sub.add_parser(
        "server",
        help="start a local S3 server (SeaweedFS, needs pos3lite[server]) to try pos3lite",
    )
    p_server.add_argument("--port", type=_port, metavar="N", help="S3 port (default: a free one)")
    p_server.add_argument(
        "--data", metavar="DIR", help="keep the data in DIR (default: a temporary folder)"
    )
    p_server.add_argument(
        "--bucket", default="demo", metavar="NAME", help="bucket to create (default demo)"
    )
    return parser


# ------------------------------------------------------------------------- the context


@dataclasses.dataclass
class _Context:
    """What every command needs: the parsed flags and the run's report."""

    args: argparse.Namespace
    report: RunReport

    @property
    def verbose(self) -> bool:
        return bool(getattr(self.args, "verbose", False))


def _url_text(url: S3URL, key: str) -> str:
    """``s3://[profile@]bucket/key``: keeps ``profile@`` so the output can be fed back."""
    who = f"{url.profile}@" if url.profile else ""
    return f"s3://{who}{url.bucket}/{key}"


def _aws_profile_exists(name: str) -> bool:
    """``name`` is a profile in the AWS shared config or credentials file."""
    from .auth.credentials import read_ini, shared_config_path, shared_credentials_path

    for path, section in (
        (shared_config_path(), "default" if name == "default" else f"profile {name}"),
        (shared_credentials_path(), name),
        (shared_config_path(), name),
    ):
        if path is None:
            continue
        try:
            parser = read_ini(path)
        except Exception:  # a broken file is reported when credentials load
            continue
        if parser is not None and parser.has_section(section):
            return True
    return False


def _check_profiles_file(name: str) -> None:
    """A profiles file named by the environment must exist: a typo in the variable would
    otherwise look like an empty registry."""
    for var in ("POS3LITE_PROFILES_FILE", "POS3_PROFILES_FILE"):
        value = os.environ.get(var)
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ProfileError(
                    f"Unknown profile: {name!r}: {var} names {str(path)!r}, which does not exist"
                )
            return


def _select_profile(ctx: _Context, url_profile: str | None) -> Profile | None:
    """The profile for this run (see the module rules); ``None`` is the environment.

    An AWS shared-config profile is selected by setting ``AWS_PROFILE`` for this process,
    which the credential chain and the region lookup read. ``--endpoint-url`` and
    ``--region`` go into the returned Profile, or into ``AWS_ENDPOINT_URL_S3`` and
    ``AWS_REGION`` when there is none.
    """
    from .profiles import resolve_profile

    args = ctx.args
    name = url_profile or args.profile
    profile: Profile | None = None
    if name:
        _check_profiles_file(name)
        try:
            profile = resolve_profile(name)
        except ProfileError as exc:
            if not _aws_profile_exists(name):
                from .auth.credentials import shared_config_path

                raise ProfileError(
                    f"{exc} Not an AWS profile either (looked in "
                    f"{shared_config_path() or '~/.aws/config'} and the credentials file; "
                    "AWS_PROFILE selects those)."
                ) from None
            os.environ["AWS_PROFILE"] = name
    if profile is not None:
        changes: dict[str, Any] = {}
        if args.endpoint_url:
            changes["endpoint"] = args.endpoint_url
        if args.region:
            changes["region"] = args.region
        return dataclasses.replace(profile, **changes) if changes else profile
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL_S3"] = args.endpoint_url
    if args.region:
        os.environ["AWS_REGION"] = args.region
    return None


def _check_bucket_style(bucket: str, profile: Profile | None) -> None:
    """S3 "Bucket naming rules", checked here so a bad name never reaches the server.

    Legacy names (upper case, ``_``) work only with path-style requests: with a custom
    endpoint (``auto`` means path style there) or ``addressing_style = "path"``.
    """
    from .auth.credentials import resolve_endpoint

    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
        raise InvalidURLError(f"invalid bucket name {bucket!r}: must not look like an IP address")
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        raise InvalidURLError(f"invalid bucket name {bucket!r}: reserved prefix or suffix")
    if bucket == bucket.lower() and "_" not in bucket:
        return
    style = profile.addressing_style if profile is not None else "auto"
    path_style = style == "path" or (style == "auto" and resolve_endpoint(profile) is not None)
    if not path_style:
        raise InvalidURLError(
            f"invalid bucket name {bucket!r}: upper case and '_' are legacy names, usable only "
            'with path-style requests (a custom endpoint, or addressing_style = "path")'
        )


def _client(ctx: _Context, profile: Profile | None) -> S3Client:
    from .auth.credentials import provider_for, resolve_endpoint, resolve_region
    from .s3.client import S3Client
    from .transport.urllib3 import Urllib3Transport

    return S3Client(
        Urllib3Transport(max_connections=2),
        region=resolve_region(profile),
        endpoint=resolve_endpoint(profile),
        credentials=provider_for(profile),
        addressing_style=profile.addressing_style if profile else "auto",
    )


def _prepare_url(ctx: _Context, text: str) -> tuple[S3URL, str, Profile | None]:
    """Parse ``text``; return the URL, the URL to hand to the API (no ``profile@``: the
    profile goes as a resolved value, so AWS profiles and overrides work) and the profile."""
    url = parse_s3_url(text)
    profile = _select_profile(ctx, url.profile)
    _check_bucket_style(url.bucket, profile)
    plain = f"s3://{url.bucket}/{url.key}"
    return url, plain, profile


# ------------------------------------------------------------------------------ ls


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _long(ctx: _Context, seconds: float | None, size: int | None, name: str) -> str:
    if not ctx.args.long:
        return name
    when = _stamp(seconds) if seconds is not None else ""
    what = "PRE" if size is None else str(size)
    return f"{when:19} {what:>12} {name}"


def _cmd_ls(ctx: _Context) -> int:
    target: str = ctx.args.prefix
    if not is_s3_url(target):
        return _ls_local(ctx, target)
    rest = target[len("s3://") :]
    if rest == "" or re.fullmatch(r"[^/@]+@/?", rest):
        profile_name = rest.rstrip("/").rstrip("@") or None
        profile = _select_profile(ctx, profile_name)
        who = f"{profile_name}@" if profile_name else ""
        for name, created in _client(ctx, profile).list_buckets():
            shown = f"s3://{who}{name}/"
            print(f"{_stamp(created)} {shown}" if ctx.args.long and created else shown)
        return EXIT_OK
    url, _plain, profile = _prepare_url(ctx, target)
    client = _client(ctx, profile)
    key = url.key
    if key and not key.endswith("/"):
        try:
            info = client.head_object(url.bucket, key)
            print(_long(ctx, info.last_modified, info.size, _url_text(url, key)))
            return EXIT_OK
        except NotFoundError as exc:
            if exc.code == "NoSuchBucket":
                raise
            key += "/"
    # Streamed, as aws s3 ls, rclone lsf and s5cmd ls print: each page as it arrives, so
    # memory stays flat at millions of keys. S3 lists in UTF-8 byte order (the client sorts
    # the prefixes into each page of a delimiter listing); a store that orders differently
    # across pages is printed in its own order.
    found = False
    for item in client.list_objects(url.bucket, key, delimiter=None if ctx.args.recursive else "/"):
        found = True
        if isinstance(item, str):
            if item != key:
                print(_long(ctx, None, None, _url_text(url, item)))
        elif item.key != key:
            print(_long(ctx, item.last_modified, item.size, _url_text(url, item.key)))
    if not found and key:
        raise CLIError(f"no object and no objects under prefix {_url_text(url, key)!r}")
    return EXIT_OK


def _ls_local(ctx: _Context, prefix: str) -> int:
    from .urls import check_local_path

    check_local_path(prefix)
    display = Path(prefix).expanduser()
    path = display.resolve()
    if path.is_file():
        st = path.stat()
        print(_long(ctx, st.st_mtime, st.st_size, str(display)))
        return EXIT_OK
    if not path.is_dir():
        raise CLIError(f"no such file or folder: {str(display)!r}")

    def entries() -> Iterator[tuple[Path, str]]:
        if ctx.args.recursive:
            for dirpath, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = Path(dirpath, name)
                    yield full, full.relative_to(path).as_posix()
        else:
            for child in path.iterdir():
                yield child, child.name + ("/" if child.is_dir() else "")

    out = []
    for full, rel in entries():
        name = str(display / rel) + ("/" if rel.endswith("/") else "")
        if rel.endswith("/"):
            out.append((rel.encode("utf-8", "surrogateescape"), _long(ctx, None, None, name)))
        else:
            st = full.lstat()
            out.append(
                (rel.encode("utf-8", "surrogateescape"), _long(ctx, st.st_mtime, st.st_size, name))
            )
    for _sort, text in sorted(out):
        print(text)
    return EXIT_OK


# ----------------------------------------------------------------------- transfers


def _print_plan(verb: str, pairs: Sequence[tuple[str, str]], deletes: Sequence[str]) -> None:
    for src, dst in pairs:
        print(f"(dryrun) {verb}: {src} to {dst}")
    for target in deletes:
        print(f"(dryrun) delete: {target}")


def _is_object(ctx: _Context, url: S3URL, profile: Profile | None) -> bool:
    if not url.key or url.key.endswith("/"):
        return False
    try:
        _client(ctx, profile).head_object(url.bucket, url.key)
    except NotFoundError as exc:
        if exc.code == "NoSuchBucket":
            raise
        return False
    return True


def _cmd_transfer(ctx: _Context) -> int:
    import pos3lite as api  # the public API (lazy names)

    args = ctx.args
    if not is_s3_url(args.url):
        raise CLIError(f"url must be an s3:// URL, got: {args.url!r}")
    url, plain, profile = _prepare_url(ctx, args.url)
    local: str | None = args.local
    cmd = args.command
    if cmd == "download" and local is not None:
        dest = Path(local).expanduser()
        # aws s3 cp: an existing folder or a trailing slash means "into this folder".
        if (local.endswith(("/", os.sep)) or dest.is_dir()) and _is_object(ctx, url, profile):
            local = str(dest / url.key.rsplit("/", 1)[-1])
    if cmd == "upload" and local is not None:
        source = Path(local).expanduser()
        if source.is_file() and (plain.endswith("/") or url.key == ""):
            # aws s3 cp file s3://b/prefix/ puts s3://b/prefix/<file name>.
            plain = plain + source.name
    opts: dict[str, Any] = {"show_progress": True, "max_workers": args.workers}
    kw: dict[str, Any] = {"exclude": args.exclude, "profile": profile}
    with api.mirror(args.cache_root, compare=args.compare, **opts):
        if cmd == "download":
            if args.dry_run:
                plan = api.plan_download(plain, local=local, **kw)
                _print_plan("download", plan.to_copy, plan.to_delete if args.delete else [])
                return EXIT_OK
            path = api.download(plain, local=local, delete=args.delete, **kw)
        elif cmd == "upload":
            if local is None:
                from .mirror.context import _require_active

                m = _require_active()
                local = str(m.cache_path_for(parse_s3_url(plain), profile))
            source = Path(local).expanduser().resolve()
            if not source.exists():
                raise CLIError(f"source path does not exist: {str(source)!r}")
            if args.dry_run:
                plan = api.plan_upload(plain, local=source, **kw)
                _print_plan("upload", plan.to_copy, plan.to_delete if args.delete else [])
                return EXIT_OK
            api.upload(plain, local=source, interval=None, delete=args.delete, **kw)
            path = None
        else:
            if args.dry_run:
                from .mirror.context import _require_active

                # Three-way, as the real run decides: downloads and local deletes first,
                # then the uploads and remote deletes that the exit would make.
                down, up = _require_active().plan_sync(
                    plain,
                    local,
                    args.exclude,
                    profile,
                    delete_local=args.delete,
                    delete_remote=args.delete,
                )
                _print_plan("download", down.to_copy, down.to_delete)
                _print_plan("upload", up.to_copy, up.to_delete)
                return EXIT_OK
            path = api.sync(
                plain,
                local=local,
                interval=None,
                delete_local=args.delete,
                delete_remote=args.delete,
                **kw,
            )
    if path is not None:
        print(path)
    return EXIT_OK


# --------------------------------------------------------------------------- server


def _cmd_server(ctx: _Context) -> int:
    import signal
    import threading

    from . import _server

    args = ctx.args
    try:
        _server.weed_binary()
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    workdir = Path(args.data).expanduser().resolve() if args.data else None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    server = _server.SeaweedFS(workdir=workdir, port=args.port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    # Ctrl-C reaches weed too (same process group); we stop it either way, then exit 0.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start()
    except RuntimeError as exc:
        raise CLIError(f"the server did not start: {str(exc).splitlines()[0]}") from None
    try:
        from .profiles import Profile

        client = _client(
            ctx,
            Profile(
                local_name="server",
                endpoint=server.endpoint,
                region=server.region,
                access_key=server.access_key,
                secret_key=server.secret_key,
            ),
        )
        try:
            client.create_bucket(args.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        print(f"export AWS_ENDPOINT_URL_S3={server.endpoint}")
        print(f"export AWS_ACCESS_KEY_ID={server.access_key}")
        print(f"export AWS_SECRET_ACCESS_KEY='{server.secret_key}'")
        print(f"export AWS_REGION={server.region}")
        print(f"# bucket: s3://{args.bucket}/  (Ctrl-C stops the server)", flush=True)
        if not getattr(ctx.args, "quiet", False):
            where = str(workdir) if workdir else "a temporary folder, removed at exit"
            print(f"pos3lite server: S3 on {server.endpoint}, data in {where}", file=sys.stderr)
        while not stop.wait(0.5):
            if server._proc is not None and server._proc.poll() is not None and not stop.is_set():
                raise CLIError("the server exited unexpectedly")
    finally:
        server.stop()
    if not getattr(ctx.args, "quiet", False):
        print("pos3lite server: stopped", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- errors


def _quote_path(value: object) -> str:
    return repr(os.fspath(value)) if isinstance(value, (str, os.PathLike)) else repr(value)


def _describe(exc: BaseException) -> str:
    """One line for one failure: the real cause, URLs and paths quoted so spaces show."""
    if isinstance(exc, RemoteNotFoundError):
        return f"no object and no objects under prefix at {exc.url!r}"
    if isinstance(exc, S3Error):
        where = ""
        if exc.bucket:
            where = f" for {('s3://' + exc.bucket + '/' + (exc.key or ''))!r}"
        if exc.request_id is None and (
            exc.code in ("NotFound", "NoSuchBucket") or exc.code.startswith("HTTP")
        ):
            return f"the endpoint did not answer like S3 (HTTP {exc.status}{where})"
        text = f"{exc.code} (HTTP {exc.status}){where}"
        return text + (f": {exc.message}" if exc.message else "")
    if isinstance(exc, OSError) and not isinstance(exc, Pos3liteError):
        exc = _real_cause(exc)
        cause = exc.strerror or type(exc).__name__
        if exc.filename is not None:
            cause += f": {_quote_path(exc.filename)}"
        return cause
    if isinstance(exc, TransferError):
        return _describe(exc.failures[0]) if exc.failures else str(exc)
    return str(exc) or type(exc).__name__


def _real_cause(exc: OSError) -> OSError:
    """The folder's error behind a failure on an internal temporary file.

    Downloads write ``.<name>.<random>.pos3lite-tmp`` beside the target; if the folder could
    not be made (read-only destination) the temp file reports ENOENT, which names a file the
    user never asked for. Redo the folder step to get its own error instead.
    """
    name = os.fspath(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else ""
    if not str(name).endswith(".pos3lite-tmp"):
        return exc
    folder = Path(name).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as cause:
        return cause
    if not os.access(folder, os.W_OK):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
    if isinstance(exc, PermissionError):
        return PermissionError(exc.errno, exc.strerror, str(folder))
    return exc


def _all_failures(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, TransferError) and exc.failures:
        out: list[BaseException] = []
        for f in exc.failures:
            out += _all_failures(f)
        return out
    return [exc]


def _cache_hint(ctx: _Context, exc: BaseException) -> str:
    """A hint when a permission problem is in the default cache root (read-only HOME)."""
    args = ctx.args
    if getattr(args, "cache_root", None) or os.environ.get("POS3LITE_CACHE_ROOT"):
        return ""
    if not isinstance(exc, OSError) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ""
    home = Path("~").expanduser()
    filename = str(exc.filename or "")
    if filename and not filename.startswith(str(home)):
        return ""
    return "; choose a writable cache root with --cache-root DIR or POS3LITE_CACHE_ROOT"


def _report_failure(ctx: _Context, command: str, exc: BaseException) -> None:
    failures = _all_failures(exc)
    first = failures[0]
    line = _describe(first)
    if isinstance(exc, TransferError):
        line = f"{exc.operation.lower()} failed: {line}"
    line += _cache_hint(ctx, first)
    if len(failures) > 1:
        more = len(failures) - 1
        line += f" (and {more} more failure{'s' if more > 1 else ''}"
        line += ")" if ctx.verbose else "; -v lists them)"
    print(f"pos3lite {command}: {' '.join(line.split(chr(10)))}", file=sys.stderr)
    if ctx.verbose and len(failures) > 1:
        for other in failures[1:]:
            print(f"pos3lite {command}:   {_describe(other)}", file=sys.stderr)


class _DropErrors(logging.Filter):
    """Without -v, failures reach stderr once, as the final line, not also as log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pos3lite: %(levelname)s: %(message)s"))
    verbose = getattr(args, "verbose", False)
    quiet = getattr(args, "quiet", False)
    if not verbose:
        handler.addFilter(_DropErrors())
    root = logging.getLogger("pos3lite")
    root.addHandler(handler)
    # -v shows warnings and errors as they happen; per-file lines come from the report.
    root.setLevel(logging.WARNING if not quiet else logging.CRITICAL)


def _run(args: argparse.Namespace) -> int:
    progress = args.progress if getattr(args, "progress", None) is not None else sys.stderr.isatty()
    quiet = getattr(args, "quiet", False)
    report = RunReport(
        bar=bool(progress) and not quiet and not getattr(args, "dry_run", False),
        verbose=bool(getattr(args, "verbose", False)),
    )
    ctx = _Context(args, report)
    if args.command == "server":
        return _cmd_server(ctx)
    if args.command == "ls":
        return _cmd_ls(ctx)
    try:
        with use_factory(report.factory):
            code = _cmd_transfer(ctx)
    finally:
        report.close()
    if ctx.verbose and not getattr(args, "dry_run", False):
        print(f"pos3lite {args.command}: {report.summary()}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Returns 0, 1 or 130 (see the module rules); usage errors raise ``SystemExit(2)`` from
    argparse.
    """
    parser = _build_parser()
    args, leftover = parser.parse_known_args(argv)
    if leftover:
        # Report through the subcommand's parser, so its usage line shows its flags.
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(leftover)}")
    _setup_logging(args)
    ctx = _Context(args, RunReport(bar=False, verbose=bool(getattr(args, "verbose", False))))
    try:
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except KeyboardInterrupt:
        print(f"pos3lite {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly. Point stdout at /dev/null so the
        # interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CLIError, Pos3liteError, ValueError, OSError, TransportError, ConfigError) as exc:
        _report_failure(ctx, args.command, exc)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
