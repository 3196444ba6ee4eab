"""Domain errors, and the mapping from botocore's error codes to them.

Three kinds matter to a batch run: an error about *one image* (recorded, the run goes on), an
error that means *the run cannot work* (stop at once, exit 1), and a *usage/configuration* error
(exit 2). Every message is one line that names the thing that is wrong.

AWS failures are sorted into those kinds by one table (:data:`ERROR_CODES` for the codes a
service answers, :data:`EXCEPTION_CLASSES` for what botocore raises on the client side) and one
function, :func:`translate`, used by the listing, the S3 reads and the Rekognition engine. An
unknown code is retryable: only codes known to be about the image itself are permanent.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

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
    """The run cannot go on: no credentials, bucket missing, database unreachable (exit 1).

    ``api_calls`` is how many billable calls the image that hit it had made (answered calls
    count even when the answer was a refusal), so the run's total stays the billable figure.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, api_calls: int = 0):
        super().__init__(message)
        self.api_calls = api_calls


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

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        request_id: str | None = None,
        api_calls: int = 0,
        transient: bool = False,
    ):
        self.code = code
        self.message = " ".join(str(message).split()) or code
        self.retryable = retryable
        #: A service or network fault (throttling, 5xx, timeouts, connections), not the image:
        #: what a streak of failures that stops the run is counted on.
        self.transient = transient
        self.request_id = request_id
        #: Billable calls spent on this image before it failed (answered attempts only).
        self.api_calls = api_calls
        super().__init__(f"{code}: {self.message}")


# --- The one table: AWS errors -> what they mean for a run ---------------------------------------
#
# In the spirit of s3fs's ``errors.py``: every botocore error code and client-side exception
# class the indexer knows is listed once, with its outcome and a short "why / what to do". The
# listing, the Rekognition engine and the S3 reads all translate through :func:`translate`.


class Outcome(enum.Enum):
    """What an AWS failure means for the run and for the image that met it."""

    #: No request can succeed (credentials, permissions on the action, endpoint): stop, exit 1;
    #: the images it touched stay un-analysed, so the next run picks them up.
    FATAL = "fatal"
    #: A configuration mistake the person must fix (exit 2).
    USAGE = "usage"
    #: Something that may pass (throttling, 5xx, timeouts, an unknown code): the image is
    #: recorded as failed-retryable and tried again by the next run.
    RETRYABLE = "retryable"
    #: Something about this image itself: recorded, not tried again until the object changes.
    PERMANENT = "permanent"


class Rule(NamedTuple):
    outcome: Outcome
    #: What failed, as the start of a one-line message ("AWS rejected the credentials").
    headline: str
    #: Why, and what to do about it.
    why: str
    #: The service never reached: for an endpoint that refuses connections, fatal when nothing in
    #: this run ever reached it (no endpoint / unreachable), else one transient fault among many.
    unreachable: bool = False
    #: Asking the service to slow down (feeds the adaptive rate limiter).
    throttling: bool = False
    #: Worth retrying at once within the same call (backoff), not only on the next run.
    transient: bool = False


def _fatal(headline: str, why: str, **kw: Any) -> Rule:
    return Rule(Outcome.FATAL, headline, why, **kw)


def _retry(why: str, *, throttling: bool = False, transient: bool = True, **kw: Any) -> Rule:
    return Rule(Outcome.RETRYABLE, "transient failure", why, throttling=throttling, transient=transient, **kw)


def _permanent(why: str) -> Rule:
    return Rule(Outcome.PERMANENT, "image rejected", why)


_CREDENTIALS = "AWS rejected the credentials"
_NOT_AUTHORIZED = "not authorized"
_THROTTLED = "the service asked to slow down; retried with backoff, then by the next run"
_SERVER = "a fault on AWS's side; retried with backoff, then by the next run"

