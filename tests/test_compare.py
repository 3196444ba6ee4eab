"""``indexer compare SOURCE TARGET``: CompareFaces on both engines, through the CLI and the API.

* The offline engine on real faces: public-domain White House portraits from PyPI's
  ``face_recognition`` 1.3.0 sdist (the files and SHA-256s ``test_local_embedding`` pins; skipped
  without PyPI or the model cache) and skimage's astronaut. Obama matches Obama at Similarity >= 80
  with the right box, Biden does not; in a group picture of Biden, Obama and the astronaut only
  Obama matches; an Obama photo stored sideways with an EXIF orientation gives the upright box.
* Rekognition through the tests' endpoint (botocore-validated) and moto S3: S3Object sent for both
  images, the answer in botocore's CompareFacesResponse shape, the threshold passed through, a
  faceless source an error and a faceless target no match (also when the service refuses it, as
  AWS documents), the same caller (retries) as ``index``.
* The two engines' ``--json`` documents have the same keys, down to each face's members.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from typer.main import get_command
from typer.testing import CliRunner

from indexer import api
from indexer.cli import app
from indexer.compare import COMPARED_FACE_MEMBERS, COMPARED_LANDMARKS
from indexer.config import load_config
from indexer.errors import ConfigError, FatalError
from indexer.engines.rekognition.faces import NO_FACES_MESSAGE
from tests.support.faces import LANDMARKS, face_detail
from tests.support.images import jpeg_bytes
from tests.support.rekognition_endpoint import OTHER_PERSON_MAX, SAME_PERSON_MIN

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _jpeg(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=92, **save)
    return buffer.getvalue()


def _response_shape_errors(response: dict) -> str | None:
    """What in ``response`` does not fit botocore's CompareFaces output shape (None: it fits)."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("rekognition").operation_model("CompareFaces").output_shape
    report = ParamValidator().validate(response, shape)
    return report.generate_report() if report.has_errors() else None


def _keys(response: dict) -> dict:
    """The key structure of a CompareFaces document: top level, source face, each match, each face."""
    faces = [match["Face"] for match in response["FaceMatches"]] + response["UnmatchedFaces"]
    return {
        "top": sorted(response),
        "source": sorted(response["SourceImageFace"]),
        "match": sorted({key for match in response["FaceMatches"] for key in match}),
        "face": sorted({key for face in faces for key in face}),
        "landmarks": sorted({mark["Type"] for face in faces for mark in face.get("Landmarks", [])}),
    }


def _inside(box: dict, left: float, right: float) -> bool:
    centre = box["Left"] + box["Width"] / 2
    return left < centre < right


# -- fixtures: real faces -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory, portrait_files):
    """Real photos as files: obama.jpg, obama3.jpg, biden.jpg (the pinned portraits), coffee.jpg (no
    face), group.jpg (Biden, Obama and the astronaut side by side) and obama_sideways.jpg (obama3's
    pixels turned a quarter, EXIF orientation 6 turning them upright again). Also ``bounds``: the
    left and right edges of each person in the group picture, as fractions of its width."""

    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photos")
    folder = tmp_path_factory.mktemp("compare-photos")
    for name, data in portrait_files.items():
        (folder / name).write_bytes(data)
    (folder / "coffee.jpg").write_bytes(_jpeg(Image.fromarray(skimage_data.coffee())))

    people = [Image.open(folder / "biden.jpg"), Image.open(folder / "obama3.jpg"), Image.fromarray(skimage_data.astronaut())]
    panels = [person.convert("RGB").resize((round(person.width * 360 / person.height), 360)) for person in people]
    group = Image.new("RGB", (sum(panel.width for panel in panels), 360), "white")
    bounds, x = {}, 0
    for name, panel in zip(("biden", "obama", "astronaut"), panels):
        group.paste(panel, (x, 0))
        bounds[name] = (x / group.width, (x + panel.width) / group.width)
        x += panel.width
    (folder / "group.jpg").write_bytes(_jpeg(group))

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels are the upright ones turned CCW
    (folder / "obama_sideways.jpg").write_bytes(_jpeg(Image.open(folder / "obama3.jpg").rotate(90, expand=True), exif=exif))
    return folder, bounds


