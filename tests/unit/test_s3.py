"""The S3 helpers against moto's S3 server on 127.0.0.1 (real boto3, real storage plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.s3server import S3Server, s3_server
from vlmhyperbench.runtime.s3 import (
    S3AccessError,
    S3Settings,
    check_buckets,
    join_uri,
    push_dataset,
    split_uri,
)


@pytest.fixture(scope="module")
def server() -> S3Server:
    server = s3_server()
    server.client().create_bucket(Bucket="unit-bucket")
    return server


def settings_for(server: S3Server, **changes: str) -> S3Settings:
    values = {
        "endpoint_url": server.endpoint,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "region": "us-east-1",
        **changes,
    }
    return S3Settings(**values)


def test_split_and_join_uris() -> None:
    assert split_uri("s3://b/a/b/") == ("b", "a/b")
    assert split_uri("s3://b") == ("b", "")
    assert join_uri("s3://b/ds/v1", "images") == "s3://b/ds/v1/images"
    for bad in ("http://b/x", "s3:///x", "s3://b/../x"):
        with pytest.raises(ValueError):
            split_uri(bad)


def test_settings_prefer_the_plugins_variables_over_aws_ones() -> None:
    settings = S3Settings.from_env(
        {
            "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": "http://minio:9000",
            "AWS_ENDPOINT_URL": "http://other",
            "AWS_ACCESS_KEY_ID": "aws-key",
            "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "plugin-secret",
        }
    )
    assert settings.endpoint_url == "http://minio:9000"
    assert settings.access_key == "aws-key" and settings.secret_key == "plugin-secret"
    merged = S3Settings(access_key="cli").merged_over(settings)
    assert merged.access_key == "cli" and merged.endpoint_url == "http://minio:9000"


def test_check_buckets_passes_for_a_good_setup(server: S3Server) -> None:
    check_buckets(["s3://unit-bucket/x/v1", "s3://unit-bucket/y"], settings_for(server))


@pytest.mark.parametrize(
    ("changes", "uri", "expected"),
    [
        ({}, "s3://missing-bucket/x", "bucket 'missing-bucket' does not exist at http://"),
        ({"secret_key": "nope"}, "s3://unit-bucket/x", "refused (SignatureDoesNotMatch)"),
        ({"access_key": "AKIAUNKNOWN"}, "s3://unit-bucket/x", "refused (InvalidAccessKeyId)"),
    ],
)
def test_check_buckets_explains_each_failure(
    server: S3Server, changes: dict, uri: str, expected: str
) -> None:
    with pytest.raises(S3AccessError, match=r"S3 check failed") as error:
        check_buckets([uri], settings_for(server, **changes))
    assert expected in str(error.value)


def test_check_buckets_names_an_unreachable_endpoint() -> None:
    settings = S3Settings(endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b")
    with pytest.raises(S3AccessError, match=r"cannot reach S3 at http://127\.0\.0\.1:9"):
        check_buckets(["s3://b/x"], settings, client=settings.client(retries=1))


def test_push_dataset_needs_a_manifest_and_a_versioned_key(
    server: S3Server, tmp_path: Path
) -> None:
    client = settings_for(server).client()
    with pytest.raises(FileNotFoundError):
        push_dataset(tmp_path, "s3://unit-bucket/ds/v1", client)
    (tmp_path / "manifest.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"png")
    with pytest.raises(ValueError, match="versioned key"):
        push_dataset(tmp_path, "s3://unit-bucket", client)
    keys = push_dataset(tmp_path, "s3://unit-bucket/ds/v1", client)
    assert keys == ["ds/v1/images/a.png", "ds/v1/manifest.jsonl"]
    with pytest.raises(FileExistsError):
        push_dataset(tmp_path, "s3://unit-bucket/ds/v1", client)
    # "ds/v1" being taken does not block "ds/v10"
    assert push_dataset(tmp_path, "s3://unit-bucket/ds/v10", client)
