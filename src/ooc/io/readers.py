"""Readers for raw scans: TIFF slice folders, multi-page/BigTIFF files, raw binary, HDF5, NumPy.

Each reader checks its input when it is made (shapes, dtypes, sizes, missing slices), before
anything is written, and then reads any (z, y, x) box on demand. Readers hold only paths and
small headers, so they pickle cheaply to Dask workers. Inputs are opened read-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import tifffile
from natsort import natsorted

from ooc.errors import InputError

__all__ = [
    "HDF5Reader",
    "InputError",
    "NpyReader",
    "RawReader",
    "TiffFileReader",
    "TiffStackReader",
    "VolumeReader",
    "open_reader",
]

Box = tuple[slice, slice, slice]
_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


class VolumeReader(Protocol):
    """A 3D scan that can be read box by box."""

    shape: tuple[int, int, int]
    dtype: np.dtype

    def read(self, box: Box) -> np.ndarray:
        """The voxels of ``box`` (three slices with steps of 1) as a new (z, y, x) array."""
        ...

    def files(self) -> list[Path]:
        """The files whose content makes up the volume (for checksums)."""
        ...


def _page_info(path: Path, page: tifffile.TiffPage) -> tuple[tuple[int, int], np.dtype]:
    if page.samplesperpixel != 1 or len(page.shape) != 2:
        raise InputError(f"{path}: page has shape {page.shape}; expected one grey channel (2D)")
    size = path.stat().st_size
    end = max(
        (o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)), default=0
    )
    if end > size or 0 in page.databytecounts:
        raise InputError(f"{path}: truncated; image data ends at byte {end}, file has {size}")
    return (int(page.shape[0]), int(page.shape[1])), np.dtype(page.dtype)


def _read_page(path: Path, index: int, rows: slice, cols: slice) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[index]
        if page.is_contiguous and page.is_memmappable and 322 not in page.tags:  # untiled
            # uncompressed, in one run of bytes: read only the rows asked for
            full = np.memmap(
                path,
                dtype=page.dtype.newbyteorder(tif.byteorder),
                mode="r",
                offset=page.dataoffsets[0],
                shape=page.shape,
            )
            return np.asarray(full[rows, cols], dtype=page.dtype.newbyteorder("="))
        return page.asarray()[rows, cols]


def _slice_index_gaps(paths: list[Path]) -> list[int]:
    """Indices missing from a numbered slice sequence (``img_0007.tif``), else []."""
    numbers = []
    for p in paths:
        found = re.findall(r"\d+", p.stem)
        if not found:
            return []
        numbers.append(int(found[-1]))
    present = set(numbers)
    if len(present) != len(numbers):
        return []
    return [n for n in range(min(numbers), max(numbers) + 1) if n not in present]


@dataclass
class TiffStackReader:
    """A folder of 2D TIFF slices, one per z, in natural sort order (``s2`` before ``s10``)."""

    folder: Path
    pattern: str = "*"
    paths: list[Path] = field(init=False)
    shape: tuple[int, int, int] = field(init=False)
    dtype: np.dtype = field(init=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: not a folder of TIFF slices")
        self.paths = natsorted(
            (p for p in self.folder.glob(self.pattern) if p.suffix.lower() in _TIFF_SUFFIXES),
            key=lambda p: p.name,
        )
        if not self.paths:
            raise InputError(f"{self.folder}: no TIFF slices (*.tif, *.tiff) found")
        gaps = _slice_index_gaps(self.paths)
        if gaps:
            raise InputError(
                f"{self.folder}: slice numbering has gaps; missing slice number(s) {gaps[:10]}"
                + (" ..." if len(gaps) > 10 else "")
            )
        first_shape: tuple[int, int] | None = None
        first_dtype: np.dtype | None = None
        for path in self.paths:
            try:
                with tifffile.TiffFile(path) as tif:
                    if len(tif.pages) != 1:
                        raise InputError(
                            f"{path}: has {len(tif.pages)} pages; a slice folder needs one page "
                            "per file (open a multi-page file on its own)"
                        )
                    shape, dtype = _page_info(path, tif.pages[0])
            except (tifffile.TiffFileError, OSError) as err:
                raise InputError(f"{path}: not a readable TIFF ({err})") from None
            if first_shape is None:
                first_shape, first_dtype = shape, dtype
            elif shape != first_shape or dtype != first_dtype:
                raise InputError(
                    f"{path}: slice is {shape[0]}x{shape[1]} {dtype}; expected "
                    f"{first_shape[0]}x{first_shape[1]} {first_dtype} like {self.paths[0].name}"
                )
        assert first_shape is not None
        assert first_dtype is not None
        self.shape = (len(self.paths), *first_shape)
        self.dtype = first_dtype

    def read(self, box: Box) -> np.ndarray:
        """Read ``box``; each slice file is opened once."""
        z, y, x = box
        return np.stack([_read_page(p, 0, y, x) for p in self.paths[z]])

    def files(self) -> list[Path]:
        """The slice files in z order."""
        return list(self.paths)


@dataclass
class TiffFileReader:
    """A 3D TIFF: multi-page (one page per z) or BigTIFF, including ImageJ/OME hyperstacks."""

    path: Path
    shape: tuple[int, int, int] = field(init=False)
    dtype: np.dtype = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        try:
            with tifffile.TiffFile(self.path) as tif:
                pages = tif.pages
                shapes = set()
                dtype = None
                for page in pages:
                    shape, dtype = _page_info(self.path, page)
                    shapes.add((shape, dtype))
                if len(shapes) != 1:
                    raise InputError(
                        f"{self.path}: pages differ in shape or dtype: {sorted(map(str, shapes))}"
                    )
                ((yx, dtype),) = shapes
                self.shape = (len(pages), *yx)
                self.dtype = dtype
        except (tifffile.TiffFileError, OSError) as err:
            raise InputError(f"{self.path}: not a readable TIFF ({err})") from None

    def read(self, box: Box) -> np.ndarray:
        """Read ``box``, page by page."""
        z, y, x = box
        return np.stack([_read_page(self.path, i, y, x) for i in range(*z.indices(self.shape[0]))])

    def files(self) -> list[Path]:
        """The one file."""
        return [self.path]


@dataclass
class RawReader:
    """Headerless binary: ``shape`` (z, y, x) of ``dtype`` in C order after ``offset`` bytes.

    ``byte_order`` is "little" or "big"; the volume is returned in native byte order.
    """

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    byte_order: str = "little"
    offset: int = 0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.byte_order not in ("little", "big"):
            raise InputError(
                f"{self.path}: byte order {self.byte_order!r}; expected 'little' or 'big'"
            )
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise InputError(
                f"{self.path}: shape {self.shape}; expected three positive sizes (z, y, x)"
            )
        self.shape = tuple(int(s) for s in self.shape)
        self.dtype = np.dtype(self.dtype)
        if not self.path.is_file():
            raise InputError(f"{self.path}: raw file not found")
        expected = self.offset + int(np.prod(self.shape)) * self.dtype.itemsize
        actual = self.path.stat().st_size
        if actual != expected:
            raise InputError(
                f"{self.path}: file is {actual} bytes; shape {self.shape} of {self.dtype} "
                f"after a {self.offset}-byte header needs {expected} bytes"
            )

    def read(self, box: Box) -> np.ndarray:
        """Read ``box`` through a read-only memory map."""
        stored = self.dtype.newbyteorder("<" if self.byte_order == "little" else ">")
        mm = np.memmap(self.path, dtype=stored, mode="r", offset=self.offset, shape=self.shape)
        return np.asarray(mm[box], dtype=self.dtype.newbyteorder("="))

    def files(self) -> list[Path]:
        """The one file."""
        return [self.path]


@dataclass
class HDF5Reader:
    """A 3D dataset inside an HDF5 file."""

    path: Path
    dataset: str
    shape: tuple[int, int, int] = field(init=False)
    dtype: np.dtype = field(init=False)

    def __post_init__(self) -> None:
        import h5py

        self.path = Path(self.path)
        try:
            with h5py.File(self.path, "r") as f:
                if self.dataset not in f or not isinstance(f[self.dataset], h5py.Dataset):
                    names: list[str] = []
                    f.visititems(
                        lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None
                    )
                    raise InputError(
                        f"{self.path}: no dataset {self.dataset!r}; datasets in the file: {names}"
                    )
                ds = f[self.dataset]
                if ds.ndim != 3:
                    raise InputError(
                        f"{self.path}:{self.dataset}: has shape {ds.shape}; expected 3D"
                    )
                self.shape = tuple(int(s) for s in ds.shape)
                self.dtype = np.dtype(ds.dtype)
        except OSError as err:
            raise InputError(f"{self.path}: not a readable HDF5 file ({err})") from None

    def read(self, box: Box) -> np.ndarray:
        """Read ``box`` with an HDF5 hyperslab selection."""
        import h5py

        with h5py.File(self.path, "r") as f:
            return f[self.dataset][box]

    def files(self) -> list[Path]:
        """The one file."""
        return [self.path]


@dataclass
class NpyReader:
    """A NumPy ``.npy`` file holding a 3D array (read through a memory map)."""

    path: Path
    shape: tuple[int, int, int] = field(init=False)
    dtype: np.dtype = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        try:
            mm = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise InputError(f"{self.path}: not a readable .npy file ({err})") from None
        if mm.ndim != 3:
            raise InputError(f"{self.path}: array has shape {mm.shape}; expected 3D (z, y, x)")
        self.shape = tuple(int(s) for s in mm.shape)
        self.dtype = np.dtype(mm.dtype).newbyteorder("=")

    def read(self, box: Box) -> np.ndarray:
        """Read ``box`` through a memory map."""
        return np.asarray(np.load(self.path, mmap_mode="r")[box], dtype=self.dtype)

    def files(self) -> list[Path]:
        """The one file."""
        return [self.path]


def open_reader(
    source: str | Path,
    *,
    shape: tuple[int, int, int] | None = None,
    dtype: str | None = None,
    byte_order: str = "little",
    offset: int = 0,
    dataset: str | None = None,
) -> VolumeReader:
    """Pick the reader for ``source`` by what it is.

    A folder is a TIFF slice stack; ``.tif/.tiff/.btf`` a 3D TIFF; ``.npy`` NumPy;
    ``.h5/.hdf5/.hdf/.nxs`` HDF5 (``dataset`` required); ``.raw/.bin/.vol/.dat`` raw binary
    (``shape`` and ``dtype`` required).
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_dir():
        return TiffStackReader(path)
    if not path.exists():
        raise InputError(f"{path}: input not found")
    if suffix in _TIFF_SUFFIXES:
        return TiffFileReader(path)
    if suffix == ".npy":
        return NpyReader(path)
    if suffix in (".h5", ".hdf5", ".hdf", ".nxs"):
        if not dataset:
            raise InputError(f"{path}: HDF5 input needs the dataset's name (--dataset)")
        return HDF5Reader(path, dataset)
    if suffix in (".raw", ".bin", ".vol", ".dat"):
        if shape is None or dtype is None:
            raise InputError(f"{path}: raw input needs --shape Z,Y,X and --dtype")
        return RawReader(path, shape, np.dtype(dtype), byte_order, offset)
    raise InputError(
        f"{path}: unknown input type {suffix!r}; expected a folder of TIFF slices, "
        ".tif/.tiff, .npy, .h5/.hdf5 or .raw/.bin"
    )
