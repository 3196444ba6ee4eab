"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('engines',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_engines'))
    )
    op.create_table('locks',
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_locks'))
    )
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('engine', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('listed', sa.Integer(), nullable=False),
    sa.Column('skipped_unchanged', sa.Integer(), nullable=False),
    sa.Column('analyzed', sa.Integer(), nullable=False),
    sa.Column('faces', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('pruned', sa.Integer(), nullable=False),
    sa.Column('api_calls', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)

    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=128), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('engine', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('face_count', sa.Integer(), nullable=False),
    sa.Column('error_code', sa.String(length=128), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('retryable', sa.Boolean(), nullable=True),
    sa.Column('indexed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('seen_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_images_run_id_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('uri', name=op.f('uq_images_uri'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_engine'), ['engine'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_face_count'), ['face_count'], unique=False)
        batch_op.create_index('ix_images_seen', ['seen_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_status'), ['status'], unique=False)

    op.create_table('faces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('face_index', sa.SmallInteger(), nullable=False),
    sa.Column('engine', sa.String(length=32), nullable=False),
    sa.Column('bbox_left', sa.Float(), nullable=True),
    sa.Column('bbox_top', sa.Float(), nullable=True),
    sa.Column('bbox_width', sa.Float(), nullable=True),
    sa.Column('bbox_height', sa.Float(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('age_low', sa.SmallInteger(), nullable=True),
    sa.Column('age_high', sa.SmallInteger(), nullable=True),
    sa.Column('age_mid', sa.Float(), nullable=True),
    sa.Column('gender', sa.String(length=8), nullable=True),
    sa.Column('gender_confidence', sa.Float(), nullable=True),
    sa.Column('smile', sa.Boolean(), nullable=True),
    sa.Column('smile_confidence', sa.Float(), nullable=True),
    sa.Column('eyeglasses', sa.Boolean(), nullable=True),
    sa.Column('eyeglasses_confidence', sa.Float(), nullable=True),
    sa.Column('sunglasses', sa.Boolean(), nullable=True),
    sa.Column('sunglasses_confidence', sa.Float(), nullable=True),
    sa.Column('beard', sa.Boolean(), nullable=True),
    sa.Column('beard_confidence', sa.Float(), nullable=True),
    sa.Column('mustache', sa.Boolean(), nullable=True),
    sa.Column('mustache_confidence', sa.Float(), nullable=True),
    sa.Column('eyes_open', sa.Boolean(), nullable=True),
    sa.Column('eyes_open_confidence', sa.Float(), nullable=True),
    sa.Column('mouth_open', sa.Boolean(), nullable=True),
    sa.Column('mouth_open_confidence', sa.Float(), nullable=True),
    sa.Column('face_occluded', sa.Boolean(), nullable=True),
    sa.Column('face_occluded_confidence', sa.Float(), nullable=True),
    sa.Column('pose_roll', sa.Float(), nullable=True),
    sa.Column('pose_yaw', sa.Float(), nullable=True),
    sa.Column('pose_pitch', sa.Float(), nullable=True),
    sa.Column('quality_brightness', sa.Float(), nullable=True),
    sa.Column('quality_sharpness', sa.Float(), nullable=True),
    sa.Column('eye_direction_yaw', sa.Float(), nullable=True),
    sa.Column('eye_direction_pitch', sa.Float(), nullable=True),
    sa.Column('eye_direction_confidence', sa.Float(), nullable=True),
    sa.Column('emotion', sa.String(length=16), nullable=True),
    sa.Column('emotion_confidence', sa.Float(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_faces_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faces'))
    )
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_faces_age_mid'), ['age_mid'], unique=False)
        batch_op.create_index('ix_faces_beard', ['beard', 'beard_confidence'], unique=False)
        batch_op.create_index('ix_faces_emotion', ['emotion', 'emotion_confidence'], unique=False)
        batch_op.create_index('ix_faces_eyeglasses', ['eyeglasses', 'eyeglasses_confidence'], unique=False)
        batch_op.create_index('ix_faces_eyes_open', ['eyes_open', 'eyes_open_confidence'], unique=False)
        batch_op.create_index('ix_faces_face_occluded', ['face_occluded', 'face_occluded_confidence'], unique=False)
        batch_op.create_index('ix_faces_gender', ['gender', 'gender_confidence'], unique=False)
        batch_op.create_index(batch_op.f('ix_faces_image_id'), ['image_id'], unique=False)
        batch_op.create_index('ix_faces_mouth_open', ['mouth_open', 'mouth_open_confidence'], unique=False)
        batch_op.create_index('ix_faces_mustache', ['mustache', 'mustache_confidence'], unique=False)
        batch_op.create_index('ix_faces_smile', ['smile', 'smile_confidence'], unique=False)
        batch_op.create_index('ix_faces_sunglasses', ['sunglasses', 'sunglasses_confidence'], unique=False)

    op.create_table('emotions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_emotions_face_id_faces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emotions'))
    )
    with op.batch_alter_table('emotions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_emotions_face_id'), ['face_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('emotions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_emotions_face_id'))

    op.drop_table('emotions')
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.drop_index('ix_faces_sunglasses')
        batch_op.drop_index('ix_faces_smile')
        batch_op.drop_index('ix_faces_mustache')
        batch_op.drop_index('ix_faces_mouth_open')
        batch_op.drop_index(batch_op.f('ix_faces_image_id'))
        batch_op.drop_index('ix_faces_gender')
        batch_op.drop_index('ix_faces_face_occluded')
        batch_op.drop_index('ix_faces_eyes_open')
        batch_op.drop_index('ix_faces_eyeglasses')
        batch_op.drop_index('ix_faces_emotion')
        batch_op.drop_index('ix_faces_beard')
        batch_op.drop_index(batch_op.f('ix_faces_age_mid'))

    op.drop_table('faces')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_status'))
        batch_op.drop_index('ix_images_seen')
        batch_op.drop_index(batch_op.f('ix_images_face_count'))
        batch_op.drop_index(batch_op.f('ix_images_engine'))

    op.drop_table('images')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_status'))

    op.drop_table('runs')
    op.drop_table('locks')
    op.drop_table('engines')
