"""The one AWS error table, and run-wide failures through the real pipeline and CLI.

Everything runs against moto's S3 and the tests' Rekognition endpoint, which answers refusals,
dropped connections and unknown codes the way the real service would.
"""

from __future__ import annotations

import json
import socket

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
    UnknownEndpointError,
)
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.config import load_config
from indexer.errors import (
    ERROR_CODES,
    EXCEPTION_CLASSES,
    PERMANENT_IMAGE_CODES,
    ConfigError,
    FatalError,
    ImageError,
    Outcome,
    rule_for,
    translate,
)
from indexer.pipeline import MAX_CONSECUTIVE_TRANSIENT_FAILURES
from indexer.store.repository import Store
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes

runner = CliRunner()


def client_error(code: str, status: int = 400, request_id: str | None = "req-1") -> ClientError:
    meta = {"HTTPStatusCode": status, **({"RequestId": request_id} if request_id else {})}
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}, "ResponseMetadata": meta}, "DetectFaces")


def _config(db_url: str, **flags):
    return load_config(flags={"db_url": db_url, "concurrency": 4, **flags}, environ={})


# -- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error, outcome",
    [
        (client_error("AccessDeniedException"), Outcome.FATAL),
        (client_error("UnrecognizedClientException"), Outcome.FATAL),
        (client_error("InvalidSignatureException", 403), Outcome.FATAL),
        (client_error("ExpiredTokenException"), Outcome.FATAL),
        (UnauthorizedSSOTokenError(), Outcome.FATAL),
        (TokenRetrievalError(provider="sso", error_msg="expired"), Outcome.FATAL),
        (SSOTokenLoadError(error_msg="expired"), Outcome.FATAL),
        (NoCredentialsError(), Outcome.FATAL),
        (UnknownEndpointError(service_name="rekognition", region_name="xx-east-9"), Outcome.FATAL),
        (NoRegionError(), Outcome.USAGE),
        (client_error("ThrottlingException"), Outcome.RETRYABLE),
        (client_error("InternalServerError", 500), Outcome.RETRYABLE),
        (client_error("SomethingNobodyKnows", 400), Outcome.RETRYABLE),
        (client_error("AccessDenied", 403), Outcome.RETRYABLE),
        (ReadTimeoutError(endpoint_url="http://x"), Outcome.RETRYABLE),
        (ConnectTimeoutError(endpoint_url="http://x"), Outcome.RETRYABLE),
        (client_error("InvalidImageFormatException"), Outcome.PERMANENT),
        (client_error("ImageTooLargeException"), Outcome.PERMANENT),
        (client_error("InvalidParameterException"), Outcome.PERMANENT),
    ],
)
def test_every_error_has_one_outcome(error, outcome):
    assert rule_for(error).outcome is outcome


def test_unknown_codes_are_retryable_and_keep_code_message_and_request_id():
    error = translate(client_error("BrandNewException"), "calling Rekognition")
    assert isinstance(error, ImageError)
    assert (error.code, error.retryable, error.request_id) == ("BrandNewException", True, "req-1")
    assert "req-1" in error.message


def test_only_codes_about_the_image_are_permanent():
    """The permanent set is derived from the table, and holds nothing about credentials or rate."""
    assert "InvalidImageFormatException" in PERMANENT_IMAGE_CODES
    for code in ("AccessDeniedException", "UnrecognizedClientException", "ThrottlingException", "AccessDenied"):
        assert code not in PERMANENT_IMAGE_CODES
    for code in PERMANENT_IMAGE_CODES:
        error = translate(client_error(code), "calling Rekognition")
        assert isinstance(error, ImageError) and error.retryable is False, code


def test_fatal_lines_say_what_failed_and_what_to_do_with_the_request_id():
    error = translate(client_error("AccessDeniedException", request_id="abc-123"), "calling Rekognition")
    assert isinstance(error, FatalError)
    line = str(error)
    assert "\n" not in line and "AccessDeniedException" in line and "abc-123" in line and "rekognition:DetectFaces" in line


def test_every_rule_has_a_reason():
    for name, rule in list(ERROR_CODES.items()) + list(EXCEPTION_CLASSES):
        assert rule.why and rule.headline, name


def test_an_unreachable_endpoint_is_fatal_only_when_nothing_ever_reached_it():
    error = EndpointConnectionError(endpoint_url="https://rekognition.example")
    assert isinstance(translate(error, "calling Rekognition", reached_before=False), FatalError)
    later = translate(error, "calling Rekognition", reached_before=True)
    assert isinstance(later, ImageError) and later.retryable


def test_a_listing_that_fails_for_any_reason_is_fatal():
    assert isinstance(translate(client_error("SomethingNobodyKnows"), "listing s3://b/", listing=True), FatalError)


