"""Domain errors, and the mapping from botocore's error codes to them.

Three kinds matter to a batch run: an error about *one image* (recorded, the run goes on), an
error that means *the run cannot work* (stop at once, exit 1), and a *usage/configuration* error
(exit 2). Every message is one line that names the thing that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, try later
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class IndexerError(Exception):
    """Base of every error the indexer raises on purpose."""

    exit_code = EXIT_FAILED


class ConfigError(IndexerError):
    """A bad flag, setting, config file or source string (exit 2)."""

    exit_code = EXIT_USAGE


class FatalError(IndexerError):
    """The run cannot go on: no credentials, bucket missing, database unreachable (exit 1)."""

    exit_code = EXIT_FAILED


class LockedError(IndexerError):
    """Another run over the same database and source holds the lock (exit 75)."""

    exit_code = EXIT_LOCKED


class QueryError(IndexerError):
    """A search query the language does not understand (exit 2)."""

    exit_code = EXIT_USAGE


class ImageError(IndexerError):
    """One image could not be analysed. Recorded on its row; the run goes on.

    ``retryable`` says whether the next run should try it again even though the object is
    unchanged (throttling, 5xx, timeouts) or not (an invalid image, access denied on the object).
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False, request_id: str | None = None):
        self.code = code
        self.message = " ".join(str(message).split()) or code
        self.retryable = retryable
        self.request_id = request_id
        super().__init__(f"{code}: {self.message}")


# botocore error codes, sorted by what they mean for a run.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "LimitExceededException",
    }
)
TRANSIENT_CODES = THROTTLING_CODES | frozenset(
    {
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "AuthFailure",
    }
)
#: Codes that mean this image will never work as it is: not retried until it changes.
PERMANENT_IMAGE_CODES = frozenset(
    {
        "InvalidImageFormatException",
        "ImageTooLargeException",
        "InvalidParameterException",
        "InvalidS3ObjectException",
        "NoSuchKey",
        "AccessDenied",
        "AccessDeniedException",
    }
)


@dataclass(frozen=True)
class AwsErrorInfo:
    code: str
    message: str
    request_id: str | None
    http_status: int | None


def aws_error_info(err: Exception) -> AwsErrorInfo:
    """Pull code, message, request id and HTTP status out of a botocore ``ClientError``."""
    response = getattr(err, "response", None) or {}
    error = response.get("Error", {}) or {}
    meta = response.get("ResponseMetadata", {}) or {}
    return AwsErrorInfo(
        code=str(error.get("Code") or type(err).__name__),
        message=str(error.get("Message") or err),
        request_id=meta.get("RequestId"),
        http_status=meta.get("HTTPStatusCode"),
    )


def is_throttling(err: Exception) -> bool:
    """True when the service asked us to slow down."""
    return aws_error_info(err).code in THROTTLING_CODES


def is_transient(err: Exception) -> bool:
    """True for faults that may pass on their own: throttling, 5xx, connection trouble."""
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError

    if isinstance(err, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(err, ClientError):
        info = aws_error_info(err)
        return info.code in TRANSIENT_CODES or (info.http_status or 0) >= 500
    return False


def fatal_from_aws(err: Exception, doing: str) -> FatalError | None:
    """A :class:`FatalError` when ``err`` means no request can succeed (credentials), else None."""
    from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return FatalError(f"no AWS credentials found while {doing}: set a profile (--profile) or AWS_* variables")
    if isinstance(err, NoRegionError):
        return FatalError(f"no AWS region configured while {doing}: pass --region or set AWS_DEFAULT_REGION")
    info = aws_error_info(err)
    if info.code in CREDENTIAL_CODES:
        return FatalError(f"AWS rejected the credentials while {doing}: {info.code}{_rid(info)}")
    return None


def image_error_from_aws(err: Exception) -> ImageError:
    """Classify a per-image AWS failure as retryable or permanent."""
    info = aws_error_info(err)
    return ImageError(info.code, info.message, retryable=is_transient(err), request_id=info.request_id)


def _rid(info: AwsErrorInfo) -> str:
    return f" (request id {info.request_id})" if info.request_id else ""


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***``, safe to print or log."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        import re

        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
