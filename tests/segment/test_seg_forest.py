"""Random forest from scribbles on the synthetic MicroCT sample; segmentation outputs; models."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from ooc.errors import InputError
from ooc.features import FeatureSpec, feature_stack
from ooc.segment import (
    Annotations,
    entropy,
    iou,
    load_model,
    match_labels,
    multi_otsu,
    save_model,
    segmentation,
    select_bank,
    simulate_scribbles,
    train_forest,
    uncertain_regions,
)
from ooc.synth import SEGMENT_FILTERS, default_sample, render_scan

SPEC = FeatureSpec(filters=SEGMENT_FILTERS)


@pytest.fixture(scope="module")
def microct() -> tuple[np.ndarray, np.ndarray]:
    """A 96³ region of the default synthetic MicroCT scan: truth (0 pore, 1 grain, 2
    micro-porous) and uint16 grey with blur, noise, drift and rings."""
    return render_scan(default_sample(seed=0), "MicroCT", (slice(0, 96),) * 3)


def _mean(scores: dict[int, float]) -> float:
    return float(np.mean(list(scores.values())))


def test_forest_from_scribbles_beats_multi_otsu(microct: tuple[np.ndarray, np.ndarray]) -> None:
    truth, grey = microct
    # thin (1-voxel) brush strokes up to 6 voxels long, anywhere inside each phase
    ann = simulate_scribbles(truth, fraction=0.001, radius=0.5, margin=0.0, stroke_length=6, seed=3)
    assert ann.fraction <= 0.001
    assert len(ann.classes) == 3
    model = train_forest(grey, ann, SPEC, n_estimators=100, random_state=0)
    proba = model.predict_proba(da.from_array(grey, chunks=48), device="cpu").compute()
    pred = np.asarray(model.classes)[proba.argmax(0)] - 1
    forest = iou(pred, truth, [0, 1, 2])
    otsu_labels, _ = multi_otsu(grey, 3)
    otsu = iou(match_labels(otsu_labels, truth, [0, 1, 2]), truth, [0, 1, 2])
    print(f"forest IoU {forest} mean {_mean(forest):.3f}; multi-Otsu {otsu} mean {_mean(otsu):.3f}")
    assert _mean(forest) >= 0.90
    assert _mean(otsu) <= _mean(forest) - 0.15
    assert min(forest.values()) > max(otsu.values()) - 0.05


@pytest.fixture(scope="module")
def small_case(microct: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, object]:
    truth, grey = microct
    truth, grey = truth[:40, :44, :36], grey[:40, :44, :36]
    ann = simulate_scribbles(truth, fraction=0.003, radius=0.5, margin=0.0, seed=1)
    spec = FeatureSpec(filters={"gaussian": [0.0, 1.0, 3.5], "gradient": [1.0], "hessian": [1.6]})
    model = train_forest(grey, ann, spec, n_estimators=20, max_depth=8, random_state=0)
    return truth, grey, model


def test_probabilities_do_not_depend_on_blocks(small_case: tuple) -> None:
    _, grey, model = small_case
    a = model.predict_proba(da.from_array(grey, chunks=(40, 44, 36)), device="cpu").compute()
    b = model.predict_proba(da.from_array(grey, chunks=(13, 9, 17)), device="cpu").compute()
    assert a.shape == (3, *grey.shape)
    assert a.dtype == np.float32
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # the same as scikit-learn's predict_proba on the whole array's features
    X = feature_stack(grey, model.spec, channels_last=True).reshape(-1, model.spec.n_channels())
    ref = model.estimator.predict_proba(X).T.reshape(a.shape)
    np.testing.assert_allclose(a, ref, atol=1e-6)


def test_segmentation_gives_labels_probabilities_and_uncertainty(small_case: tuple) -> None:
    _, grey, model = small_case
    vol = xr.DataArray(
        da.from_array(grey, chunks=20),
        dims=("z", "y", "x"),
        coords={d: 2.0 * np.arange(n) for d, n in zip("zyx", grey.shape, strict=True)},
        attrs={"voxel_size": [2.0, 2.0, 2.0], "unit": "micrometer"},
    )
    ds = segmentation(vol, model, device="cpu").compute()
    p = ds["probabilities"].values
    labels = ds["labels"].values
    assert ds["labels"].dims == ("z", "y", "x")
    assert ds["probabilities"].dims == ("class", "z", "y", "x")
    assert ds["x"].attrs["units"] == "micrometer"
    assert float(ds["x"][1]) == 2.0
    assert ds["class"].values.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(labels, np.array([1, 2, 3])[p.argmax(0)])
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(ds["uncertainty"].values, entropy(p), atol=1e-6)
    u = ds["uncertainty"].values
    assert u.min() >= 0.0
    assert u.max() <= 1.0
    regions = uncertain_regions(ds["uncertainty"], region=16, top=5)
    cells = [u[tuple(slice(16 * a, 16 * a + 16) for a in i)].mean() for i in np.ndindex(3, 3, 3)]
    assert regions[0]["mean_uncertainty"] == pytest.approx(max(cells), rel=1e-5)


def test_saved_forest_predicts_the_same_and_refuses_tampering(tmp_path, small_case: tuple) -> None:
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    _, grey, model = small_case
    path = save_model(model, tmp_path / "forest.model")
    loaded = load_model(path)
    assert loaded.classes == model.classes
    assert loaded.spec == model.spec
    assert loaded.provenance["step"] == "train_forest"
    a = model.predict_proba(grey[:20], device="cpu").compute()
    np.testing.assert_array_equal(loaded.predict_proba(grey[:20], device="cpu").compute(), a)
    # a file holding a callable that would run code is refused before it is built
    evil = tmp_path / "evil.model"
    save_model(model, evil)
    sio.dump(FunctionTransformer(os.system), evil / "forest.skops")
    doc = json.loads((evil / "model.json").read_text())
    import hashlib

    doc["weights"]["sha256"] = hashlib.sha256((evil / "forest.skops").read_bytes()).hexdigest()
    (evil / "model.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="not a forest"):
        load_model(evil)
    # changed bytes are caught by the checksum
    (path / "forest.skops").write_bytes((path / "forest.skops").read_bytes()[:-10])
    with pytest.raises(InputError, match="SHA-256"):
        load_model(path)
    with pytest.raises(InputError, match="not a saved ooc model"):
        load_model(tmp_path)


def test_a_lazily_loaded_forest_sends_its_path_and_is_checked_where_it_predicts(
    tmp_path, small_case: tuple
) -> None:
    import pickle

    from ooc.segment.models import ForestFile

    _, grey, model = small_case
    path = save_model(model, tmp_path / "forest.model")
    lazy = load_model(path, lazy=True)
    assert isinstance(lazy.estimator, ForestFile)
    assert len(pickle.dumps(lazy.estimator)) < 500  # what each task carries: a path
    a = model.predict_proba(grey[:20], device="cpu").compute()
    np.testing.assert_array_equal(lazy.predict_proba(grey[:20], device="cpu").compute(), a)
    # weights are checked against model.json when loaded lazily ...
    other = save_model(model, tmp_path / "other.model")
    cut = (other / "forest.skops").read_bytes()[:-10]
    (other / "forest.skops").write_bytes(cut)
    with pytest.raises(InputError, match="SHA-256"):
        load_model(other, lazy=True)
    # ... and again by the process that builds the forest (it may have changed since)
    third = save_model(model, tmp_path / "third.model")
    checked = load_model(third, lazy=True)
    (third / "forest.skops").write_bytes(cut)
    with pytest.raises(InputError, match="SHA-256"):
        checked.predict_proba(grey[:20], device="cpu").compute()


def test_class_balancing_raises_the_minority_recall() -> None:
    rng = np.random.default_rng(5)
    truth = np.zeros((60, 60), dtype=np.uint8)
    truth[:, 40:] = 1  # a minority phase, slightly brighter, same grey range
    grey = (rng.normal(100, 30, truth.shape) + 25 * truth).astype(np.float32)
    coords = np.argwhere(truth >= 0)
    pick0 = rng.choice(np.flatnonzero(truth.ravel() == 0), 400, replace=False)
    pick1 = rng.choice(np.flatnonzero(truth.ravel() == 1), 20, replace=False)
    rows = np.sort(np.concatenate([pick0, pick1]))
    ann = Annotations(coords[rows], truth.ravel()[rows] + 1, truth.shape)
    spec = FeatureSpec(filters={"gaussian": [0.0, 1.0]})
    recall = {}
    for cw in (None, "balanced"):
        m = train_forest(grey, ann, spec, n_estimators=50, min_samples_leaf=10, class_weight=cw)
        pred = np.asarray(m.classes)[m.predict_proba(grey, device="cpu").compute().argmax(0)] - 1
        recall[cw] = float((pred[truth == 1] == 1).mean())
    assert m.estimator.class_weight == "balanced"
    assert recall["balanced"] > recall[None] + 0.1


def test_a_2d_model_applies_to_2d_images() -> None:
    truth = np.zeros((50, 60), dtype=np.uint8)
    truth[10:30, 15:45] = 1
    grey = (truth * 100 + np.random.default_rng(0).normal(0, 20, truth.shape)).astype(np.float32)
    ann = simulate_scribbles(truth, fraction=0.05, seed=0)
    m = train_forest(grey, ann, FeatureSpec(filters={"gaussian": [1.0, 2.0]}), n_estimators=20)
    assert m.ndim == 2
    assert len(m.feature_names) == 2
    pred = np.asarray(m.classes)[m.predict_proba(grey, device="cpu").compute().argmax(0)] - 1
    assert iou(pred, truth)[1] > 0.9
    with pytest.raises(ValueError, match="2D"):
        m.predict_proba(np.zeros((5, 5, 5)))


def test_end_to_end_from_ooc_stores(tmp_path, microct: tuple[np.ndarray, np.ndarray]) -> None:
    """Ingested grey and label stores -> open_volume -> annotations -> forest -> results."""
    import ooc
    from ooc.io import ingest, open_reader
    from ooc.metadata import VolumeMetadata
    from ooc.segment import load_annotations

    truth, grey = microct
    truth, grey = truth[:32, :32, :40], grey[:32, :32, :40]
    np.save(tmp_path / "grey.npy", grey)
    scrib = simulate_scribbles(truth, fraction=0.01, radius=0.5, margin=0.0, seed=2)
    np.save(tmp_path / "labels.npy", scrib.to_dense(dtype=np.uint8))
    meta = VolumeMetadata("rock-1", "MicroCT", (2.0, 2.0, 2.0), "micrometer")
    ingest(
        open_reader(str(tmp_path / "grey.npy")),
        str(tmp_path / "grey.zarr"),
        meta,
        chunks=(16, 16, 16),
        progress=False,
    )
    lmeta = VolumeMetadata(
        "rock-1", "MicroCT", (2.0, 2.0, 2.0), "micrometer", kind="labels",
        labels={"1": "pore", "2": "grain", "3": "micro-porous"},
    )  # fmt: skip
    ingest(
        open_reader(str(tmp_path / "labels.npy")),
        str(tmp_path / "labels.zarr"),
        lmeta,
        chunks=(16, 16, 16),
        progress=False,
    )
    vol = ooc.open_volume(str(tmp_path / "grey.zarr"))
    ann = load_annotations(str(tmp_path / "labels.zarr"), like=vol)
    assert ann.class_names == {1: "pore", 2: "grain", 3: "micro-porous"}
    assert ann.counts() == scrib.counts()
    model = train_forest(
        vol, ann, FeatureSpec(filters={"gaussian": [0.0, 1.0], "hessian": [1.0]}), n_estimators=10
    )
    assert model.provenance["inputs"][0]["volume"] == str(tmp_path / "grey.zarr")
    ds = segmentation(vol, model, device="cpu").compute()
    np.testing.assert_allclose(ds["z"].values, vol["z"].values)
    assert json.loads(ds.attrs["class_names"]) == {"1": "pore", "2": "grain", "3": "micro-porous"}
    assert np.mean(list(iou(ds["labels"].values.astype(int) - 1, truth, [0, 1, 2]).values())) > 0.7


@pytest.mark.parametrize(
    ("n_features", "kept"),
    [
        (1, {"hessian": [1.6]}),
        (2, {"gaussian": [0.0], "hessian": [1.6]}),
        (3, {"gaussian": [0.0, 1.0], "hessian": [1.6]}),
    ],
)
def test_select_bank_keeps_the_filters_of_the_best_channels(n_features: int, kept: dict) -> None:
    spec = FeatureSpec(filters={"gaussian": [0.0, 1.0], "hessian": [1.6]}, truncate=3.0)
    # channels: gaussian_s0, gaussian_s1, hessian_e0/e1/e2_s1.6
    chosen = select_bank(spec, [0.2, 0.06, 0.05, 0.5, 0.04], n_features)
    assert chosen.to_dict() == {**spec.to_dict(), "filters": kept}
    with pytest.raises(ValueError, match="one per channel"):
        select_bank(spec, [0.5, 0.5], 1)


def test_forest_with_feature_selection_is_the_forest_of_the_pruned_bank(small_case: tuple) -> None:
    truth, grey, _ = small_case
    ann = simulate_scribbles(truth, fraction=0.003, radius=0.5, margin=0.0, seed=1)
    full = FeatureSpec(filters={"gaussian": [0.0, 1.0, 3.5], "gradient": [1.0], "hessian": [1.6]})
    pruned = train_forest(grey, ann, full, n_estimators=10, max_depth=6, n_features=2)
    first = train_forest(grey, ann, full, n_estimators=10, max_depth=6)
    imp = first.estimator.feature_importances_
    best = {first.feature_names[i] for i in np.argsort(-imp)[:2]}
    assert best <= set(pruned.feature_names)
    assert pruned.spec.n_channels() < full.n_channels()
    sel = pruned.provenance["parameters"]["feature_selection"]
    assert sel["from_channels"] == full.n_channels()
    assert sel["n_features"] == 2
    # the same forest as one trained on the pruned bank from the start
    direct = train_forest(grey, ann, pruned.spec, n_estimators=10, max_depth=6)
    a = pruned.predict_proba(grey, device="cpu").compute()
    b = direct.predict_proba(grey, device="cpu").compute()
    np.testing.assert_allclose(a, b, atol=1e-6)
