"""The offline engine describes every face it reports: ``Analysis.descriptors`` at index time.

Real faces: the public-domain White House portraits of PyPI's ``face_recognition`` 1.3.0 sdist
(pinned in ``test_local_embedding``; skipped without PyPI), alone and side by side in one photo,
on the installed models (the ``models`` fixture). What must hold:

* one descriptor per FaceDetail, in the FaceDetails' order, each the descriptor of that face's own
  chip (dlib's 5 points from its own mesh), and none inside the FaceDetail (Rekognition's shape);
* Obama matches Obama at Similarity >= 80, Biden matches neither;
* the worker pool and ``workers=0`` return the same vectors; a photo without faces gets an
  empty descriptor list under the same model name;
* images record the model set ``local@3`` (descriptors came with it).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from indexer.core import FaceDescriptors, ImageRef
from indexer.engines.local import CAPABILITIES, LocalEngine
from indexer.engines.local import embedding as em
from indexer.engines.local.engine import decode

REF = ImageRef(uri="mem://photo", size=0, fingerprint="")
#: Left to right in the group photo; Obama twice, so the order is checked with two identities.
GROUP = ("obama.jpg", "biden.jpg", "obama3.jpg")


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def portraits(portrait_files) -> dict[str, bytes]:
    """The portraits' file bytes (as a run reads them)."""
    return portrait_files


@pytest.fixture(scope="module")
def group(portraits) -> bytes:
    """The portraits side by side (each scaled to 400 px high), as one lossless photo."""
    tiles = []
    for name in GROUP:
        rgb = decode(portraits[name])[0]
        width = round(rgb.shape[1] * 400 / rgb.shape[0])
        tiles.append(np.asarray(Image.fromarray(rgb).resize((width, 400), Image.Resampling.LANCZOS)))
    return _png(np.ascontiguousarray(np.concatenate(tiles, axis=1)))


@pytest.fixture(scope="module")
def engine(models):
    with LocalEngine(workers=0, models_dir=models, auto_install=False) as eng:
        yield eng


def _vectors(analysis) -> np.ndarray:
    assert isinstance(analysis.descriptors, FaceDescriptors)
    assert analysis.descriptors.model == em.DESCRIPTOR_MODEL
    assert all(len(v) == em.DESCRIPTOR_SIZE * 4 for v in analysis.descriptors.vectors)
    return em.from_bytes(b"".join(analysis.descriptors.vectors))


def _own_chip_descriptors(analyzer, rgb: np.ndarray, details: list[dict]) -> np.ndarray:
    """Each FaceDetail's descriptor recomputed on its own: its detection (matched by box), its
    mesh, dlib's 5 points from the mesh, ``FaceEmbedder.embed`` on that chip alone."""
    from indexer.engines.local.demographics import mesh_points

    h, w = rgb.shape[:2]
    boxes, points = analyzer.detector.detect(rgb)
    lefts = np.array([max(0.0, float(b[0])) / w for b in boxes])
    tops = np.array([max(0.0, float(b[1])) / h for b in boxes])
    out = []
    for d in details:
        bb = d["BoundingBox"]
        i = int(np.argmin(np.abs(lefts - bb["Left"]) + np.abs(tops - bb["Top"])))
        assert abs(lefts[i] - bb["Left"]) < 1e-6 and abs(tops[i] - bb["Top"]) < 1e-6
        mesh, _ = analyzer.mesh.landmarks(rgb, np.asarray(boxes[i][:4], float), np.asarray(points[i][:2], float))
        out.append(analyzer.embedder.embed(rgb, mesh_points(mesh)))
    return np.stack(out)


def test_one_descriptor_per_face_in_face_detail_order(engine, group, portraits):
    analysis = engine.analyze(REF, lambda: group)
    vectors = _vectors(analysis)
    details = analysis.face_details

    assert len(details) == len(analysis.descriptors.vectors) == len(GROUP)
    lefts = [d["BoundingBox"]["Left"] for d in details]
    assert lefts == sorted(lefts)
    rgb = decode(group)[0]  # what the engine analysed
    analyzer = engine.analyzer()
    np.testing.assert_allclose(vectors, _own_chip_descriptors(analyzer, rgb, details), rtol=1e-4, atol=1e-5)
    # Left to right, each descriptor is nearest to that person's portrait alone (Obama twice).
    alone = {name: _vectors(engine.analyze(REF, lambda n=name: portraits[n]))[0] for name in GROUP}
    for vector, name in zip(vectors, GROUP):
        assert em.similarity(em.distance(vector, alone[name])) >= em.REKOGNITION_DEFAULT_THRESHOLD
    assert em.similarity(em.distance(vectors[1], alone["obama.jpg"])) < em.REKOGNITION_DEFAULT_THRESHOLD
    # The FaceDetails stay Rekognition's shape (stored verbatim): the same as analyze() gives,
    # plain JSON, no descriptor inside.
    assert details == analyzer.analyze(rgb)
    assert all("escriptor" not in json.dumps(d) for d in details)


def test_same_person_matches_and_different_people_do_not(engine, portraits):
    d = {name: _vectors(engine.analyze(REF, lambda n=name: data))[0] for name, data in portraits.items()}
    assert em.similarity(em.distance(d["obama.jpg"], d["obama3.jpg"])) >= em.REKOGNITION_DEFAULT_THRESHOLD
    for obama in ("obama.jpg", "obama3.jpg"):
        assert em.similarity(em.distance(d["biden.jpg"], d[obama])) < em.REKOGNITION_DEFAULT_THRESHOLD


def test_worker_pool_and_in_process_give_the_same_vectors(engine, models, group):
    blank = _png(np.repeat(np.linspace(40, 220, 320, dtype=np.uint8)[:, None, None], 3, 2).repeat(240, 1))
    here = engine.analyze(REF, lambda: group)
    with LocalEngine(workers=1, models_dir=models, auto_install=False) as pool:
        there = pool.analyze(REF, lambda: group)
        empty = pool.analyze(REF, lambda: blank)

    assert len(there.descriptors.vectors) == len(here.descriptors.vectors) == len(GROUP)
    np.testing.assert_allclose(_vectors(there), _vectors(here), rtol=1e-5, atol=1e-6)
    assert there.face_details == here.face_details
    assert empty.face_details == [] and empty.descriptors == FaceDescriptors(em.DESCRIPTOR_MODEL, [])
    assert engine.analyze(REF, lambda: blank).descriptors == FaceDescriptors(em.DESCRIPTOR_MODEL, [])


def test_model_set_is_local_3():
    assert CAPABILITIES.model_set == "local@3"
    assert LocalEngine.capabilities.model_set == "local@3"


def test_descriptor_bytes_round_trip_and_refuse_a_partial_vector():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3, em.DESCRIPTOR_SIZE)).astype(np.float32)
    stored = em.to_bytes(vectors)
    assert [len(b) for b in stored] == [em.DESCRIPTOR_SIZE * 4] * 3
    assert stored[0] == vectors[0].astype("<f4").tobytes()
    np.testing.assert_array_equal(em.from_bytes(stored[1]), vectors[1:2])
    np.testing.assert_array_equal(em.from_bytes(b"".join(stored)), vectors)
    assert em.to_bytes(np.zeros((0, em.DESCRIPTOR_SIZE), np.float32)) == []
    with pytest.raises(ValueError, match="multiple of 512"):
        em.from_bytes(stored[0][:-4])
