"""First byte with s3func: import, list the prefix, download one object, exit.
argv: bucket prefix key dest_file. Endpoint and credentials come from the AWS_* environment."""
import os
import shutil
import sys

import s3func

bucket, prefix, key, dest = sys.argv[1:5]
session = s3func.S3Session(
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], bucket,
    endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region=os.environ["AWS_REGION"],
)
names = [o["key"] for o in session.list_objects(prefix=prefix).iter_objects()]
assert names, "empty listing"
resp = session.get_object(key)
assert resp.status == 200, resp.error
with open(dest, "wb") as fh:
    shutil.copyfileobj(resp.stream, fh)
