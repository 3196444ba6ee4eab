"""run shards: which job and which shard of it a run was (``index --shard I/N --job-id ID``)

Many copies of one sharded job (a Kubernetes Indexed Job, an AWS Batch array job) write their
runs into one database; ``runs.job_id`` groups them and ``runs.shard`` (``I/N``) says which slice
each handled, so ``indexer runs --job ID`` can tell which shards completed, failed or never ran.
Both are NULL for a whole-source run, and in every row written before this revision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("job_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("shard", sa.String(32), nullable=True))
    op.create_index("ix_runs_job_id", "runs", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_job_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("shard")
        batch.drop_column("job_id")
