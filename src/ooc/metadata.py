"""Volume metadata (voxel size, unit, modality, sample) and its validation against the schema."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ooc.errors import MetadataError

__all__ = ["MetadataError", "VolumeMetadata", "load_schema", "validate"]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``schemas/<name>.schema.json`` shipped with ooc."""
    text = resources.files("ooc").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def validate(document: dict[str, Any], schema: str, *, source: str) -> None:
    """Check ``document`` against ``schemas/<schema>.schema.json``.

    Raises
    ------
    MetadataError
        Naming ``source`` (a file or "command line"), every offending field and what was expected.
    """
    validator = jsonschema.Draft202012Validator(load_schema(schema))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  field '{where}': {err.message}")
        raise MetadataError(
            f"{source}: invalid {schema} metadata ({schema}.schema.json):\n" + "\n".join(lines)
        )


@dataclass(frozen=True)
class VolumeMetadata:
    """What a volume store says about its data.

    ``voxel_size`` is the edge length along (z, y, x) in ``unit`` (an OME-NGFF unit name).
    ``kind`` is "grey" for intensities or "labels" for integer classes, named in ``labels``.
    """

    sample_id: str
    modality: str
    voxel_size: tuple[float, float, float]
    unit: str = "micrometer"
    kind: str = "grey"
    labels: dict[str, str] = field(default_factory=dict)
    acquisition: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the volume's attributes; empty optional fields left out."""
        doc = asdict(self)
        doc["voxel_size"] = [float(v) for v in self.voxel_size]
        return {k: v for k, v in doc.items() if v != {}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, source: str) -> VolumeMetadata:
        """Validate ``doc`` (from ``source``, named in errors) and build the metadata."""
        validate(doc, "volume", source=source)
        return cls(**{**doc, "voxel_size": tuple(doc["voxel_size"])})

    def validated(self, *, source: str) -> VolumeMetadata:
        """Self, after checking against the schema (raises :class:`MetadataError`)."""
        validate(self.to_dict(), "volume", source=source)
        return self
