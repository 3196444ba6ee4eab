"""Where the offline engine's time goes: wraps each stage of one ``FaceAnalyzer`` with a timer.

Used by ``engine.py`` for the per-stage breakdown. The wrapping is done on the benchmark's own
analyzer instance (and the ``appearance`` module's function), so the engine itself carries no
timing code; the wrappers cost well under a microsecond per call.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable


class StageTimer:
    """Seconds and calls per stage, accumulated while installed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, stage: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t
                self.calls[stage] += 1

        setattr(owner, attribute, timed)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


#: The descriptor stage is one batched network call per photo: reported per face kept.
DESCRIPTOR_STAGE = "face descriptor (chips + 1 batched call)"


def instrument(analyzer: Any) -> StageTimer:
    """Time detection, mesh, iris, emotion, gender/age, appearance and the face descriptors of
    ``analyzer`` (the engine calls ``analyze_with_descriptors``: that is the whole analysis)."""
    from indexer.engines.local import appearance

    timer = StageTimer()
    timer.wrap(analyzer, "analyze_with_descriptors", "whole analysis (after decode)")
    timer.wrap(analyzer.detector, "detect", "detection (MTCNN)")
    timer.wrap(analyzer.mesh, "landmarks", "mesh (2 passes)")
    timer.wrap(analyzer.mesh, "iris_points", "iris")
    timer.wrap(analyzer.emotion, "probabilities", "emotion")
    timer.wrap(analyzer.demographics, "estimate", "gender + age")
    timer.wrap(appearance, "estimate", "eyewear, facial hair, occlusion")
    timer.wrap(analyzer.embedder, "embed_many", DESCRIPTOR_STAGE)
    return timer


def breakdown_rows(timer: StageTimer, photos: int, faces: int, note: str) -> list[tuple]:
    """Rows for engine.py's table: ms per photo for the whole and per detection, ms per face for
    each per-face stage (a face reaching the mesh may still be rejected, so calls can exceed faces)."""
    rows = []
    whole = "whole analysis (after decode)"
    if photos:
        rows.append((f"stage: {whole}", f"{1000 * timer.seconds[whole] / photos:.1f} ms/photo", "", note))
        det = "detection (MTCNN)"
        rows.append((f"stage: {det}", f"{1000 * timer.seconds[det] / photos:.1f} ms/photo", "", ""))
    for stage in ("mesh (2 passes)", "iris", "emotion", "gender + age", "eyewear, facial hair, occlusion"):
        calls = timer.calls.get(stage, 0)
        if calls:
            rows.append((f"stage: {stage}", f"{1000 * timer.seconds[stage] / calls:.2f} ms/face", "",
                         f"{calls} calls, {faces} faces kept"))
    if faces and timer.calls.get(DESCRIPTOR_STAGE):
        rows.append((f"stage: {DESCRIPTOR_STAGE}", f"{1000 * timer.seconds[DESCRIPTOR_STAGE] / faces:.2f} ms/face",
                     "", f"{1000 * timer.seconds[DESCRIPTOR_STAGE] / photos:.1f} ms/photo; {faces} faces kept"))
    return rows
