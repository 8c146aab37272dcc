"""Scale: CPU per object and peak RSS of listing and planning millions of objects.

Usage (from the repository, in the project's venv)::

    python benchmarks/scale.py [--sizes 100k,1M,5M] [--runs 1]
                               [--scenarios ls,plan_download,stream,noop]

To compare with an older revision, check it out in a git worktree with its own venv
(``pip install -e .``), copy this file into it and run it there, right before or after
this one.

A synthetic ListObjectsV2 server (this file with ``--serve``, its own process on
127.0.0.1) answers for bucket ``bench`` with N objects under ``data/`` (1,000 keys per
folder, 1,000 per page, ``delimiter=/`` and ``start-after`` honoured, ``EncodingType`` url
echoed, no signature check: it measures the client, not the server). Each scenario is a
fresh process of *this* interpreter, so it measures the pos3lite that interpreter imports,
through the public API only:

* ``ls``            ``pos3lite.ls("s3://bench/data/", recursive=True)`` in a mirror;
* ``plan_download`` ``pos3lite.plan_download("s3://bench/data/", local=<empty folder>)``;
* ``plan_download_seq`` the same with ``mirror(list_concurrency=1)``: the listing read
  sequentially, to show what the concurrent split listing adds;
* ``stream``        ``pos3lite.s3.listing.list_entries`` over the same pages, entries
  counted and dropped: the floor a streamed scan can reach (no mirror);
* ``stream_split``  the same with ``list_entries_split`` (one listing per ``data/dNNNNN/``
  folder, 8 at once); with ``--wan-ms 20`` (every response 20 ms late, through
  ``wan_proxy.py``) this shows what concurrent listing buys under latency;
* ``noop``          a no-op resync: ``pos3lite.download("s3://bench/data/", local=<tree>)``
  where ``<tree>`` already holds the N files with the sizes and mtimes the server lists
  (sparse files, created once per size under the scratch folder) and the sync state
  already records them (one unmeasured seeding ``download`` first, which adopts every
  file). The server answers every object GET with 501, so a run that transferred anything
  would fail: a measured run lists, walks the tree, reads the state and plans nothing;
* ``baseline``      import, open and close a mirror, list nothing: subtracted from the
  others' CPU before dividing by N.

Reports median CPU (user + sys of the process, ``os.wait4``) in µs per object, peak RSS
(GNU time ``%M`` when /usr/bin/time exists, else ``ru_maxrss``) and wall time. The machine
is shared: quote ratios and medians measured in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
BUCKET, PREFIX = "bench", "data/"
PER_FOLDER = 1000
LAST_MODIFIED = "2026-11-21T23:03:25.000Z"

DRIVERS = {
    "baseline": """
import pos3lite
with pos3lite.mirror(show_progress=False):
    pass
print(0)
""",
    "ls": """
import pos3lite
with pos3lite.mirror(show_progress=False):
    n = len(pos3lite.ls("s3://bench/data/", recursive=True))
print(n)
""",
    "plan_download": """
import sys, pos3lite
with pos3lite.mirror(show_progress=False):
    plan = pos3lite.plan_download("s3://bench/data/", local=sys.argv[1])
print(len(plan.to_copy))
""",
    # The same with the mirror's listing sequential (list_concurrency=1): what the
    # concurrent split listing adds to memory and CPU.
    "plan_download_seq": """
import sys, pos3lite
with pos3lite.mirror(show_progress=False, list_concurrency=1):
    plan = pos3lite.plan_download("s3://bench/data/", local=sys.argv[1])
print(len(plan.to_copy))
""",
    "stream": """
import os
from concurrent.futures import ThreadPoolExecutor
from pos3lite.auth.credentials import CredentialChain, StaticProvider
from pos3lite.s3.client import S3Client
from pos3lite.s3.listing import list_entries
from pos3lite.transport.urllib3 import Urllib3Transport
client = S3Client(Urllib3Transport(), region="us-east-1",
                  endpoint=os.environ["AWS_ENDPOINT_URL_S3"],
                  credentials=CredentialChain([StaticProvider("AKIDBENCH", "bench-secret")]))
with ThreadPoolExecutor(2) as pool:
    n = sum(1 for _ in list_entries(client, "bench", "data/", executor=pool, etag=False))
print(n)
""",
    "noop": """
