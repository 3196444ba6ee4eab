"""Real faces for engine tests: public-domain White House portraits from PyPI's face_recognition
1.3.0 sdist (tests/test_images/), pinned by SHA-256 like the model files. Only the files of the
public half of the project's portrait smoke test are used."""

from __future__ import annotations

from pathlib import Path

PORTRAITS_PACKAGE = ("face_recognition", "1.3.0", "sdist")
PORTRAITS = {
    "biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
    "obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    "obama3.jpg": "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
}


def fetch_portraits(folder: Path) -> dict[str, bytes]:
    """Each portrait's file bytes, verified against its SHA-256 and also written to ``folder``.
    Raises ``ModelsMissingError`` when PyPI cannot be reached."""
    from indexer.engines.local import models as m

    archive = m._download_pypi(*PORTRAITS_PACKAGE, folder)
    out = {}
    for name, sha in PORTRAITS.items():
        data = m._read_member(archive, f"tests/test_images/{name}")
        m._write_verified(folder / name, data, sha, name)  # raises on a different file
        out[name] = data
    return out
