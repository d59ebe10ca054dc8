"""A real S3 API for tests: moto's server on 127.0.0.1, with credentials enforced.

The server runs in a thread of the test process and answers over HTTP, so snakemake subprocesses,
the storage plugin and boto3 talk to it exactly as they would to MinIO or AWS. Authentication is on:
an IAM user with an access key is created first, then moto is told to check every request, so a
wrong key is refused with ``InvalidAccessKeyId`` as on a real service.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import pytest

_SERVER: S3Server | None = None


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, *, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a snakemake subprocess: the plugin's variables, no AWS_* leaking in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_STOR"))}
        env.update(
            {
                "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": self.endpoint,
                "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": self.access_key,
                "SNAKEMAKE_STORAGE_S3_SECRET_KEY": self.secret_key,
                "SNAKEMAKE_STORAGE_S3_REGION": self.region,
            }
        )
        env.update(overrides)
        return env

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_server() -> S3Server:
    """Start the server once per test process (idempotent)."""
    global _SERVER
    if _SERVER is not None:
        return _SERVER
    moto_server = pytest.importorskip("moto.server")
    import boto3
    import httpx

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam.create_user(UserName="bench")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="bench", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    # From now on every request must be signed by a known key.
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    _SERVER = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    return _SERVER
