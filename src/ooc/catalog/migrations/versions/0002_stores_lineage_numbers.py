"""Every store kind, with lineage and key numbers: ``stores``, ``parents``, ``numbers``.

The rows of ``volumes`` move to ``stores`` as volume stores (store kind "volume", no stage record);
``volumes`` is dropped. Downgrading moves volume stores back and drops everything else.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_VOLUME_COLUMNS = (
    "url, sample_id, modality, kind, unit, voxel_z, voxel_y, voxel_x, voxel_m, "
    "shape_z, shape_y, shape_x, dtype, created, registered, extra"
)


def upgrade() -> None:
    """Create the three tables and move the volume rows into ``stores``."""
    op.create_table(
        "stores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("store_kind", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32)),
        sa.Column("sample_id", sa.String(256)),
        sa.Column("modality", sa.String(32)),
        sa.Column("kind", sa.String(16)),
        sa.Column("unit", sa.String(16)),
        sa.Column("voxel_z", sa.Float),
        sa.Column("voxel_y", sa.Float),
        sa.Column("voxel_x", sa.Float),
        sa.Column("voxel_m", sa.Float),
        sa.Column("shape_z", sa.Integer),
        sa.Column("shape_y", sa.Integer),
        sa.Column("shape_x", sa.Integer),
        sa.Column("dtype", sa.String(16)),
        sa.Column("digest", sa.String(64)),
        sa.Column("code_version", sa.Integer),
        sa.Column("model_digest", sa.String(64)),
        sa.Column("ooc_version", sa.String(32)),
        sa.Column("seconds", sa.Float),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON),
        sa.Column("extra", sa.JSON, nullable=False),
    )
    op.create_index("ix_stores_url", "stores", ["url"], unique=True)
    for column in ("store_kind", "stage", "sample_id", "modality", "voxel_m", "digest", "created"):
        op.create_index(f"ix_stores_{column}", "stores", [column])
    op.create_table(
        "parents",
        sa.Column(
            "child_id",
            sa.Integer,
            sa.ForeignKey("stores.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("url", sa.String(2048), primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(64)),
    )
    op.create_index("ix_parents_url", "parents", ["url"])
    op.create_table(
        "numbers",
        sa.Column(
            "store_id",
            sa.Integer,
            sa.ForeignKey("stores.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Float),
    )
    op.create_index("ix_numbers_name_value", "numbers", ["name", "value"])
    op.execute(
        f"INSERT INTO stores (store_kind, {_VOLUME_COLUMNS}) "
        f"SELECT 'volume', {_VOLUME_COLUMNS} FROM volumes ORDER BY id"
    )
    op.drop_table("volumes")


def downgrade() -> None:
    """Move the volume stores back into ``volumes``; other stores, lineage and numbers are lost."""
    op.create_table(
        "volumes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("sample_id", sa.String(256), nullable=False),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("voxel_z", sa.Float, nullable=False),
        sa.Column("voxel_y", sa.Float, nullable=False),
        sa.Column("voxel_x", sa.Float, nullable=False),
        sa.Column("voxel_m", sa.Float, nullable=False),
        sa.Column("shape_z", sa.Integer, nullable=False),
        sa.Column("shape_y", sa.Integer, nullable=False),
        sa.Column("shape_x", sa.Integer, nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
    )
    op.create_index("ix_volumes_url", "volumes", ["url"], unique=True)
    op.create_index("ix_volumes_sample_id", "volumes", ["sample_id"])
    op.create_index("ix_volumes_modality", "volumes", ["modality"])
    op.create_index("ix_volumes_voxel_m", "volumes", ["voxel_m"])
    op.create_index("ix_volumes_created", "volumes", ["created"])
    complete = " AND ".join(f"{c} IS NOT NULL" for c in _VOLUME_COLUMNS.split(", "))
    op.execute(
        f"INSERT INTO volumes ({_VOLUME_COLUMNS}) SELECT {_VOLUME_COLUMNS} FROM stores "
        f"WHERE store_kind = 'volume' AND {complete} ORDER BY id"
    )
    op.drop_table("numbers")
    op.drop_table("parents")
    op.drop_table("stores")
