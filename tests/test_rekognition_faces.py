"""Comparing faces and face collections on Rekognition, through boto3 against the tests' endpoint.

Two halves: the endpoint refuses what AWS refuses and answers in the service's shapes (so the
client is tested against something that behaves like the service), and the client
(:mod:`indexer.engines.rekognition.faces`) sends, pages, batches and maps what it should.
Who matches whom is stated by the identities each fixture face is registered with.
"""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.exceptions import ClientError

from indexer.core import CollectionFaces, ImageRef
from indexer.engines.rekognition.engine import RekognitionEngine
from indexer.engines.rekognition.faces import (
    DELETE_FACES_MAX,
    EXTERNAL_IMAGE_ID_MAX,
    NO_FACES_MESSAGE,
    NoFaceError,
    check_collection_id,
    compare_faces,
    delete_faces,
    ensure_collection,
    external_image_id,
    index_faces,
    search_faces,
    search_faces_by_image,
    uri_from_external_image_id,
)
from indexer.errors import ConfigError, IndexerError
from tests.support.faces import face_detail
from tests.support.images import jpeg_bytes
from tests.support.rekognition_endpoint import FACE_MODEL_VERSION, OTHER_PERSON_MAX, SAME_PERSON_MIN

EXTERNAL_ID = re.compile(r"[a-zA-Z0-9_.\-:]+")


@pytest.fixture
def client(rekognition):
    """A boto3 client on the endpoint (AWS_ENDPOINT_URL_REKOGNITION), one attempt per call."""
    from botocore.config import Config

    return boto3.client("rekognition", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture
def engine(client, s3):
    s3.create_bucket(Bucket="photos")
    return RekognitionEngine(client, s3_client=s3)


def _error(excinfo) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def _face(width: float, left: float = 0.05, **attributes):
    """A face whose bounding box is ``width`` wide (and as high): its size orders it."""
    return face_detail(box=(left, 0.1, width, width), **attributes)


def _image(rekognition, seed: int, people: dict[str, float]) -> bytes:
    """A registered image holding one face per person, ``people`` = {identity: face width}."""
    body = jpeg_bytes(seed)
    rekognition.register(body, [_face(w, left=0.05 + 0.1 * i) for i, w in enumerate(people.values())], identities=list(people))
    return body


def _local(body: bytes, name: str = "/photos/x.jpg") -> tuple[ImageRef, object]:
    return ImageRef(uri=name, size=len(body), fingerprint="f", path=name), lambda: body


def _in_s3(s3, body: bytes, key: str) -> tuple[ImageRef, object]:
    s3.put_object(Bucket="photos", Key=key, Body=body)
    return ImageRef(uri=f"s3://photos/{key}", size=len(body), fingerprint="e", s3_location=("photos", key)), lambda: body


# -- the endpoint refuses what AWS refuses ----------------------------------------------------------


@pytest.mark.parametrize("name", ["my photos", "a/b", "x" * 256, "ünï"])
def test_collection_ids_outside_the_pattern_or_length_are_a_validation_error(client, name):
    with pytest.raises(ClientError) as excinfo:
        client.create_collection(CollectionId=name)
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: ") and "at 'collectionId' failed to satisfy constraint" in message
    assert client.list_collections()["CollectionIds"] == []


def test_external_image_id_with_a_slash_is_refused_and_nothing_is_indexed(client, rekognition):
    body = _image(rekognition, 1, {"ann": 0.3})
    client.create_collection(CollectionId="people")
    with pytest.raises(ClientError) as excinfo:
        client.index_faces(CollectionId="people", Image={"Bytes": body}, ExternalImageId="photos/a.jpg")
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert "Value 'photos/a.jpg' at 'externalImageId'" in message and r"pattern: [a-zA-Z0-9_.\-:]+" in message
    assert client.describe_collection(CollectionId="people")["FaceCount"] == 0


@pytest.mark.parametrize(
    "call, member",
    [
        (lambda c, img: c.compare_faces(SourceImage=img, TargetImage=img, SimilarityThreshold=101), "similarityThreshold"),
        (lambda c, img: c.search_faces_by_image(CollectionId="people", Image=img, FaceMatchThreshold=100.5), "faceMatchThreshold"),
        (lambda c, img: c.search_faces_by_image(CollectionId="people", Image=img, MaxFaces=4097), "maxFaces"),
        (lambda c, img: c.list_faces(CollectionId="people", MaxResults=4097), "maxResults"),
        (lambda c, img: c.search_faces(CollectionId="people", FaceId="not-a-face-id"), "faceId"),
        (lambda c, img: c.index_faces(CollectionId="people", Image=img, QualityFilter="SUPERB"), "qualityFilter"),
    ],
)
def test_out_of_range_values_are_a_validation_error_naming_the_member(client, rekognition, call, member):
    body = _image(rekognition, 2, {"ann": 0.3})
    client.create_collection(CollectionId="people")
    with pytest.raises(ClientError) as excinfo:
        call(client, {"Bytes": body})
    code, message = _error(excinfo)
    assert code == "ValidationException" and f"at '{member}' failed to satisfy constraint" in message
    assert rekognition.calls[-1].outcome == "ValidationException"


def test_threshold_over_100_is_worded_as_the_service_words_it(client, rekognition):
    body = _image(rekognition, 3, {"ann": 0.3})
    with pytest.raises(ClientError) as excinfo:
        client.compare_faces(SourceImage={"Bytes": body}, TargetImage={"Bytes": body}, SimilarityThreshold=101)
    assert _error(excinfo)[1] == (
        "1 validation error detected: Value '101.0' at 'similarityThreshold' failed to satisfy constraint: "
        "Member must have value less than or equal to 100"
    )


def test_more_than_4096_face_ids_in_one_delete_is_refused(client):
    client.create_collection(CollectionId="people")
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(DELETE_FACES_MAX + 1)]
    with pytest.raises(ClientError) as excinfo:
        client.delete_faces(CollectionId="people", FaceIds=ids)
    code, message = _error(excinfo)
    assert code == "ValidationException" and "at 'faceIds' failed to satisfy constraint: Member must have length less than or equal to 4096" in message


