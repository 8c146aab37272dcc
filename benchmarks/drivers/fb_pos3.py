"""First byte with pos3 0.4.0: import, list the prefix, download one object, exit.
argv: bucket prefix key dest_file. Endpoint and credentials come from the AWS_* environment."""
import sys

import pos3

bucket, prefix, key, dest = sys.argv[1:5]
with pos3.mirror(show_progress=False):
    names = pos3.ls(f"s3://{bucket}/{prefix}")
    assert names, "empty listing"
    pos3.download(f"s3://{bucket}/{key}", local=dest)