@pytest.fixture
def local(models, aws_env, monkeypatch, rekognition):
    """The CLI and API on the offline engine's model cache; the Rekognition endpoint is there to
    show that nothing calls it."""
    monkeypatch.setenv("INDEXER_MODELS_DIR", str(models))
    return load_config(None, {})


@pytest.fixture(scope="module")
def engine(models):
    """One in-process offline engine for the API tests (the CLI opens its own)."""
    from indexer.engines.local import LocalEngine

    opened = LocalEngine(workers=0, models_dir=models, auto_install=False)
    yield opened
    opened.close()


# -- the command -----------------------------------------------------------------------------------------


def test_compare_has_help_text_naming_its_flags():
    command = get_command(app).commands["compare"]
    assert command.help and "SOURCE" in command.help and "TARGET" in command.help
    result = invoke("compare", "--help")
    assert result.exit_code == 0
    for flag in ("--engine", "--threshold", "--json"):
        assert flag in result.stdout


@pytest.mark.parametrize("value", ["-1", "100.5", "abc"])
def test_threshold_outside_0_100_is_refused_by_the_command_line(value, aws_env):
    result = invoke("compare", "a.jpg", "b.jpg", "--threshold", value)
    assert result.exit_code == 2 and "--threshold" in result.output


def test_api_refuses_a_threshold_outside_0_100_before_reading_anything(aws_env):
    with pytest.raises(ConfigError, match="threshold must be between 0 and 100, got 101"):
        api.compare(load_config(None, {}), "/no/such/a.jpg", "/no/such/b.jpg", threshold=101)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["/no/such/a.jpg", "{obama}"], 2, "source image not found: /no/such/a.jpg"),
        (["{obama}", "/no/such/b.jpg"], 2, "target image not found: /no/such/b.jpg"),
        (["{folder}", "{obama}"], 2, "source image is not a file: {folder}"),
        (["ftp://host/a.jpg", "{obama}"], 2, "unsupported source 'ftp://host/a.jpg'"),
        (["{obama}", "{obama}", "--engine", "gpu"], 2, "engine must be 'local' or 'rekognition', got 'gpu'"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_image(args, code, message, photos, local):
    folder, _ = photos
    fill = {"obama": str(folder / "obama.jpg"), "folder": str(folder)}
    result = invoke("compare", *[arg.format(**fill) for arg in args])
    assert result.exit_code == code, result.output
    assert message.format(**fill) in _one_error_line(result)


# -- the offline engine on real faces -----------------------------------------------------------------


def test_same_person_matches_at_80_with_the_box_of_the_face(photos, local, rekognition):
    folder, _ = photos
    result = invoke("compare", str(folder / "obama.jpg"), str(folder / "obama3.jpg"), "--json")

    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert _response_shape_errors(response) is None
    (match,) = response["FaceMatches"]
    assert match["Similarity"] >= 80 and response["UnmatchedFaces"] == []
    box = match["Face"]["BoundingBox"]
    # obama3.jpg's face: centred a little right of the middle, in the upper third (its own analysis).
    assert 0.4 < box["Left"] + box["Width"] / 2 < 0.65 and box["Top"] < 0.35 and 0.1 < box["Width"] < 0.3
    assert response["SourceImageFace"]["Confidence"] > 90
    assert rekognition.count() == 0, "a local file is never sent to the cloud by default"


def test_human_output_is_a_verdict_then_a_line_per_face(photos, local):
    folder, _ = photos
    result = invoke("compare", str(folder / "obama.jpg"), str(folder / "group.jpg"))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1 match among 3 faces in the target"
    assert lines[1].startswith("match      Similarity ") and " box " in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["unmatched", "unmatched", "source"]
    left, top, width, height = map(float, lines[-1].split("box ")[1].split()[0].split(","))
    assert 0 <= left < 1 and 0 <= top < 1 and 0 < width <= 1 and 0 < height <= 1


def test_another_person_is_unmatched_and_the_exit_is_still_0(photos, local):
    folder, _ = photos
    result = invoke("compare", str(folder / "obama.jpg"), str(folder / "biden.jpg"), "--json")

    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert response["FaceMatches"] == [] and len(response["UnmatchedFaces"]) == 1
    assert invoke("compare", str(folder / "obama.jpg"), str(folder / "biden.jpg")).stdout.startswith("no match among 1 face")


def test_in_a_group_only_the_same_person_matches(photos, local, engine):
    folder, bounds = photos
    response = api.compare(local, str(folder / "obama.jpg"), str(folder / "group.jpg"), engine=engine)

    (match,) = response["FaceMatches"]
    assert match["Similarity"] >= 80
    assert _inside(match["Face"]["BoundingBox"], *bounds["obama"])
    unmatched = response["UnmatchedFaces"]
    assert len(unmatched) == 2
    assert {name for face in unmatched for name in ("biden", "astronaut") if _inside(face["BoundingBox"], *bounds[name])} == {"biden", "astronaut"}


def test_the_threshold_decides_what_is_a_match_at_or_above_it(photos, local, engine):
    folder, _ = photos
    source, target = str(folder / "obama.jpg"), str(folder / "group.jpg")
    everyone = api.compare(local, source, target, engine=engine, threshold=0)

    scores = [match["Similarity"] for match in everyone["FaceMatches"]]
    assert len(scores) == 3 and everyone["UnmatchedFaces"] == []
    assert scores == sorted(scores, reverse=True) and scores[0] >= 80 > scores[1]
    at = api.compare(local, source, target, engine=engine, threshold=scores[1])
    assert [match["Similarity"] for match in at["FaceMatches"]] == scores[:2], "a face at the threshold matches"
    above = api.compare(local, source, target, engine=engine, threshold=min(100.0, scores[1] + 0.001))
    assert [match["Similarity"] for match in above["FaceMatches"]] == scores[:1]
    assert len(above["UnmatchedFaces"]) == 2


def test_the_largest_face_of_the_source_is_the_one_compared(photos, local, engine):
    folder, bounds = photos
    response = api.compare(local, str(folder / "group.jpg"), str(folder / "obama.jpg"), engine=engine)
    # The astronaut's face is the largest of the group picture: she is the one looked for.
    assert _inside(response["SourceImageFace"]["BoundingBox"], *bounds["astronaut"])
    assert response["FaceMatches"] == [] and len(response["UnmatchedFaces"]) == 1


def test_boxes_are_relative_to_the_image_turned_upright_by_exif(photos, local, engine):
    folder, _ = photos
    upright = api.compare(local, str(folder / "obama.jpg"), str(folder / "obama3.jpg"), engine=engine)
    sideways = api.compare(local, str(folder / "obama.jpg"), str(folder / "obama_sideways.jpg"), engine=engine)

    (a,), (b,) = upright["FaceMatches"], sideways["FaceMatches"]
    for key in ("Left", "Top", "Width", "Height"):
        assert b["Face"]["BoundingBox"][key] == pytest.approx(a["Face"]["BoundingBox"][key], abs=0.01), key


@pytest.mark.parametrize("fmt", ["TIFF", "GIF"])
def test_any_format_pillow_reads_is_compared(fmt, photos, local, engine, tmp_path):
    folder, _ = photos
    target = tmp_path / f"obama.{fmt.lower()}"
    Image.open(folder / "obama3.jpg").save(target, format=fmt)
    response = api.compare(local, str(folder / "obama.jpg"), str(target), engine=engine)
    assert len(response["FaceMatches"]) == 1


def test_a_source_without_a_face_is_one_line_and_exit_1(photos, local):
    folder, _ = photos
    result = invoke("compare", str(folder / "coffee.jpg"), str(folder / "obama.jpg"))
    assert result.exit_code == 1
    assert f"no face in the source image {folder / 'coffee.jpg'}" in _one_error_line(result)


def test_a_target_without_a_face_is_no_match_and_exit_0(photos, local):
    folder, _ = photos
    result = invoke("compare", str(folder / "obama.jpg"), str(folder / "coffee.jpg"), "--json")
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert (response["FaceMatches"], response["UnmatchedFaces"]) == ([], [])
    assert _response_shape_errors(response) is None
    text = invoke("compare", str(folder / "obama.jpg"), str(folder / "coffee.jpg")).stdout
    assert text.splitlines()[0] == "no match: no face in the target"


@pytest.mark.parametrize("content", [b"hello, not a photo\n", b""])
def test_a_file_that_is_no_image_is_one_line_naming_it(content, photos, local, tmp_path):
    folder, _ = photos
    bogus = tmp_path / "notes.jpg"
    bogus.write_bytes(content)
    for engine in ("local", "rekognition"):
        result = invoke("compare", str(folder / "obama.jpg"), str(bogus), "--engine", engine)
        assert result.exit_code == 1, (engine, result.output)
        line = _one_error_line(result)
        assert f"target image {bogus}" in line and "not an image" in line, line


def test_the_offline_engine_reads_s3_objects_itself(photos, local, s3, rekognition, engine):
    folder, _ = photos
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="people/obama.jpg", Body=(folder / "obama.jpg").read_bytes())
    result = invoke("compare", "s3://photos/people/obama.jpg", str(folder / "obama3.jpg"), "--json")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["FaceMatches"]) == 1
    assert rekognition.count() == 0, "a file in the pair: the offline engine, no cloud call"


