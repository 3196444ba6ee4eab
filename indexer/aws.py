"""boto3 sessions and clients, configured deliberately.

Credentials, profile and region come from the standard AWS chain; endpoints from the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_REKOGNITION`` variables,
which botocore reads itself, so any S3-compatible store works. The connection pool is sized to
the worker count (a smaller pool makes threads queue for sockets and logs warnings), and retries
are explicit: the pipeline retries engine calls itself, so botocore must not multiply them.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


def make_session(profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session from the standard chain; a missing profile is a configuration error."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound:
        raise ConfigError(f"AWS profile {profile!r} not found in the AWS config files") from None


def make_client(session: Any, service: str, *, pool: int, max_attempts: int, timeout: float = 60.0) -> Any:
    """A client whose pool matches ``pool`` workers and that tries each call ``max_attempts`` times."""
    from botocore.config import Config

    config = Config(
        max_pool_connections=max(10, pool),
        retries={"mode": "standard", "total_max_attempts": max(1, max_attempts)},
        connect_timeout=min(10.0, timeout),
        read_timeout=timeout,
        user_agent_extra="indexer",
    )
    return session.client(service, config=config)
