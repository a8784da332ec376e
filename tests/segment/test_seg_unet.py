"""3D U-Net: partial-label loss, augmentation, resumable training, seam-free tiled inference."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import torch

from ooc.segment import (
    iou,
    load_model,
    match_labels,
    multi_otsu,
    save_model,
    simulate_scribbles,
)
from ooc.segment.tiling import tile_starts, tile_window
from ooc.segment.unet import (
    IGNORE_INDEX,
    TrainedUNet,
    UNet,
    UNetConfig,
    _predict_tile,
    augment,
    partial_cross_entropy,
    train_unet,
    unet_probabilities,
)
from ooc.synth import default_sample, render_scan

TINY = UNetConfig(n_classes=3, base_channels=8, levels=2)


@pytest.fixture(scope="module")
def microct() -> tuple[np.ndarray, np.ndarray]:
    return render_scan(default_sample(seed=0), "MicroCT", (slice(0, 64),) * 3)


@pytest.fixture(scope="module")
def scribbles(microct: tuple[np.ndarray, np.ndarray]) -> object:
    truth, _ = microct
    return simulate_scribbles(
        truth, fraction=0.001, radius=0.5, margin=0.0, stroke_length=6, seed=3
    )


@pytest.fixture(scope="module")
def trained(microct: tuple[np.ndarray, np.ndarray], scribbles: object) -> TrainedUNet:
    _, grey = microct
    return train_unet(
        grey,
        scribbles,
        config=TINY,
        patch=24,
        steps=50,
        batch_size=2,
        seed=0,
        threads=1,
        device="cpu",
    )


def test_loss_ignores_unlabelled_voxels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6, requires_grad=True)
    target = torch.full((2, 4, 5, 6), IGNORE_INDEX, dtype=torch.int64)
    target[0, 1, 2, 3] = 2
    target[1, 0, 0, :] = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = partial_cross_entropy(logits, target)
    labelled = target != IGNORE_INDEX
    flat = logits.permute(0, 2, 3, 4, 1)[labelled]
    ref = torch.nn.functional.cross_entropy(flat, target[labelled])
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    loss.backward()
    grad = logits.grad.permute(0, 2, 3, 4, 1)
    assert torch.all(grad[~labelled] == 0)
    assert torch.all(grad[labelled].abs().sum(-1) > 0)
    none = torch.full_like(target, IGNORE_INDEX)
    assert float(partial_cross_entropy(logits, none).detach()) == 0.0


def test_augmentation_moves_labels_with_the_image() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, size=(8, 8, 8))
    image = (target * 10.0).astype(np.float32)  # image is a function of the label
    seen = set()
    for seed in range(20):
        img, tgt = augment(image, target, np.random.default_rng(seed), jitter=0.0)
        np.testing.assert_array_equal(img, tgt * 10.0)
        assert (
            np.bincount(tgt.ravel(), minlength=3).tolist()
            == np.bincount(target.ravel(), minlength=3).tolist()
        )
        seen.add(img.tobytes())
    assert len(seen) > 10  # flips and rotations vary
    img, tgt = augment(image, target, np.random.default_rng(1), jitter=0.1)
    # jitter: x * (1 + a) + b, one a and b per patch
    a, b = np.polyfit(tgt.ravel() * 10.0, img.ravel(), 1)
    assert abs(a - 1) <= 0.1 + 1e-6
    assert abs(b) <= 0.1 + 1e-6
    # anisotropic voxels: only the allowed plane turns
    flat = np.zeros((4, 8, 8), np.float32)
    out, _ = augment(flat, flat.astype(int), np.random.default_rng(2), planes=[(1, 2)])
    assert out.shape == (4, 8, 8)


def test_tiles_cover_the_volume_on_a_global_grid() -> None:
    assert tile_starts(48, 24, 16) == [0, 16, 24]
    assert tile_starts(64, 32, 32) == [0, 32]
    assert tile_starts(20, 32, 24) == [0]
    w = tile_window((8, 8))
    assert w.shape == (8, 8)
    assert w.dtype == np.float32
    assert w[3, 3] == pytest.approx(w.max())
    assert w[0, 0] < 0.05 * w.max()
    assert w.min() > 0


def test_a_killed_training_resumes_from_its_checkpoint(
    tmp_path: Path, microct: tuple, scribbles: object
) -> None:
    _, grey = microct
    vol = grey[:32, :32, :32]
    np.save(tmp_path / "grey.npy", vol)
    ann = simulate_scribbles(
        render_scan(default_sample(0), "MicroCT", (slice(0, 32),) * 3)[0], fraction=0.01, seed=0
    )
    np.savez(tmp_path / "ann.npz", coords=ann.coords, labels=ann.labels)
    cfg = UNetConfig(n_classes=3, base_channels=4, levels=1)
    kw = {
        "config": cfg,
        "patch": 16,
        "batch_size": 1,
        "seed": 1,
        "threads": 1,
        "device": "cpu",
        "value_range": (0.0, 60000.0),
    }
    script = textwrap.dedent(
        f"""
        import numpy as np
        from ooc.segment import Annotations
        from ooc.segment.unet import UNetConfig, train_unet
        vol = np.load({str(tmp_path / "grey.npy")!r})
        z = np.load({str(tmp_path / "ann.npz")!r})
        ann = Annotations(z["coords"], z["labels"], vol.shape)
        train_unet(vol, ann, config=UNetConfig(3, base_channels=4, levels=1), patch=16, batch_size=1,
                   seed=1, threads=1, device="cpu", value_range=(0.0, 60000.0), steps=100000,
                   checkpoint_dir={str(tmp_path / "ckpt")!r}, checkpoint_every=1)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    ckpt = tmp_path / "ckpt" / "checkpoint.safetensors"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and ckpt.stat().st_mtime > 0:
            time.sleep(0.3)  # let a few more steps land
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the training never wrote a checkpoint"
    from ooc.segment.unet import _read_checkpoint

    done = int(_read_checkpoint(ckpt)[1]["step"])
    assert done >= 1
    model = train_unet(vol, ann, steps=done + 2, checkpoint_dir=tmp_path / "ckpt", **kw)
    assert model.provenance["parameters"]["resumed_from"] == done
    # other settings with the same folder are refused rather than mixed
    with pytest.raises(ValueError, match="other settings"):
        train_unet(vol, ann, steps=done + 3, checkpoint_dir=tmp_path / "ckpt", **{**kw, "seed": 2})