# -- Rekognition -----------------------------------------------------------------------------------------


def _face(width: float, left: float) -> dict:
    return face_detail(box=(left, 0.1, width, width))


@pytest.fixture
def bucket(s3):
    s3.create_bucket(Bucket="photos")
    return s3


def _put(bucket, rekognition, key: str, seed: int, people: dict[str, float]) -> bytes:
    """An S3 object the endpoint knows: one face per person, ``people`` = {identity: face width}."""
    body = jpeg_bytes(seed, size=(240, 160))
    faces = [_face(width, 0.05 + 0.3 * i) for i, width in enumerate(people.values())]
    rekognition.register(body, faces, identities=list(people))
    bucket.put_object(Bucket="photos", Key=key, Body=body)
    return body


def test_rekognition_reads_both_s3_images_in_place_and_answers_in_its_shape(bucket, rekognition):
    source = _put(bucket, rekognition, "ann.jpg", 1, {"ann": 0.4})
    target = _put(bucket, rekognition, "party.jpg", 2, {"bob": 0.3, "ann": 0.2, "carl": 0.25})

    result = invoke("compare", "s3://photos/ann.jpg", "s3://photos/party.jpg", "--json")

    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert _response_shape_errors(response) is None
    (match,) = response["FaceMatches"]
    assert match["Similarity"] == rekognition.expected_similarity((source, 0), (target, 1)) >= SAME_PERSON_MIN
    assert match["Face"]["BoundingBox"]["Width"] == 0.2
    assert sorted(face["BoundingBox"]["Width"] for face in response["UnmatchedFaces"]) == [0.25, 0.3]
    assert [(call.operation, call.kind) for call in rekognition.calls] == [("CompareFaces", "S3Object+S3Object")]


