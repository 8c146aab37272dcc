"""Throughput with boto3 + s3transfer: one client, one TransferManager with
max_concurrency=workers (files in parallel and, above 8 MiB, parts in parallel), default
TransferConfig otherwise. Lists with the paginator (down) or walks the folder (up).
argv: down|up bucket prefix local_dir workers. Endpoint and credentials from AWS_* env."""
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config

op, bucket, prefix, local, workers = sys.argv[1:6]
workers = int(workers)
client = boto3.client("s3", config=Config(max_pool_connections=workers))
config = TransferConfig(max_concurrency=workers)
prefix = prefix.rstrip("/") + "/"
futures = []
with create_transfer_manager(client, config) as manager:
    if op == "down":
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):]
                dest = os.path.join(local, rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                futures.append(manager.download(bucket, obj["Key"], dest))
    else:
        for dirpath, _dirs, files in os.walk(local):
            for name in files:
                path = os.path.join(dirpath, name)
                key = prefix + os.path.relpath(path, local).replace(os.sep, "/")
                futures.append(manager.upload(path, bucket, key))
    for f in futures:
        f.result()
