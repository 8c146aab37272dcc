"""Uncontended lock acquire+release with s3func 0.9.6 (S3Session.lock): prints a JSON list of
seconds per cycle. argv: endpoint region access_key secret_key bucket cycles. The first cycle
is a warm-up and not reported."""

import json
import sys
import time

import s3func

endpoint, region, ak, sk, bucket, cycles = sys.argv[1:7]
session = s3func.S3Session(ak, sk, bucket, endpoint_url=endpoint, region=region)
times = []
for i in range(int(cycles) + 1):
    lock = session.lock("bench/s3func")
    start = time.perf_counter()
    lock.acquire()
    lock.release()
    if i:
        times.append(time.perf_counter() - start)
print(json.dumps(times))