#: Error codes (``Error.Code`` of a service answer).
ERROR_CODES: dict[str, Rule] = {
    # Credentials and signing: every request will fail the same way.
    "UnrecognizedClientException": _fatal(_CREDENTIALS, "the access key is unknown to AWS: check the profile / AWS_ACCESS_KEY_ID"),
    "InvalidClientTokenId": _fatal(_CREDENTIALS, "the access key is unknown to AWS: check the profile / AWS_ACCESS_KEY_ID"),
    "InvalidAccessKeyId": _fatal(_CREDENTIALS, "the access key is unknown to AWS: check the profile / AWS_ACCESS_KEY_ID"),
    "SignatureDoesNotMatch": _fatal(_CREDENTIALS, "the secret key does not match the access key: check the credentials"),
    "InvalidSignatureException": _fatal(_CREDENTIALS, "the request signature was refused (a wrong secret key, or this machine's clock is off: sync it with NTP)"),
    "RequestExpired": _fatal(_CREDENTIALS, "the request was signed too long ago: this machine's clock is off, sync it with NTP"),
    "RequestTimeTooSkewed": _fatal(_CREDENTIALS, "this machine's clock is off: sync it with NTP"),
    "ExpiredToken": _fatal(_CREDENTIALS, "the session credentials expired: refresh them (aws sso login / a new STS session) and run again"),
    "ExpiredTokenException": _fatal(_CREDENTIALS, "the session credentials expired: refresh them (aws sso login / a new STS session) and run again"),
    "InvalidToken": _fatal(_CREDENTIALS, "the session token is malformed or invalid: refresh the credentials"),
    "TokenRefreshRequired": _fatal(_CREDENTIALS, "the session token must be refreshed: refresh the credentials"),
    "AuthFailure": _fatal(_CREDENTIALS, "AWS could not authenticate the request: check the credentials"),
    "MissingAuthenticationToken": _fatal(_CREDENTIALS, "the request was not signed: check the credentials"),
    # Permission on the *action* (IAM), not on one image: every image would fail the same way.
    "AccessDeniedException": _fatal(_NOT_AUTHORIZED, "the identity lacks permission on the Rekognition action, e.g. rekognition:DetectFaces (IAM policy, SCP or permission boundary): grant it and run again"),
    "OptInRequired": _fatal(_NOT_AUTHORIZED, "the account is not subscribed to this service or region: enable it"),
    "SubscriptionRequiredException": _fatal(_NOT_AUTHORIZED, "the account is not subscribed to this service: enable it"),
    "AllAccessDisabled": _fatal(_NOT_AUTHORIZED, "all access to this bucket is disabled"),
    "AccountProblem": _fatal(_NOT_AUTHORIZED, "a problem with the AWS account stops this request: contact AWS support"),
    "NoSuchBucket": _fatal("bucket not found", "the bucket does not exist (or was deleted during the run)"),
    "ResourceNotFoundException": _fatal(
        "face collection not found",
        "the Rekognition face collection does not exist in this region (deleted during the run?): "
        "`indexer index --collection NAME` creates it",
    ),
    # Transient: throttling and server-side faults.
    "ProvisionedThroughputExceededException": _retry(_THROTTLED, throttling=True),
    "ThrottlingException": _retry(_THROTTLED, throttling=True),
    "Throttling": _retry(_THROTTLED, throttling=True),
    "ThrottledException": _retry(_THROTTLED, throttling=True),
    "RequestLimitExceeded": _retry(_THROTTLED, throttling=True),
    "TooManyRequestsException": _retry(_THROTTLED, throttling=True),
    "SlowDown": _retry(_THROTTLED, throttling=True),
    "LimitExceededException": _retry(_THROTTLED, throttling=True),
    "InternalServerError": _retry(_SERVER),
    "InternalError": _retry(_SERVER),
    "ServiceUnavailable": _retry(_SERVER),
    "ServiceUnavailableException": _retry(_SERVER),
    "RequestTimeout": _retry("the request timed out; retried with backoff, then by the next run"),
    "RequestTimeoutException": _retry("the request timed out; retried with backoff, then by the next run"),
    # S3 reads of one object that may work later (not retried at once: the same answer would come).
    "AccessDenied": _retry(
        "S3 refused to read this object (object ACL, KMS key or bucket policy); tried again by the next run, as the permission may be given back",
        transient=False,
    ),
    "KMS.DisabledException": _retry("the object's KMS key is disabled; tried again by the next run", transient=False),
    "InvalidObjectState": _retry(
        "the object is archived and not restored (e.g. an Intelligent-Tiering archive tier the listing does not show): "
        "restore it; tried again by the next run (a GET, no Rekognition call)",
        transient=False,
    ),
    # About the image itself: retrying the same bytes gives the same answer.
    "InvalidImageFormatException": _permanent("not a JPEG/PNG Rekognition can decode, and it could not be converted"),
    "ImageTooLargeException": _permanent("over Rekognition's size limit even after conversion and downscaling"),
    "InvalidParameterException": _permanent("Rekognition refused the image's parameters (e.g. under 80 px on a side)"),
    "InvalidS3ObjectException": _permanent("Rekognition cannot read the object, and reading it as bytes failed too"),
    # A deleted object is not listed again, so it is not retried; one uploaded again with the
    # same bytes has the same ETag, and must not stay failed forever.
    "NoSuchKey": _retry("the object was deleted between listing and analysis; tried again if a later listing has it", transient=False),
    # The indexer's own codes, recorded without calling the service.
    "EmptyObject": _permanent("a zero-byte object is not an image; nothing was called"),
    "ObjectArchived": Rule(
        Outcome.PERMANENT, "object archived",
        "GLACIER / DEEP_ARCHIVE object not restored, so unreadable; nothing was called; analysed automatically once restored",
    ),
    "ImageTooLarge": _permanent("over Rekognition's byte limit even at the smallest size and quality it accepts, or too elongated for a JPEG; nothing was called"),
    "ImageTooSmall": _permanent("under Rekognition's 80 px minimum on a side and too small to upscale sensibly; nothing was called"),
    "UnsupportedImageFormat": _permanent("a format the installed decoders cannot read (e.g. HEIC without pillow-heif); nothing was called"),
}

