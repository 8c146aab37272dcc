"""Throughput with pos3lite's mirror API.
argv: down|up bucket prefix local_dir workers. Endpoint and credentials from AWS_* env."""
import sys

import pos3lite

op, bucket, prefix, local, workers = sys.argv[1:6]
url = f"s3://{bucket}/{prefix}"
with pos3lite.mirror(max_workers=int(workers), show_progress=False):
    if op == "down":
        pos3lite.download(url, local=local)
    else:
        pos3lite.upload(url, local=local, interval=None)
