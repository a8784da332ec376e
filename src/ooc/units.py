"""Length units: the OME-NGFF names ooc writes in metadata, and the abbreviations users type."""

from __future__ import annotations

__all__ = ["metres_per_unit"]

_METRES = {
    "meter": 1.0,
    "m": 1.0,
    "millimeter": 1e-3,
    "mm": 1e-3,
    "micrometer": 1e-6,
    "micrometre": 1e-6,
    "um": 1e-6,
    "µm": 1e-6,
    "μm": 1e-6,
    "nanometer": 1e-9,
    "nanometre": 1e-9,
    "nm": 1e-9,
    "angstrom": 1e-10,
    "Å": 1e-10,
}


def metres_per_unit(unit: str) -> float | None:
    """Metres in one ``unit`` ("nanometer", "µm", ...), or ``None`` when the unit is unknown."""
    return _METRES.get(unit.strip())
