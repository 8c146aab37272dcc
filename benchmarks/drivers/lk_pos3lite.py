"""Uncontended lock acquire+release with pos3lite: prints a JSON list of seconds per cycle.
argv: endpoint region access_key secret_key bucket cycles. The first cycle (the one-off
conditional-write probe and connection set-up) is a warm-up and not reported."""

import json
import sys
import time

import pos3lite
from pos3lite import Profile

endpoint, region, ak, sk, bucket, cycles = sys.argv[1:7]
client = pos3lite.Client(
    Profile(local_name="bench", endpoint=endpoint, region=region, access_key=ak, secret_key=sk)
)
url = f"s3://{bucket}/bench/pos3lite.lock"
times = []
for i in range(int(cycles) + 1):
    lock = client.lock(url, lease=30)
    start = time.perf_counter()
    lock.acquire()
    lock.release()
    if i:
        times.append(time.perf_counter() - start)
print(json.dumps(times))
