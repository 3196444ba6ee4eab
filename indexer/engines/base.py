"""The one interface every analysis engine implements.

An engine turns one image into Rekognition-shaped ``FaceDetails`` (the exact JSON shape of
``DetectFaces`` with ``Attributes=["ALL"]``). Storage and queries only ever see that shape, so an
engine can be added without touching them. What an engine cannot really predict it leaves out of
each FaceDetail (never guessed), and it says so up front in :class:`Capabilities`. The values an
engine takes and returns (:class:`~indexer.core.ImageRef`, :class:`~indexer.core.Analysis`) are
:mod:`indexer.core`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..core import Analysis, ByteReader, ImageRef


@dataclass(frozen=True)
class Capabilities:
    """What an engine can answer: the FaceDetail keys it fills (recorded in the store, so
    searches can tell which images can never answer an attribute)."""

    name: str
    attributes: frozenset[str]
    #: Version of the engine's models, bumped whenever they answer differently (new models, new
    #: attributes). Images indexed by another version are re-analysed by the next plain run.
    #: None for an engine whose models the indexer does not control (Rekognition).
    version: int | None = None

    @property
    def model_set(self) -> str:
        """What each image records as the models that analysed it: ``local@3``, ``rekognition``."""
        return self.name if self.version is None else f"{self.name}@{self.version}"


class Engine(Protocol):
    """An analysis engine. Implementations must be safe to call from several threads."""

    name: str
    capabilities: Capabilities

    def prepare(self) -> None:
        """Get ready before anything is listed (models installed, workers started), raising
        :class:`indexer.errors.FatalError` for what would fail every image anyway."""
        ...

    def analyze(self, image: ImageRef, read_bytes: ByteReader) -> Analysis:
        """Detect faces in one image. Raise :class:`indexer.errors.ImageError` for a bad image."""
        ...

    def close(self) -> None:
        """Release clients, sessions, model handles."""
        ...