#: Client-side exception classes (botocore raises them without, or before, an answer), most
#: specific first; matched by class name along the exception's MRO.
EXCEPTION_CLASSES: tuple[tuple[str, Rule], ...] = (
    ("NoRegionError", Rule(Outcome.USAGE, "no AWS region configured", "pass --region, set [aws] region, or AWS_DEFAULT_REGION")),
    ("InvalidRegionError", Rule(Outcome.USAGE, "invalid AWS region", "pass a region name such as eu-west-1")),
    ("ProfileNotFound", Rule(Outcome.USAGE, "AWS profile not found", "check --profile against ~/.aws/config")),
    ("UnknownEndpointError", _fatal("no endpoint for the region", "the service is not offered in this region: choose a region where it is (--region)")),
    ("EndpointResolutionError", _fatal("no endpoint for the region", "botocore cannot resolve the service's endpoint for this region/configuration: check --region and AWS_ENDPOINT_URL_*")),
    ("NoCredentialsError", _fatal("no AWS credentials found", "set a profile (--profile) or AWS_* variables")),
    ("PartialCredentialsError", _fatal("incomplete AWS credentials", "both the access key and the secret key are needed")),
    ("UnauthorizedSSOTokenError", _fatal("the AWS SSO session expired", "run `aws sso login` (with the same profile) and run again")),
    ("SSOTokenLoadError", _fatal("the AWS SSO session expired", "run `aws sso login` (with the same profile) and run again")),
    ("TokenRetrievalError", _fatal("the AWS SSO session expired", "run `aws sso login` (with the same profile) and run again")),
    ("SSOError", _fatal("AWS SSO failed", "run `aws sso login` (with the same profile) and run again")),
    ("CredentialRetrievalError", _fatal("cannot obtain AWS credentials", "the credential process / provider failed: check the profile's credential source")),
    ("NoAuthTokenError", _fatal("no AWS token found", "log in again (aws sso login) and run again")),
    ("ConnectTimeoutError", _retry("connecting to the endpoint timed out; retried with backoff, then by the next run")),
    ("ReadTimeoutError", _retry("no answer in time; retried with backoff, then by the next run")),
    ("ConnectionClosedError", _retry("the connection closed before an answer; retried with backoff, then by the next run")),
    (
        "EndpointConnectionError",
        Rule(
            Outcome.RETRYABLE, "cannot reach the endpoint",
            "no connection could be opened (network, proxy, DNS, or no endpoint for the region): check them and run again",
            unreachable=True, transient=True,
        ),
    ),
    ("ConnectionError", _retry("a network fault; retried with backoff, then by the next run")),
    ("HTTPClientError", _retry("an HTTP-level fault; retried with backoff, then by the next run")),
    ("ParamValidationError", _permanent("botocore refused the request before sending it")),
)

