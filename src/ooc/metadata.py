"""Volume metadata (voxel size, unit, modality, sample) and its validation against the schema."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from ooc.errors import MetadataError
from ooc.units import ngff_unit

__all__ = ["MetadataError", "VolumeMetadata", "load_schema", "validate"]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``schemas/<name>.schema.json`` shipped with ooc."""
    text = resources.files("ooc").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def _normalized(document: dict[str, Any], schema: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``document`` with the names users type replaced by the stored ones, and the
    message for each field that has no stored name (field -> message).

    Volume metadata: ``unit`` becomes its OME-NGFF name (``"um"`` -> ``"micrometer"``).
    """
    if schema != "volume" or "unit" not in document:
        return document, {}
    try:
        return {**document, "unit": ngff_unit(document["unit"])}, {}
    except MetadataError as err:
        return document, {"unit": str(err)}


@cache
def _registry() -> Registry:
    """Every shipped schema by its ``$id``, so schemas can refer to each other."""
    names = [
        p.name.removesuffix(".schema.json")
        for p in resources.files("ooc").joinpath("schemas").iterdir()
        if p.name.endswith(".schema.json")
    ]
    return Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n))) for n in names
    )


def validate(
    document: dict[str, Any], schema: str, *, source: str, definition: str | None = None
) -> None:
    """Check ``document`` against ``schemas/<schema>.schema.json`` (or one of its ``$defs``).

    Volume metadata may name its unit in any form :func:`ooc.units.ngff_unit` takes (``um``,
    ``µm``, ``nanometre``...); it is checked as the OME-NGFF name it stands for.

    Raises
    ------
    MetadataError
        Naming ``source`` (a file or "command line"), every offending field and what was expected.
    """
    root = load_schema(schema)
    if definition is not None:
        root = {"$ref": f"{root['$id']}#/$defs/{definition}"}
    validator = jsonschema.Draft202012Validator(root, registry=_registry())
    document, messages = _normalized(document, schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            # for "one of these shapes" errors, the branch that came closest says what is wrong
            err = best_match(err.context) if err.context else err
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"field '{where}': {messages.get(where, err.message)}")
        raise MetadataError(
            f"{source}: invalid {schema} ({schema}.schema.json): " + "; ".join(lines)
        )


@dataclass(frozen=True)
class VolumeMetadata:
    """What a volume store says about its data.

    ``voxel_size`` is the edge length along (z, y, x) in ``unit``: an OME-NGFF unit name, also
    given as any name :func:`ooc.units.ngff_unit` takes (``"um"`` is stored as ``"micrometer"``).
    ``kind`` is "grey" for intensities or "labels" for integer classes, named in ``labels``.
    """

    sample_id: str
    modality: str
    voxel_size: tuple[float, float, float]
    unit: str = "micrometer"
    kind: str = "grey"
    labels: dict[str, str] = field(default_factory=dict)
    acquisition: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # known names become the stored one; an unknown unit is left for validation to report
        normalized, _ = _normalized({"unit": self.unit}, "volume")
        object.__setattr__(self, "unit", normalized["unit"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the volume's attributes; empty optional fields left out."""
        doc = asdict(self)
        doc["voxel_size"] = [float(v) for v in self.voxel_size]
        return {k: v for k, v in doc.items() if v != {}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, source: str) -> VolumeMetadata:
        """Validate ``doc`` (from ``source``, named in errors) and build the metadata.

        The unit may be any name :func:`ooc.units.ngff_unit` takes; it is stored as the
        OME-NGFF name.
        """
        validate(doc, "volume", source=source)
        return cls(**{**doc, "voxel_size": tuple(doc["voxel_size"])})

    def validated(self, *, source: str) -> VolumeMetadata:
        """Self, after checking against the schema (raises :class:`MetadataError`)."""
        validate(self.to_dict(), "volume", source=source)
        return self