def test_resumed_training_equals_uninterrupted_training(tmp_path: Path, microct: tuple) -> None:
    truth, grey = microct
    vol, lab = grey[:32, :32, :32], truth[:32, :32, :32]
    ann = simulate_scribbles(lab, fraction=0.01, seed=0)
    kw = {
        "config": UNetConfig(n_classes=3, base_channels=4, levels=1),
        "patch": 16,
        "batch_size": 1,
        "seed": 4,
        "threads": 1,
        "device": "cpu",
    }
    straight = train_unet(vol, ann, steps=4, **kw)
    train_unet(vol, ann, steps=2, checkpoint_dir=tmp_path, **kw)
    resumed = train_unet(vol, ann, steps=4, checkpoint_dir=tmp_path, **kw)
    assert resumed.provenance["parameters"]["resumed_from"] == 2
    a, b = straight.network.state_dict(), resumed.network.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_unet_beats_multi_otsu(microct: tuple, trained: TrainedUNet) -> None:
    truth, grey = microct
    proba = unet_probabilities(grey, trained, tile=32, device="cpu", threads=1).compute()
    pred = np.asarray(trained.classes)[proba.argmax(0)] - 1
    scores = iou(pred, truth, [0, 1, 2])
    otsu = iou(match_labels(multi_otsu(grey, 3)[0], truth, [0, 1, 2]), truth, [0, 1, 2])
    mean_u, mean_o = np.mean(list(scores.values())), np.mean(list(otsu.values()))
    print(f"U-Net IoU {scores} mean {mean_u:.3f}; multi-Otsu mean {mean_o:.3f}")
    assert mean_u > mean_o + 0.05


def _step_excess(p: np.ndarray, ref: np.ndarray, axis: int) -> np.ndarray:
    """Per plane along spatial ``axis``: mean |step of p - step of ref| between neighbours.

    A seam is a step the network applied to the whole volume at once does not make."""
    d = np.diff(p, axis=axis + 1) - np.diff(ref, axis=axis + 1)
    return np.abs(d).mean(axis=tuple(i for i in range(d.ndim) if i != axis + 1))


def test_blended_tiles_leave_no_seams_and_ignore_blocks(
    microct: tuple, trained: TrainedUNet
) -> None:
    _, grey = microct
    g = grey[:48, :48, :48]
    whole = _predict_tile(g, trained.network, trained.value_range, torch.device("cpu"))
    hard = unet_probabilities(g, trained, tile=24, overlap=0, device="cpu", threads=1).compute()
    blend = unet_probabilities(g, trained, tile=24, overlap=8, device="cpu", threads=1).compute()
    other = unet_probabilities(
        da.from_array(g, chunks=(17, 48, 30)), trained, tile=24, overlap=8, device="cpu", threads=1
    )
    np.testing.assert_allclose(other.compute(), blend, atol=1e-5)  # blocks do not matter
    for axis in range(3):
        eh, eb = _step_excess(hard, whole, axis), _step_excess(blend, whole, axis)
        # tiles without overlap or blending show a seam where they meet (planes 23|24)...
        assert eh[23] > 5 * np.median(eh)
        # ...blended tiles (edges at 16, 24, 40) show none, there or anywhere
        assert max(eb[15], eb[23], eb[39]) < 0.1 * eh[23]
        assert eb.max() < 0.15 * eh[23]
    assert np.abs(blend - whole).mean() < 0.25 * np.abs(hard - whole).mean()


def test_saved_unet_predicts_the_same(tmp_path: Path, microct: tuple, trained: TrainedUNet) -> None:
    _, grey = microct
    path = save_model(trained, tmp_path / "unet.model")
    assert (path / "unet.safetensors").exists()
    assert (path / "model.json").exists()
    loaded = load_model(path)
    assert loaded.config == trained.config
    assert loaded.tile == trained.tile
    assert loaded.provenance["step"] == "train_unet"
    g = grey[:32, :32, :32]
    a = unet_probabilities(g, trained, device="cpu").compute()
    np.testing.assert_allclose(unet_probabilities(g, loaded, device="cpu").compute(), a, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_inference_matches_cpu(
    microct: tuple, trained: TrainedUNet
) -> None:  # pragma: no cover
    _, grey = microct
    g = grey[:32, :32, :32]
    cpu = unet_probabilities(g, trained, device="cpu").compute()
    gpu = unet_probabilities(g, trained, device="cuda").compute()
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)
    net = UNet(TINY)
    assert next(net.cuda().parameters()).is_cuda
