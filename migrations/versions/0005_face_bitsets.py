"""face bitsets: counts over the whole index without reading every face

A count over 1M faces (``smiling men --count``) reads the covering search index entry of every
face: at about 0.1 us per entry and condition, and a temporary B-tree for the distinct images,
broad counts took 200-600 ms on SQLite whatever the plan. ``bitsets`` holds, per simple
condition at the default threshold, one bit per face (in image order), built after each run
(:mod:`indexer.bitsets`); a count is then a few big-integer ANDs and popcounts. ``versions``
counts the changes to the faces, so bitsets that no longer describe them are never used.

The face-count index takes the status too, so a count of images by face count alone ("not group
photos": 65 ms instead of 150-190 ms on 400k images) reads only that index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = op.create_table(
        "versions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_versions")),
    )
    op.bulk_insert(versions, [{"name": "faces", "version": 0}])
    op.create_table(
        "bitsets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("faces_version", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bitsets")),
    )
    op.create_index("ix_images_face_count_status", "images", ["face_count", "status"], unique=False)
    op.drop_index("ix_images_face_count", table_name="images")


def downgrade() -> None:
    op.create_index("ix_images_face_count", "images", ["face_count"], unique=False)
    op.drop_index("ix_images_face_count_status", table_name="images")
    op.drop_table("bitsets")
    op.drop_table("versions")
