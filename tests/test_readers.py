"""Each reader returns the array it was written from; bad inputs fail early with clear errors."""

from __future__ import annotations

import re
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


def _write_interleaved(path: Path, volume: np.ndarray, *, bigtiff: bool) -> None:
    """One IFD then its page's data, page after page, and no ImageDescription (as libtiff writes)."""
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tif:
        for plane in volume:
            tif.write(plane, contiguous=False, metadata=None)


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
    if kind == "multipage-interleaved":
        _write_interleaved(tmp_path / "v.tif", volume, bigtiff=False)
        return tmp_path / "v.tif", {}
    if kind == "imagej":
        tifffile.imwrite(tmp_path / "v.tif", volume, imagej=True, metadata={"axes": "ZYX"})
        return tmp_path / "v.tif", {}
    if kind == "ome":
        tifffile.imwrite(tmp_path / "v.ome.tif", volume, ome=True, metadata={"axes": "ZYX"})
        return tmp_path / "v.ome.tif", {}
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
    "multipage-interleaved",
    "imagej",
    "ome",
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


# Where a truncation lands, for a file of 10 pages cut near page 5 (1-based). tifffile's own layout
# ("contiguous": IFD 1, the data of all pages, then IFDs 2-10, and a shape description) and
# libtiff's ("interleaved": IFD then data, page after page, no description), classic and BigTIFF.
# Each case: the first page reported missing or cut, the detail, and the pages named.
TRUNCATIONS = {
    ("contiguous", "page-boundary"): (2, "IFD is at", "pages 2-10 are"),
    ("contiguous", "inside-data"): (2, "IFD is at", "pages 2-10 are"),
    ("contiguous", "inside-ifd"): (5, "IFD ends at", "pages 5-10 are"),
    ("interleaved", "page-boundary"): (5, "IFD is at", "pages 5 onwards are"),
    ("interleaved", "inside-data"): (5, "image data ends at", "pages 5 onwards are"),
    ("interleaved", "inside-ifd"): (5, "IFD ends at", "pages 5 onwards are"),
}


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
@pytest.mark.parametrize(("layout", "cut"), list(TRUNCATIONS))
def test_truncated_multipage_tiff_is_refused(
    tmp_path: Path,
    grey_volume: np.ndarray,
    caplog: pytest.LogCaptureFixture,
    layout: str,
    cut: str,
    bigtiff: bool,
) -> None:
    path = tmp_path / "scan.tif"
    if layout == "contiguous":
        tifffile.imwrite(path, grey_volume[:10], bigtiff=bigtiff)
    else:
        _write_interleaved(path, grey_volume[:10], bigtiff=bigtiff)
    with tifffile.TiffFile(path) as tif:
        pages = [(p.offset, p.dataoffsets[0], p.databytecounts[0]) for p in tif.pages]
    ifd, data, count = pages[4]
    at = {"page-boundary": pages[3][1] + pages[3][2], "inside-data": data + count // 2}
    size = at.get(cut, ifd + 10)
    path.write_bytes(path.read_bytes()[:size])

    first, detail, named = TRUNCATIONS[layout, cut]
    where = {"IFD is at": pages[first - 1][0], "image data ends at": data + count}
    expected = (
        "10 pages expected from its ImageDescription (shape)"
        if layout == "contiguous"
        else f"its IFD chain continues after page {first - 1}"
    )
    number = rf"{where[detail]}" if detail in where else r"\d+"
    with pytest.raises(InputError) as caught:
        open_reader(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: {re.escape(expected)}, but {named} missing or cut off "
        rf"\(page {first}'s {detail} byte {number}; the file has {size} bytes\); "
        "the file is truncated",
        str(caught.value),
    ), str(caught.value)
    assert not caplog.records  # refused before tifffile walks the broken chain and logs


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
def test_tiff_cut_inside_a_pages_tag_values(
    tmp_path: Path, grey_volume: np.ndarray, caplog: pytest.LogCaptureFixture, bigtiff: bool
) -> None:
    path = tmp_path / "strips.tif"
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tif:
        for plane in grey_volume[:10]:  # one strip per row: the strip offsets lie outside the IFD
            tif.write(plane, contiguous=False, metadata=None, rowsperstrip=1)
    with tifffile.TiffFile(path) as tif:
        values = tif.pages[4].tags["StripOffsets"].valueoffset
    path.write_bytes(path.read_bytes()[: values + 20])
    per_value = 8 if bigtiff else 4
    with pytest.raises(InputError) as caught:
        open_reader(path)
    assert str(caught.value) == (
        f"{path}: its IFD chain continues after page 4, but pages 5 onwards are missing or cut "
        f"off (page 5's StripOffsets (273) values end at byte {values + 45 * per_value}; the "
        f"file has {values + 20} bytes); the file is truncated"
    )
    assert not caplog.records


def test_tiff_page_without_image_bytes_is_refused(tmp_path: Path, grey_volume: np.ndarray) -> None:
    path = tmp_path / "empty_strip.tif"
    tifffile.imwrite(path, grey_volume[:3], photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        count = tif.pages[1].tags["StripByteCounts"]
        assert count.count == 1  # one strip, its byte count held in the entry itself
        at = count.valueoffset
    data = bytearray(path.read_bytes())
    data[at : at + 4] = bytes(4)
    path.write_bytes(bytes(data))
    with pytest.raises(
        InputError,
        match=r"empty_strip\.tif: page 2 has no readable image data \(1 strip or tile offsets, "
        r"1 byte counts, 0 bytes\); corrupt",
    ):
        open_reader(path)


def test_truncated_imagej_tiff_names_the_count_its_description_promises(
    tmp_path: Path, grey_volume: np.ndarray
) -> None:
    source, _ = _write_input("imagej", tmp_path, grey_volume[:10])
    with tifffile.TiffFile(source) as tif:
        third = tif.pages[2]
        size = third.dataoffsets[0] + third.databytecounts[0]
    source.write_bytes(source.read_bytes()[:size])
    with pytest.raises(
        InputError, match=r"v\.tif: 10 pages expected from its ImageJ description, but pages 2-10"
    ):
        open_reader(source)


def test_imagej_images_after_one_ifd_are_refused(tmp_path: Path, grey_volume: np.ndarray) -> None:
    # ImageJ writes a stack over 4 GB as one IFD followed by the raw images
    path = tmp_path / "big_imagej.tif"
    tifffile.imwrite(
        path, grey_volume[0], description="ImageJ=1.11a\nimages=5\nslices=5\n", metadata=None
    )
    path.write_bytes(path.read_bytes() + grey_volume[1:5].tobytes())
    with pytest.raises(
        InputError,
        match=r"big_imagej\.tif: 5 pages expected from its ImageJ description, but its IFD chain "
        r"holds 1; .* save the stack as BigTIFF",
    ):
        open_reader(path)


def test_tiff_cut_inside_its_first_ifd(tmp_path: Path, grey_volume: np.ndarray) -> None:
    path = tmp_path / "scan.btf"
    tifffile.imwrite(path, grey_volume[:4], bigtiff=True, photometric="minisblack")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(
        InputError,
        match=r"scan\.btf: no page lies whole in the file \(page 1's IFD ends at byte \d+; "
        r"the file has 40 bytes\); the file is truncated",
    ):
        open_reader(path)


def _corrupt(path: Path, how: str) -> str:
    """Damage one slice file; returns the expected reason (a regex)."""
    data = path.read_bytes()
    rng = np.random.default_rng(7)
    if how == "zero-length":
        path.write_bytes(b"")
        return re.escape("empty file (0 bytes); expected a TIFF")
    if how == "cut-in-data":
        path.write_bytes(data[: len(data) // 2])
        return (
            r"1 page expected from its ImageDescription \(shape\), but page 1 is missing or cut "
            rf"off \(page 1's image data ends at byte \d+; the file has {len(data) // 2} bytes\)"
        )
    if how == "random-bytes":
        path.write_bytes(rng.integers(0, 256, len(data), dtype=np.uint8).tobytes())
        return r"not a TIFF file \(starts with b'.*'; expected b'II\*\\x00'"
    if how == "random-after-header":  # a TIFF header, then noise where its first IFD should be
        path.write_bytes(data[:8] + rng.integers(0, 256, len(data) - 8, dtype=np.uint8).tobytes())
        return r"page 1's IFD at byte 8 claims \d+ tags; corrupt"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["zero-length", "cut-in-data", "random-bytes", "random-after-header"]
)
def test_stack_with_a_damaged_slice(tmp_path: Path, grey_volume: np.ndarray, how: str) -> None:
    folder = _write_stack(tmp_path / "s", grey_volume[:6])
    reason = _corrupt(folder / "slice_2.tif", how)
    with pytest.raises(InputError, match=rf"^{re.escape(str(folder / 'slice_2.tif'))}: {reason}"):
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


@pytest.mark.parametrize(
    ("compression", "byteorder", "box"),
    [
        (None, "<", (slice(0, 6), slice(0, 20), slice(0, 24))),
        (None, ">", (slice(2, 5), slice(0, 20), slice(0, 24))),
        ("zlib", "<", (slice(1, 6), slice(0, 20), slice(0, 24))),
        (None, "<", (slice(0, 3), slice(4, 11), slice(5, 23))),
    ],
)
def test_read_hashed_reads_and_hashes_each_slice_file_once(
    tmp_path: Path, compression: str | None, byteorder: str, box
) -> None:
    """The voxels equal a plain read, and each digest is the SHA-256 of the whole file."""
    import hashlib

    volume = np.random.default_rng(5).integers(0, 60000, size=(6, 20, 24), dtype=np.uint16)
    folder = tmp_path / "stack"
    folder.mkdir()
    for z, plane in enumerate(volume):
        tifffile.imwrite(
            folder / f"s{z:02d}.tif", plane, compression=compression, byteorder=byteorder
        )
    reader = open_reader(folder)
    timer: dict[str, float] = {}
    data, digests = reader.read_hashed(box, timer=timer)
    np.testing.assert_array_equal(data, volume[box])
    assert data.dtype == np.dtype("uint16")  # native order, whatever the file's
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in reader.paths[box[0]]]
    assert digests == expected
    assert set(timer) == {"read", "hash", "decode"}
    out = np.zeros_like(data)
    again, _ = reader.read_hashed(box, out=out)
    assert again is out
    np.testing.assert_array_equal(out, volume[box])
    with pytest.raises(ValueError, match="out is"):
        reader.read_hashed(box, out=np.zeros((1, 1, 1), dtype=np.uint16))