def test_rekognition_human_output_and_threshold(bucket, rekognition):
    _put(bucket, rekognition, "ann.jpg", 3, {"ann": 0.4})
    _put(bucket, rekognition, "party.jpg", 4, {"bob": 0.3, "ann": 0.2})

    text = invoke("compare", "s3://photos/ann.jpg", "s3://photos/party.jpg").stdout.splitlines()
    assert text[0] == "1 match among 2 faces in the target"
    assert text[1].startswith("match      Similarity 99.") and text[1].endswith("box 0.3500,0.1000,0.2000,0.2000")
    assert text[2] == "unmatched  box 0.0500,0.1000,0.3000,0.3000"
    assert text[3] == "source     box 0.0500,0.1000,0.4000,0.4000  confidence 99.50"

    everyone = json.loads(invoke("compare", "s3://photos/ann.jpg", "s3://photos/party.jpg", "--threshold", "0", "--json").stdout)
    scores = [match["Similarity"] for match in everyone["FaceMatches"]]
    assert len(scores) == 2 and scores[1] < OTHER_PERSON_MAX and everyone["UnmatchedFaces"] == []
    strict = json.loads(invoke("compare", "s3://photos/ann.jpg", "s3://photos/party.jpg", "--threshold", "100", "--json").stdout)
    assert strict["FaceMatches"] == [] and len(strict["UnmatchedFaces"]) == 2


