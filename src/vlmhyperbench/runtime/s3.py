"""S3 Smart Sync helpers (ADR-004): URI parsing, an access check with clear errors, and publishing a
dataset under an immutable versioned key.

The workflow itself reads and writes S3 through ``snakemake-storage-plugin-s3`` (``storage()``
inputs with a kept local copy, and ``--default-storage-provider s3`` for results). This module does
what the plugin does not: it checks up front that the buckets exist and the credentials work, so a
typo or an expired key stops the run with one readable line instead of a "missing input" later, and
it uploads datasets so that a key, once written, never changes (the plugin's kept local copies are
reused as long as they exist; an object changed in place would not be noticed).

Credentials and the endpoint come from the environment (``SNAKEMAKE_STORAGE_S3_*``, the plugin's
own variables, else the usual ``AWS_*``) or from the profile (``storage-s3-endpoint-url`` …);
nothing is ever read from a committed file.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

S3_SCHEME = "s3://"


class S3AccessError(RuntimeError):
    """A bucket is missing or unreachable, or the credentials were refused."""


def is_s3(uri: object) -> bool:
    return isinstance(uri, str) and uri.startswith(S3_SCHEME)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")`` (normalised, no trailing slash)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI (s3://bucket/key): {uri!r}")
    key = posixpath.normpath(parsed.path.lstrip("/")) if parsed.path.strip("/") else ""
    if key.startswith(".."):
        raise ValueError(f"an S3 key cannot leave its bucket: {uri!r}")
    return parsed.netloc, "" if key == "." else key


def join_uri(uri: str, *parts: str) -> str:
    bucket, key = split_uri(uri)
    return f"{S3_SCHEME}{bucket}/" + posixpath.join(key, *parts).lstrip("/")


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        """The storage plugin's variables first, then the standard AWS ones."""
        env = os.environ if environ is None else environ

        def first(*names: str) -> str | None:
            return next((env[n] for n in names if env.get(n)), None)

        return cls(
            endpoint_url=first(
                "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
            ),
            region=first("SNAKEMAKE_STORAGE_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
            access_key=first("SNAKEMAKE_STORAGE_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
            secret_key=first("SNAKEMAKE_STORAGE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
            token=first("SNAKEMAKE_STORAGE_S3_TOKEN", "AWS_SESSION_TOKEN"),
        )

    @classmethod
    def from_plugin_settings(cls, settings: Any) -> S3Settings:
        """From the storage plugin's settings object (CLI, profile and environment merged)."""
        return cls(
            endpoint_url=getattr(settings, "endpoint_url", None),
            region=getattr(settings, "region", None),
            access_key=getattr(settings, "access_key", None),
            secret_key=getattr(settings, "secret_key", None),
            token=getattr(settings, "token", None),
        )

    def merged_over(self, other: S3Settings) -> S3Settings:
        """These settings, with the gaps filled from ``other``."""
        return S3Settings(
            **{
                name: getattr(self, name) or getattr(other, name)
                for name in ("endpoint_url", "region", "access_key", "secret_key", "token")
            }
        )

    def client(self, retries: int = 2) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region or "us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.token,
            config=Config(
                retries={"max_attempts": retries, "mode": "standard"},
                connect_timeout=10,
                read_timeout=30,
            ),
        )

    @property
    def where(self) -> str:
        return self.endpoint_url or "AWS S3"


def workflow_s3_settings(workflow: Any) -> S3Settings:
    """The S3 settings a Snakemake run uses: the storage plugin's (``--storage-s3-*`` on the CLI
    or in the profile, its ``SNAKEMAKE_STORAGE_S3_*`` variables), gaps filled from ``AWS_*``."""
    from_env = S3Settings.from_env()
    tagged = (getattr(workflow, "storage_provider_settings", None) or {}).get("s3")
    if tagged is None:
        return from_env
    try:
        plugin_settings = tagged.get_settings(None)
    except Exception:  # an unexpected shape across snakemake versions: use the environment
        return from_env
    if plugin_settings is None:
        return from_env
    return S3Settings.from_plugin_settings(plugin_settings).merged_over(from_env)


_DENIED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}


def check_buckets(uris: Iterable[str], settings: S3Settings, client: Any = None) -> None:
    """Fail with one clear message per problem if a bucket of ``uris`` is missing or refused."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    buckets = sorted({split_uri(uri)[0] for uri in uris if is_s3(uri)})
    if not buckets:
        return
    client = client or settings.client()
    problems = []
    for bucket in buckets:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in {"404", "NoSuchBucket"} or status == "404":
                problems.append(
                    f"bucket '{bucket}' does not exist at {settings.where} "
                    "(create it first, or fix the URI)"
                )
            elif code in _DENIED or status == "403":
                detail = _explain_denied(client, code)
                problems.append(
                    f"access to bucket '{bucket}' at {settings.where} was refused ({detail}): "
                    "check SNAKEMAKE_STORAGE_S3_ACCESS_KEY / SNAKEMAKE_STORAGE_S3_SECRET_KEY "
                    "(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy"
                )
            else:
                problems.append(f"bucket '{bucket}' at {settings.where}: {error}")
        except NoCredentialsError:
            problems.append(
                f"no S3 credentials for bucket '{bucket}': set SNAKEMAKE_STORAGE_S3_ACCESS_KEY "
                "and SNAKEMAKE_STORAGE_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY), or pass them in the profile"
            )
        except BotoCoreError as error:
            problems.append(f"cannot reach S3 at {settings.where} for bucket '{bucket}': {error}")
    if problems:
        raise S3AccessError("S3 check failed:\n  " + "\n  ".join(problems))


def _explain_denied(client: Any, code: str) -> str:
    """HEAD responses have no body, so the reason is often just '403': ask once more with a
    request that has one (ListBuckets) to tell a bad key from a missing permission."""
    from botocore.exceptions import BotoCoreError, ClientError

    if code not in {"403", ""}:
        return code
    try:
        client.list_buckets()
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code") or "403 Forbidden")
    except BotoCoreError:
        pass
    return "403 Forbidden"


def push_dataset(local_dir: Path, uri: str, client: Any, *, overwrite: bool = False) -> list[str]:
    """Upload a manifest-format dataset folder under ``uri`` (e.g. ``s3://b/datasets/x/v2``).

    Keys are immutable: if anything already exists under the prefix the upload is refused (publish
    a new version under a new key instead) unless ``overwrite`` — and then every kept local copy of
    the old version must be deleted by hand, because the storage plugin will not notice.
    """
    local_dir = Path(local_dir)
    if not (local_dir / "manifest.jsonl").is_file():
        raise FileNotFoundError(f"{local_dir} has no manifest.jsonl")
    bucket, prefix = split_uri(uri)
    if not prefix:
        raise ValueError(f"give a versioned key under the bucket, not the bucket itself: {uri}")
    existing = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", MaxKeys=1)
    if existing.get("KeyCount", 0) and not overwrite:
        raise FileExistsError(
            f"{uri} already holds a dataset; keys are immutable — publish under a new version "
            "(e.g. …/v2) and point the registry entry at it"
        )
    keys = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(local_dir).as_posix()}"
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys
