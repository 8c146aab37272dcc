"""Throughput with obstore (Rust object_store from Python): one S3Store, a
ThreadPoolExecutor(workers) of blocking get/put calls (obstore releases the GIL while its
Rust runtime does the I/O); objects at or above 8 MiB are written with obstore's own
multipart put (``chunk_size`` 8 MiB, ``max_concurrency`` workers) and read in one GET.
argv: down|up bucket prefix local_dir workers. Endpoint and credentials from AWS_* env."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import obstore
from obstore.store import S3Store

op, bucket, prefix, local, workers = sys.argv[1:6]
workers = int(workers)
endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
store = S3Store(
    bucket,
    endpoint=endpoint,
    access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    region=os.environ["AWS_REGION"],
    virtual_hosted_style_request=False,
    client_options={
        "allow_http": "true" if endpoint.startswith("http://") else "false",
        "pool_max_idle_per_host": str(workers),
    },
)
prefix = prefix.rstrip("/") + "/"
PART = 8 << 20


def get(key):
    dest = os.path.join(local, key[len(prefix):])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    result = obstore.get(store, key)
    with open(dest, "wb") as fh:
        for chunk in result.stream(min_chunk_size=PART):
            fh.write(chunk)


def put(path):
    key = prefix + os.path.relpath(path, local).replace(os.sep, "/")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if size < PART:
            obstore.put(store, key, fh.read())
        else:
            obstore.put(store, key, fh, chunk_size=PART, max_concurrency=workers)


with ThreadPoolExecutor(workers) as pool:
    if op == "down":
        keys = [m["path"] for batch in obstore.list(store, prefix=prefix) for m in batch]
        jobs = [pool.submit(get, k) for k in keys]
    else:
        paths = [os.path.join(d, n) for d, _, fs in os.walk(local) for n in fs]
        jobs = [pool.submit(put, p) for p in paths]
    for j in jobs:
        j.result()
