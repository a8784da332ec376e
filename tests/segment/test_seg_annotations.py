"""Sparse annotations from JSON shapes, label TIFFs, Zarr stores, arrays and 2D slices."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

from ooc.errors import InputError, MetadataError
from ooc.features import FeatureSpec, compute_features
from ooc.segment import Annotations, load_annotations, training_features

SHAPE = (20, 24, 22)
VOL = np.zeros(SHAPE, dtype=np.uint16)


def _set(ann: Annotations) -> dict[tuple[int, ...], int]:
    return {
        tuple(int(v) for v in c): int(lab) for c, lab in zip(ann.coords, ann.labels, strict=True)
    }


def test_boxes_points_and_strokes_rasterise_to_the_right_voxels() -> None:
    doc = {
        "version": 1,
        "classes": {"1": "pore", "2": "grain", "3": "clay"},
        "annotations": [
            {"type": "box", "label": 1, "start": [2, 3, 4], "stop": [4, 6, 8]},
            {"type": "point", "label": 2, "position": [10, 10, 10], "radius": 2},
            {"type": "point", "label": 3, "position": [15.4, 2.6, 1.2]},
            {"type": "stroke", "label": 3, "points": [[5, 20, 2], [5, 20, 10]], "radius": 0},
        ],
    }
    ann = load_annotations(doc, like=VOL)
    got = _set(ann)
    box = {(z, y, x) for z in range(2, 4) for y in range(3, 6) for x in range(4, 8)}
    assert {k for k, v in got.items() if v == 1} == box  # 2 x 3 x 4
    ball = {k for k, v in got.items() if v == 2}
    assert len(ball) == 33  # lattice points with z²+y²+x² <= 4
    assert all(sum((a - 10) ** 2 for a in k) <= 4 for k in ball)
    clay = {k for k, v in got.items() if v == 3}
    assert (15, 3, 1) in clay
    assert {(5, 20, x) for x in range(2, 11)} <= clay
    assert len(clay) == 10
    assert ann.class_names == {1: "pore", 2: "grain", 3: "clay"}
    assert ann.counts() == {1: 24, 2: 33, 3: 10}
    assert ann.fraction == pytest.approx(67 / np.prod(SHAPE))


def test_later_annotations_win_and_physical_units_use_the_axes() -> None:
    vol = xr.DataArray(
        da.zeros(SHAPE, chunks=8),
        dims=("z", "y", "x"),
        coords={
            "z": 100.0 + 2.0 * np.arange(SHAPE[0]),
            "y": 0.5 * np.arange(SHAPE[1]),
            "x": 0.5 * np.arange(SHAPE[2]),
        },
        attrs={"voxel_size": [2.0, 0.5, 0.5], "unit": "nanometer"},
    )
    doc = {
        "units": "physical",
        "annotations": [
            {"type": "box", "label": 1, "start": [100, 0, 0], "stop": [104, 1.0, 1.0]},
            {"type": "point", "label": 2, "position": [102, 0.5, 0.5]},
        ],
    }
    got = _set(load_annotations(doc, like=vol))
    # centres within [100, 104] x [0, 1] x [0, 1]: z 0..2, y 0..2, x 0..2
    assert len(got) == 27
    assert got[(1, 1, 1)] == 2  # the later point overwrites the box
    assert sum(v == 1 for v in got.values()) == 26


def test_schema_errors_name_the_field(tmp_path) -> None:
    bad = {"annotations": [{"type": "point", "position": [1, 2, 3]}]}
    with pytest.raises(MetadataError, match="annotations/0"):
        load_annotations(bad, like=VOL)
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {"annotations": [{"type": "box", "label": 0, "start": [0, 0, 0], "stop": [1, 1, 1]}]}
        )
    )
    with pytest.raises(MetadataError, match=str(path)):
        load_annotations(path, like=VOL)
    out = {"annotations": [{"type": "point", "label": 1, "position": [50, 50, 50]}]}
    with pytest.raises(InputError, match="outside"):
        load_annotations(out, like=VOL)
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_annotations(tmp_path / "b.json", like=VOL)


def test_dense_sources_tiff_zarr_and_dask_agree(tmp_path) -> None:
    rng = np.random.default_rng(0)
    dense = np.where(rng.random(SHAPE) < 0.01, rng.integers(1, 4, SHAPE), 0).astype(np.uint8)
    ref = _set(Annotations.from_dense(dense))
    assert len(ref) == int((dense > 0).sum())
    tif = tmp_path / "labels.tif"
    tifffile.imwrite(tif, dense)
    assert _set(load_annotations(str(tif), like=VOL)) == ref
    arr = zarr.create_array(
        str(tmp_path / "labels.zarr"), shape=SHAPE, chunks=(7, 9, 5), dtype="uint8"
    )
    arr[...] = dense
    assert _set(load_annotations(str(tmp_path / "labels.zarr"), like=VOL)) == ref
    assert _set(load_annotations(da.from_array(dense, chunks=(3, 11, 7)), like=VOL)) == ref
    with pytest.raises(InputError, match="do not match"):
        load_annotations(dense[:-1], like=VOL)


def test_a_labelled_face_becomes_a_plane_of_the_volume(tmp_path) -> None:
    face = np.zeros(SHAPE[1:], dtype=np.uint8)
    face[:5, :] = 1
    face[10:12, 3:9] = 4
    tif = tmp_path / "face.tif"
    tifffile.imwrite(tif, face)
    ann = load_annotations(str(tif), like=VOL, plane=("z", 0))
    assert set(ann.coords[:, 0].tolist()) == {0}
    assert ann.counts() == {1: 5 * SHAPE[2], 4: 12}
    doc = {"annotations": [{"type": "slice", "axis": "x", "index": 3, "labels": "face_x.tif"}]}
    tifffile.imwrite(tmp_path / "face_x.tif", np.ones(SHAPE[:2], dtype=np.uint8) * 2)
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    ann = load_annotations(str(tmp_path / "ann.json"), like=VOL)
    assert set(ann.coords[:, 2].tolist()) == {3}
    assert ann.n_voxels == SHAPE[0] * SHAPE[1]
    with pytest.raises(InputError, match="plane"):
        load_annotations(face[:, :-1], like=VOL, plane=("z", 0))


def test_training_features_equal_the_whole_volume_features_and_stay_local() -> None:
    rng = np.random.default_rng(1)
    shape = (40, 44, 36)
    img = rng.integers(0, 3000, size=shape).astype(np.uint16)
    coords = np.array([[1, 2, 3], [5, 40, 30], [20, 20, 20], [21, 20, 19], [39, 43, 35]])
    ann = Annotations(coords, [1, 2, 1, 2, 1], shape)
    spec = FeatureSpec(filters={"gaussian": [1.0], "hessian": [1.0], "structure": [0.7]})
    X, y, info = training_features(da.from_array(img, chunks=17), ann, spec, tile=16)
    full = compute_features(img, spec).compute()
    np.testing.assert_allclose(X, full[(slice(None), *coords.T)].T, rtol=0, atol=1e-3)
    assert y.tolist() == [1, 2, 1, 2, 1]
    assert info["boxes"] == 4
    assert info["voxels_filtered"] < 0.25 * info["volume_voxels"]
