"""Tests of the synthetic three-scale sample generator (ooc.synth)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ooc.synth as synth
from ooc.synth import material, scan
from ooc.synth._hash import counter, normal8_
from ooc.synth.spec import PHASE_MAPS

DEFAULT = synth.default_sample(seed=0)
SMALL = synth.default_sample(
    seed=3, shape=(20, 22, 24), fibsem_shape=(18, 20, 16), tem_shape=(16, 18, 20)
)
# Thinner than the blur's halo on every axis.
TINY = synth.default_sample(seed=3, shape=(3, 4, 2), fibsem_shape=(2, 3, 4), tem_shape=(3, 5, 4))


def _uniform(spec: synth.SampleSpec) -> synth.SampleSpec:
    """The same scans of a material that is macro-pore everywhere (artifacts only)."""
    m = spec.material
    empty = {
        "grains": dataclasses.replace(m.grains, fraction=0.0),
        "microporous": dataclasses.replace(m.microporous, fraction=0.0),
    }
    return dataclasses.replace(spec, material=dataclasses.replace(m, **empty))


def _best_threshold_error(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest misclassified fraction of one threshold separating values ``a`` below ``b``."""
    v = np.concatenate([a, b])
    is_b = np.concatenate([np.zeros(len(a)), np.ones(len(b))])[np.argsort(v, kind="stable")]
    # Threshold after the i-th sorted value: b's below it and a's above it are wrong.
    errors = np.cumsum(is_b) + (len(a) - np.cumsum(1 - is_b))
    return float(min(errors.min(), len(a), len(b)) / len(v))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _highpass(p: np.ndarray, width: int, axis: int = -1) -> np.ndarray:
    k = np.ones(width) / width
    smooth = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), axis, p)
    return p - smooth


# --- determinism and block independence ---------------------------------------------------------


@pytest.mark.parametrize("scale", synth.SCALES)
def test_same_seed_same_bytes_other_seed_differs(scale: str) -> None:
    again = synth.default_sample(
        seed=3, shape=(20, 22, 24), fibsem_shape=(18, 20, 16), tem_shape=(16, 18, 20)
    )
    other = dataclasses.replace(SMALL, seed=4)
    labels, grey = synth.render_scan(SMALL, scale)
    labels2, grey2 = synth.render_scan(again, scale)
    assert labels.tobytes() == labels2.tobytes()
    assert grey.tobytes() == grey2.tobytes()
    assert grey.dtype == np.uint16
    assert labels.dtype == np.uint8
    assert not np.array_equal(grey, synth.render_grey(other, scale))


def _cuts(n: int) -> st.SearchStrategy[list[int]]:
    if n == 1:
        return st.just([0, 1])
    inner = st.lists(st.integers(1, n - 1), max_size=3, unique=True).map(sorted)
    return inner.map(lambda c: [0, *c, n])


@st.composite
def _splits(draw: st.DrawFn, shape: tuple[int, int, int]) -> list[list[int]]:
    return [draw(_cuts(n)) for n in shape]


@pytest.mark.parametrize(
    ("spec", "scale"),
    [(SMALL, "MicroCT"), (SMALL, "FIB-SEM"), (SMALL, "TEM"), (TINY, "TEM")],
    ids=["MicroCT", "FIB-SEM", "TEM", "TEM-tiny"],
)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_block_split_is_bit_identical(
    spec: synth.SampleSpec, scale: str, data: st.DataObject
) -> None:
    shape = spec.scale(scale).shape
    edges = data.draw(_splits(shape))
    labels, grey = synth.render_scan(spec, scale)
    got_labels = np.zeros_like(labels)
    got_grey = np.zeros_like(grey)
    for z0, z1 in zip(edges[0][:-1], edges[0][1:], strict=True):
        for y0, y1 in zip(edges[1][:-1], edges[1][1:], strict=True):
            for x0, x1 in zip(edges[2][:-1], edges[2][1:], strict=True):
                region = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
                block_labels, block_grey = synth.render_scan(spec, scale, region)
                got_labels[region] = block_labels
                got_grey[region] = block_grey
                assert np.array_equal(synth.render_labels(spec, scale, region), block_labels)
    assert np.array_equal(got_labels, labels)
    assert np.array_equal(got_grey, grey)


