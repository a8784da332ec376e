"""Sandstone: train from sparse labels on two hand-labelled slices, score IoU on the other three.

Data: ``../shared/data/sandstone_slices`` (five 1024 x 996 slices of a ZEISS Versa X-ray scan of
a sandstone, z = 0, 100, 200, 300, 400, pixel 2.2314 µm, hand-labelled: 1 pore and air, 2 clay,
3 quartz, 4 a bright mineral; MIT licence, from the python_for_microscopists repository). The
labels are one person's annotation, not a consensus.

The training slices' labels are thinned to scribbles (``simulate_scribbles``: 1-pixel brush
strokes up to 12 pixels long inside each class, ``--fraction`` of the pixels, split equally
between the classes), a random forest is trained on the 2D filter bank (ilastik's six filters
at its seven scales, 56 features) of both slices together, and each of the other slices is
segmented and scored per class against its full hand labels. A four-class multi-Otsu threshold
(classes matched to labels for its best mean IoU) is scored beside it. ``forest+prior``
re-weights the forest's probabilities from the scribbles' class shares (equal) to the scan's,
estimated by EM from the probabilities of all five slices without labels
(``ooc.segment.estimate_prior``); ``--unet-steps N`` also
trains a small 2D U-Net on the same scribbles; ``--context-passes N`` adds N auto-context passes
(ilastik's: each pass trains a forest on the filter bank plus the previous pass's class
probabilities smoothed at scales 0, 1, 3.5 and 10 pixels, at the same scribbles, and predicts
every slice again).

Run:  python benchmarks/sandstone.py            (train on slices 0 and 4, test on 1, 2, 3)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sandstone_slices"
NAMES = {1: "pore", 2: "clay", 3: "quartz", 4: "bright mineral"}


def scan_prior(proba: list[np.ndarray], train_prior: np.ndarray) -> np.ndarray:
    """The scan's class shares by EM on the probabilities of all its slices (no labels used)."""
    from ooc.segment import estimate_prior

    k = len(train_prior)
    return estimate_prior(np.concatenate([p.reshape(k, -1) for p in proba], axis=1), train_prior)