def test_rekognition_is_retried_by_the_same_caller_as_index(bucket, rekognition):
    _put(bucket, rekognition, "ann.jpg", 5, {"ann": 0.4})
    _put(bucket, rekognition, "ann2.jpg", 6, {"ann": 0.3})
    rekognition.drop_connections = 1  # the first request gets no answer at all

    result = invoke("compare", "s3://photos/ann.jpg", "s3://photos/ann2.jpg", "--json")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["FaceMatches"]) == 1
    assert rekognition.drop_connections == 0 and rekognition.count("ok", operation="CompareFaces") == 1


def test_rekognition_source_without_a_face_is_one_line_and_exit_1(bucket, rekognition):
    bucket.put_object(Bucket="photos", Key="wall.jpg", Body=jpeg_bytes(7, size=(240, 160)))
    _put(bucket, rekognition, "ann.jpg", 8, {"ann": 0.4})

    result = invoke("compare", "s3://photos/wall.jpg", "s3://photos/ann.jpg")

    assert result.exit_code == 1
    assert "no face in the source image s3://photos/wall.jpg" in _one_error_line(result)


def test_rekognition_target_without_a_face_is_no_match(bucket, rekognition):
    _put(bucket, rekognition, "ann.jpg", 9, {"ann": 0.4})
    bucket.put_object(Bucket="photos", Key="wall.jpg", Body=jpeg_bytes(10, size=(240, 160)))

    result = invoke("compare", "s3://photos/ann.jpg", "s3://photos/wall.jpg", "--json")

    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert (response["FaceMatches"], response["UnmatchedFaces"]) == ([], [])
    assert response["SourceImageFace"]["BoundingBox"]["Width"] == 0.4


def test_rekognition_refusing_a_faceless_target_as_aws_documents_is_still_no_match(bucket, rekognition):
    """AWS: "If no faces are detected in the source or target images, CompareFaces returns an
    InvalidParameterException error" - the answer does not say which image: one DetectFaces on
    the source tells."""
    _put(bucket, rekognition, "ann.jpg", 11, {"bob": 0.1, "ann": 0.4})
    wall = jpeg_bytes(12, size=(240, 160))
    bucket.put_object(Bucket="photos", Key="wall.jpg", Body=wall)
    rekognition.fail_on(wall, "InvalidParameterException", NO_FACES_MESSAGE)

    result = invoke("compare", "s3://photos/ann.jpg", "s3://photos/wall.jpg", "--json")

    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert (response["FaceMatches"], response["UnmatchedFaces"]) == ([], [])
    assert response["SourceImageFace"]["BoundingBox"]["Width"] == 0.4, "the largest face of the source"
    assert _response_shape_errors(response) is None
    assert [(call.operation, call.outcome) for call in rekognition.calls] == [
        ("CompareFaces", "InvalidParameterException"),
        ("DetectFaces", "ok"),
    ]