# -- through the pipeline -----------------------------------------------------------------------


@pytest.fixture
def photos(s3, rekognition):
    """30 JPEGs, each with one face."""
    s3.create_bucket(Bucket="photos")
    for i in range(30):
        body = jpeg_bytes(7000 + i)
        rekognition.register(body, [face_detail(smile=bool(i % 2))])
        s3.put_object(Bucket="photos", Key=f"p/img{i:03d}.jpg", Body=body)
    return 30


def _statuses(store: Store) -> dict[str, int]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM images GROUP BY status")).all())


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"])
def test_permission_withdrawn_mid_run_stops_the_run_and_the_rerun_indexes_everything(photos, rekognition, sqlite_url, sqlite_store, code):
    rekognition.refuse_after(10, code)
    with pytest.raises(FatalError, match=code) as raised:
        api.index("s3://photos/p/", config=_config(sqlite_url, concurrency=2))
    assert "\n" not in str(raised.value)
    statuses = _statuses(sqlite_store)
    assert statuses.get("failed", 0) == 0, "a run-wide failure never poisons images"
    assert statuses.get("indexed", 0) <= 10
    run = sqlite_store.runs(1)[0]
    assert run.status == "failed" and code in (run.error or "")
    assert run.api_calls >= statuses.get("indexed", 0), "refusals that got an answer are counted"

    rekognition.refuse = None
    again = api.index("s3://photos/p/", config=_config(sqlite_url))
    assert (again.analyzed + again.skipped_unchanged, again.failed) == (photos, 0)
    assert _statuses(sqlite_store) == {"indexed": photos}


def test_sso_token_expiring_mid_run_stops_the_run_and_nothing_is_recorded_failed(photos, rekognition, sqlite_url, sqlite_store):
    config = _config(sqlite_url, concurrency=2)
    engine = api.open_engine("rekognition", config)
    signed = {"n": 0}

    def sign(**_kwargs):  # botocore refreshes credentials while signing: that is where SSO expiry surfaces
        signed["n"] += 1
        if signed["n"] > 8:
            raise UnauthorizedSSOTokenError()

    engine.client.meta.events.register("before-sign.rekognition.DetectFaces", sign)
    with pytest.raises(FatalError, match="SSO session expired.*aws sso login"):
        api.index("s3://photos/p/", config=config, engine=engine)
    assert _statuses(sqlite_store).get("failed", 0) == 0
    run = sqlite_store.runs(1)[0]
    indexed = _statuses(sqlite_store).get("indexed", 0)
    assert run.api_calls == indexed, "credential failures never reached the service: not calls"

    again = api.index("s3://photos/p/", config=_config(sqlite_url))
    assert again.failed == 0 and _statuses(sqlite_store) == {"indexed": photos}


def test_an_unknown_error_code_is_recorded_retryable_and_tried_again_next_run(photos, rekognition, sqlite_url, sqlite_store):
    odd = jpeg_bytes(7003)
    rekognition.fail_on(odd, "ShinyNewException", "something new")
    first = api.index("s3://photos/p/", config=_config(sqlite_url))
    assert (first.analyzed, first.failed, first.api_calls) == (photos - 1, 1, photos)
    row = sqlite_store.image("s3://photos/p/img003.jpg")
    assert (row["status"], row["error_code"]) == ("failed", "ShinyNewException")
    assert sqlite_store.known(["s3://photos/p/img003.jpg"])["s3://photos/p/img003.jpg"].retryable is True

    rekognition.errors_by_digest.clear()
    second = api.index("s3://photos/p/", config=_config(sqlite_url))
    assert (second.analyzed, second.skipped_unchanged, second.api_calls) == (1, photos - 1, 1)


def test_consecutive_connection_failures_stop_the_run(photos, rekognition, sqlite_url, sqlite_store):
    rekognition.drop_connections = 10_000  # every request: the connection closes with no answer
    config = _config(sqlite_url, concurrency=2, retry_attempts=1)
    with pytest.raises(FatalError, match=rf"stopped after {MAX_CONSECUTIVE_TRANSIENT_FAILURES} images in a row failed"):
        api.index("s3://photos/p/", config=config)
    run = sqlite_store.runs(1)[0]
    assert run.status == "failed" and run.api_calls == 0, "dropped connections got no answer: not calls"
    failed = run.failed
    assert MAX_CONSECUTIVE_TRANSIENT_FAILURES <= failed < photos, "stopped before grinding through the bucket"

    rekognition.drop_connections = 0
    again = api.index("s3://photos/p/", config=_config(sqlite_url))
    assert again.failed == 0 and _statuses(sqlite_store) == {"indexed": photos}