def test_internal_tiling_is_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    labels, grey = synth.render_scan(SMALL, "FIB-SEM")
    fine = synth.render_labels(SMALL, "TEM", phases="fine")
    monkeypatch.setattr(scan, "TILE_VOXELS", 500)
    assert len(list(scan.tiles((0, 0, 0), SMALL.scale("FIB-SEM").shape))) > 10
    tiled_labels, tiled_grey = synth.render_scan(SMALL, "FIB-SEM")
    assert np.array_equal(tiled_labels, labels)
    assert np.array_equal(tiled_grey, grey)
    assert np.array_equal(synth.render_labels(SMALL, "TEM", phases="fine"), fine)


@pytest.mark.parametrize("voxel", [40.0, 20.0, 6.0, 1.0])
def test_painting_and_point_lookup_agree(voxel: float) -> None:
    # Big spheres are painted one by one, small ones as vectorised pairs, sub-voxel ones looked
    # up per point; all must give the same labels as the point evaluator.
    origin = tuple(v + 7.0 for v in scan._origins(DEFAULT)[2])
    box = material.Box(origin, (voxel, voxel * 1.5, voxel), (0, 0, 0), (12, 10, 14))
    labels = material.fine_labels(DEFAULT.material, DEFAULT.seed, box)
    axes = np.meshgrid(*(box.coords(a) for a in range(3)), indexing="ij")
    points = np.stack([a.ravel() for a in axes], axis=1)
    expected = material.fine_points(DEFAULT.material, DEFAULT.seed, points).reshape(box.shape)
    assert np.array_equal(labels, expected)
    assert len(np.unique(labels)) >= 2


# --- phases -------------------------------------------------------------------------------------


def test_label_sets_per_scale() -> None:
    want = {"MicroCT": {0, 1, 2}, "FIB-SEM": {0, 1}, "TEM": {0, 1}}
    for scale, labels in want.items():
        assert set(np.unique(synth.render_labels(DEFAULT, scale)).tolist()) == labels
        assert len(DEFAULT.scale(scale).phases) == len(DEFAULT.scale(scale).imaging.intensities)
    fine = synth.render_labels(DEFAULT, "TEM", phases="fine")
    assert set(np.unique(fine).tolist()) <= set(range(len(synth.FINE_PHASES)))


def test_default_microct_phase_fractions() -> None:
    labels = synth.render_labels(DEFAULT, "MicroCT")
    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert np.all((fractions > 0.05) & (fractions < 0.70)), fractions


@pytest.mark.parametrize("scale", synth.SCALES)
def test_scale_labels_are_the_fine_phases_merged(scale: str) -> None:
    region = (slice(0, 24), slice(8, 40), slice(0, 32))
    fine = synth.render_labels(DEFAULT, scale, region, phases="fine")
    lut = np.asarray(PHASE_MAPS[scale], dtype=np.uint8)
    assert np.array_equal(lut[fine], synth.render_labels(DEFAULT, scale, region))


# --- imaging ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "low", "high"),
    [("MicroCT", 0, 2), ("MicroCT", 2, 1), ("FIB-SEM", 0, 1), ("TEM", 1, 0)],
)
def test_grey_histograms_of_neighbouring_phases_overlap(scale: str, low: int, high: int) -> None:
    labels, grey = synth.render_scan(DEFAULT, scale)
    a = grey[labels == low].astype(float)
    b = grey[labels == high].astype(float)
    assert a.mean() < b.mean()
    error = _best_threshold_error(a, b)
    assert 0.05 < error < 0.35, error


def test_noise_is_standard_normal_like() -> None:
    z = normal8_(counter(123, np.arange(200_000)))
    assert z.dtype == np.float32
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert abs(float(np.mean(np.abs(z) > 1.96)) - 0.05) < 0.005