@pytest.mark.parametrize(
    "operation",
    ["describe_collection", "delete_collection", "index_faces", "list_faces", "search_faces", "search_faces_by_image", "delete_faces"],
)
def test_a_missing_collection_is_resource_not_found_in_aws_words(client, rekognition, operation):
    body = _image(rekognition, 4, {"ann": 0.3})
    arguments = {
        "index_faces": {"Image": {"Bytes": body}},
        "search_faces_by_image": {"Image": {"Bytes": body}},
        "search_faces": {"FaceId": "0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11"},
        "delete_faces": {"FaceIds": ["0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11"]},
    }.get(operation, {})
    with pytest.raises(ClientError) as excinfo:
        getattr(client, operation)(CollectionId="nobody", **arguments)
    assert _error(excinfo) == ("ResourceNotFoundException", "The collection id: nobody does not exist")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_creating_an_existing_collection_is_resource_already_exists(client):
    created = client.create_collection(CollectionId="people")
    assert created["StatusCode"] == 200 and created["FaceModelVersion"] == FACE_MODEL_VERSION
    assert created["CollectionArn"].endswith(":collection/people")
    with pytest.raises(ClientError) as excinfo:
        client.create_collection(CollectionId="people")
    assert _error(excinfo) == ("ResourceAlreadyExistsException", "The collection id: people already exists.")
    client.delete_collection(CollectionId="people")
    assert client.list_collections()["CollectionIds"] == []


@pytest.mark.parametrize("operation", ["compare_faces", "search_faces_by_image"])
def test_no_face_in_the_searched_image_is_invalid_parameter(client, rekognition, operation):
    faceless, with_face = jpeg_bytes(5), _image(rekognition, 6, {"ann": 0.3})
    client.create_collection(CollectionId="people")
    with pytest.raises(ClientError) as excinfo:
        if operation == "compare_faces":
            client.compare_faces(SourceImage={"Bytes": faceless}, TargetImage={"Bytes": with_face})
        else:
            client.search_faces_by_image(CollectionId="people", Image={"Bytes": faceless})
    assert _error(excinfo) == ("InvalidParameterException", NO_FACES_MESSAGE)


def test_images_of_every_operation_meet_detect_faces_limits(client, rekognition):
    small = jpeg_bytes(7, size=(60, 90))
    big = _image(rekognition, 8, {"ann": 0.3})
    with pytest.raises(ClientError) as excinfo:
        client.compare_faces(SourceImage={"Bytes": big}, TargetImage={"Bytes": small})
    assert _error(excinfo) == ("InvalidParameterException", "Request has invalid parameters")
    with pytest.raises(ClientError) as excinfo:
        client.compare_faces(SourceImage={"Bytes": big}, TargetImage={"Bytes": b"GIF89a not a jpeg"})
    assert _error(excinfo)[0] == "InvalidImageFormatException"


