"""A 3D (or 2D) U-Net trained from partial labels, with resumable checkpoints and tiled inference.

Training samples patches around labelled voxels (classes drawn equally), augments them (flips,
90-degree rotations in planes of equal voxel size, intensity jitter) and minimises a
cross-entropy that ignores unlabelled voxels. A checkpoint (``safetensors`` tensors plus JSON
state; no pickle) is written atomically every few steps, and the same call resumes from it
after a crash: each step's patches come from a generator seeded by ``(seed, step)``, so a
resumed run makes exactly the steps an uninterrupted one would. Inference runs over the whole
volume in overlapping tiles blended with a smooth window (:mod:`ooc.segment.tiling`), on CUDA
when present, else on the CPU.

PyTorch is imported when this module is; install it with ``pip install torch`` (see README).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch
from torch import nn

from ooc.features import as_volume, intensity_range
from ooc.features.chunked import map_blocks_with_halo
from ooc.provenance import make_record
from ooc.segment.annotations import Annotations, load_annotations
from ooc.segment.tiling import blend_tiles

__all__ = [
    "IGNORE_INDEX",
    "TrainedUNet",
    "UNet",
    "UNetConfig",
    "augment",
    "partial_cross_entropy",
    "resolve_torch_device",
    "train_unet",
    "unet_probabilities",
]

IGNORE_INDEX = -100
"""Target value of unlabelled voxels (ignored by the loss)."""

CHECKPOINT = "checkpoint.safetensors"


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a :class:`UNet`.

    Parameters
    ----------
    n_classes
        Output classes.
    in_channels
        Input channels (1: grey).
    base_channels
        Channels of the first level; doubled at each level down.
    levels
        Poolings (a tile's sides are padded to multiples of ``2**levels``).
    spatial_dims
        3 for volumes, 2 for images.
    """

    n_classes: int
    in_channels: int = 1
    base_channels: int = 16
    levels: int = 2
    spatial_dims: int = 3

    def __post_init__(self) -> None:
        if self.n_classes < 2 or self.in_channels < 1 or self.base_channels < 1:
            raise ValueError(f"invalid UNetConfig {self}")
        if self.levels < 0 or self.spatial_dims not in (2, 3):
            raise ValueError(f"levels must be >= 0 and spatial_dims 2 or 3, got {self}")

    def to_dict(self) -> dict[str, int]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: int(v) for k, v in d.items()})