def test_rekognition_sends_local_files_as_bytes(bucket, rekognition, tmp_path):
    source = _put(bucket, rekognition, "ann.jpg", 13, {"ann": 0.4})
    (tmp_path / "ann.jpg").write_bytes(source)

    result = invoke("compare", str(tmp_path / "ann.jpg"), "s3://photos/ann.jpg", "--engine", "rekognition", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["FaceMatches"][0]["Similarity"] == 100.0, "the same face of the same image"
    assert [call.kind for call in rekognition.calls] == ["Bytes+S3Object"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["s3://photos/nobody.jpg", "s3://photos/ann.jpg"], 1, "source image not found: s3://photos/nobody.jpg"),
        (["s3://photos/ann.jpg", "s3://nobucket/x.jpg"], 1, "target image not found: s3://nobucket/x.jpg"),
        (["s3://photos/", "s3://photos/ann.jpg"], 2, "source 's3://photos/' names no S3 object"),
        (["s3://photos/ann.jpg", "s3://photos/empty.jpg"], 1, "target image s3://photos/empty.jpg is empty"),
    ],
)
def test_rekognition_missing_or_empty_objects_are_one_line_naming_them(args, code, message, bucket, rekognition):
    _put(bucket, rekognition, "ann.jpg", 14, {"ann": 0.4})
    bucket.put_object(Bucket="photos", Key="empty.jpg", Body=b"")

    result = invoke("compare", *args)

    assert result.exit_code == code, result.output
    assert message in _one_error_line(result)
    assert rekognition.count() == 0, "nothing is called for an image that cannot be compared"


def test_rekognition_without_credentials_is_one_line_and_exit_1(bucket, rekognition, monkeypatch, tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(15, size=(240, 160)))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke("compare", str(tmp_path / "a.jpg"), str(tmp_path / "a.jpg"), "--engine", "rekognition")
    assert result.exit_code == 1
    assert "no AWS credentials found" in _one_error_line(result)


# -- both engines -----------------------------------------------------------------------------------------


def test_json_has_the_same_keys_on_both_engines(photos, local, bucket, rekognition, engine):
    folder, _ = photos
    offline = api.compare(local, str(folder / "obama.jpg"), str(folder / "group.jpg"), engine=engine)
    _put(bucket, rekognition, "ann.jpg", 16, {"ann": 0.4})
    _put(bucket, rekognition, "party.jpg", 17, {"bob": 0.3, "ann": 0.2})
    service = json.loads(invoke("compare", "s3://photos/ann.jpg", "s3://photos/party.jpg", "--json").stdout)

    assert _keys(offline) == _keys(service)
    assert _keys(offline)["top"] == ["FaceMatches", "SourceImageFace", "UnmatchedFaces"]
    assert _keys(offline)["face"] == sorted(COMPARED_FACE_MEMBERS)
    assert _keys(offline)["landmarks"] == sorted(COMPARED_LANDMARKS) == sorted(LANDMARKS)
    assert _response_shape_errors(offline) is None and _response_shape_errors(service) is None


def test_compared_face_members_are_botocores():
    import botocore.session

    model = botocore.session.get_session().get_service_model("rekognition")
    assert tuple(model.shape_for("ComparedFace").members) == COMPARED_FACE_MEMBERS
    assert COMPARED_LANDMARKS <= set(model.shape_for("LandmarkType").enum)


def test_api_errors_are_domain_errors(photos, local, engine):
    folder, _ = photos
    with pytest.raises(FatalError, match="no face in the source image"):
        api.compare(local, str(folder / "coffee.jpg"), str(folder / "obama.jpg"), engine=engine)
    with pytest.raises(ConfigError, match="target image not found"):
        api.compare(local, str(folder / "obama.jpg"), str(folder / "nobody.jpg"), engine=engine)