def test_searching_an_unknown_face_id_is_invalid_parameter(client, rekognition):
    client.create_collection(CollectionId="people")
    with pytest.raises(ClientError) as excinfo:
        client.search_faces(CollectionId="people", FaceId="0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11")
    assert _error(excinfo) == ("InvalidParameterException", "faceId was not found in the collection.")


def test_list_faces_pages_with_next_token_and_refuses_a_forged_one(client, rekognition):
    body = _image(rekognition, 9, {f"p{i}": 0.3 - 0.02 * i for i in range(5)})
    client.create_collection(CollectionId="people")
    indexed = client.index_faces(CollectionId="people", Image={"Bytes": body}, MaxFaces=10)
    pages = list(client.get_paginator("list_faces").paginate(CollectionId="people", PaginationConfig={"PageSize": 2}))

    assert [len(page["Faces"]) for page in pages] == [2, 2, 1]
    listed = [face["FaceId"] for page in pages for face in page["Faces"]]
    assert sorted(listed) == sorted(record["Face"]["FaceId"] for record in indexed["FaceRecords"])
    assert all(page["FaceModelVersion"] == FACE_MODEL_VERSION for page in pages)
    with pytest.raises(ClientError) as excinfo:
        client.list_faces(CollectionId="people", NextToken="forged")
    assert _error(excinfo)[0] == "InvalidPaginationTokenException"


def test_describe_counts_faces_and_list_collections_pages(client, rekognition):
    for name in ("c", "a", "b"):
        client.create_collection(CollectionId=name)
    body = _image(rekognition, 10, {"ann": 0.3, "bob": 0.2})
    client.index_faces(CollectionId="b", Image={"Bytes": body})

    described = client.describe_collection(CollectionId="b")
    assert described["FaceCount"] == 2 and described["FaceModelVersion"] == FACE_MODEL_VERSION
    assert described["CollectionARN"] == "arn:aws:rekognition:us-east-1:123456789012:collection/b"
    pages = list(client.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 2}))
    assert [page["CollectionIds"] for page in pages] == [["a", "b"], ["c"]]
    assert pages[0]["FaceModelVersions"] == [FACE_MODEL_VERSION] * 2


def test_refusals_latency_and_records_cover_the_new_operations(client, rekognition):
    client.create_collection(CollectionId="people")
    rekognition.refuse_after(1, "AccessDeniedException")
    client.describe_collection(CollectionId="people")
    with pytest.raises(ClientError) as excinfo:
        client.list_faces(CollectionId="people")
    code, message = _error(excinfo)
    assert code == "AccessDeniedException" and "rekognition:ListFaces" in message
    rekognition.refuse = None

    assert [(c.operation, c.kind, c.outcome) for c in rekognition.calls] == [
        ("CreateCollection", "-", "ok"),
        ("DescribeCollection", "-", "ok"),
        ("ListFaces", "-", "AccessDeniedException"),
    ]
    assert rekognition.billed() == {"CreateCollection": 1, "DescribeCollection": 1, "ListFaces": 1}
    assert rekognition.count("ok", operation="DescribeCollection") == 1


def test_throughput_ceilings_are_per_operation(client, rekognition):
    rekognition.behaviour.admit_per_second = 1
    client.create_collection(CollectionId="people")
    client.describe_collection(CollectionId="people")  # another operation: its own ceiling
    with pytest.raises(ClientError) as excinfo:
        client.describe_collection(CollectionId="people")
    assert _error(excinfo)[0] == "ProvisionedThroughputExceededException"


