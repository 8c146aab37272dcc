"""Throughput with s3func: one S3Session (max_pool_connections=workers) and a
ThreadPoolExecutor(workers); one GET/PUT per file (s3func has no multipart or ranged
parallel transfer: the large object is one streamed request).
argv: down|up bucket prefix local_dir workers. Endpoint and credentials from AWS_* env."""
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import s3func

op, bucket, prefix, local, workers = sys.argv[1:6]
workers = int(workers)
session = s3func.S3Session(
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], bucket,
    endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region=os.environ["AWS_REGION"],
    max_pool_connections=workers,
)
prefix = prefix.rstrip("/") + "/"


def get(key):
    dest = os.path.join(local, key[len(prefix):])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    resp = session.get_object(key)
    if resp.status != 200:
        raise RuntimeError(f"GET {key}: {resp.status} {resp.error}")
    with open(dest, "wb") as fh:
        shutil.copyfileobj(resp.stream, fh, 1 << 20)
    resp.stream.release_conn()


def put(path):
    key = prefix + os.path.relpath(path, local).replace(os.sep, "/")
    with open(path, "rb") as fh:
        resp = session.put_object(key, fh)
    if resp.status != 200:
        raise RuntimeError(f"PUT {key}: {resp.status} {resp.error}")


with ThreadPoolExecutor(workers) as pool:
    if op == "down":
        keys = [o["key"] for o in session.list_objects(prefix=prefix).iter_objects()]
        jobs = [pool.submit(get, k) for k in keys]
    else:
        paths = [os.path.join(d, n) for d, _, fs in os.walk(local) for n in fs]
        jobs = [pool.submit(put, p) for p in paths]
    for j in jobs:
        j.result()
