"""The catalog before migrations: one ``volumes`` table of volume stores.

Catalogs made by ooc before it had migrations hold exactly this table (made by SQLAlchemy's
``create_all``); this revision adopts such a table as it is and creates it in a new database.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ``volumes`` table unless a catalog from before migrations already has it."""
    if sa.inspect(op.get_bind()).has_table("volumes"):
        return
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


def downgrade() -> None:
    """Drop the ``volumes`` table."""
    op.drop_table("volumes")