def _ring_profiles(spec: synth.SampleSpec) -> tuple[np.ndarray, np.ndarray]:
    grey = synth.render_grey(spec, "MicroCT").astype(float)
    _, ny, nx = grey.shape
    y, x = np.meshgrid(np.arange(ny) + 0.5 - ny / 2, np.arange(nx) + 0.5 - nx / 2, indexing="ij")
    rho = np.hypot(y, x).astype(int)
    nbins = min(ny, nx) // 2
    halves = []
    for half in (y < 0, y >= 0):
        sel = half & (rho < nbins)
        total = np.bincount(rho[sel], weights=grey[:, sel].sum(axis=0), minlength=nbins)
        count = np.bincount(rho[sel], minlength=nbins) * grey.shape[0]
        halves.append(_highpass(total / count, 7)[4:-4])
    return halves[0], halves[1]


def test_microct_rings_show_in_radial_profile() -> None:
    spec = _uniform(synth.default_sample(seed=1, shape=(24, 128, 128)))
    top, bottom = _ring_profiles(spec)
    assert _corr(top, bottom) > 0.7
    assert np.abs(top).max() > 600  # ring amplitude 1250-2500 counts, less the high-pass
    no_rings = spec.with_scale(
        "MicroCT", imaging=dataclasses.replace(spec.scale("MicroCT").imaging, ring_count=0)
    )
    top, bottom = _ring_profiles(no_rings)
    assert abs(_corr(top, bottom)) < 0.4


def test_microct_drift_is_slow_in_z() -> None:
    spec = _uniform(synth.default_sample(seed=1, shape=(96, 48, 48)))
    imaging = dataclasses.replace(
        spec.scale("MicroCT").imaging, ring_count=0, drift=0.15, drift_length=24.0
    )
    spec = spec.with_scale("MicroCT", imaging=imaging)

    def slice_means(spec: synth.SampleSpec) -> np.ndarray:
        means = synth.render_grey(spec, "MicroCT").mean(axis=(1, 2))
        return means - means.mean()

    means = slice_means(spec)
    assert means.std() > 3 * 5500 / 48  # well above the noise of a slice mean
    assert _corr(means[:-1], means[1:]) > 0.8
    flat = spec.with_scale(
        "MicroCT", imaging=dataclasses.replace(spec.scale("MicroCT").imaging, drift=0.0)
    )
    assert abs(_corr(slice_means(flat)[:-1], slice_means(flat)[1:])) < 0.3


