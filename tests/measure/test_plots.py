"""PNG pictures of distributions and objects."""

import dask.array as da
import numpy as np

from ooc.measure import (
    plot_distribution,
    plot_histogram,
    plot_orthoslices,
    thickness_distribution,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_pictures(tmp_path):
    lt = np.zeros((20, 20, 20))
    lt[2:10, 2:10, 2:10] = 4.0
    lt[12:18, 3:6, 3:6] = 2.0
    ds = thickness_distribution(da.from_array(lt, chunks=10), voxel_size=(1.0, 1.0, 1.0), unit="µm")
    p1 = plot_distribution(ds.volume_fraction, tmp_path / "psd.png", title="pores")
    p2 = plot_histogram(
        [1.0, 2.0, 2.5, 4.0], tmp_path / "hist.png", weights=[1, 8, 15, 64], xlabel="d (µm)"
    )
    lab = np.zeros((16, 18, 20), dtype=np.int32)
    lab[2:8, 2:8, 2:8] = 1
    lab[8:14, 9:15, 9:16] = 2
    p3 = plot_orthoslices(
        da.from_array(lab, chunks=8),
        tmp_path / "objects.png",
        voxel_size=(1.0, 0.5, 0.5),
        unit="µm",
        position=(5, 5, 5),
    )
    for p in (p1, p2, p3):
        with open(p, "rb") as f:
            assert f.read(8) == PNG