def test_reindexing_the_same_image_under_the_same_external_id_keeps_its_face_ids(client, rekognition):
    """"If you provide the same image, specify the same collection, and use the same external ID
    in the IndexFaces operation, Amazon Rekognition doesn't save duplicate face metadata.\""""
    body = _image(rekognition, 11, {"ann": 0.3, "bob": 0.2})
    client.create_collection(CollectionId="people")
    first = client.index_faces(CollectionId="people", Image={"Bytes": body}, ExternalImageId="a.jpg")
    again = client.index_faces(CollectionId="people", Image={"Bytes": body}, ExternalImageId="a.jpg")
    other = client.index_faces(CollectionId="people", Image={"Bytes": body}, ExternalImageId="b.jpg")

    ids = lambda answer: [record["Face"]["FaceId"] for record in answer["FaceRecords"]]  # noqa: E731
    assert ids(again) == ids(first)
    assert not set(ids(other)) & set(ids(first))
    assert client.describe_collection(CollectionId="people")["FaceCount"] == 4
    assert {record["Face"]["ImageId"] for record in first["FaceRecords"] + other["FaceRecords"]} == {first["FaceRecords"][0]["Face"]["ImageId"]}


def test_detection_attributes_default_to_the_default_subset(client, rekognition):
    body = _image(rekognition, 12, {"ann": 0.3})
    client.create_collection(CollectionId="people")
    default = client.index_faces(CollectionId="people", Image={"Bytes": body})["FaceRecords"][0]["FaceDetail"]
    every = client.index_faces(CollectionId="people", Image={"Bytes": body}, DetectionAttributes=["ALL"])["FaceRecords"][0]["FaceDetail"]
    assert set(default) == {"BoundingBox", "Confidence", "Pose", "Quality", "Landmarks"}
    assert {"Smile", "Emotions", "AgeRange", "Gender", "EyeDirection"} <= set(every)


# -- external image ids ---------------------------------------------------------------------------------

HOSTILE_URIS = [
    "s3://photos/2024/a.jpg",
    "/home/me/Pictures/with space/été 日本 😀.jpg",
    "s3://b/x:2f/%2F/../a b+c=d&e?f#g",
    "::",
    ":2f",
    "a" * EXTERNAL_IMAGE_ID_MAX,
    "/tmp/undecodable-\udcff-name.jpg",
    "tab\tnewline\nquote'\"back\\slash",
]


@pytest.mark.parametrize("uri", HOSTILE_URIS)
def test_external_image_ids_are_valid_and_give_the_uri_back(uri):
    encoded = external_image_id(uri)
    assert EXTERNAL_ID.fullmatch(encoded) and len(encoded) <= EXTERNAL_IMAGE_ID_MAX
    assert uri_from_external_image_id(encoded) == uri


def test_plain_keys_stay_readable():
    assert external_image_id("s3://b/2024/IMG_01.jpg") == "s3:3a:2f:2fb:2f2024:2fIMG_01.jpg"


def test_too_long_uris_are_hashed_distinctly_keeping_a_readable_head():
    base = "s3://photos/" + "deep/" * 60
    first, second = external_image_id(base + "a.jpg"), external_image_id(base + "b.jpg")
    assert first != second
    for encoded in (first, second):
        assert EXTERNAL_ID.fullmatch(encoded) and len(encoded) <= EXTERNAL_IMAGE_ID_MAX
        assert encoded.startswith("s3:3a:2f:2fphotos:2fdeep")
        assert uri_from_external_image_id(encoded) is None, "a hashed id is not reversible: the store maps FaceIds"


def test_a_long_non_ascii_uri_is_never_cut_inside_an_escape():
    for pad in range(3):
        encoded = external_image_id("x" * pad + "é" * 200)
        head = encoded.split(":_")[0]
        assert re.fullmatch(r"x*(:[0-9a-f]{2})*", head), head


def test_values_no_encoding_produces_are_refused():
    for value in ("a:zz", "a:2", "a b", "é"):
        with pytest.raises(ValueError):
            uri_from_external_image_id(value)


def test_hostile_s3_keys_round_trip_through_the_service(engine, s3, rekognition, client):
    ensure_collection(client, "people")
    key = "2024/été 日本/a b+c.jpg"
    ref, read = _in_s3(s3, _image(rekognition, 13, {"ann": 0.3}), key)
    index_faces(engine, "people", ref, read)
    listed = client.list_faces(CollectionId="people")["Faces"]
    assert [uri_from_external_image_id(face["ExternalImageId"]) for face in listed] == [f"s3://photos/{key}"]


# -- collections ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "a b", "x/y", "x" * 256])
def test_bad_collection_names_are_a_usage_error_before_any_call(client, rekognition, name):
    with pytest.raises(ConfigError, match="collection name"):
        ensure_collection(client, name)
    assert rekognition.calls == []


