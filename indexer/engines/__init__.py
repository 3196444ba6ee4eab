"""Analysis engines behind one interface (:mod:`indexer.engines.base`).

Engines are imported lazily by name: ``indexer search`` never pays for boto3 or model runtimes.
"""

from __future__ import annotations

ENGINE_NAMES = ("local", "rekognition")

__all__ = ["ENGINE_NAMES"]
