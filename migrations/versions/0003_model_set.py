"""model set per image, and the run counter of images re-analysed for a newer one

``images.model_set`` records which version of an engine's models analysed the image (``local@2``;
``rekognition`` for the service, whose model the indexer does not version). The planner treats an
image whose model set differs from the running engine's as changed, so an upgrade of the offline
engine's models reaches every image on the next ordinary run. Existing rows were written by the
first local model set or by Rekognition, which is what the backfill records.

``runs.outdated`` counts the images a run re-analysed because an older model set indexed them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("model_set", sa.String(length=32), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("outdated", sa.Integer(), nullable=True))
    op.execute("UPDATE images SET model_set = CASE WHEN engine = 'local' THEN 'local@1' ELSE engine END")
    op.execute("UPDATE runs SET outdated = 0")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("outdated")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("model_set")
