"""indexes for attribute search

Each attribute index becomes (value, image_id, confidence): a one-term search ("smiling",
"sunglasses") is answered from that index alone, in image order, so counting distinct images
needs no sort. ``ix_faces_search`` holds every searchable column behind ``image_id``: a query of
several terms on the same face is one scan of this index (never of the wide faces rows, which
carry the raw FaceDetail), and "does image N have a matching face" is one seek.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ATTRIBUTE_STEMS = (
    "smile", "eyeglasses", "sunglasses", "beard", "mustache", "eyes_open", "mouth_open", "face_occluded",
    "gender", "emotion",
)

SEARCH_COLUMNS = [
    "image_id", "gender", "gender_confidence", "age_mid", "emotion", "emotion_confidence",
    "smile", "smile_confidence", "eyeglasses", "eyeglasses_confidence", "sunglasses", "sunglasses_confidence",
    "beard", "beard_confidence", "mustache", "mustache_confidence", "eyes_open", "eyes_open_confidence",
    "mouth_open", "mouth_open_confidence", "face_occluded", "face_occluded_confidence",
]


def upgrade() -> None:
    for stem in ATTRIBUTE_STEMS:
        op.drop_index(f"ix_faces_{stem}", table_name="faces")
        op.create_index(f"ix_faces_{stem}", "faces", [stem, "image_id", f"{stem}_confidence"], unique=False)
    op.drop_index("ix_faces_age_mid", table_name="faces")
    op.create_index("ix_faces_age_mid", "faces", ["age_mid", "image_id"], unique=False)
    op.create_index("ix_faces_search", "faces", SEARCH_COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index("ix_faces_search", table_name="faces")
    op.drop_index("ix_faces_age_mid", table_name="faces")
    op.create_index("ix_faces_age_mid", "faces", ["age_mid"], unique=False)
    for stem in ATTRIBUTE_STEMS:
        op.drop_index(f"ix_faces_{stem}", table_name="faces")
        op.create_index(f"ix_faces_{stem}", "faces", [stem, f"{stem}_confidence"], unique=False)