import sys, pos3lite
with pos3lite.mirror(show_progress=False):
    pos3lite.download("s3://bench/data/", local=sys.argv[1])
print(sys.argv[2])  # reached only if nothing was transferred (object GETs fail)
""",
}
# The same streamed listing, split on "/" and 8 sub-prefixes listed at once.
DRIVERS["stream_split"] = (
    DRIVERS["stream"]
    .replace("list_entries,", "list_entries_split,")
    .replace("import list_entries", "import list_entries_split")
    .replace("ThreadPoolExecutor(2)", "ThreadPoolExecutor(10)")
    .replace(
        'list_entries(client, "bench", "data/", executor=pool, etag=False)',
        'list_entries_split(client, "bench", "data/", executor=pool, window=8, etag=False)',
    )
)


def key(i: int) -> str:
    return f"{PREFIX}d{i // PER_FOLDER:05d}/f{i:08d}.bin"


def page(n: int, prefix: str, start: int, max_keys: int) -> bytes:
    """Objects [start, start + max_keys) of the N under ``prefix`` (only ``data/`` or a
    prefix of it holds any)."""
    if not PREFIX.startswith(prefix) and not prefix.startswith(PREFIX):
        n = 0
    end = min(n, start + max_keys)  # n: one past the last index under ``prefix``
    items = "".join(
        f"<Contents><Key>{key(i)}</Key><LastModified>{LAST_MODIFIED}</LastModified>"
        f"<ETag>&quot;{i:032x}&quot;</ETag><Size>{1024 + i % 1000}</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for i in range(start, end)
    )
    more = end < n
    token = f"<NextContinuationToken>{end}</NextContinuationToken>" if more else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><Prefix>{prefix}</Prefix><KeyCount>{end - start}</KeyCount>"
        f"<MaxKeys>{max_keys}</MaxKeys><EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{items}"
        "</ListBucketResult>"
    ).encode()


def folders(n: int, start: int, max_keys: int) -> bytes:
    """The delimiter ``/`` listing of ``data/``: one common prefix per folder."""
    count = -(-n // PER_FOLDER)
    end = min(count, start + max_keys)
    cps = "".join(
        f"<CommonPrefixes><Prefix>{PREFIX}d{f:05d}/</Prefix></CommonPrefixes>"
        for f in range(start, end)
    )
    more = end < count
    token = f"<NextContinuationToken>{end}</NextContinuationToken>" if more else ""
    return (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{BUCKET}</Name><Prefix>{PREFIX}</Prefix><Delimiter>/</Delimiter>"
        "<EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{cps}"
        "</ListBucketResult>"
    ).encode()


def serve(n: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/xml") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._send(404, b"")

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if parts.path.strip("/") != BUCKET or q.get("list-type") != "2":
                body = b"<Error><Code>NotImplemented</Code><Message>scale server</Message></Error>"
                self._send(501, body)
                return
            start = int(q.get("continuation-token") or 0)
            prefix, max_keys = q.get("prefix", ""), int(q.get("max-keys", 1000))
            # start-after (first page only): a key of ours, "data/dFFFFF/fIIIIIIII.bin".
            after = q.get("start-after") if "continuation-token" not in q else None
            after_i = int(after.rsplit("/f", 1)[1][:8]) if after else -1
            if q.get("delimiter") == "/" and prefix == PREFIX:
                if after:  # the folder holding the key is listed again, as S3 does
                    start = max(start, after_i // PER_FOLDER)
                self._send(200, folders(n, start, max_keys))
                return
            lo, hi = 0, n
            if prefix.startswith(PREFIX + "d") and prefix.endswith("/"):  # one folder
                folder = int(prefix[len(PREFIX) + 1 : -1])
                lo, hi = folder * PER_FOLDER, min(n, (folder + 1) * PER_FOLDER)
            self._send(200, page(hi, prefix, max(start, lo, after_i + 1), max_keys))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


def make_tree(root: Path, n: int) -> None:
    """The N files the server lists, as sparse files with its sizes and LastModified."""
    from datetime import datetime

    stamp = datetime.fromisoformat(LAST_MODIFIED.replace("Z", "+00:00")).timestamp()
    for folder in range(-(-n // PER_FOLDER)):
        d = root / f"d{folder:05d}"
        d.mkdir(parents=True)
        for i in range(folder * PER_FOLDER, min(n, (folder + 1) * PER_FOLDER)):
            path = d / f"f{i:08d}.bin"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.ftruncate(fd, 1024 + i % 1000)
                os.utime(fd, (stamp, stamp))
            finally:
                os.close(fd)


def parse_count(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS KiB, stdout) of one fresh process."""
    rss_file = tempfile.mktemp(prefix="scale-rss-")  # noqa: S306 - GNU time writes it
    full = (
        ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd]
        if os.access("/usr/bin/time", os.X_OK)
        else cmd
    )
    t0 = time.perf_counter()
    p = subprocess.Popen(full, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out = p.stdout.read().decode() if p.stdout else ""
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{cmd[:3]} failed with exit status {p.returncode}")
    rss = int(ru.ru_maxrss)
    if full is not cmd:
        lines = Path(rss_file).read_text().split()
        rss = int(lines[-1]) if lines and lines[-1].isdigit() else rss
        os.unlink(rss_file)
    return wall, ru.ru_utime + ru.ru_stime, rss, out.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,1M,5M")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--scenarios", default="ls,plan_download,stream")
    ap.add_argument(
        "--wan-ms",
        type=float,
        default=0.0,
        help="put wan_proxy.py (every response this many ms late) before the server",
    )
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    scenarios = ["baseline", *[s for s in args.scenarios.split(",") if s]]
    scratch = Path(tempfile.mkdtemp(prefix="pos3lite-scale-"))
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "AWS_ACCESS_KEY_ID": "AKIDBENCH",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(scratch / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "POS3LITE_CACHE_ROOT": str(scratch / "cache"),
        "POS3LITE_PROFILES_FILE": str(scratch / "no-profiles.toml"),
    }
    print(
        f"# scale — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start, {args.runs} run(s) each"
    )
    print()
    print("| objects | scenario | CPU µs/object | CPU | peak RSS | bytes/object (RSS) | wall |")
    print("|---|---|---|---|---|---|---|")
    try:
        for n in [parse_count(s) for s in args.sizes.split(",") if s]:
            proxy = None
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(n)], stdout=subprocess.PIPE, text=True
            )
            try:
                line = server.stdout.readline() if server.stdout else ""
                port = line.split()[1]
                if args.wan_ms:
                    proxy = subprocess.Popen(
                        [sys.executable, str(Path(__file__).with_name("wan_proxy.py")),
                         "--target", f"127.0.0.1:{port}", "--delay-ms", str(args.wan_ms)],
                        stdout=subprocess.PIPE, text=True,
                    )  # fmt: skip
                    line = proxy.stdout.readline() if proxy.stdout else ""
                    port = line.split()[1]
                env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{port}"
                base_cpu = base_rss = 0.0
                for sc in scenarios:
                    runs = []
                    for _ in range(args.runs):
                        local = scratch / (f"tree-{n}" if sc == "noop" else "empty")
                        cmd = [sys.executable, "-c", DRIVERS[sc], str(local), str(n)]
                        if sc != "noop":
                            shutil.rmtree(local, ignore_errors=True)
                            local.mkdir()
                        elif not local.exists():
                            make_tree(local, n)
                            measure(cmd, env)  # seeds the sync state (unmeasured)
                        runs.append(measure(cmd, env))
                        if sc != "baseline" and int(runs[-1][3] or 0) != n:
                            raise SystemExit(f"{sc} saw {runs[-1][3]} objects, not {n}")
                    wall = statistics.median(r[0] for r in runs)
                    cpu = statistics.median(r[1] for r in runs)
                    rss = statistics.median(r[2] for r in runs)
                    if sc == "baseline":
                        base_cpu, base_rss = cpu, rss
                        per, per_rss = "", ""
                    else:
                        per = f"{(cpu - base_cpu) * 1e6 / n:.1f}"
                        per_rss = f"{(rss - base_rss) * 1024 / n:.0f}"
                    print(
                        f"| {n:,} | {sc} | {per} | {cpu:.2f} s | {rss / 1024:.0f} MiB | "
                        f"{per_rss} | {wall:.2f} s |",
                        flush=True,
                    )
            finally:
                shutil.rmtree(scratch / f"tree-{n}", ignore_errors=True)
                if proxy is not None:
                    proxy.terminate()
                    proxy.wait(timeout=10)
                server.terminate()
                server.wait(timeout=10)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
