"""face identity: descriptors for "find this person", Rekognition collection FaceIds

``face_descriptors`` holds the offline engine's identity vector of each face (dlib's 128 floats),
written with the face, so ``search --like`` compares vectors and never re-analyses the index.
``collection_faces`` maps each FaceId that ``index --collection`` put in a Rekognition collection
to its stored face; ``images.collection`` says which collection an image's faces went to (an
image indexed without one, or into another, needs indexing into the run's). FaceIds an image no
longer has (re-indexed, pruned) are queued in ``collection_deletions`` in the same transaction
that drops them, and deleted from the collection after the run (DeleteFaces): a crash between
the two leaves them queued, never as ghosts nobody knows about.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "face_descriptors",
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name=op.f("fk_face_descriptors_face_id_faces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", name=op.f("pk_face_descriptors")),
    )
    op.create_index("ix_face_descriptors_model", "face_descriptors", ["model"], unique=False)
    op.create_table(
        "collection_faces",
        sa.Column("collection", sa.String(255), nullable=False),
        sa.Column("rekognition_face_id", sa.String(36), nullable=False),
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name=op.f("fk_collection_faces_face_id_faces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("collection", "rekognition_face_id", name=op.f("pk_collection_faces")),
    )
    op.create_index("ix_collection_faces_face_id", "collection_faces", ["face_id"], unique=False)
    op.create_table(
        "collection_deletions",
        sa.Column("collection", sa.String(255), nullable=False),
        sa.Column("rekognition_face_id", sa.String(36), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("collection", "rekognition_face_id", name=op.f("pk_collection_deletions")),
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("collection", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("collection")
    op.drop_table("collection_deletions")
    op.drop_index("ix_collection_faces_face_id", table_name="collection_faces")
    op.drop_table("collection_faces")
    op.drop_index("ix_face_descriptors_model", table_name="face_descriptors")
    op.drop_table("face_descriptors")