def auto_context(
    grey: np.ndarray,
    anns: list,
    train: list[int],
    test: list[int],
    model: object,
    truth: np.ndarray,
    args: argparse.Namespace,
) -> dict[tuple[str, int], dict[int, float]]:
    """Auto-context passes on top of ``model``: IoU per (``"context k"``, test slice)."""
    from sklearn.ensemble import RandomForestClassifier

    from ooc.features import FeatureSpec, feature_stack
    from ooc.segment import iou, shift_prior, training_prior

    context = FeatureSpec(filters={"gaussian": [0.0, 1.0, 3.5, 10.0]})
    bank = [feature_stack(g, model.spec, channels_last=True) for g in grey]
    proba = [np.moveaxis(model.predict_proba(g, device="cpu").compute(), 0, -1) for g in grey]
    classes = np.asarray(model.classes)
    y = np.concatenate([a.labels for a in anns])
    rows = {}
    for k in range(1, args.context_passes + 1):
        feats = [
            np.concatenate(
                [
                    b,
                    *(
                        feature_stack(p[..., c], context, channels_last=True)
                        for c in range(p.shape[-1])
                    ),
                ],
                axis=-1,
            )
            for b, p in zip(bank, proba, strict=True)
        ]
        X = np.concatenate([feats[i][tuple(a.coords.T)] for i, a in zip(train, anns, strict=True)])
        est = RandomForestClassifier(args.trees, random_state=args.seed).fit(X, y)
        proba = [
            est.predict_proba(f.reshape(-1, f.shape[-1])).reshape(*f.shape[:-1], -1) for f in feats
        ]
        base = training_prior(model)  # the same scribbles train every pass
        chw = [np.moveaxis(p, -1, 0) for p in proba]
        prior = scan_prior(chw, base)
        for i in test:
            rows[(f"context {k}", i)] = iou(classes[proba[i].argmax(-1)], truth[i], list(classes))
            p = shift_prior(chw[i], base, prior)
            rows[(f"context {k}+prior", i)] = iou(classes[p.argmax(0)], truth[i], list(classes))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--train", type=int, nargs=2, default=(0, 4), help="slice indices 0..4")
    parser.add_argument("--fraction", type=float, default=0.002, help="labelled pixel fraction")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unet-steps", type=int, default=0, help="also train a 2D U-Net")
    parser.add_argument(
        "--context-passes", type=int, default=0, help="auto-context passes after the forest"
    )
    args = parser.parse_args(argv)

    from ooc.features import FeatureSpec
    from ooc.segment import (
        iou,
        match_labels,
        multi_otsu,
        shift_prior,
        simulate_scribbles,
        train_forest,
        training_prior,
    )

    grey_path = args.data / "sandstone_grey_z0-400step100.tif"
    label_path = args.data / "sandstone_labels_z0-400step100.tif"
    if not grey_path.exists():
        print(f"{grey_path}: not found (the shared data folder is absent)", file=sys.stderr)
        return 1
    grey = tifffile.imread(grey_path)
    truth = tifffile.imread(label_path).astype(np.int64)
    classes = [1, 2, 3, 4]
    train = list(args.train)
    test = [i for i in range(len(grey)) if i not in train]
    pixel = (2.2314, 2.2314)
    anns = [
        simulate_scribbles(
            truth[i], fraction=args.fraction, radius=0.5, margin=0.0, stroke_length=12,
            classes=classes, offset=0, seed=args.seed + i,
        )
        for i in train
    ]  # fmt: skip
    spec = FeatureSpec()  # ilastik's matrix; 2D: 56 features
    t0 = time.perf_counter()
    model = train_forest(
        [grey[i] for i in train], anns, spec, n_estimators=args.trees, random_state=args.seed
    )
    t_train = time.perf_counter() - t0
    rows = {}
    t0 = time.perf_counter()
    proba = {}
    for i in test:
        proba[i] = model.predict_proba(grey[i], device="cpu").compute()
        rows[("forest", i)] = iou(np.asarray(model.classes)[proba[i].argmax(0)], truth[i], classes)
    t_pred = (time.perf_counter() - t0) / len(test)
    for i in train:
        proba[i] = model.predict_proba(grey[i], device="cpu").compute()
    base = training_prior(model)
    prior = scan_prior([proba[i] for i in sorted(proba)], base)
    for i in test:
        p = shift_prior(proba[i], base, prior)
        rows[("forest+prior", i)] = iou(np.asarray(model.classes)[p.argmax(0)], truth[i], classes)
    if args.context_passes:
        rows.update(auto_context(grey, anns, train, test, model, truth, args))
    for i in test:
        otsu = multi_otsu(grey[i], 4)[0].astype(np.int64) + 1
        rows[("multi-Otsu", i)] = iou(match_labels(otsu, truth[i], classes), truth[i], classes)
    if args.unet_steps:
        from ooc.segment.unet import UNetConfig, train_unet, unet_probabilities

        cfg = UNetConfig(n_classes=4, base_channels=16, levels=3, spatial_dims=2)
        net = train_unet(
            [grey[i] for i in train], anns, config=cfg, patch=128, batch_size=4,
            steps=args.unet_steps, seed=args.seed, value_range=(0.0, 255.0), device="auto",
        )  # fmt: skip
        for i in test:
            p = unet_probabilities(grey[i], net, tile=256, device="auto").compute()
            rows[("U-Net", i)] = iou(np.asarray(net.classes)[p.argmax(0)], truth[i], classes)

    labelled = sum(a.n_voxels for a in anns)
    print(
        f"sandstone slices {grey.shape}, pixel {pixel[0]} µm; train on slices {train} "
        f"(z = {[100 * i for i in train]}) with {labelled} scribbled pixels "
        f"({labelled / (len(train) * grey[0].size):.2%} of them); test on {test}"
    )
    print(
        f"forest: {args.trees} trees on {spec.n_channels(2)} features; "
        f"training {t_train:.1f} s, prediction {t_pred:.1f} s per slice"
    )
    passes = range(1, args.context_passes + 1)
    order = ["forest", "forest+prior", *(f"context {k}{p}" for k in passes for p in ("", "+prior"))]
    methods = sorted({m for m, _ in rows}, key=[*order, "U-Net", "multi-Otsu"].index)
    header = (
        f"{'method':<16} {'slice':>5} "
        + " ".join(f"{NAMES[c]:>14}" for c in classes)
        + f" {'mean':>6}"
    )
    print(
        f"class shares of the scribbles {np.round(base, 3).tolist()}; of the scan by EM on the "
        f"forest's probabilities {np.round(prior, 3).tolist()}; hand labels "
        f"{[round(float((truth == c).mean()), 3) for c in classes]}"
    )
    print(header)
    for m in methods:
        per = []
        for i in test:
            s = rows[(m, i)]
            per.append([s[c] for c in classes])
            print(
                f"{m:<16} {f'z{100 * i}':>5} "
                + " ".join(f"{s[c]:>14.3f}" for c in classes)
                + f" {np.mean(per[-1]):>6.3f}"
            )
        avg = np.mean(per, axis=0)
        print(
            f"{m:<16} {'all':>5} " + " ".join(f"{v:>14.3f}" for v in avg) + f" {avg.mean():>6.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