class _Block(nn.Sequential):
    def __init__(self, conv: type, norm: type, cin: int, cout: int) -> None:
        super().__init__(
            conv(cin, cout, 3, padding=1, bias=False),
            norm(cout),
            nn.ReLU(inplace=True),
            conv(cout, cout, 3, padding=1, bias=False),
            norm(cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015; Çiçek et al. 2016 for 3D) with batch normalisation.

    Two 3x3(x3) convolutions per level, max pooling down, transposed convolutions up, skip
    connections by concatenation, a 1x1(x1) convolution to class logits. In evaluation mode
    every layer is local (batch norm uses its running statistics), so tiles of a volume agree
    where they overlap except near their borders, where the window of the tiling fades them.
    Input sides must be multiples of ``2**levels``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        d = config.spatial_dims
        conv = nn.Conv3d if d == 3 else nn.Conv2d
        norm = nn.BatchNorm3d if d == 3 else nn.BatchNorm2d
        up = nn.ConvTranspose3d if d == 3 else nn.ConvTranspose2d
        self.pool = nn.MaxPool3d(2) if d == 3 else nn.MaxPool2d(2)
        ch = [config.base_channels * 2**i for i in range(config.levels + 1)]
        self.down = nn.ModuleList()
        cin = config.in_channels
        for c in ch:
            self.down.append(_Block(conv, norm, cin, c))
            cin = c
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in range(config.levels, 0, -1):
            self.up.append(up(ch[i], ch[i - 1], 2, stride=2))
            self.merge.append(_Block(conv, norm, 2 * ch[i - 1], ch[i - 1]))
        self.head = conv(ch[0], config.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes, *spatial)`` of input ``(N, in_channels, *spatial)``."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, merge in zip(self.up, self.merge, strict=True):
            x = up(x)
            x = merge(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)


def resolve_torch_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; ``"cpu"``, ``"cuda"`` / ``"gpu"`` as asked."""
    if device in ("auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "gpu":
        device = "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
    return torch.device(device)


def partial_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over labelled voxels only (``target == IGNORE_INDEX`` is unlabelled).

    ``logits`` ``(N, K, *spatial)``, ``target`` ``(N, *spatial)`` int64 class indices. The
    mean is over labelled voxels (weighted by ``weight[class]``); unlabelled voxels get no
    gradient. A batch without labelled voxels gives 0 (not NaN).
    """
    if not bool((target != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)


def augment(
    image: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    *,
    planes: Sequence[tuple[int, int]] | None = None,
    jitter: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90-degree rotations and intensity jitter of a patch and its labels.

    Parameters
    ----------
    image
        Normalised patch (grey around 0).
    target
        Class indices of the same shape (geometry changes apply to both alike).
    rng
        Random generator.
    planes
        Axis pairs rotations may turn (default: all pairs of equal side length; give only
        pairs of equal voxel size for anisotropic data).
    jitter
        Intensity: ``x * (1 + a) + b`` with ``a``, ``b`` uniform in ``[-jitter, jitter]``.

    Returns
    -------
    image, target
        Augmented copies.
    """
    ndim = image.ndim
    for axis in range(ndim):
        if rng.random() < 0.5:
            image = np.flip(image, axis)
            target = np.flip(target, axis)
    if planes is None:
        planes = [
            (i, j)
            for i in range(ndim)
            for j in range(i + 1, ndim)
            if image.shape[i] == image.shape[j]
        ]
    planes = [p for p in planes if image.shape[p[0]] == image.shape[p[1]]]
    if planes:
        plane = planes[int(rng.integers(len(planes)))]
        k = int(rng.integers(4))
        image = np.rot90(image, k, axes=plane)
        target = np.rot90(target, k, axes=plane)
    if jitter:
        a, b = rng.uniform(-jitter, jitter, size=2)
        image = image * np.float32(1 + a) + np.float32(b)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target)


@dataclass
class TrainedUNet:
    """A trained U-Net with what is needed to apply it.

    Attributes
    ----------
    network
        The :class:`UNet` (on the CPU, in evaluation mode).
    classes
        Label values of the network's outputs, in order.
    value_range
        Grey range mapped to ``[-0.5, 0.5]`` before the network.
    tile
        Default inference tile (voxels per axis).
    voxel_size, unit, class_names, provenance
        As for :class:`~ooc.segment.TrainedForest`.
    """

    network: UNet
    classes: tuple[int, ...]
    value_range: tuple[float, float]
    tile: tuple[int, ...]
    voxel_size: tuple[float, ...]
    unit: str = "voxel"
    class_names: dict[int, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    kind = "unet"

    @property
    def config(self) -> UNetConfig:
        """The network's shape."""
        return self.network.config

    @property
    def ndim(self) -> int:
        """Spatial dimensions of the volumes it applies to."""
        return self.config.spatial_dims

    def predict_proba(self, volume: Any, **kwargs: Any) -> da.Array:
        """Lazy per-class probabilities; see :func:`unet_probabilities`."""
        return unet_probabilities(volume, self, **kwargs)


def _normalise(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    lo, hi = value_range
    return ((np.asarray(x, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)) - np.float32(
        0.5
    )


def _state_tensors(
    net: nn.Module, opt: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    sd = opt.state_dict()
    for idx, state in sd["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{idx}.{name}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def _load_state(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _save_checkpoint(
    path: Path, net: nn.Module, opt: torch.optim.Optimizer, info: dict[str, Any]
) -> None:
    from safetensors.torch import save_file

    tensors, opt_meta = _state_tensors(net, opt)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"ooc": json.dumps({**info, **opt_meta})})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["ooc"])
        for k in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensors[k] = f.get_tensor(k)
    return tensors, meta


def _patch_shape(
    patch: int | Sequence[int], ndim: int, shape: Sequence[int], multiple: int
) -> tuple[int, ...]:
    p = (int(patch),) * ndim if np.ndim(patch) == 0 else tuple(int(v) for v in patch)  # type: ignore[arg-type]
    if len(p) != ndim:
        raise ValueError(f"patch needs {ndim} sides, got {patch}")
    # no larger than the volume, and a multiple of 2**levels
    return tuple(
        max(multiple, min(v, (n // multiple) * multiple or multiple))
        for v, n in zip(p, shape, strict=True)
    )


def _sample_batch(
    rng: np.random.Generator,
    sources: list[tuple[da.Array, Annotations]],
    class_index: dict[int, int],
    by_class: list[np.ndarray],
    patch: tuple[int, ...],
    batch_size: int,
    value_range: tuple[float, float],
    planes: list[tuple[int, int]],
    do_augment: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of patches about labelled voxels: a class drawn uniformly, then one of its
    labelled voxels (``by_class[c]`` rows: volume index, annotation row), a random offset."""
    images, targets = [], []
    picks = []
    for _ in range(batch_size):
        rows = by_class[int(rng.integers(len(by_class)))]
        v, r = rows[int(rng.integers(len(rows)))]
        data, ann = sources[v]
        shape = np.array(data.shape)
        offset = np.array([int(rng.integers(p)) for p in patch])
        start = np.clip(ann.coords[r] - offset, 0, np.maximum(shape - np.array(patch), 0))
        picks.append(
            (v, tuple(slice(int(a), int(a) + p) for a, p in zip(start, patch, strict=True)))
        )
    patches = dask.compute(*(sources[v][0][b] for v, b in picks), scheduler="threads")
    for (v, box), raw in zip(picks, patches, strict=True):
        img = _normalise(raw, value_range)
        dense = sources[v][1].to_dense(box, dtype=np.int64)
        target = np.full(dense.shape, IGNORE_INDEX, dtype=np.int64)
        for value, idx in class_index.items():
            target[dense == value] = idx
        img, target = _pad_to(img, target, patch)
        if do_augment:
            img, target = augment(img, target, rng, planes=planes)
        images.append(img)
        targets.append(target)
    return np.stack(images)[:, None], np.stack(targets)


def _pad_to(
    img: np.ndarray, target: np.ndarray, patch: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    pad = [(0, max(0, p - n)) for p, n in zip(patch, img.shape, strict=True)]
    if any(b for _, b in pad):
        img = np.pad(img, pad, mode="edge")
        target = np.pad(target, pad, constant_values=IGNORE_INDEX)
    return img, target


def train_unet(
    volume: Any,
    annotations: Any,
    *,
    config: UNetConfig | None = None,
    patch: int | Sequence[int] = 32,
    steps: int = 500,
    batch_size: int = 2,
    learning_rate: float = 1e-3,
    class_weight: str | None = None,
    augmentation: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 50,
    device: str = "auto",
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
    tile: int | Sequence[int] | None = None,
    threads: int | None = None,
) -> TrainedUNet:
    """Train a U-Net on patches around labelled voxels, resuming from a checkpoint if any.

    Parameters
    ----------
    volume
        Grey volume (``xarray.DataArray``, Dask or NumPy; 2D or 3D), or a list of them with a
        list of annotations. Patches are read as needed, so volumes may exceed memory.
    annotations
        :class:`~ooc.segment.Annotations` or any source :func:`load_annotations` takes.
    config
        Network shape (default ``UNetConfig(n_classes=K, spatial_dims=ndim)``).
    patch
        Patch side(s), voxels (rounded to multiples of ``2**levels``, at most the volume).
    steps
        Optimiser steps in total (a resumed run continues up to this count).
    batch_size, learning_rate
        Patches per step; Adam's learning rate.
    class_weight
        ``None`` or ``"balanced"`` (loss weights inverse to the labelled voxel counts).
    augmentation
        Flips, 90-degree rotations (in planes of equal voxel size) and intensity jitter.
    checkpoint_dir
        Folder for ``checkpoint.safetensors``, written every ``checkpoint_every`` steps and
        at the end; if it holds a checkpoint of the same configuration, training resumes
        from it (a different configuration is refused).
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    seed
        Seeds the initial weights and every step's patches.
    value_range
        Grey range mapped to ``[-0.5, 0.5]`` (default: robust range of sampled chunks).
    tile
        Inference tile stored with the model (default: 2 x patch, at most 96).
    threads
        CPU threads for PyTorch during training (default: PyTorch's own setting; 1 is often
        fastest on a busy or small machine).

    Returns
    -------
    TrainedUNet
        On the CPU in evaluation mode; ``provenance["parameters"]`` holds the settings, the
        final loss, ``resumed_from`` (the step training started at) and the time taken.
    """
    t0 = time.perf_counter()
    many = isinstance(volume, list | tuple)
    vols = [as_volume(v) for v in (volume if many else [volume])]
    sources_in = annotations if many else [annotations]
    if len(sources_in) != len(vols):
        raise ValueError(f"{len(vols)} volumes but {len(sources_in)} annotation sources")
    ndim = len(vols[0].shape)
    if any(len(v.shape) != ndim for v in vols):
        raise ValueError("all training volumes must have the same dimensionality")
    anns = [
        a if isinstance(a, Annotations) else load_annotations(a, v)
        for a, v in zip(sources_in, vols, strict=True)
    ]
    classes = sorted(set().union(*(a.classes.tolist() for a in anns)))
    classes = [int(c) for c in classes]
    if len(classes) < 2:
        raise ValueError(f"need labels of at least 2 classes, got {classes}")
    config = config or UNetConfig(n_classes=len(classes), spatial_dims=ndim)
    if config.n_classes != len(classes) or config.spatial_dims != ndim:
        raise ValueError(
            f"config has {config.n_classes} classes / {config.spatial_dims}D; the annotations "
            f"have {len(classes)} classes on a {ndim}D volume"
        )
    multiple = 2**config.levels
    smallest = tuple(min(v.shape[a] for v in vols) for a in range(ndim))
    patch_shape = _patch_shape(patch, ndim, smallest, multiple)
    if value_range is None:
        value_range = intensity_range(vols[0].data)
    value_range = (float(value_range[0]), float(value_range[1]))
    vol = vols[0]
    vs = np.asarray(vol.voxel_size)
    planes = [
        (i, j)
        for i in range(ndim)
        for j in range(i + 1, ndim)
        if math.isclose(vs[i], vs[j], rel_tol=1e-6)
    ]
    class_index = {v: i for i, v in enumerate(classes)}
    by_class = [
        np.concatenate(
            [
                np.stack([np.full(len(r), k), r], axis=1)
                for k, a in enumerate(anns)
                for r in [np.flatnonzero(a.labels == value)]
            ]
        )
        for value in classes
    ]
    sources = [(v.data, a) for v, a in zip(vols, anns, strict=True)]
    dev = resolve_torch_device(device)

    torch.manual_seed(seed)
    net = UNet(config).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    weight = None
    if class_weight == "balanced":
        counts = np.array([len(r) for r in by_class], dtype=np.float64)
        weight = torch.tensor(
            counts.sum() / (len(counts) * counts), dtype=torch.float32, device=dev
        )
    elif class_weight is not None:
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")

    settings = {
        "config": config.to_dict(),
        "patch": list(patch_shape),
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "class_weight": class_weight,
        "augmentation": augmentation,
        "seed": seed,
        "value_range": list(value_range),
        "classes": classes,
    }
    step = 0
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir) / CHECKPOINT
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if ckpt.exists():
            tensors, meta = _read_checkpoint(ckpt)
            if meta.get("settings") != settings:
                raise ValueError(
                    f"{ckpt}: a checkpoint of other settings ({meta.get('settings')}); "
                    "delete it or choose another checkpoint_dir"
                )
            _load_state(net, opt, tensors, meta)
            step = int(meta["step"])
    resumed_from = step
    losses: list[float] = []
    net.train()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        while step < steps:
            rng = np.random.default_rng([seed, step])
            x, y = _sample_batch(
                rng,
                sources,
                class_index,
                by_class,
                patch_shape,
                batch_size,
                value_range,
                planes,
                augmentation,
            )
            xt = torch.from_numpy(x).to(dev)
            yt = torch.from_numpy(y).to(dev)
            opt.zero_grad(set_to_none=True)
            loss = partial_cross_entropy(net(xt), yt, weight)
            loss.backward()
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if ckpt is not None and (step % max(1, checkpoint_every) == 0 or step == steps):
                _save_checkpoint(ckpt, net, opt, {"step": step, "settings": settings})
    finally:
        torch.set_num_threads(old_threads)
    net.eval()
    net = net.to("cpu")
    if tile is None:
        tile_shape = tuple(min(96, 2 * p) for p in patch_shape)
    else:
        tile_shape = (int(tile),) * ndim if np.ndim(tile) == 0 else tuple(int(t) for t in tile)  # type: ignore[arg-type]
    params = {
        **settings,
        "steps": steps,
        "resumed_from": resumed_from,
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
        "labelled_voxels": {int(c): len(r) for c, r in zip(classes, by_class, strict=True)},
        "labelled_fraction": float(
            sum(a.n_voxels for a in anns) / sum(np.prod(v.shape) for v in vols)
        ),
        "device": str(dev),
        "seconds": round(time.perf_counter() - t0, 3),
        "checkpoint": None if ckpt is None else str(ckpt),
    }
    inputs = []
    names: dict[int, str] = {}
    for v, a in zip(vols, anns, strict=True):
        inputs.append({"volume": v.attrs.get("url", "array"), "shape": list(v.shape)})
        inputs.append({"annotations": a.source or "annotations"})
        names.update(a.class_names)
    return TrainedUNet(
        network=net,
        classes=tuple(classes),
        value_range=value_range,
        tile=tile_shape,
        voxel_size=tuple(vol.voxel_size),
        unit=vol.unit,
        class_names=names,
        provenance=make_record("train_unet", parameters=params, inputs=inputs),
    )


_NETS: dict[tuple[int, str], UNet] = {}


def _net_on(net: UNet, device: torch.device) -> UNet:
    if device.type == "cpu":
        return net
    key = (id(net), str(device))  # pragma: no cover - needs a GPU
    if key not in _NETS:  # pragma: no cover
        _NETS[key] = UNet(net.config).to(device).eval()
        _NETS[key].load_state_dict(net.state_dict())
    return _NETS[key]  # pragma: no cover


def _predict_tile(
    x: np.ndarray, net: UNet, value_range: tuple[float, float], device: torch.device
) -> np.ndarray:
    m = 2**net.config.levels
    shape = x.shape
    pad = [(0, (-n) % m) for n in shape]
    img = _normalise(x, value_range)
    if any(b for _, b in pad):
        img = np.pad(img, pad, mode="reflect" if min(shape) > 1 else "edge")
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(img))[None, None].to(device)
        p = torch.softmax(net(t), dim=1)[0].float().cpu().numpy()
    return p[(slice(None), *(slice(0, n) for n in shape))]


def _unet_block(
    padded: np.ndarray,
    crop: tuple[slice, ...],
    net: UNet,
    *,
    value_range: tuple[float, float],
    tile: tuple[int, ...],
    stride: tuple[int, ...],
    volume_shape: tuple[int, ...],
    origin: tuple[int, ...],
    device: str,
    threads: int | None,
) -> np.ndarray:
    dev = resolve_torch_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    model = _net_on(net, dev)
    return blend_tiles(
        np.asarray(padded),
        crop,
        origin=origin,
        volume_shape=volume_shape,
        tile=tile,
        stride=stride,
        predict=lambda x: _predict_tile(x, model, value_range, dev),
        n_out=net.config.n_classes,
    )


def unet_probabilities(
    volume: Any,
    model: TrainedUNet,
    *,
    device: str = "auto",
    block: Sequence[int] | None = None,
    tile: int | Sequence[int] | None = None,
    overlap: int | Sequence[int] | None = None,
    threads: int | None = None,
) -> da.Array:
    """Per-class probabilities of a volume from a U-Net, in blended overlapping tiles, lazily.

    Parameters
    ----------
    volume
        Grey volume (``xarray``, Dask or NumPy) of the model's dimensionality.
    model
        A :class:`TrainedUNet`.
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    block
        Dask block shape (default: the volume's chunks).
    tile
        Tile shape, voxels (default ``model.tile``; at most the volume's shape).
    overlap
        Overlap of neighbouring tiles, voxels (default a quarter of the tile).
    threads
        PyTorch CPU threads in each task (default: unchanged; 1 suits several Dask threads).

    Returns
    -------
    dask.array.Array
        float32 ``(K, *volume.shape)`` in ``model.classes`` order. Tiles lie on one global
        grid and blend with a raised-cosine window: no seams at tile edges, and the same
        values for any ``block``.
    """
    vol = as_volume(volume)
    ndim = len(vol.shape)
    if ndim != model.ndim:
        raise ValueError(f"the model is for {model.ndim}D volumes, got shape {vol.shape}")
    t = (
        model.tile
        if tile is None
        else ((int(tile),) * ndim if np.ndim(tile) == 0 else tuple(int(v) for v in tile))
    )  # type: ignore[arg-type]
    t = tuple(min(a, n) for a, n in zip(t, vol.shape, strict=True))
    if overlap is None:
        ov = tuple(a // 4 for a in t)
    else:
        ov = (int(overlap),) * ndim if np.ndim(overlap) == 0 else tuple(int(v) for v in overlap)  # type: ignore[arg-type]
    stride = tuple(max(1, a - o) for a, o in zip(t, ov, strict=True))
    data = vol.data if block is None else vol.data.rechunk(tuple(int(b) for b in block))
    halo = tuple(a - 1 for a in t)
    return map_blocks_with_halo(
        _unet_block,
        data,
        halo,
        n_out=model.config.n_classes,
        dtype=np.float32,
        name="ooc-unet",
        with_origin=True,
        net=dask.delayed(model.network, pure=True),
        value_range=model.value_range,
        tile=t,
        stride=stride,
        volume_shape=tuple(vol.shape),
        device=device,
        threads=threads,
    )
