"""Segmentation from sparse labels: random forest on filter-bank features, or a 3D U-Net.

The workflow (train, look, add labels, train again)::

    import ooc
    from ooc.features import FeatureSpec
    from ooc.segment import load_annotations, train_forest, segmentation, save_model, uncertain_regions

    vol = ooc.open_volume("rock.zarr")                       # lazy (z, y, x), any size
    ann = load_annotations("scribbles.json", like=vol)       # boxes, points, strokes, slices
    model = train_forest(vol, ann, FeatureSpec())            # features only around labels
    save_model(model, "rock.model")                          # skops + JSON, no pickle
    seg = segmentation(vol, model)                           # lazy labels, probabilities, uncertainty
    uncertain_regions(seg["uncertainty"].data)[:3]           # where to add labels next

- :func:`load_annotations` / :class:`Annotations` - sparse labels from JSON shapes, label
  TIFFs or stores, arrays, or labelled 2D slices.
- :func:`train_forest` / :class:`TrainedForest` - scikit-learn random forest on the labelled
  voxels; :func:`forest_probabilities` applies it block by block (features and prediction in
  one task).
- :func:`train_unet` / :func:`predict_unet` / :class:`TrainedUNet` - a PyTorch 3D U-Net from
  partial labels, resumable checkpoints, blended tiled inference (needs ``torch``).
- :func:`segmentation` - a whole volume's labels, probabilities and uncertainty, lazily (the
  segment stage, :mod:`ooc.stages`, writes them as volume stores).
- :func:`save_model` / :func:`load_model`; :func:`iou`, :func:`multi_otsu` and
  :func:`simulate_scribbles` for evaluation.
"""

from typing import Any

from ooc.segment.annotations import Annotations, load_annotations, rasterize
from ooc.segment.forest import (
    TrainedForest,
    forest_probabilities,
    select_bank,
    train_forest,
    training_features,
)
from ooc.segment.metrics import confusion_matrix, iou, match_labels, mean_iou, multi_otsu
from ooc.segment.models import load_model, save_model
from ooc.segment.predict import segmentation
from ooc.segment.priors import estimate_prior, scan_prior, shift_prior, training_prior
from ooc.segment.scribbles import simulate_scribbles
from ooc.segment.uncertainty import (
    UncertainRegion,
    entropy,
    format_regions,
    margin,
    uncertain_regions,
)

_TORCH = {
    "TrainedUNet": "TrainedUNet",
    "UNet": "UNet",
    "UNetConfig": "UNetConfig",
    "train_unet": "train_unet",
    "predict_unet": "unet_probabilities",
    "unet_probabilities": "unet_probabilities",
}

__all__ = [
    "Annotations",
    "TrainedForest",
    "TrainedUNet",
    "UNet",
    "UNetConfig",
    "UncertainRegion",
    "confusion_matrix",
    "entropy",
    "estimate_prior",
    "forest_probabilities",
    "format_regions",
    "iou",
    "load_annotations",
    "load_model",
    "margin",
    "match_labels",
    "mean_iou",
    "multi_otsu",
    "predict_unet",
    "rasterize",
    "save_model",
    "scan_prior",
    "segmentation",
    "select_bank",
    "shift_prior",
    "simulate_scribbles",
    "train_forest",
    "train_unet",
    "training_features",
    "training_prior",
    "uncertain_regions",
    "unet_probabilities",
]


def __getattr__(name: str) -> Any:
    """The U-Net names, imported on first use (they need PyTorch)."""
    if name in _TORCH:
        from ooc.segment import unet

        return getattr(unet, _TORCH[name])
    raise AttributeError(f"module 'ooc.segment' has no attribute {name!r}")
