"""Random forest from sparse labels: features around labelled voxels only, then blockwise predict.

Training computes the filter bank only on small boxes around the labelled voxels (each box read
with the bank's halo), so a volume of any size costs what its annotations cost. Prediction fuses
features and forest in one task per block (``map_overlap``-style halo, then ``predict_proba``
inside the block), so the feature stack of the whole volume never exists; this is why it uses
``map_blocks`` rather than dask-ml's ``ParallelPostFit``, which would need the stack as a
``(voxels, features)`` Dask array.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dask
import dask.array as da
import numpy as np

from ooc.features import FeatureSpec, as_volume, cupy_available, features_at, intensity_range
from ooc.features.chunked import map_blocks_with_halo
from ooc.features.spec import FILTERS
from ooc.features.stack import feature_stack
from ooc.provenance import make_record
from ooc.segment.annotations import Annotations, load_annotations
from ooc.segment.models import ForestFile
from ooc.xp import to_numpy

__all__ = [
    "TrainedForest",
    "forest_probabilities",
    "prediction_block",
    "select_bank",
    "train_forest",
    "training_features",
]


@dataclass
class TrainedForest:
    """A random forest with everything needed to apply it to another volume.

    Attributes
    ----------
    estimator
        The fitted ``sklearn.ensemble.RandomForestClassifier`` (its ``classes_`` are label
        values), or the :class:`~ooc.segment.models.ForestFile` it is loaded from where it
        predicts (``load_model(..., lazy=True)``).
    spec
        The filter bank it was trained on (with the grey range fixed when it needs one).
    classes
        Label values, in the order of ``predict_proba``'s columns.
    ndim
        2 or 3: the dimensionality of the volumes it applies to.
    voxel_size, unit
        Of the training volume (the filter scales follow each volume's own voxel size).
    class_names
        Names of label values.
    provenance
        How it was made (:func:`ooc.provenance.make_record`): parameters, annotation and
        volume sources, label counts, out-of-bag score.
    """

    estimator: Any
    spec: FeatureSpec
    classes: tuple[int, ...]
    ndim: int
    voxel_size: tuple[float, ...]
    unit: str = "voxel"
    class_names: dict[int, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    kind = "forest"

    @property
    def feature_names(self) -> list[str]:
        """Names of the features, in the forest's input order."""
        return self.spec.channel_names(self.ndim)

    def predict_proba(self, volume: Any, **kwargs: Any) -> da.Array:
        """Lazy per-class probabilities of ``volume``; see :func:`forest_probabilities`."""
        return forest_probabilities(volume, self, **kwargs)


def _tile_features(
    block: np.ndarray,
    points: np.ndarray,
    spec: FeatureSpec,
    voxel_size: tuple[float, ...],
    device: str,
) -> np.ndarray:
    if device == "gpu":  # pragma: no cover - needs a GPU
        import cupy as cp

        block = cp.asarray(block)
        pts = tuple(cp.asarray(p) for p in points.T)
    else:
        pts = tuple(points.T)
    return to_numpy(features_at(block, spec, pts, voxel_size=voxel_size))


def training_features(
    volume: Any,
    annotations: Annotations,
    spec: FeatureSpec,
    *,
    tile: int = 64,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Feature vectors of the labelled voxels, computed only around them.

    The volume is cut into ``tile``-voxel cubes; for each cube holding labels, the bounding box
    of its labels plus the bank's halo is read and filtered, and the features are taken at the
    labelled voxels. Values equal those of :func:`ooc.features.compute_features` over the
    whole volume (the halo makes every box exact). Boxes are filtered in parallel on the
    active Dask scheduler.

    Returns
    -------
    X : numpy.ndarray
        float32 ``(N, C)`` features, rows in ``annotations`` order.
    y : numpy.ndarray
        ``(N,)`` label values.
    info : dict
        ``boxes`` (how many), ``voxels_filtered`` (voxels read and filtered, halos included)
        and ``volume_voxels``.
    """
    vol = as_volume(volume)
    if annotations.shape != vol.shape:
        raise ValueError(f"annotations of shape {annotations.shape} for a volume {vol.shape}")
    ndim = len(vol.shape)
    halo = np.array(spec.halo(vol.voxel_size, ndim))
    shape = np.array(vol.shape)
    coords = annotations.coords
    cell = coords // tile
    order = np.lexsort(cell.T[::-1])
    cell_sorted = cell[order]
    cuts = np.flatnonzero(np.any(np.diff(cell_sorted, axis=0) != 0, axis=1)) + 1
    groups = np.split(order, cuts)
    tasks, filtered = [], 0
    for rows in groups:
        pts = coords[rows]
        lo = np.maximum(pts.min(axis=0) - halo, 0)
        hi = np.minimum(pts.max(axis=0) + 1 + halo, shape)
        filtered += int(np.prod(hi - lo))
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        tasks.append(
            dask.delayed(_tile_features)(vol.data[box], pts - lo, spec, vol.voxel_size, device)
        )
    from ooc.cluster import run_tasks

    parts = run_tasks(tasks, desc="training features") if tasks else []
    X = np.empty((len(coords), spec.n_channels(ndim)), dtype=np.float32)
    for rows, part in zip(groups, parts, strict=True):
        X[rows] = part
    info = {
        "boxes": len(groups),
        "voxels_filtered": filtered,
        "volume_voxels": int(np.prod(shape)),
    }
    return X, annotations.labels.copy(), info


def select_bank(
    spec: FeatureSpec, importances: Sequence[float], n_features: int, *, ndim: int = 3
) -> FeatureSpec:
    """The smallest part of a filter bank that holds its ``n_features`` most important channels.

    Parameters
    ----------
    spec
        The full bank.
    importances
        One value per channel of ``spec`` (``spec.channel_names(ndim)`` order), e.g. a
        forest's ``feature_importances_``.
    n_features
        How many of the most important channels to keep (ties broken by channel order).

    Returns
    -------
    FeatureSpec
        ``spec`` with only the (filter, scale) pairs those channels come from, other options
        unchanged; an eigenvalue filter keeps all its channels, so the result may have a few
        more than ``n_features``.
    """
    owners = [
        (name, s)
        for name, scales in spec.filters
        for s in scales
        for _ in range(FILTERS[name] or ndim)
    ]
    imp = np.asarray(importances, dtype=float)
    if imp.shape != (len(owners),):
        raise ValueError(f"need {len(owners)} importances (one per channel), got {imp.shape}")
    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    best = np.argsort(-imp, kind="stable")[:n_features]
    kept: dict[str, list[float]] = {}
    for i in sorted(best):
        name, s = owners[i]
        kept.setdefault(name, []).append(s)
    return replace(spec, filters=kept)


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "gpu" if cupy_available() else "cpu"
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    return device


def train_forest(
    volume: Any,
    annotations: Any,
    spec: FeatureSpec | None = None,
    *,
    n_estimators: int = 100,
    max_depth: int | None = None,
    min_samples_leaf: int = 1,
    max_features: str | float | None = "sqrt",
    class_weight: str | Mapping[int, float] | None = None,
    max_samples_per_class: int | None = None,
    n_jobs: int | None = None,
    random_state: int = 0,
    device: str = "cpu",
    tile: int = 64,
    n_features: int | None = None,
) -> TrainedForest:
    """Train a random forest on the labelled voxels of a volume.

    Parameters
    ----------
    volume
        Grey volume: ``xarray.DataArray`` from :func:`ooc.open_volume`, Dask or NumPy array
        (2D or 3D); or a list of them (e.g. several labelled slices) with a list of
        annotations, one per volume.
    annotations
        :class:`~ooc.segment.Annotations` or any source :func:`load_annotations` takes
        (JSON shapes, label TIFF or store, array). Label values >= 1 are the classes.
    spec
        Filter bank (default ``FeatureSpec()``: ilastik's six filters at seven scales). When it
        has an entropy filter and no ``value_range``, the range is fixed from the volume.
    n_estimators, max_depth, min_samples_leaf, max_features, n_jobs, random_state
        Passed to ``sklearn.ensemble.RandomForestClassifier`` (prediction always runs with
        ``n_jobs=1`` per block: Dask provides the parallelism).
    class_weight
        ``None``, ``"balanced"``, ``"balanced_subsample"`` or ``{label: weight}``: weights
        classes against their labelled voxel counts.
    max_samples_per_class
        Train on at most this many labelled voxels per class (random, reproducible).
    device
        ``"cpu"``, ``"gpu"`` (CuPy kernels) or ``"auto"`` for computing the features.
    tile
        Edge (voxels) of the cubes labelled voxels are grouped by for filtering.
    n_features
        Prune the bank as ilastik's feature selection does: fit a forest on all of ``spec``,
        keep the filters and scales of its ``n_features`` most important channels
        (:func:`select_bank`) and fit the returned forest on those alone, so prediction
        computes only them. None keeps the whole bank.

    Returns
    -------
    TrainedForest
        With provenance: parameters, sources, label counts, out-of-bag accuracy and time.
    """
    t0 = time.perf_counter()
    many = isinstance(volume, list | tuple)
    vols = [as_volume(v) for v in (volume if many else [volume])]
    sources = annotations if many else [annotations]
    if len(sources) != len(vols):
        raise ValueError(f"{len(vols)} volumes but {len(sources)} annotation sources")
    if len({len(v.shape) for v in vols}) != 1:
        raise ValueError("all training volumes must have the same dimensionality")
    anns = [
        a if isinstance(a, Annotations) else load_annotations(a, v)
        for a, v in zip(sources, vols, strict=True)
    ]
    if max_samples_per_class:
        anns = [a.subsample(max_samples_per_class, seed=random_state) for a in anns]
    classes = sorted(set().union(*(a.classes.tolist() for a in anns)))
    if len(classes) < 2:
        raise ValueError(f"need labels of at least 2 classes, got {classes}")
    spec = spec or FeatureSpec()
    if spec.needs_value_range and spec.value_range is None:
        spec = spec.with_value_range(intensity_range(vols[0].data))
    device = _resolve_device(device)
    parts = [
        training_features(v, a, spec, tile=tile, device=device)
        for v, a in zip(vols, anns, strict=True)
    ]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    info = {k: sum(p[2][k] for p in parts) for k in parts[0][2]}
    counts: dict[int, int] = {}
    for a in anns:
        for k, n in a.counts().items():
            counts[k] = counts.get(k, 0) + n
    names: dict[int, str] = {}
    for a in anns:
        names.update(a.class_names)
    vol = vols[0]
    cw = (
        {int(k): float(v) for k, v in class_weight.items()}
        if isinstance(class_weight, Mapping)
        else class_weight
    )

    # imported after the features: the verb's work starts a second sooner
    from sklearn.ensemble import RandomForestClassifier

    def fit(features: np.ndarray) -> Any:
        est = RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            class_weight=cw,
            n_jobs=n_jobs,
            random_state=random_state,
            oob_score=True,
        )
        with warnings.catch_warnings():
            # few trees leave some samples without out-of-bag votes; the score is still useful
            warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
            est.fit(features, y)
        return est

    ndim = len(vols[0].shape)
    est = fit(X)
    selection = None
    if n_features is not None and n_features < X.shape[1]:
        full = spec
        spec = select_bank(full, est.feature_importances_, n_features, ndim=ndim)
        all_channels = full.channel_names(ndim)
        X = X[:, [all_channels.index(n) for n in spec.channel_names(ndim)]]
        selection = {
            "from_channels": len(all_channels),
            "n_features": n_features,
            "channels": spec.n_channels(ndim),
            "full_oob_accuracy": float(est.oob_score_),
        }
        est = fit(X)
    params = {
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "min_samples_leaf": min_samples_leaf,
        "max_features": max_features,
        "class_weight": cw,
        "max_samples_per_class": max_samples_per_class,
        "random_state": random_state,
        "spec": spec.to_dict(),
        "labelled_voxels": counts,
        "labelled_fraction": float(len(y) / sum(np.prod(v.shape) for v in vols)),
        "oob_accuracy": float(est.oob_score_),
        "feature_selection": selection,
        "training": {**info, "seconds": round(time.perf_counter() - t0, 3), "device": device},
    }
    inputs = []
    for v, a in zip(vols, anns, strict=True):
        inputs.append({"volume": v.attrs.get("url", "array"), "shape": list(v.shape)})
        inputs.append({"annotations": a.source or "annotations"})
    record = make_record("train_forest", parameters=params, inputs=inputs)
    return TrainedForest(
        estimator=est,
        spec=spec,
        classes=tuple(int(c) for c in est.classes_),
        ndim=len(vol.shape),
        voxel_size=tuple(vol.voxel_size),
        unit=vol.unit,
        class_names=names,
        provenance=record,
    )


def _forest_block(
    padded: Any,
    crop: tuple[slice, ...],
    estimator: Any,
    *,
    spec: FeatureSpec,
    voxel_size: tuple[float, ...],
    device: str,
    rows: int = 1 << 16,
) -> np.ndarray:
    if isinstance(estimator, ForestFile):
        estimator = estimator.load()
    if device == "gpu":  # pragma: no cover - needs a GPU
        import cupy as cp

        padded = cp.asarray(padded)
    X = feature_stack(padded, spec, voxel_size=voxel_size, crop=crop, channels_last=True)
    shape = X.shape[:-1]
    X = to_numpy(X).reshape(-1, X.shape[-1])
    k = len(estimator.classes_)
    out = np.empty((k, X.shape[0]), dtype=np.float32)
    for start in range(
        0, X.shape[0], rows
    ):  # in row batches: sklearn's float64 temporaries stay small
        out[:, start : start + rows] = _predict_proba(estimator, X[start : start + rows]).T
    del X
    return out.reshape(k, *shape)


def _predict_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    """``estimator.predict_proba(X)``; for a fitted scikit-learn forest, the mean of its trees'
    probabilities computed here, as the forest does, without joblib.

    scikit-learn's ``Parallel`` swaps the process-wide warning filters while it runs, which
    races when several Dask threads predict at once (Python < 3.14); the trees alone do not.
    """
    trees = getattr(estimator, "estimators_", None)
    if trees is None or not hasattr(trees[0], "tree_") or getattr(estimator, "n_outputs_", 1) != 1:
        return estimator.predict_proba(X)
    X = np.ascontiguousarray(X, dtype=np.float32)
    proba = trees[0].predict_proba(X, check_input=False)
    for tree in trees[1:]:
        proba += tree.predict_proba(X, check_input=False)
    proba /= len(trees)
    return proba


def prediction_block(
    chunks: Sequence[int], halo: Sequence[int], n_features: int, budget_bytes: int
) -> tuple[int, ...]:
    """Block shape for fused features + prediction: the storage chunk, halved until the
    estimated working set fits ``budget_bytes``.

    The estimate is ``4 * (n_features + 12) * prod(block + 2*halo)`` bytes: the block's
    feature stack and a dozen float32 working arrays over the block with its halo. Halving
    keeps blocks aligned with storage chunks (each chunk is read once, then split).
    """
    block = [int(c) for c in chunks]

    def cost(b: Sequence[int]) -> int:
        return 4 * (n_features + 12) * math.prod(x + 2 * h for x, h in zip(b, halo, strict=True))

    while cost(block) > budget_bytes and max(block) > 16:
        axis = int(np.argmax(block))
        block[axis] = max(8, block[axis] // 2)
    return tuple(block)


def forest_probabilities(
    volume: Any,
    model: TrainedForest,
    *,
    device: str = "auto",
    block: Sequence[int] | None = None,
    budget_bytes: int = 512 * 2**20,
) -> da.Array:
    """Per-class probabilities of a volume from a trained forest, lazily, block by block.

    Parameters
    ----------
    volume
        Grey volume with the model's dimensionality (``xarray``, Dask or NumPy).
    model
        A :class:`TrainedForest`.
    device
        Where the filter bank runs: ``"cpu"``, ``"gpu"`` (CuPy; the forest still runs on the
        CPU) or ``"auto"`` (GPU when CuPy sees one).
    block
        Block shape for the fused task; default: the volume's chunks, halved until the
        working set fits ``budget_bytes`` (:func:`prediction_block`).

    Returns
    -------
    dask.array.Array
        float32 ``(K, *volume.shape)``, classes in ``model.classes`` order, summing to 1. Each
        task reads one block with the bank's halo, computes its features and predicts;
        results do not depend on the blocks.
    """
    vol = as_volume(volume)
    if len(vol.shape) != model.ndim:
        raise ValueError(f"the model is for {model.ndim}D volumes, got shape {vol.shape}")
    halo = model.spec.halo(vol.voxel_size, model.ndim)
    C = model.spec.n_channels(model.ndim)
    data = vol.data
    if block is None:
        block = prediction_block([c[0] for c in data.chunks], halo, C, budget_bytes)
    data = data.rechunk(tuple(int(b) for b in block))
    est = model.estimator
    if not isinstance(est, ForestFile) and hasattr(est, "n_jobs"):
        est = copy.copy(est)
        est.n_jobs = 1  # one thread per block: Dask runs the blocks in parallel
    est_d = dask.delayed(est, pure=True)
    return map_blocks_with_halo(
        _forest_block,
        data,
        halo,
        n_out=len(model.classes),
        dtype=np.float32,
        name="ooc-forest",
        estimator=est_d,
        spec=model.spec,
        voxel_size=tuple(vol.voxel_size),
        device=_resolve_device(device),
    )
