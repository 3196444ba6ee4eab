"""The adaptive limiter and retry classification, against a real throttling endpoint."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from indexer.aws import make_client
from indexer.errors import image_error_from_aws, is_throttling, is_transient
from indexer.ratelimit import AdaptiveRateLimiter, CallFailed, RetryingCaller, RetryPolicy
from tests.support.images import jpeg_bytes


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"}}, "DetectFaces")


@pytest.mark.parametrize(
    "error, transient, throttling",
    [
        (client_error("ProvisionedThroughputExceededException"), True, True),
        (client_error("ThrottlingException"), True, True),
        (client_error("InternalServerError", 500), True, False),
        (client_error("SomethingNew", 503), True, False),
        (EndpointConnectionError(endpoint_url="http://x"), True, False),
        (client_error("InvalidImageFormatException"), False, False),
        (client_error("AccessDeniedException", 403), False, False),
        (client_error("ImageTooLargeException"), False, False),
    ],
)
def test_retry_classification(error, transient, throttling):
    assert is_transient(error) is transient
    assert is_throttling(error) is throttling


def test_permanent_failure_keeps_code_and_request_id():
    error = image_error_from_aws(client_error("InvalidImageFormatException"))
    assert (error.code, error.retryable, error.request_id) == ("InvalidImageFormatException", False, "r-1")


def test_retrying_caller_retries_transient_then_gives_up_and_counts_calls():
    attempts = []

    def flaky():
        attempts.append(1)
        raise client_error("InternalServerError", 500)

    caller = RetryingCaller(None, RetryPolicy(max_attempts=4, base_delay=0.001), sleep=lambda s: None)
    with pytest.raises(CallFailed) as raised:
        caller.call(flaky)
    assert len(attempts) == 4 and caller.calls == 4 and raised.value.attempts == 4
    assert isinstance(raised.value.cause, ClientError) and raised.value.answered == 4


def test_retrying_caller_does_not_retry_permanent_errors():
    caller = RetryingCaller(None, RetryPolicy(max_attempts=5), sleep=lambda s: None)

    def bad():
        raise client_error("InvalidImageFormatException")

    with pytest.raises(CallFailed) as raised:
        caller.call(bad)
    assert caller.calls == 1 and isinstance(raised.value.cause, ClientError)


def test_limiter_ignores_isolated_throttles():
    now = [0.0]
    limiter = AdaptiveRateLimiter(100, clock=lambda: now[0], sleep=lambda s: None)
    for i in range(300):  # one throttle in a hundred calls: noise, not a ceiling
        now[0] += 0.01
        limiter.record(throttled=(i % 100 == 50))
    assert limiter.rate == 100


def test_limiter_settles_just_under_a_simulated_service_ceiling():
    """A token-bucket service admitting 60/s (burst 5), paced by the limiter on a virtual clock."""
    now = [0.0]
    limiter = AdaptiveRateLimiter(200, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    tokens, last, outcomes = 5.0, 0.0, []
    for _ in range(3000):
        limiter.acquire()
        tokens, last = min(5.0, tokens + (now[0] - last) * 60), now[0]
        throttled = tokens < 1
        tokens -= 0 if throttled else 1
        outcomes.append(throttled)
        limiter.record(throttled=throttled)
    admitted_rate = outcomes[-1000:].count(False) / (1000 / limiter.rate)
    assert 45 <= limiter.rate <= 66, limiter.rate
    assert outcomes[-1000:].count(True) < 100, "under 10% refused once settled"
    assert outcomes.count(True) < 0.1 * len(outcomes)
    assert admitted_rate > 0


@pytest.mark.slow
def test_limiter_converges_under_a_throttling_endpoint(rekognition, s3):
    """16 threads, ceiling set 4x too high: the achieved rate settles just under what is admitted."""
    rekognition.behaviour.admit_per_second = 25
    image = jpeg_bytes(5)
    session = boto3.Session()
    client = make_client(session, "rekognition", pool=16, max_attempts=1)
    limiter = AdaptiveRateLimiter(100)
    caller = RetryingCaller(limiter, RetryPolicy(max_attempts=8, base_delay=0.05, max_delay=1.0))
    done = []
    deadline = time.monotonic() + 4.0

    def worker():
        while time.monotonic() < deadline:
            caller.call(lambda: client.detect_faces(Image={"Bytes": image}, Attributes=["ALL"]))
            done.append(time.monotonic())

    refused = "ProvisionedThroughputExceededException"
    warm = {}
    timer = threading.Timer(2.0, lambda: warm.setdefault("refused", rekognition.count(refused)))
    threads = [threading.Thread(target=worker) for _ in range(16)]
    timer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    late = [t for t in done if deadline - 2.0 < t <= deadline]  # the last two seconds, after adapting
    assert 15 <= len(late) / 2.0 <= 26, len(late)
    assert limiter.rate < 35, limiter.rate
    refused_late = rekognition.count(refused) - warm["refused"]
    assert refused_late < 0.15 * len(late), (refused_late, len(late))