def test_ensure_collection_creates_once(client, rekognition):
    assert check_collection_id("family_2024.v-1") == "family_2024.v-1"
    assert ensure_collection(client, "people") is True
    assert ensure_collection(client, "people") is False
    assert [c.operation for c in rekognition.calls] == ["DescribeCollection", "CreateCollection", "DescribeCollection"]
    assert client.list_collections()["CollectionIds"] == ["people"]


def test_ensure_collection_accepts_one_created_meanwhile(client, rekognition):
    """Two runs start at once: both find no collection, one creates it, the other is told it exists."""
    real_create = client.create_collection

    def create_after_another_run(**kwargs):
        real_create(**kwargs)
        return real_create(**kwargs)  # ours comes second: ResourceAlreadyExistsException

    client.create_collection = create_after_another_run
    assert ensure_collection(client, "people") is False
    assert rekognition.count("ResourceAlreadyExistsException") == 1


# -- compare ------------------------------------------------------------------------------------------------


def test_compare_uses_the_largest_source_face_against_every_target_face(engine, rekognition):
    source = _image(rekognition, 20, {"bob": 0.1, "ann": 0.4})  # ann's face is the larger
    target = _image(rekognition, 21, {"carl": 0.3, "ann": 0.2, "bob": 0.25})

    response = compare_faces(engine, _local(source, "/a.jpg"), _local(target, "/b.jpg"))

    assert response["SourceImageFace"]["BoundingBox"]["Width"] == 0.4
    assert [m["Face"]["BoundingBox"]["Width"] for m in response["FaceMatches"]] == [0.2], "only ann"
    assert response["FaceMatches"][0]["Similarity"] >= SAME_PERSON_MIN
    assert response["FaceMatches"][0]["Similarity"] == rekognition.expected_similarity((source, 1), (target, 1))
    assert sorted(f["BoundingBox"]["Width"] for f in response["UnmatchedFaces"]) == [0.25, 0.3]
    for face in [m["Face"] for m in response["FaceMatches"]] + response["UnmatchedFaces"]:
        assert set(face) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality", "Emotions", "Smile"}
    assert "ResponseMetadata" not in response
    assert [c.kind for c in rekognition.calls] == ["Bytes+Bytes"]