def _column_profiles(spec: synth.SampleSpec, scale: str) -> tuple[np.ndarray, np.ndarray]:
    grey = synth.render_grey(spec, scale).astype(float)
    nz, ny, nx = grey.shape
    # Mean over y in each half, over groups of 4 slices (curtains change slowly in z).
    cols = grey[: nz // 4 * 4].reshape(nz // 4, 4, 2, ny // 2, nx).mean(axis=(1, 3))
    cols = _highpass(cols, 9)[..., 5:-5]
    return cols[:, 0], cols[:, 1]


def test_fibsem_curtains_are_columns_constant_along_y() -> None:
    spec = _uniform(synth.default_sample(seed=2, fibsem_shape=(32, 64, 96)))
    top, bottom = _column_profiles(spec, "FIB-SEM")
    assert _corr(top, bottom) > 0.7
    assert top.std() > 1.5 * 6000 / np.sqrt(4 * 32)  # above the noise of a column mean
    # Curtains change slowly in z: neighbouring slice groups alike, distant ones much less.
    assert _corr(top[0], top[1]) > 0.6
    assert _corr(top[0], top[1]) > _corr(top[0], top[-1]) + 0.2
    spec = _uniform(synth.default_sample(seed=2, tem_shape=(32, 64, 96)))
    top, bottom = _column_profiles(spec, "TEM")
    assert abs(_corr(top, bottom)) < 0.3


# --- scales -------------------------------------------------------------------------------------


def _box_nm(spec: synth.SampleSpec, scale: str) -> tuple[np.ndarray, np.ndarray]:
    origin, extent = synth.field_of_view(spec, scale)
    f = 1000.0 if spec.scale(scale).unit == "micrometer" else 1.0
    return np.array(origin) * f, (np.array(origin) + np.array(extent)) * f


@pytest.mark.parametrize("seed", [0, 5])
def test_fields_of_view_nest_in_the_right_phases(seed: int) -> None:
    spec = synth.default_sample(seed=seed)
    (ct0, ct1), (fib0, fib1), (tem0, tem1) = (_box_nm(spec, s) for s in synth.SCALES)
    assert np.all(ct0 <= fib0)
    assert np.all(fib1 <= ct1)
    assert np.all(fib0 <= tem0)
    assert np.all(tem1 <= fib1)
    # The FIB-SEM field, seen with MicroCT's phases at FIB-SEM resolution: micro-porous.
    as_microct = synth.render_labels(spec, "FIB-SEM", phases="MicroCT")
    assert np.mean(as_microct == 2) > 0.99
    # The TEM field, seen with FIB-SEM's phases: nano-porous solid.
    as_fibsem = synth.render_labels(spec, "TEM", phases="FIB-SEM")
    assert np.mean(as_fibsem == 1) > 0.99


def _fine_truth(region: tuple[slice, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """MicroCT labels of ``region`` and the fine phases there at 1/k of the MicroCT voxel."""
    fine_region = tuple(slice(s.start * k, s.stop * k) for s in region)
    fine = synth.render_labels(
        DEFAULT, "MicroCT", fine_region, voxel_size=(2.0 / k,) * 3, phases="fine"
    )
    return synth.render_labels(DEFAULT, "MicroCT", region), fine


def test_fine_truth_coarse_grains_to_microct_labels() -> None:
    k, n = 5, 8
    assert synth.grid_shape(DEFAULT, "MicroCT", (2.0 / k,) * 3) == (640, 640, 640)
    # A block with all three MicroCT phases, and one around the FIB-SEM field.
    fib0, fib1 = _box_nm(DEFAULT, "FIB-SEM")
    centre = ((fib0 + fib1) / 2 / 2000.0).astype(int)
    regions = [(slice(60, 60 + n),) * 3, tuple(slice(c - n // 2, c + n // 2) for c in centre)]
    micro = []
    for region in regions:
        coarse, fine = _fine_truth(region, k)
        as_microct = np.asarray(PHASE_MAPS["MicroCT"], dtype=np.uint8)[fine]
        blocks = as_microct.reshape(n, k, n, k, n, k).transpose(0, 2, 4, 1, 3, 5)
        counts = [(blocks == c).sum(axis=(3, 4, 5)) for c in range(3)]
        majority = np.argmax(np.stack(counts, axis=-1), axis=-1)
        assert np.mean(majority == coarse) > 0.9
        micro.append(fine[np.isin(fine, (2, 3, 4))])
    assert set(np.unique(_fine_truth(regions[0], 1)[0]).tolist()) == {0, 1, 2}
    # Point samples are unbiased: the micro-porous phase holds the material's sub-resolution
    # porosity (micro-pores plus nano-pores in the solid between them).
    micro = np.concatenate(micro)
    assert micro.size > 10_000
    assert np.isin(micro, (2, 3)).mean() == pytest.approx(DEFAULT.material.microporosity, abs=0.03)


def test_empty_region_and_spec_normalisation() -> None:
    empty = (slice(3, 3), slice(0, 4), slice(0, 4))
    assert synth.render_labels(DEFAULT, "TEM", empty).shape == (0, 4, 4)
    assert synth.render_grey(DEFAULT, "TEM", empty).shape == (0, 4, 4)
    spec = DEFAULT.with_scale("TEM", shape=[8, 8, 8], voxel_size=[2, 2, 2])
    assert spec.scale("TEM").shape == (8, 8, 8)
    assert hash(spec) == hash(DEFAULT.with_scale("TEM", shape=(8, 8, 8)))


def test_oversized_field_of_view_is_centred() -> None:
    # A FIB-SEM field larger than the whole MicroCT field: no place fits, so it is centred.
    spec = synth.default_sample(shape=(8, 8, 8), fibsem_shape=(1000, 1000, 1000))
    (ct0, ct1), (fib0, fib1) = _box_nm(spec, "MicroCT"), _box_nm(spec, "FIB-SEM")
    np.testing.assert_allclose((fib0 + fib1) / 2, (ct0 + ct1) / 2, atol=1.0)
    assert synth.grid_shape(spec, "FIB-SEM", (60.0, 40.0, 40.0)) == (500, 500, 500)


def test_region_and_scale_errors() -> None:
    with pytest.raises(ValueError, match="scale must be one of"):
        synth.render_labels(DEFAULT, "SEM")
    with pytest.raises(ValueError, match="step 1"):
        synth.render_labels(DEFAULT, "TEM", (slice(0, 4, 2), slice(0, 4), slice(0, 4)))
    with pytest.raises(ValueError, match="0 <= start"):
        synth.render_labels(DEFAULT, "TEM", (slice(-2, 4), slice(0, 4), slice(0, 4)))
    with pytest.raises(ValueError, match="outside the scan"):
        synth.render_grey(DEFAULT, "TEM", (slice(0, 65), slice(0, 4), slice(0, 4)))
    with pytest.raises(ValueError, match="phases must be one of"):
        synth.render_labels(DEFAULT, "TEM", phases="SEM")
    with pytest.raises(ValueError, match="intensities"):
        DEFAULT.with_scale("TEM", imaging=DEFAULT.scale("MicroCT").imaging)


# --- writing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "slab"), [("labels", 5), ("grey", 7)])
def test_tiff_stack_streams_slabs_and_counts_labels(tmp_path, kind: str, slab: int) -> None:
    labels, grey = synth.render_scan(SMALL, "TEM")
    acc = synth.write_tiff_stack(
        SMALL, "TEM", tmp_path / kind, kind=kind, slab=slab, progress=False
    )
    files = sorted((tmp_path / kind).iterdir())
    assert [f.name for f in files] == [f"slice_{z:05d}.tif" for z in range(labels.shape[0])]
    assert acc["files"] == len(files)
    stack = np.stack([tifffile.imread(f) for f in files])
    assert np.array_equal(stack, grey if kind == "grey" else labels)
    assert acc["label_counts"] == np.bincount(labels.ravel(), minlength=2).tolist()
    assert acc["dtype"] == str(stack.dtype)


def test_tiff_stack_refuses_foreign_slices(tmp_path) -> None:
    (tmp_path / "slice_99999.tif").write_bytes(b"")
    with pytest.raises(FileExistsError, match="slice_99999"):
        synth.write_tiff_stack(SMALL, "TEM", tmp_path, progress=False)


def test_write_sample_sidecar(tmp_path) -> None:
    path = synth.write_sample(SMALL, tmp_path, scales=["MicroCT", "TEM"], slab=6, progress=False)
    meta = json.loads(path.read_text())
    assert synth.SampleSpec.from_dict(meta) == SMALL
    assert meta["seed"] == 3
    assert not meta["scales"]["FIB-SEM"]["written"]
    assert not (tmp_path / "FIB-SEM").exists()
    for scale in ("MicroCT", "TEM"):
        entry = meta["scales"][scale]
        labels = synth.render_labels(SMALL, scale)
        counts = np.bincount(labels.ravel(), minlength=len(entry["phases"])).tolist()
        assert entry["label_counts"] == counts
        assert entry["phases"] == list(SMALL.scale(scale).phases)
        assert entry["unit"] == SMALL.scale(scale).unit
        assert entry["origin"] == list(synth.field_of_view(SMALL, scale)[0])
        for kind in ("grey", "labels"):
            files = sorted((tmp_path / entry[kind]["path"]).glob("slice_*.tif"))
            assert len(files) == SMALL.scale(scale).shape[0]
        z = labels.shape[0] // 2
        back = tifffile.imread(tmp_path / entry["labels"]["path"] / f"slice_{z:05d}.tif")
        assert np.array_equal(back, labels[z])