#: Unknown codes are retryable (the next run tries again); this is the rule they get.
UNKNOWN_RULE = _retry("an error the indexer does not know; tried again by the next run", transient=False)
#: An HTTP 5xx with an unknown code is a server fault: retried at once too.
UNKNOWN_5XX_RULE = _retry(_SERVER)

#: Codes that mean this image will never work as it is: not retried until it changes.
PERMANENT_IMAGE_CODES = frozenset(code for code, rule in ERROR_CODES.items() if rule.outcome is Outcome.PERMANENT)


class AwsErrorInfo(NamedTuple):
    code: str
    message: str
    request_id: str | None
    http_status: int | None


def aws_error_info(err: BaseException) -> AwsErrorInfo:
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


def answered(err: BaseException) -> bool:
    """True when the service answered this request (a refusal is an answer: it is billable)."""
    response = getattr(err, "response", None)
    return bool(response and (response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode"))


def rule_for(err: BaseException) -> Rule:
    """The table's rule for ``err``: by error code for service answers, else by class name."""
    if answered(err) or getattr(err, "response", None):
        info = aws_error_info(err)
        if info.code in ERROR_CODES:
            return ERROR_CODES[info.code]
        return UNKNOWN_5XX_RULE if (info.http_status or 0) >= 500 else UNKNOWN_RULE
    names = {cls.__name__ for cls in type(err).__mro__}
    for name, rule in EXCEPTION_CLASSES:
        if name in names:
            return rule
    return UNKNOWN_RULE


def is_throttling(err: BaseException) -> bool:
    """True when the service asked us to slow down."""
    return answered(err) and rule_for(err).throttling


def is_transient(err: BaseException) -> bool:
    """True for faults worth retrying at once: throttling, 5xx, connection trouble."""
    return rule_for(err).transient


def translate(err: BaseException, doing: str, *, listing: bool = False, reached_before: bool = True, api_calls: int = 0) -> IndexerError:
    """The domain error for an AWS failure met while ``doing`` something.

    - fatal codes/classes -> :class:`FatalError` (exit 1), usage -> :class:`ConfigError` (exit 2);
    - an endpoint that refuses connections -> fatal when nothing in this run ever reached it
      (``reached_before`` false: no endpoint for the region, wrong URL, no network);
    - while ``listing`` every failure is fatal: a listing that cannot go on stops the run;
    - otherwise an :class:`ImageError`, retryable unless the code is known to be about the image.
    """
    if isinstance(err, IndexerError):
        return err
    rule = rule_for(err)
    info = aws_error_info(err)
    code = info.code if getattr(err, "response", None) else type(err).__name__
    rid = f" (request id {info.request_id})" if info.request_id else ""
    if rule.outcome is Outcome.USAGE:
        return ConfigError(f"{rule.headline} while {doing}: {rule.why}")
    if rule.outcome is Outcome.FATAL:
        # A service answer names its code (and request id, for AWS support); a client-side
        # exception's headline already says what it is.
        named = f"{code}{rid}: " if getattr(err, "response", None) else ""
        return FatalError(f"{rule.headline} while {doing}: {named}{rule.why}", api_calls=api_calls)
    if rule.unreachable and not reached_before:
        return FatalError(f"{rule.headline} while {doing}: {_one_line(str(err))}: {rule.why}", api_calls=api_calls)
    if listing:
        return FatalError(f"failed while {doing}: {code}{rid}: {_one_line(info.message)}", api_calls=api_calls)
    message = _one_line(info.message) + rid
    return ImageError(
        code, message, retryable=rule.outcome is Outcome.RETRYABLE, request_id=info.request_id, api_calls=api_calls,
        transient=rule.transient,
    )


def fatal_from_aws(err: BaseException, doing: str) -> IndexerError | None:
    """A fatal or usage error when ``err`` means no request can succeed, else None."""
    translated = translate(err, doing)
    return None if isinstance(translated, ImageError) else translated


def image_error_from_aws(err: BaseException, api_calls: int = 0) -> ImageError:
    """Classify a per-image AWS failure as retryable or permanent (callers handle fatal ones)."""
    translated = translate(err, "analysing an image", api_calls=api_calls)
    if isinstance(translated, ImageError):
        return translated
    info = aws_error_info(err)
    return ImageError(info.code, info.message, retryable=True, request_id=info.request_id, api_calls=api_calls)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***``, safe to print or log."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        import re

        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
