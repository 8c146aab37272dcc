"""First byte with pos3lite: import, list the prefix, download one object, exit.
argv: bucket prefix key dest_file. Endpoint and credentials come from the AWS_* environment."""
import sys

import pos3lite

bucket, prefix, key, dest = sys.argv[1:5]
with pos3lite.mirror(show_progress=False):
    names = pos3lite.ls(f"s3://{bucket}/{prefix}")
    assert names, "empty listing"
    pos3lite.download(f"s3://{bucket}/{key}", local=dest)
