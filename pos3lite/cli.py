"""Command line: ``pos3lite ls | download | upload | sync`` (pos3's CLI contract, plus sync).

* stdout carries only the result: the listing (``ls``), the local path (``download``,
  ``sync``), or the plan (``--dry-run``, in ``aws s3 sync --dryrun`` style);
  progress bars and log lines go to stderr.
* Exit status: 0 success; 1 a transfer, S3, credential, configuration or local file error
  (one line on stderr, never a traceback); 2 usage errors; 130 interrupted.
* ``--delete`` is off by default (the API defaults to on); ``--exclude`` repeats.
* Each command runs in one short-lived ``mirror()``; ``upload`` is one-shot.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import Pos3liteError
from .mirror.context import (
    _require_active,
    download,
    ls,
    mirror,
    plan_download,
    plan_upload,
    sync,
    upload,
)
from .profiles import effective_profile
from .urls import is_s3_url, parse_s3_url

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pos3lite", description="Mirror S3 prefixes to local folders and back."
    )
    parser.add_argument("--version", action="version", version=f"pos3lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", metavar="NAME", help="profile name (the URL's profile@ wins)")
        p.add_argument(
            "--cache-root",
            metavar="DIR",
            help="cache root (default $POS3LITE_CACHE_ROOT or ~/.cache/positronic/s3/)",
        )
        p.add_argument("-v", "--verbose", action="store_true", help="log INFO lines to stderr")

    p_ls = sub.add_parser("ls", help="list an s3:// prefix or a local folder")
    p_ls.add_argument("prefix")
    p_ls.add_argument("-r", "--recursive", action="store_true")
    common(p_ls)

    for name, helptext in (
        ("download", "mirror an s3:// URL into a local folder; prints the local path"),
        ("upload", "mirror a local folder to an s3:// URL (one shot)"),
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
        p.add_argument("--workers", type=int, default=10, metavar="N", help="worker threads")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        common(p)
    return parser


def _print_plan(verb: str, pairs: Sequence[tuple[str, str]], deletes: Sequence[str]) -> None:
    for src, dst in pairs:
        print(f"(dryrun) {verb}: {src} to {dst}")
    for target in deletes:
        print(f"(dryrun) delete: {target}")


def _upload_source(args: argparse.Namespace) -> Path:
    if args.local:
        return Path(args.local).expanduser().resolve()
    url = parse_s3_url(args.url)
    m = _require_active()
    return m.cache_path_for(url, effective_profile(url.profile, args.profile, m.default_profile))


def _run(args: argparse.Namespace) -> int:
    cache_root = args.cache_root
    if args.command == "ls":
        with mirror(cache_root, show_progress=False):
            for item in ls(args.prefix, recursive=args.recursive, profile=args.profile):
                print(item)
        return 0
    if not is_s3_url(args.url):
        print(
            f"pos3lite {args.command}: url must be an s3:// URL, got: {args.url}", file=sys.stderr
        )
        return 1
    show = not (args.dry_run or args.no_progress)
    opts = {"show_progress": show, "max_workers": args.workers}
    kw = {"exclude": args.exclude, "profile": args.profile}
    if args.command == "download":
        with mirror(cache_root, compare=args.compare, **opts):
            if args.dry_run:
                plan = plan_download(args.url, local=args.local, **kw)
                _print_plan("download", plan.to_copy, plan.to_delete if args.delete else [])
                return 0
            path = download(args.url, local=args.local, delete=args.delete, **kw)
        print(path)
        return 0
    if args.command == "upload":
        with mirror(cache_root, compare=args.compare, **opts):
            source = _upload_source(args)
            if not source.exists():
                print(f"pos3lite upload: source path does not exist: {source}", file=sys.stderr)
                return 1
            if args.dry_run:
                plan = plan_upload(args.url, local=source, **kw)
                _print_plan("upload", plan.to_copy, plan.to_delete if args.delete else [])
                return 0
            upload(args.url, local=source, interval=None, delete=args.delete, **kw)
        return 0
    # sync: download now, upload back on exit
    with mirror(cache_root, compare=args.compare, **opts):
        if args.dry_run:
            down, up = _require_active().plan_sync(
                args.url,
                args.local,
                args.exclude,
                args.profile,
                delete_local=args.delete,
                delete_remote=args.delete,
            )
            _print_plan("download", down.to_copy, down.to_delete)
            _print_plan("upload", up.to_copy, up.to_delete)
            return 0
        path = sync(
            args.url,
            local=args.local,
            interval=None,
            delete_local=args.delete,
            delete_remote=args.delete,
            **kw,
        )
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = _build_parser()
    args, leftover = parser.parse_known_args(argv)
    if leftover:
        # Report through the subcommand's parser, so its usage line shows its flags.
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(leftover)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="pos3lite: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"pos3lite {args.command}: interrupted", file=sys.stderr)
        return 130
    except (Pos3liteError, ValueError, OSError) as exc:
        print(f"pos3lite {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
