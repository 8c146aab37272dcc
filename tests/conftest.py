"""Test-wide safety: no test ever reaches a real cloud metadata endpoint.

The credential chain ends with the EC2 instance-metadata provider (169.254.169.254) and may
try the container endpoints; tests that exercise them point the providers at local fakes
explicitly. Everything else runs with IMDS disabled and no container variables, so a missing
credential is reported as missing instead of being looked for off this machine.
"""

from __future__ import annotations

import os

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for _var in (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_PROFILE",
):
    os.environ.pop(_var, None)
