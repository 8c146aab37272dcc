"""Throughput with pos3 0.4.0's mirror API.
argv: down|up bucket prefix local_dir workers. Endpoint and credentials from AWS_* env."""
import sys

import pos3

op, bucket, prefix, local, workers = sys.argv[1:6]
url = f"s3://{bucket}/{prefix}"
with pos3.mirror(max_workers=int(workers), show_progress=False):
    if op == "down":
        pos3.download(url, local=local)
    else:
        pos3.upload(url, local=local, interval=None)
