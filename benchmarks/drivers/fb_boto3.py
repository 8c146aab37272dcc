"""First byte with plain boto3: import, list the prefix, download one object, exit.
argv: bucket prefix key dest_file. Endpoint and credentials come from the AWS_* environment."""
import sys

import boto3

bucket, prefix, key, dest = sys.argv[1:5]
client = boto3.client("s3")
listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
assert listing.get("Contents"), "empty listing"
client.download_file(bucket, key, dest)
