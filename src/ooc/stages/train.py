"""Train stage: a random forest from sparse labels on a grey volume -> a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ooc.config import Settings
from ooc.errors import ConfigError
from ooc.features import FeatureSpec
from ooc.segment import load_annotations, save_model, train_forest
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input
from ooc.stages.record import Parent, file_parent, model_weights_digest, store_parent

__all__ = ["CODE_VERSION", "run_train"]

CODE_VERSION = 1


def annotations_parent(source: str, settings: Settings) -> Parent:
    """An annotation file (label TIFF, JSON shapes) or label store, as a parent."""
    if Path(source).is_file():
        return file_parent(source, "annotations")
    return store_parent(source, "annotations", storage_options=settings.storage_options(source))


def run_train(
    volume: str,
    annotations: str,
    model: str,
    *,
    settings: Settings,
    filters: dict[str, list[float]] | None = None,
    class_weight: str | None = None,
    class_names: dict[str, str] | None = None,
    n_estimators: int = 100,
    n_features: int | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Train a forest on the labelled voxels of ``volume`` (features only around them) and save
    it to the folder ``model`` (skops + JSON, no pickle).

    ``annotations``: a label TIFF of the volume's shape (0 = unlabelled, 1.. = classes), a JSON
    file of shapes (``schemas/annotations.schema.json``) or a label store; ``class_names``
    names the label values (``{"1": "pore", ...}``). ``n_features`` prunes the filter bank to
    the filters of the forest's most important channels (:func:`ooc.segment.select_bank`), so
    segmenting with the model computes only those.

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).
    """
    parameters: dict[str, Any] = {
        "filters": filters,
        "class_weight": class_weight,
        "class_names": dict(class_names or {}),
        "n_estimators": n_estimators,
    }
    if n_features is not None:  # only when set: earlier runs' parameters stay the same
        if n_features < 1:
            raise ConfigError(
                f"train: field 'n_features' is {n_features}; expected an integer >= 1"
            )
        parameters["n_features"] = n_features
    vol, vol_parent = open_input(volume, kind="grey", role="volume", settings=settings)
    parents = [vol_parent, annotations_parent(annotations, settings)]
    # read and checked before any work (shape, labels): sparse labels are small next to a scan
    names = {int(k): v for k, v in (class_names or {}).items()}
    ann = load_annotations(annotations, like=vol, class_names=names or None)

    def body(ctx: Context) -> Product:
        spec = FeatureSpec(filters=filters) if filters else FeatureSpec()
        trained = train_forest(
            vol,
            ann,
            spec,
            class_weight=class_weight,
            n_estimators=n_estimators,
            n_features=n_features,
        )
        folder = save_model(trained, ctx.url)
        weights = model_weights_digest(str(folder))
        return Product(
            store_kind="model",
            summary={
                "classes": list(trained.classes),
                "class_names": {str(k): v for k, v in trained.class_names.items()},
                "features": len(trained.feature_names),
                "labelled_voxels": int(ann.n_voxels),
            },
            sample_id=vol.attrs.get("sample_id"),
            modality=vol.attrs.get("modality"),
            model_digest=weights,
        )

    return run_stage(
        "train",
        code_version=CODE_VERSION,
        output=model,
        parameters=parameters,
        parents=parents,
        settings=settings,
        body=body,
        check_only=check_only,
    )
