"""The catalog: every store ooc writes (volumes, segmentations, models, results) with its
lineage and key numbers, searchable by sample, modality, scale, time and stored numbers.

SQLite by default (a file in the data folder); PostgreSQL where many users share one catalog
(``postgresql+psycopg://user@host/ooc``); any SQLAlchemy URL. The tables are created and upgraded
by the Alembic migrations shipped in ``ooc/catalog/migrations``, on the first use of a catalog
URL in a process; a catalog from before migrations upgrades in place. Registering the same
store again updates it, so re-running a flow never duplicates entries.

- :func:`register` reads a complete store's ``ooc_stage`` record and adds or updates it;
- :func:`search` answers "which stores" as a ``pandas.DataFrame``, with conditions on key
  numbers such as ``"permeability_mD_z > 1"``;
- :func:`lineage` and :func:`descendants` follow the parents recorded by each store.
"""

from ooc.catalog.queries import COLUMNS, LINEAGE_COLUMNS, descendants, lineage, search
from ooc.catalog.registry import Entry, register

__all__ = ["COLUMNS", "LINEAGE_COLUMNS", "Entry", "descendants", "lineage", "register", "search"]
