"""Initial schema: jobs, trials, targets, latency records, API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.core.sqltypes import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ffnas_api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _timestamp("created_at"),
    )
    op.create_index("ix_ffnas_api_tokens_owner_id", "ffnas_api_tokens", ["owner_id"])

    op.create_table(
        "ffnas_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("evaluator", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("study_name", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
    )
    op.create_index("ix_ffnas_jobs_owner_id", "ffnas_jobs", ["owner_id"])
    op.create_index("ix_ffnas_jobs_status", "ffnas_jobs", ["status"])
    op.create_index("ix_ffnas_jobs_target", "ffnas_jobs", ["target"])
    op.create_index("ix_ffnas_jobs_updated_at", "ffnas_jobs", ["updated_at"])

    op.create_table(
        "ffnas_latency_records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(512), nullable=False),
        sa.Column("p20_ms", sa.Float(), nullable=False),
        sa.Column("p50_ms", sa.Float(), nullable=False),
        sa.Column("p80_ms", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        _timestamp("measured_at"),
        sa.UniqueConstraint("target", "signature", name="uq_ffnas_latency_records_target_signature"),
    )

    op.create_table(
        "ffnas_targets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=True),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        _timestamp("last_seen"),
    )

    op.create_table(
        "ffnas_trials",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("ffnas_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("design", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("feasible", sa.Boolean(), nullable=True),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("constraints", sa.JSON(), nullable=False),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("latency_p20_ms", sa.Float(), nullable=True),
        sa.Column("latency_p50_ms", sa.Float(), nullable=True),
        sa.Column("latency_p80_ms", sa.Float(), nullable=True),
        sa.Column("layer_latency_ms", sa.JSON(), nullable=True),
        sa.Column("target_fingerprint", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        _timestamp("heartbeat_at", nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.UniqueConstraint("job_id", "number", name="uq_ffnas_trials_job_number"),
    )
    op.create_index("ix_ffnas_trials_job_id", "ffnas_trials", ["job_id"])
    op.create_index("ix_ffnas_trials_job_state", "ffnas_trials", ["job_id", "state"])
    op.create_index("ix_ffnas_trials_updated_at", "ffnas_trials", ["updated_at"])


def downgrade() -> None:
    op.drop_table("ffnas_trials")
    op.drop_table("ffnas_targets")
    op.drop_table("ffnas_latency_records")
    op.drop_table("ffnas_jobs")
    op.drop_table("ffnas_api_tokens")
