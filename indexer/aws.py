"""boto3 sessions and clients, configured deliberately.

Credentials, profile and region come from the standard AWS chain; endpoints from the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_REKOGNITION`` variables,
which botocore reads itself, so any S3-compatible store works. The connection pool is sized to
the worker count (a smaller pool makes threads queue for sockets and logs warnings), and retries
are explicit: the pipeline retries engine calls itself, so botocore must not multiply them.

Also here: what AWS-side facts decide how an S3 image reaches Rekognition - whether an endpoint
is AWS's own (Rekognition can only read ``S3Object`` references from AWS S3) and which region a
bucket lives in (Rekognition reads ``S3Object`` only from buckets in its own region).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError, translate

#: Host suffixes of AWS's own endpoints (commercial, China, and the dual-stack ``api.aws``).
AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
#: GetBucketLocation's historical answers that are not region names (S3 API reference).
_LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def make_session(profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session from the standard chain; a missing profile is a configuration error."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound:
        raise ConfigError(f"AWS profile {profile!r} not found in the AWS config files") from None


def make_client(session: Any, service: str, *, pool: int, max_attempts: int, timeout: float = 60.0) -> Any:
    """A client whose pool matches ``pool`` workers and that tries each call ``max_attempts`` times.

    A missing or invalid region is a usage error (exit 2) and a region without the service is
    fatal (exit 1), each one line - never a traceback, never a call that must fail.
    """
    from botocore.config import Config

    config = Config(
        max_pool_connections=max(10, pool),
        retries={"mode": "standard", "total_max_attempts": max(1, max_attempts)},
        connect_timeout=min(10.0, timeout),
        read_timeout=timeout,
        user_agent_extra="indexer",
    )
    try:
        client = session.client(service, config=config)
    except Exception as exc:
        raise translate(exc, f"creating the {service} client") from None
    if service != "s3":
        check_service_region(session, client, service)
    return client


def is_aws_endpoint(url: str | None) -> bool:
    """True when ``url`` is one of AWS's own endpoints (not MinIO, Ceph, R2, a local stand-in)."""
    host = (urlparse(url or "").hostname or "").lower()
    return host.endswith(AWS_HOST_SUFFIXES)


def check_service_region(session: Any, client: Any, service: str) -> None:
    """Fail with one line when the client's region has no endpoint for ``service``.

    Checked against botocore's bundled endpoint data, only for AWS's own endpoints (a custom
    ``AWS_ENDPOINT_URL_*`` serves whatever it serves). Without this check the first call would
    fail on DNS after every retry.
    """
    from .errors import FatalError

    region = client.meta.region_name
    if not is_aws_endpoint(client.meta.endpoint_url) or not region:
        return
    try:
        partition = session.get_partition_for_region(region)
        available = set(session.get_available_regions(service, partition_name=partition))
    except Exception:
        return  # botocore cannot tell: let the first call decide
    if available and region not in available:
        near = ", ".join(sorted(available)[:6])
        raise FatalError(
            f"no endpoint for the region: {service} is not offered in {region}: "
            f"pass --region with one where it is (e.g. {near}, ...)"
        )


class BucketRegions:
    """Each bucket's region, asked once per bucket (HeadBucket, else GetBucketLocation)."""

    def __init__(self, s3_client: Any):
        self.s3_client = s3_client
        self._lock = threading.Lock()
        self._known: dict[str, str | None] = {}

    def region(self, bucket: str) -> str | None:
        """The bucket's region, or None when S3 would not say (then it is not relied on)."""
        with self._lock:
            if bucket in self._known:
                return self._known[bucket]
        region = self._ask(bucket)
        with self._lock:
            self._known[bucket] = region
        return region

    def _ask(self, bucket: str) -> str | None:
        try:
            response = self.s3_client.head_bucket(Bucket=bucket)
            region = response.get("BucketRegion") or _header(response, "x-amz-bucket-region")
            if region:
                return region
        except Exception as exc:  # a 301/403 still names the region in its headers
            region = _header(getattr(exc, "response", None) or {}, "x-amz-bucket-region")
            if region:
                return region
        try:
            location = self.s3_client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        except Exception:
            return None
        return _LEGACY_LOCATIONS.get(location, location)


def _header(response: dict[str, Any], name: str) -> str | None:
    return ((response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get(name)