def test_compare_with_a_low_threshold_orders_matches_by_similarity(engine, rekognition, s3):
    source = _image(rekognition, 22, {"ann": 0.3})
    target = _image(rekognition, 23, {"bob": 0.3, "ann": 0.2, "carl": 0.25, "dan": 0.1})

    response = compare_faces(engine, _in_s3(s3, source, "s.jpg"), _in_s3(s3, target, "t.jpg"), similarity_threshold=0)

    scores = [m["Similarity"] for m in response["FaceMatches"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True) and response["UnmatchedFaces"] == []
    assert scores[0] >= SAME_PERSON_MIN and all(score < OTHER_PERSON_MAX for score in scores[1:])
    assert [c.kind for c in rekognition.calls] == ["S3Object+S3Object"], "both read in place"


def test_compare_without_a_face_in_the_source_says_so(engine, rekognition):
    target = _image(rekognition, 24, {"ann": 0.3})
    with pytest.raises(NoFaceError) as excinfo:
        compare_faces(engine, _local(jpeg_bytes(25)), _local(target))
    assert excinfo.value.code == "InvalidParameterException" and excinfo.value.api_calls == 1


def test_compare_falls_back_to_bytes_when_s3object_is_refused(engine, rekognition, s3):
    rekognition.s3_is_aws = False  # this S3 is not one Rekognition can read
    source, target = _image(rekognition, 26, {"ann": 0.3}), _image(rekognition, 27, {"ann": 0.2})
    response = compare_faces(engine, _in_s3(s3, source, "s.jpg"), _local(target))
    assert len(response["FaceMatches"]) == 1
    assert [(c.kind, c.outcome) for c in rekognition.calls] == [
        ("S3Object+Bytes", "InvalidS3ObjectException"),
        ("Bytes+Bytes", "ok"),
    ]


# -- index ----------------------------------------------------------------------------------------------------


def test_index_faces_keeps_the_largest_faces_and_returns_every_face_detail(engine, client, rekognition, s3):
    ensure_collection(client, "people")
    body = _image(rekognition, 30, {"small": 0.1, "large": 0.4, "medium": 0.25, "tiny": 0.05})
    ref, read = _in_s3(s3, body, "group.jpg")

    indexed = index_faces(engine, "people", ref, read, max_faces=2)

    widths = [detail["BoundingBox"]["Width"] for detail in indexed.face_details]
    assert widths[:2] == [0.4, 0.25] and sorted(widths[2:]) == [0.05, 0.1]
    assert all(indexed.face_ids[:2]) and indexed.face_ids[2:] == [None, None]
    assert indexed.unindexed_reasons == [["EXCEEDS_MAX_FACES"], ["EXCEEDS_MAX_FACES"]]
    assert (indexed.width, indexed.height, indexed.api_calls) == (120, 80, 1)
    assert "Smile" in indexed.face_details[0], "ALL attributes: the same FaceDetails as DetectFaces"
    listed = {face["FaceId"]: face for face in client.list_faces(CollectionId="people")["Faces"]}
    assert set(listed) == set(indexed.face_ids[:2])
    assert {uri_from_external_image_id(face["ExternalImageId"]) for face in listed.values()} == {"s3://photos/group.jpg"}
    assert [c.kind for c in rekognition.calls if c.operation == "IndexFaces"] == ["S3Object"]
    analysis = indexed.analysis()
    assert analysis.face_details == indexed.face_details
    assert analysis.collection_faces == CollectionFaces("people", indexed.face_ids), "each FaceId beside its face"


def test_index_faces_of_a_faceless_image_indexes_nothing(engine, client, rekognition):
    ensure_collection(client, "people")
    indexed = index_faces(engine, "people", *_local(jpeg_bytes(31)))
    assert (indexed.face_details, indexed.face_ids, indexed.api_calls) == ([], [], 1)


def test_index_faces_into_a_missing_collection_fails_naming_it(engine, rekognition):
    body = _image(rekognition, 32, {"ann": 0.3})
    with pytest.raises(IndexerError, match="ResourceNotFoundException"):
        index_faces(engine, "gone", *_local(body))


# -- search ------------------------------------------------------------------------------------------------------


@pytest.fixture
def family(engine, client, rekognition, s3):
    """A collection of three images: ann twice, bob once (with ann in the group photo)."""
    ensure_collection(client, "family")
    images = {
        "ann1.jpg": _image(rekognition, 40, {"ann": 0.3}),
        "ann2.jpg": _image(rekognition, 41, {"ann": 0.3}),
        "group.jpg": _image(rekognition, 42, {"bob": 0.35, "ann": 0.2}),
    }
    ids = {}
    for key, body in images.items():
        ids[key] = index_faces(engine, "family", *_in_s3(s3, body, key)).face_ids
    return ids


def test_search_by_image_finds_the_same_person_most_alike_first(engine, rekognition, family):
    query = _image(rekognition, 43, {"carl": 0.1, "ann": 0.3})  # ann is the larger face: she is searched

    found = search_faces_by_image(engine, "family", *_local(query))

    assert {m.image_uri for m in found.matches} == {"s3://photos/ann1.jpg", "s3://photos/ann2.jpg", "s3://photos/group.jpg"}
    assert {m.face_id for m in found.matches} == {family["ann1.jpg"][0], family["ann2.jpg"][0], family["group.jpg"][1]}
    scores = [m.similarity for m in found.matches]
    assert scores == sorted(scores, reverse=True) and min(scores) >= SAME_PERSON_MIN
    assert found.searched_bounding_box["Width"] == 0.3 and found.searched_confidence == 99.5
    assert found.response["FaceModelVersion"] == FACE_MODEL_VERSION


def test_search_threshold_and_max_faces(engine, rekognition, family):
    query = _image(rekognition, 44, {"ann": 0.3})
    everyone = search_faces_by_image(engine, "family", *_local(query), threshold=0)
    top = search_faces_by_image(engine, "family", *_local(query), threshold=0, max_faces=1)

    assert len(everyone.matches) == 4, "bob too, under the 80 default"
    scores = [m.similarity for m in everyone.matches]
    assert scores == sorted(scores, reverse=True) and scores[-1] < OTHER_PERSON_MAX
    assert everyone.matches[-1].face_id == family["group.jpg"][0], "bob, least alike"
    assert [m.face_id for m in top.matches] == [everyone.matches[0].face_id]


def test_search_by_image_without_a_face_says_so(engine, family):
    with pytest.raises(NoFaceError):
        search_faces_by_image(engine, "family", *_local(jpeg_bytes(45)))


def test_search_by_face_id_finds_the_others_never_itself(client, family):
    found = search_faces(client, "family", family["ann1.jpg"][0])
    assert found.searched_face_id == family["ann1.jpg"][0]
    assert {m.face_id for m in found.matches} == {family["ann2.jpg"][0], family["group.jpg"][1]}


def test_search_of_a_missing_collection_stops_naming_it(client):
    with pytest.raises(IndexerError, match="nobody"):
        search_faces(client, "nobody", "0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11")


# -- delete ------------------------------------------------------------------------------------------------------


def test_deleted_faces_leave_list_faces_and_search_results(engine, client, rekognition, family):
    gone = family["ann2.jpg"][0]
    deletion = delete_faces(client, "family", [gone, gone, "0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11"])

    assert deletion.deleted == [gone] and deletion.not_found == ["0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11"]
    assert deletion.api_calls == 1
    listed = {face["FaceId"] for face in client.list_faces(CollectionId="family")["Faces"]}
    assert gone not in listed and len(listed) == 3
    query = _image(rekognition, 46, {"ann": 0.3})
    assert gone not in {m.face_id for m in search_faces_by_image(engine, "family", *_local(query)).matches}
    assert gone not in {m.face_id for m in search_faces(client, "family", family["ann1.jpg"][0]).matches}


def test_delete_faces_batches_by_4096_and_makes_no_call_for_none(client, rekognition):
    ensure_collection(client, "people")
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(DELETE_FACES_MAX + 10)]
    before = rekognition.count(operation="DeleteFaces")
    assert delete_faces(client, "people", []).api_calls == 0
    deletion = delete_faces(client, "people", ids)
    assert rekognition.count(operation="DeleteFaces") - before == 2 == deletion.api_calls
    assert deletion.deleted == [] and sorted(deletion.not_found) == sorted(ids)


