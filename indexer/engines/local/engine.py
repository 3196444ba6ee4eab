"""``LocalEngine``: offline face analysis with models taken from PyPI packages.

The engine decodes each image (EXIF orientation applied, long side at most 1024 px for analysis,
never upscaled) and runs detection, mesh, iris, expression and attribute models, then describes
each reported face for "who is this?" (``embedding``: ``Analysis.descriptors``). Work goes to a
pool of worker processes, each of which loads the models once and runs them single-threaded, so
that many threads calling :meth:`LocalEngine.analyze` at once keep every core busy. ``workers=0``
analyses in the calling process instead (one analysis at a time): the way to describe one image
outside a run, e.g. ``LocalEngine(workers=0).analyze(ref, lambda: data).descriptors``.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...attributes import ALL_ATTRIBUTES
from ...core import Analysis, ByteReader, FaceDescriptors, ImageRef
from ...errors import FatalError, ImageError
from ..base import Capabilities
from ..decode import TRANSPOSED_ORIENTATIONS, register_optional_formats, to_rgb, unidentified_image_error
from .models import ensure_installed

if TYPE_CHECKING:  # numpy and the model runtimes load only in the processes that analyse
    from .analyzer import FaceAnalyzer

#: Longest side the detector sees. Larger photos are downscaled; smaller ones are never upscaled.
MAX_SIDE = 1024

#: The offline engine answers every attribute Rekognition answers. ``version`` is its model set:
#: 1 had no Gender, AgeRange, Beard, Mustache, Eyeglasses, Sunglasses or FaceOccluded; 2 has them
#: all; 3 adds a face descriptor per face (images of local@2 have none, so the next plain run
#: re-analyses them, which gives them descriptors). Bump it whenever the models or the way they
#: are read change what a FaceDetail or a descriptor says.
CAPABILITIES = Capabilities(name="local", attributes=ALL_ATTRIBUTES, version=3)


def decode(data: bytes, max_side: int = MAX_SIDE):
    """Bytes -> (RGB uint8 array of the oriented image, long side <= max_side), original width, height.

    EXIF orientations 2-8 are applied; 16-bit images are scaled (not clipped) to 8 bits; anything
    with transparency is composited on white; an animated image gives its first frame. Raises
    :class:`ImageError` for anything Pillow cannot decode.
    """
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageError("EmptyObject", "zero-byte file: not an image")
    register_optional_formats()  # HEIC/HEIF through pillow-heif, when it is installed
    try:
        with warnings.catch_warnings():
            # Between 89 and 179 Mpx Pillow only warns (above, it refuses: ImageTooLarge below);
            # such a photo is decoded with JPEG draft mode, and the warning would be cron noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        raw_w, raw_h = im.size
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except Exception:
            orientation = 1
        swap = orientation in TRANSPOSED_ORIENTATIONS
        width, height = (raw_h, raw_w) if swap else (raw_w, raw_h)
        long_side = max(raw_w, raw_h)
        if long_side > max_side and im.format == "JPEG":
            f = max_side / long_side
            im.draft("RGB", (max(1, int(raw_w * f)), max(1, int(raw_h * f))))
        im = to_rgb(ImageOps.exif_transpose(im))
        if max(im.size) > max_side:
            f = max_side / max(im.size)
            size = (max(1, round(im.width * f)), max(1, round(im.height * f)))
            im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        arr = np.asarray(im, dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise ImageError("ImageTooLargeException", f"image too large to decode: {exc}") from None
    except UnidentifiedImageError:
        raise unidentified_image_error(data) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError("InvalidImageFormatException", f"cannot decode image: {exc}") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageError("InvalidImageFormatException", "image has no pixels")
    return np.ascontiguousarray(arr), width, height


# ------------------------------------------------------------------ worker side

_ANALYZER: FaceAnalyzer | None = None


def _limit_threads() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:
        pass


def _worker_init(directory: str) -> None:
    global _ANALYZER
    import signal

    # Ctrl-C is the parent's business: it cancels the run and shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _limit_threads()
    from .analyzer import FaceAnalyzer

    _ANALYZER = FaceAnalyzer(Path(directory), threads=1)


def _payload(analyzer: FaceAnalyzer, data: bytes) -> tuple[str, Any]:
    """What an analysis sends back, in the pool and in process alike: ``("ok", (FaceDetails,
    width, height, descriptors))``, descriptors as float32-LE bytes (plain data for pickling), or
    ``("image_error", (code, message))``."""
    from .embedding import to_bytes

    try:
        rgb, width, height = decode(data)
        details, vectors = analyzer.analyze_with_descriptors(rgb)
        return "ok", (details, width, height, to_bytes(vectors))
    except ImageError as exc:
        return "image_error", (exc.code, exc.message)


def _worker_analyze(data: bytes) -> tuple[str, Any]:
    assert _ANALYZER is not None, "the pool's initializer loads the analyzer"
    return _payload(_ANALYZER, data)


# ------------------------------------------------------------------ engine


class LocalEngine:
    """Offline engine. Thread-safe: concurrent ``analyze`` calls spread over the worker processes."""

    name = "local"
    capabilities = CAPABILITIES

    def __init__(
        self,
        workers: int | None = None,
        models_dir: Path | None = None,
        auto_install: bool = True,
        progress: bool | None = None,
    ):
        self.workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.auto_install = auto_install
        self.progress = progress
        self._lock = threading.Lock()
        self._inproc_lock = threading.Lock()
        self._dir: Path | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._analyzer: FaceAnalyzer | None = None
        self._closed = False
        self._pool_worked = False

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the models are installed (installing them on first use) and start the workers."""
        self._ready()

    def _ready(self) -> Path:
        """The models directory, once the models are installed and the workers started."""
        with self._lock:
            if self._closed:
                raise FatalError("the local engine is closed")
            if self._dir is None:
                self._dir = ensure_installed(self.models_dir, auto_install=self.auto_install, progress=self.progress)
            if self.workers > 0 and self._pool is None:
                import multiprocessing as mp

                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=mp.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(str(self._dir),),
                )
            return self._dir

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            self._analyzer = None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "LocalEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- analysis ----------------------------------------------------------------------------
    def analyze(self, image: ImageRef, read_bytes: ByteReader) -> Analysis:
        """FaceDetails of one image and, in ``descriptors``, one identity vector per FaceDetail
        (same order; ``FaceDescriptors(embedding.DESCRIPTOR_MODEL, [])`` for an image without
        faces). Raises :class:`ImageError` for bytes that are not a usable image."""
        from .embedding import DESCRIPTOR_MODEL

        directory = self._ready()
        data = read_bytes()
        if self.workers == 0:
            status, payload = self._analyze_here(directory, data)
        else:
            status, payload = self._analyze_in_pool(image, data)
        if status == "image_error":
            code, message = payload
            raise ImageError(code, message, retryable=False)
        details, width, height, vectors = payload
        return Analysis(
            face_details=details,
            width=width,
            height=height,
            api_calls=0,
            descriptors=FaceDescriptors(DESCRIPTOR_MODEL, vectors),
        )

    def _analyze_here(self, directory: Path, data: bytes):
        with self._inproc_lock:
            if self._analyzer is None:
                from .analyzer import FaceAnalyzer

                self._analyzer = FaceAnalyzer(directory, threads=1)
            return _payload(self._analyzer, data)

    def _analyze_in_pool(self, image: ImageRef, data: bytes):
        pool = self._pool
        if pool is None:
            raise FatalError("the local engine is closed")
        try:
            result = pool.submit(_worker_analyze, data).result()
        except BrokenProcessPool:
            # A worker died. If no image ever worked, the workers cannot start (models or runtime
            # broken): the run cannot go on. Otherwise this image crashed it: record it as failed
            # (not retried) and start a fresh pool for the next one.
            with self._lock:
                if self._pool is pool:
                    self._pool = None
                worked = self._pool_worked
            pool.shutdown(wait=False, cancel_futures=True)
            if not worked:
                raise FatalError(
                    "the local engine's worker processes failed to start (check the models cache and that "
                    "opencv-python-headless, onnxruntime and ai-edge-litert import)"
                ) from None
            raise ImageError("EngineWorkerCrashed", f"the analysis process died on {image.uri}", retryable=False)
        self._pool_worked = True
        return result

    # -- helpers for benchmarks --------------------------------------------------------------
    def analyzer(self) -> FaceAnalyzer:
        """The in-process :class:`FaceAnalyzer` (loaded on first call; for benchmarks and tests)."""
        directory = self._ready()
        with self._inproc_lock:
            if self._analyzer is None:
                from .analyzer import FaceAnalyzer

                self._analyzer = FaceAnalyzer(directory, threads=1)
            return self._analyzer
