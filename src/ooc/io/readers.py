"""Readers for raw scans: TIFF slice folders, multi-page/BigTIFF files, raw binary, HDF5, NumPy.

Each reader checks its input when it is made (shapes, dtypes, sizes, missing slices), before
anything is written, and then reads any (z, y, x) box on demand. A TIFF (each slice of a folder,
or a multi-page file) is refused unless the file holds it whole: every page's IFD, tag values
and strips or tiles inside the file, and as many pages as its ImageJ or tifffile description
promises; the check reads tags, never pixel data. Readers hold only paths and small headers, so
they pickle cheaply to Dask workers. Inputs are opened read-only.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

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


@dataclass(frozen=True)
class _IfdChain:
    """Where a TIFF's image file directories (IFDs, one per page) lie, as far as the file holds them.

    ``offsets``: byte offset of each page's IFD that lies whole inside the file. ``cut``: when
    the chain stops early, the 1-based number of the first page that is missing or cut and why.
    """

    offsets: list[int]
    cut: tuple[int, str] | None


# bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ..., IFD8)
_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TYPE_BYTES |= {16: 8, 17: 8, 18: 8}


def _ifd_chain(fh: BinaryIO, size: int, path: Path) -> _IfdChain:
    """Walk a TIFF's IFD chain, checking each IFD and its tag values lie inside the file.

    Reads the header and each IFD's entries (a few hundred bytes per page), never tag values
    or pixel data. Classic TIFF and BigTIFF.
    """
    if size == 0:
        raise InputError(f"{path}: empty file (0 bytes); expected a TIFF")
    head = fh.read(16)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    version = struct.unpack(order + "H", head[2:4])[0] if order and len(head) >= 8 else None
    if version == 42:
        count_fmt, entry_fmt, offset_fmt = "H", "HHII", "I"
        first = struct.unpack(order + "I", head[4:8])[0]
    elif version == 43 and len(head) == 16:
        count_fmt, entry_fmt, offset_fmt = "Q", "HHQQ", "Q"
        first = struct.unpack(order + "Q", head[8:16])[0]
    else:
        raise InputError(
            f"{path}: not a TIFF file (starts with {head[:4]!r}; expected b'II*\\x00', "
            "b'MM\\x00*' or BigTIFF's b'II+\\x00')"
        )
    if first == 0:
        raise InputError(f"{path}: holds no image (its header points to no IFD)")
    count_size = struct.calcsize(count_fmt)
    entry = struct.Struct(order + entry_fmt)
    next_offset = struct.Struct(order + offset_fmt)
    inline = next_offset.size  # values up to this many bytes sit in the entry itself
    offsets: list[int] = []
    seen: set[int] = set()
    offset = first
    while offset:
        page = len(offsets) + 1
        if offset in seen:
            raise InputError(f"{path}: page {page}'s IFD points back to byte {offset}; corrupt")
        if offset + count_size > size:
            return _IfdChain(offsets, (page, f"page {page}'s IFD is at byte {offset}"))
        fh.seek(offset)
        entries = struct.unpack(order + count_fmt, fh.read(count_size))[0]
        if entries > 4096:
            raise InputError(
                f"{path}: page {page}'s IFD at byte {offset} claims {entries} tags; corrupt"
            )
        end = offset + count_size + entries * entry.size + next_offset.size
        if end > size:
            return _IfdChain(offsets, (page, f"page {page}'s IFD ends at byte {end}"))
        block = fh.read(entries * entry.size + next_offset.size)
        for code, kind, count, value in entry.iter_unpack(block[: entries * entry.size]):
            nbytes = count * _TYPE_BYTES.get(kind, 0)
            if nbytes > inline and value + nbytes > size:
                name = tifffile.TIFF.TAGS.get(code, "tag")
                where = f"page {page}'s {name} ({code}) values end at byte {value + nbytes}"
                return _IfdChain(offsets, (page, where))
        seen.add(offset)
        offsets.append(offset)
        offset = next_offset.unpack(block[-next_offset.size :])[0]
    return _IfdChain(offsets, None)


def _described_pages(page: tifffile.TiffPage) -> tuple[int, str] | None:
    """Pages the first page's ImageDescription promises (ImageJ or tifffile's shape), if it says.

    Only the first series is counted for tifffile's description, so the value is a lower bound.
    OME-XML is not used: writers put it at the end of the file, the part a cut loses first, and
    it may count planes that other files hold.
    """
    text = page.description or ""
    yx = int(page.shape[-2]) * int(page.shape[-1]) if len(page.shape) >= 2 else 0
    if text.startswith("ImageJ="):
        found = re.search(r"^images=(\d+)$", text, flags=re.MULTILINE)
        return (int(found.group(1)), "ImageJ description") if found else None
    if text.startswith("{") and yx:
        try:
            shape = json.loads(text).get("shape")
            n = math.prod(int(v) for v in shape)
        except (ValueError, TypeError, AttributeError):
            return None
        return (n // yx, "ImageDescription (shape)") if n % yx == 0 else None
    return None


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"


def _page_span(first: int, last: int | None) -> str:
    if last is None:
        return f"pages {first} onwards are"
    return f"page {first} is" if first == last else f"pages {first}-{last} are"


def _inspect_tiff(path: Path) -> tuple[int, tuple[int, int], np.dtype]:
    """Pages, page shape (y, x) and dtype of a grey TIFF, after checking the file holds them whole.

    Walks the IFD chain, reads each page's tags and checks that every strip or tile lies inside
    the file, and that the chain holds as many pages as the ImageDescription promises. Reads no
    pixel data.

    Raises
    ------
    InputError
        One line naming the file, the first page missing or cut, and what was expected.
    """
    try:
        with open(path, "rb", buffering=0) as fh:  # small reads; no 8 KiB read-ahead per page
            size = os.fstat(fh.fileno()).st_size
            chain = _ifd_chain(fh, size, path)
            if chain.cut is not None and not chain.offsets:
                raise InputError(
                    f"{path}: no page lies whole in the file ({chain.cut[1]}; the file has "
                    f"{size} bytes); the file is truncated"
                )
            fh.seek(0)  # tifffile reads from the handle's position
            with tifffile.TiffFile(fh, name=path.name) as tif:
                return _check_pages(path, tif, chain, size)
    except (tifffile.TiffFileError, OSError, struct.error) as err:
        raise InputError(f"{path}: not a readable TIFF ({err})") from None


def _check_pages(
    path: Path, tif: tifffile.TiffFile, chain: _IfdChain, size: int
) -> tuple[int, tuple[int, int], np.dtype]:
    found = len(chain.offsets)
    first = tif.pages[0]
    described = _described_pages(first)
    cut = chain.cut
    kinds: set[tuple[tuple[int, ...], str, int]] = set()
    for index in range(found):
        page = tif.pages[index]
        kinds.add((tuple(page.shape), str(page.dtype), page.samplesperpixel))
        starts, counts = page.dataoffsets, page.databytecounts
        if len(starts) != len(counts) or not any(counts):
            raise InputError(
                f"{path}: page {index + 1} has no readable image data ({len(starts)} strip or "
                f"tile offsets, {len(counts)} byte counts, {sum(counts)} bytes); corrupt"
            )
        end = max(o + n for o, n in zip(starts, counts, strict=True))
        if end > size:
            cut = (index + 1, f"page {index + 1}'s image data ends at byte {end}")
            break
    if cut is not None:
        if described is not None and described[0] >= cut[0]:
            expect = f"{_pages(described[0])} expected from its {described[1]}"
            last: int | None = described[0]
        elif chain.cut is None:
            expect, last = f"{_pages(found)} expected from its IFD chain", found
        else:
            expect, last = f"its IFD chain continues after page {cut[0] - 1}", None
        raise InputError(
            f"{path}: {expect}, but {_page_span(cut[0], last)} missing or cut off "
            f"({cut[1]}; the file has {size} bytes); the file is truncated"
        )
    if described is not None and described[0] > found:
        hint = (
            "; ImageJ stores the images of a file over 4 GB as raw data after one page, "
            "which ooc does not read: save the stack as BigTIFF"
            if found == 1 and described[1] == "ImageJ description"
            else "; the file is incomplete"
        )
        raise InputError(
            f"{path}: {_pages(described[0])} expected from its {described[1]}, but its IFD chain "
            f"holds {found}{hint}"
        )
    if len(kinds) != 1:
        raise InputError(
            f"{path}: pages differ in shape or dtype: {sorted(map(str, kinds))}; expected one "
            "grey 2D image per page"
        )
    ((shape, dtype, samples),) = kinds
    if samples != 1 or len(shape) != 2:
        raise InputError(f"{path}: page has shape {shape}; expected one grey channel (2D)")
    return found, (int(shape[0]), int(shape[1])), np.dtype(dtype)


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
        first: tuple[tuple[int, int], np.dtype] | None = None
        for path in self.paths:
            pages, shape, dtype = _inspect_tiff(path)
            if pages != 1:
                raise InputError(
                    f"{path}: has {pages} pages; a slice folder needs one page per file "
                    "(open a multi-page file on its own)"
                )
            if first is None:
                first = (shape, dtype)
            elif (shape, dtype) != first:
                raise InputError(
                    f"{path}: slice is {shape[0]}x{shape[1]} {dtype}; expected "
                    f"{first[0][0]}x{first[0][1]} {first[1]} like {self.paths[0].name}"
                )
        assert first is not None
        self.shape = (len(self.paths), *first[0])
        self.dtype = first[1]

    def read(self, box: Box) -> np.ndarray:
        """Read ``box``; each slice file is opened once."""
        z, y, x = box
        return np.stack([_read_page(p, 0, y, x) for p in self.paths[z]])

    def read_hashed(
        self, box: Box, *, out: np.ndarray | None = None, timer: dict[str, float] | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """Read ``box``, reading each slice file of its z range whole, once, and hashing it.

        Returns the voxels and the SHA-256 (hex) of each of those files' bytes, in z order: one
        pass over the input serves both the volume and its provenance checksum. Meant for boxes
        spanning whole slices (otherwise each call reads whole files for part of a slice).
        ``out``, if given, receives the voxels (an array of the box's shape and the reader's
        dtype, reused across calls to spare fresh pages). ``timer``, if given, gets the seconds
        spent reading, hashing and decoding added to its "read", "hash" and "decode" entries.
        """
        z, y, x = box
        paths = self.paths[z]
        rows, cols = range(*y.indices(self.shape[1])), range(*x.indices(self.shape[2]))
        shape = (len(paths), len(rows), len(cols))
        if out is None:
            out = np.empty(shape, dtype=self.dtype)
        elif out.shape != shape or out.dtype != self.dtype:
            raise ValueError(f"out is {out.shape} {out.dtype}; the box needs {shape} {self.dtype}")
        digests = []
        spent = {"read": 0.0, "hash": 0.0, "decode": 0.0}
        for i, path in enumerate(paths):
            start = time.perf_counter()
            with open(path, "rb", buffering=0) as fh:
                data = fh.read()
            hashed = time.perf_counter()
            digests.append(hashlib.sha256(data).hexdigest())
            decoded = time.perf_counter()
            out[i] = _decode_page(data, path)[y, x]
            done = time.perf_counter()
            spent["read"] += hashed - start
            spent["hash"] += decoded - hashed
            spent["decode"] += done - decoded
        if timer is not None:
            for key, value in spent.items():
                timer[key] = timer.get(key, 0.0) + value
        return out, digests

    def files(self) -> list[Path]:
        """The slice files in z order."""
        return list(self.paths)


def _decode_page(data: bytes, path: Path) -> np.ndarray:
    """The first page of the TIFF file whose bytes are ``data`` (a view into them if stored
    uncompressed and untiled, else decoded)."""
    with tifffile.TiffFile(io.BytesIO(data), name=path.name) as tif:
        page = tif.pages[0]
        if page.is_final and 322 not in page.tags and page.dtype is not None:
            stored = page.dtype.newbyteorder(tif.byteorder)
            count = math.prod(page.shape)
            return np.frombuffer(
                data, dtype=stored, count=count, offset=page.dataoffsets[0]
            ).reshape(page.shape)
        return page.asarray()


@dataclass
class TiffFileReader:
    """A 3D TIFF: multi-page (one page per z) or BigTIFF, including ImageJ/OME hyperstacks."""

    path: Path
    shape: tuple[int, int, int] = field(init=False)
    dtype: np.dtype = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        pages, yx, self.dtype = _inspect_tiff(self.path)
        self.shape = (pages, *yx)

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
