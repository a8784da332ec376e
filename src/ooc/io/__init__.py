"""Reading raw scans and writing, resuming and opening volume stores."""

from ooc.io.ingest import IngestReport, ingest
from ooc.io.readers import InputError, open_reader
from ooc.io.store import StoreError, VolumeStore
from ooc.io.volume import open_volume

__all__ = [
    "IngestReport",
    "InputError",
    "StoreError",
    "VolumeStore",
    "ingest",
    "open_reader",
    "open_volume",
]