@pytest.mark.slow
def test_throttled_answers_are_calls_and_dropped_connections_are_not(photos, rekognition, sqlite_url):
    rekognition.drop_connections = 3
    first_image = jpeg_bytes(7000)
    rekognition.fail_on(first_image, "ThrottlingException", "Rate exceeded")
    summary = api.index("s3://photos/p/", config=_config(sqlite_url, concurrency=1, retry_attempts=6))
    # One worker, img000 first: its 6 attempts are 3 dropped connections (no answer: not calls)
    # and 3 throttled answers (calls), then it is recorded retryable; 29 others answered once.
    assert rekognition.count() == 3 + (photos - 1)
    assert summary.api_calls == rekognition.count()
    assert summary.failed == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_endpoint_that_cannot_be_reached_stops_the_run_at_once(photos, monkeypatch, sqlite_url, sqlite_store):
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(FatalError, match="cannot reach the endpoint while calling Rekognition"):
        api.index("s3://photos/p/", config=_config(sqlite_url, retry_attempts=2))
    assert _statuses(sqlite_store).get("failed", 0) == 0


def test_a_region_without_rekognition_is_fatal_before_any_call(photos, monkeypatch, sqlite_url):
    monkeypatch.delenv("AWS_ENDPOINT_URL_REKOGNITION")
    with pytest.raises(FatalError, match="no endpoint for the region: rekognition is not offered in us-nowhere-9"):
        api.index("s3://photos/p/", config=_config(sqlite_url, region="us-nowhere-9"))


def test_no_region_is_one_line_and_exit_2(photos, monkeypatch, sqlite_url):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = runner.invoke(app, ["index", "s3://photos/p/", "--db", sqlite_url, "--json"], catch_exceptions=False)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no AWS region configured" in lines[0] and "--region" in lines[0]
    assert "Traceback" not in result.output


def test_cli_access_denied_mid_run_is_exit_1_one_line(photos, rekognition, sqlite_url):
    rekognition.refuse_after(5, "AccessDeniedException")
    result = runner.invoke(app, ["index", "s3://photos/p/", "--db", sqlite_url, "--concurrency", "2"], catch_exceptions=False)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AccessDeniedException" in lines[0] and "grant it and run again" in lines[0]
    rekognition.refuse = None
    result = runner.invoke(app, ["index", "s3://photos/p/", "--db", sqlite_url, "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and summary["analyzed"] + summary["skipped_unchanged"] == photos


def test_image_error_declares_its_calls():
    error = ImageError("X", "y", api_calls=3)
    assert error.api_calls == 3 and FatalError("z", api_calls=2).api_calls == 2
    assert isinstance(translate(NoRegionError(), "x"), ConfigError)


def test_many_per_image_failures_in_a_row_do_not_stop_the_run(photos, rekognition, sqlite_url):
    """Only a run of *service/network* faults is an outage; bad or odd images never are."""
    for i in range(25):
        rekognition.fail_on(jpeg_bytes(7000 + i), "ShinyNewException", "something new")
    summary = api.index("s3://photos/p/", config=_config(sqlite_url, concurrency=1))
    assert summary.status == "completed"
    assert (summary.failed, summary.analyzed) == (25, photos - 25)


def test_an_outage_of_mixed_faults_stops_the_run_and_a_tls_failure_counts():
    """Read timeouts, connect timeouts and a broken proxy's TLS errors alternate in a real outage:
    any transient cause continues the streak (classified along the exception's class, so
    botocore's SSLError, a ConnectionError, counts too)."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError, SSLError

    from indexer.core import ImageRef
    from indexer.errors import translate
    from indexer.pipeline import MAX_CONSECUTIVE_TRANSIENT_FAILURES, _FailureStreak
    from indexer.store.repository import ImageOutcome

    faults = [
        SSLError(endpoint_url="https://rekognition", error="certificate verify failed"),
        ReadTimeoutError(endpoint_url="https://rekognition"),
        ConnectTimeoutError(endpoint_url="https://rekognition"),
    ]
    streak, stopped = _FailureStreak(), None
    for i in range(MAX_CONSECUTIVE_TRANSIENT_FAILURES):
        error = translate(faults[i % 3], "analysing an image")
        assert error.transient and error.retryable, type(faults[i % 3]).__name__
        stopped = streak.observe(ImageOutcome(ImageRef(uri=f"s3://b/{i}.jpg", size=1, fingerprint="f"), "rekognition", error=error))
        if i < MAX_CONSECUTIVE_TRANSIENT_FAILURES - 1:
            assert stopped is None
    assert stopped is not None and "in a row" in str(stopped)
