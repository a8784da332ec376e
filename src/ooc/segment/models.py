"""Saving and loading trained models in formats that run no code when loaded.

A model is a folder::

    model.json            kind, classes, names, voxel size, filter bank or network shape,
                          provenance, and the SHA-256 of the weights file
    forest.skops          a random forest (skops: no pickle; only known types are accepted)
    unet.safetensors      a U-Net's state_dict (tensors only)

:func:`load_model` checks the JSON, the checksum and, for skops, that the file holds no type
beyond scikit-learn's forest and trees, before anything is built from it. With ``lazy=True`` a
forest's weights are only checked against their checksum: a :class:`ForestFile` stands in for
the estimator and each process that predicts loads it once (segmenting then sends a path, not
the forest, to every Dask worker, and the caller never imports skops).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ooc.errors import InputError

__all__ = ["FORMAT", "ForestFile", "load_model", "save_model"]

FORMAT = "ooc-model"
VERSION = 1
_SKOPS_TRUSTED = frozenset({"sklearn.tree._tree.Tree"})
"""Types skops does not trust by default that a forest needs (scikit-learn's tree arrays)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


@dataclass(frozen=True)
class ForestFile:
    """A saved forest's weights file (``forest.skops``) and its SHA-256, loaded on first use.

    Pickles as the path and checksum; :meth:`load` reads, checks and builds the estimator once
    per process (later calls return the same object).
    """

    path: str
    sha256: str

    def load(self) -> Any:
        """The fitted ``RandomForestClassifier`` (checksum and skops types checked first)."""
        with _FORESTS_LOCK:
            key = (self.path, self.sha256)
            if key not in _FORESTS:
                _check_sha256(Path(self.path), self.sha256)  # it may have changed since
                _FORESTS[key] = _read_forest(Path(self.path))
            return _FORESTS[key]


_FORESTS: dict[tuple[str, str], Any] = {}
_FORESTS_LOCK = threading.Lock()


def _read_forest(weights: Path) -> Any:
    """The estimator in a skops file, refused unless it holds nothing but a forest's types."""
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(file=weights))
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise InputError(f"{weights}: not a skops archive ({err})") from None
    unknown = sorted(untrusted - _SKOPS_TRUSTED)
    if unknown:
        raise InputError(f"{weights}: holds types that are not a forest's: {unknown}")
    try:
        return sio.load(weights, trusted=sorted(untrusted))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{weights}: not a loadable skops forest ({err})") from None


def _check_sha256(weights: Path, sha256: str) -> None:
    if not weights.is_file():
        raise InputError(f"{weights}: weights file missing")
    if _sha256(weights) != sha256:
        raise InputError(f"{weights}: content does not match the SHA-256 in model.json")


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
    os.replace(tmp, path)


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save a :class:`~ooc.segment.TrainedForest` or :class:`~ooc.segment.TrainedUNet`.

    Parameters
    ----------
    model
        The trained model.
    path
        Folder to write (created; files in it are replaced).

    Returns
    -------
    pathlib.Path
        The folder. ``model.json`` is written last, so a folder without it is incomplete.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": model.kind,
        "classes": [int(c) for c in model.classes],
        "class_names": {str(k): v for k, v in model.class_names.items()},
        "voxel_size": list(model.voxel_size),
        "unit": model.unit,
        "provenance": model.provenance,
    }
    if model.kind == "forest":
        import skops.io as sio

        weights = folder / "forest.skops"
        sio.dump(model.estimator, weights)
        doc.update({"ndim": model.ndim, "spec": model.spec.to_dict()})
    elif model.kind == "unet":
        from safetensors.torch import save_file

        weights = folder / "unet.safetensors"
        state = {k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}
        save_file(state, str(weights))
        doc.update(
            {
                "config": model.config.to_dict(),
                "value_range": list(model.value_range),
                "tile": list(model.tile),
            }
        )
    else:
        raise TypeError(f"cannot save a model of kind {model.kind!r}")
    doc["weights"] = {"file": weights.name, "sha256": _sha256(weights)}
    _write_json(folder / "model.json", doc)
    return folder


def load_model(path: str | os.PathLike[str], *, lazy: bool = False) -> Any:
    """Load a model saved by :func:`save_model`, running no code from the files.

    With ``lazy``, a forest's estimator is a :class:`ForestFile` (checksum checked now, loaded
    where it predicts); a U-Net is always loaded.

    Raises
    ------
    InputError
        When ``model.json`` is missing or malformed, the weights do not match their
        checksum, or a skops file holds types other than a forest's.
    """
    folder = Path(path)
    meta_path = folder / "model.json"
    try:
        doc = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{meta_path}: not found; {folder} is not a saved ooc model") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{meta_path}: not valid JSON: {err}") from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise InputError(
            f"{meta_path}: field 'format'/'version' is {doc.get('format')!r}/{doc.get('version')!r}; "
            f"expected {FORMAT!r}/{VERSION}"
        )
    weights = folder / doc["weights"]["file"]
    if Path(doc["weights"]["file"]).name != doc["weights"]["file"]:
        raise InputError(f"{meta_path}: field 'weights/file' must be a file name in the folder")
    _check_sha256(weights, doc["weights"]["sha256"])
    common = {
        "classes": tuple(int(c) for c in doc["classes"]),
        "voxel_size": tuple(float(v) for v in doc["voxel_size"]),
        "unit": doc.get("unit", "voxel"),
        "class_names": {int(k): v for k, v in doc.get("class_names", {}).items()},
        "provenance": doc.get("provenance", {}),
    }
    if doc["kind"] == "forest":
        from ooc.features import FeatureSpec
        from ooc.segment.forest import TrainedForest

        stored = ForestFile(str(weights.resolve()), doc["weights"]["sha256"])
        return TrainedForest(
            estimator=stored if lazy else _read_forest(weights),
            spec=FeatureSpec.from_dict(doc["spec"]),
            ndim=int(doc["ndim"]),
            **common,
        )
    if doc["kind"] == "unet":
        from safetensors.torch import load_file

        from ooc.segment.unet import TrainedUNet, UNet, UNetConfig

        net = UNet(UNetConfig.from_dict(doc["config"]))
        net.load_state_dict(load_file(str(weights)))
        net.eval()
        return TrainedUNet(
            network=net,
            value_range=(float(doc["value_range"][0]), float(doc["value_range"][1])),
            tile=tuple(int(t) for t in doc["tile"]),
            **common,
        )
    raise InputError(f"{meta_path}: field 'kind' is {doc['kind']!r}; expected 'forest' or 'unet'")
