"""Length units: the OME-NGFF names ooc writes in metadata, and the names users type for them."""

from __future__ import annotations

from ooc.errors import MetadataError

__all__ = ["NGFF_UNITS", "metres_per_unit", "ngff_unit", "unit_symbol"]

NGFF_UNITS: dict[str, float] = {
    "nanometer": 1e-9,
    "micrometer": 1e-6,
    "millimeter": 1e-3,
    "meter": 1.0,
}
"""The OME-NGFF length units ooc stores, and metres in one of each."""

_SYMBOLS = {  # the first is the one ooc writes for people
    "nanometer": ("nm",),
    # micro sign U+00B5 and Greek small letter mu U+03BC: keyboards give either
    "micrometer": ("\u00b5m", "um", "\u03bcm"),
    "millimeter": ("mm",),
    "meter": ("m",),
}
_SYMBOL_NAMES = {symbol: ngff for ngff, symbols in _SYMBOLS.items() for symbol in symbols}
_LONG_NAMES = {  # matched in lower case, singular or plural
    long + plural: ngff
    for ngff in NGFF_UNITS
    for long in (ngff, ngff.removesuffix("meter") + "metre")
    for plural in ("", "s")
} | {"micron": "micrometer", "microns": "micrometer"}
_ACCEPTED = "; ".join(
    f"{ngff} ({', '.join(symbols)}, {ngff.removesuffix('meter')}metre)"
    for ngff, symbols in _SYMBOLS.items()
)


def ngff_unit(text: str) -> str:
    """The OME-NGFF name of the length unit ``text`` ("um", "µm", "nanometre" -> ...).

    Symbols (``nm``, ``um``, ``µm``/``μm``, ``mm``, ``m``) match exactly; long names
    (``micrometer``, ``micrometre``, ``microns``, ...) in any case. Spaces around are ignored.

    Raises
    ------
    MetadataError
        Naming ``text`` and the accepted names.
    """
    found = None
    if isinstance(text, str):
        key = text.strip()
        found = _SYMBOL_NAMES.get(key) or _LONG_NAMES.get(key.lower())
    if found is None:
        raise MetadataError(f"unit {text!r} is not a length unit ooc knows; expected {_ACCEPTED}")
    return found


def metres_per_unit(unit: str) -> float | None:
    """Metres in one ``unit`` (any name :func:`ngff_unit` takes), or ``None`` when unknown."""
    try:
        return NGFF_UNITS[ngff_unit(unit)]
    except MetadataError:
        return None


def unit_symbol(unit: str) -> str:
    """The symbol of a length unit for display ("micrometer" -> "µm"); other text as given."""
    try:
        return _SYMBOLS[ngff_unit(unit)][0]
    except MetadataError:
        return unit