def test_delete_faces_reports_each_settled_batch(client, rekognition, family):
    present = [face_id for ids in family.values() for face_id in ids if face_id]
    absent = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(DELETE_FACES_MAX)]
    settled: list[list[str]] = []

    deletion = delete_faces(client, "family", absent + present, on_batch=settled.append)

    assert [len(batch) for batch in settled] == [DELETE_FACES_MAX, len(present)]
    assert sorted(settled[1]) == sorted(present) == sorted(deletion.deleted)
    assert rekognition.face_ids("family") == []


def test_delete_faces_keeps_a_face_the_service_would_not_delete_out_of_the_settled_ones(client):
    """A face associated to a user of the collection is not deleted (the tests' endpoint has no
    users: botocore's Stubber answers in the model's shape, which it validates)."""
    from botocore.stub import Stubber

    ids = ["0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11", "1d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11", "2d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11"]
    settled: list[list[str]] = []
    with Stubber(client) as stub:
        stub.add_response(
            "delete_faces",
            {
                "DeletedFaces": [ids[0]],
                "UnsuccessfulFaceDeletions": [
                    {"FaceId": ids[1], "UserId": "ann", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]},
                    {"FaceId": ids[2], "Reasons": ["FACE_NOT_FOUND"]},
                ],
            },
            {"CollectionId": "people", "FaceIds": ids},
        )
        deletion = delete_faces(client, "people", ids, on_batch=settled.append)

    assert settled == [[ids[0], ids[2]]]
    assert (deletion.deleted, deletion.not_found) == ([ids[0]], [ids[2]])
    assert deletion.kept == {"ASSOCIATED_TO_AN_EXISTING_USER": [ids[1]]}


def test_a_refused_delete_faces_reports_what_it_spent(client, rekognition):
    ensure_collection(client, "people")
    rekognition.refuse_after(0, "AccessDeniedException")
    with pytest.raises(IndexerError, match="not authorized while deleting 1 faces") as excinfo:
        delete_faces(client, "people", ["0d2bc1c8-5d4b-4b6a-9f51-3e3c0c7e1a11"], on_batch=lambda batch: pytest.fail("nothing settled"))
    assert excinfo.value.api_calls == 1


def test_an_engine_with_a_collection_checks_its_name_before_any_call(client, rekognition):
    with pytest.raises(ConfigError, match="invalid collection name 'a b'"):
        RekognitionEngine(client, collection="a b")
    assert rekognition.calls == []
