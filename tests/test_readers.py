"""Each reader returns the array it was written from; bad inputs fail early with clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from ooc.errors import InputError
from ooc.io import open_reader
from ooc.io.readers import RawReader, TiffStackReader


def _write_stack(folder: Path, volume: np.ndarray, *, compression: str | None = None) -> Path:
    folder.mkdir()
    for z, plane in enumerate(volume):
        # unpadded numbers: natural sort must still put slice_2 before slice_10
        tifffile.imwrite(folder / f"slice_{z}.tif", plane, compression=compression)
    return folder


def _write_input(kind: str, tmp_path: Path, volume: np.ndarray) -> tuple[Path, dict]:
    if kind == "tiff-stack":
        return _write_stack(tmp_path / "stack", volume), {}
    if kind == "tiff-stack-zlib":
        return _write_stack(tmp_path / "stack", volume, compression="zlib"), {}
    if kind == "multipage":
        tifffile.imwrite(tmp_path / "v.tif", volume)
        return tmp_path / "v.tif", {}
    if kind == "bigtiff":
        tifffile.imwrite(tmp_path / "v.btf", volume, bigtiff=True)
        return tmp_path / "v.btf", {}
    if kind == "npy":
        np.save(tmp_path / "v.npy", volume)
        return tmp_path / "v.npy", {}
    if kind == "hdf5":
        with h5py.File(tmp_path / "v.h5", "w") as f:
            f.create_dataset("exchange/data", data=volume, chunks=(8, 16, 16))
        return tmp_path / "v.h5", {"dataset": "exchange/data"}
    if kind in ("raw-little", "raw-big"):
        order = "<" if kind == "raw-little" else ">"
        header = b"HEADER!!"
        (tmp_path / "v.raw").write_bytes(
            header + volume.astype(volume.dtype.newbyteorder(order)).tobytes()
        )
        return tmp_path / "v.raw", {
            "shape": volume.shape,
            "dtype": str(volume.dtype),
            "byte_order": "little" if order == "<" else "big",
            "offset": len(header),
        }
    raise AssertionError(kind)


KINDS = [
    "tiff-stack",
    "tiff-stack-zlib",
    "multipage",
    "bigtiff",
    "npy",
    "hdf5",
    "raw-little",
    "raw-big",
]


@pytest.mark.parametrize("kind", KINDS)
def test_reader_returns_the_written_array(
    kind: str, tmp_path: Path, grey_volume: np.ndarray
) -> None:
    source, options = _write_input(kind, tmp_path, grey_volume)
    reader = open_reader(source, **options)
    assert reader.shape == grey_volume.shape
    assert reader.dtype == grey_volume.dtype
    whole = (slice(0, 37), slice(0, 45), slice(0, 51))
    np.testing.assert_array_equal(reader.read(whole), grey_volume)
    box = (slice(3, 20), slice(7, 40), slice(1, 50))
    np.testing.assert_array_equal(reader.read(box), grey_volume[box])


def test_tiff_stack_natural_order(tmp_path: Path, grey_volume: np.ndarray) -> None:
    reader = TiffStackReader(_write_stack(tmp_path / "s", grey_volume[:12]))
    assert [p.name for p in reader.files()][:3] == ["slice_0.tif", "slice_1.tif", "slice_2.tif"]
    assert reader.files()[10].name == "slice_10.tif"


def test_stack_with_a_slice_of_another_shape(tmp_path: Path, grey_volume: np.ndarray) -> None:
    folder = _write_stack(tmp_path / "s", grey_volume[:5])
    tifffile.imwrite(folder / "slice_3.tif", grey_volume[3, :40])
    with pytest.raises(
        InputError, match=r"slice_3\.tif: slice is 40x51 uint16; expected 45x51 uint16"
    ):
        TiffStackReader(folder)


def test_stack_with_a_slice_of_another_dtype(tmp_path: Path, grey_volume: np.ndarray) -> None:
    folder = _write_stack(tmp_path / "s", grey_volume[:5])
    tifffile.imwrite(folder / "slice_4.tif", grey_volume[4].astype(np.float32))
    with pytest.raises(InputError, match=r"slice_4\.tif: .*float32; expected .*uint16"):
        TiffStackReader(folder)


def test_stack_with_a_missing_slice(tmp_path: Path, grey_volume: np.ndarray) -> None:
    folder = _write_stack(tmp_path / "s", grey_volume[:8])
    (folder / "slice_5.tif").unlink()
    with pytest.raises(InputError, match=r"missing slice number\(s\) \[5\]"):
        TiffStackReader(folder)


def test_stack_with_a_truncated_slice(tmp_path: Path, grey_volume: np.ndarray) -> None:
    folder = _write_stack(tmp_path / "s", grey_volume[:4])
    path = folder / "slice_2.tif"
    data = path.read_bytes()
    # tifffile writes the image data before the trailing tags; cut into the pixel data
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"slice_2\.tif: (truncated|not a readable TIFF)"):
        TiffStackReader(folder)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no TIFF slices"):
        open_reader(tmp_path)


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [
        (
            (37, 45, 52),
            "uint16",
            r"file is \d+ bytes; shape \(37, 45, 52\) of uint16 .* needs \d+ bytes",
        ),
        ((37, 45, 51), "uint32", r"needs \d+ bytes"),
    ],
)
def test_raw_size_mismatch(
    tmp_path: Path, grey_volume: np.ndarray, shape: tuple, dtype: str, match: str
) -> None:
    (tmp_path / "v.raw").write_bytes(grey_volume.tobytes())
    with pytest.raises(InputError, match=match):
        RawReader(tmp_path / "v.raw", shape, np.dtype(dtype))


def test_raw_needs_shape_and_dtype(tmp_path: Path) -> None:
    (tmp_path / "v.raw").write_bytes(b"\0" * 8)
    with pytest.raises(InputError, match="needs --shape Z,Y,X and --dtype"):
        open_reader(tmp_path / "v.raw")


def test_hdf5_missing_dataset_lists_what_is_there(tmp_path: Path, grey_volume: np.ndarray) -> None:
    source, _ = _write_input("hdf5", tmp_path, grey_volume)
    with pytest.raises(
        InputError, match=r"no dataset 'data'; datasets in the file: \['exchange/data'\]"
    ):
        open_reader(source, dataset="data")


def test_unknown_input_type(tmp_path: Path) -> None:
    (tmp_path / "v.xyz").write_bytes(b"x")
    with pytest.raises(InputError, match=r"v\.xyz: unknown input type '\.xyz'"):
        open_reader(tmp_path / "v.xyz")


def test_npy_must_be_3d(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros((4, 4)))
    with pytest.raises(InputError, match=r"shape \(4, 4\); expected 3D"):
        open_reader(tmp_path / "v.npy")
