"""write_report: one self-contained HTML file, parsed and checked against the stores."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

import ooc
from ooc.errors import ConfigError
from ooc.report import write_report
from ooc.report.page import number
from ooc.report.planes import middle_planes
from ooc.stages.record import read_record

PNG = b"\x89PNG\r\n\x1a\n"
SCALE_PARTS = ("planes", "phases", "sizes", "transport", "provenance", "times")


class _Page(HTMLParser):
    """Every start tag with its attributes, the ids, and the text of each heading."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)

    @property
    def ids(self) -> list[str]:
        return [str(a["id"]) for _, a in self.tags if a.get("id")]


@pytest.fixture(scope="module")
def page(report: Path) -> _Page:
    parser = _Page()
    parser.feed(report.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_report_has_a_title_a_summary_and_a_section_per_scale(page: _Page) -> None:
    assert page.headings[:3] == ["Sample rep-a", "Summary", "Properties across scales"]
    ids = page.ids
    micro = [f"scale-microct-{p}" for p in SCALE_PARTS]
    fib = [f"scale-fib-sem-{p}" for p in SCALE_PARTS if p != "transport"]  # not simulated
    assert ids == ["summary", "properties", "scale-microct", *micro, "scale-fib-sem", *fib]
    assert page.headings[3:5] == ["MicroCT", "Middle planes"]


def test_report_is_self_contained(report: Path, page: _Page) -> None:
    text = report.read_text(encoding="utf-8")
    assert "http://" not in text
    assert "https://" not in text
    assert "url(" not in text  # nothing fetched by the style sheet
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "video", "audio", "base"}
    for tag, attrs in page.tags:
        if "href" in attrs:
            assert tag == "a"
            assert str(attrs["href"]).startswith("#")
            assert str(attrs["href"])[1:] in page.ids  # the contents link to the sections
        if "src" in attrs:
            assert tag == "img"


def test_every_image_is_an_embedded_png_that_is_not_blank(page: _Page) -> None:
    sources = [str(a["src"]) for tag, a in page.tags if tag == "img"]
    assert len(sources) == 4  # per scale: the middle planes and the size distributions
    for src in sources:
        head, _, data = src.partition(",")
        assert head == "data:image/png;base64"
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG)
        image = mpimg.imread(io.BytesIO(png))[..., :3]
        assert image.shape[1] >= 1000
        assert image.std() > 0.1
        assert (image.min(axis=2) < 0.9).mean() > 0.1  # much more than axes and text


def test_provenance_and_run_times_are_the_records(samples, report: Path) -> None:  # type: ignore[no-untyped-def]
    text = report.read_text(encoding="utf-8")
    for name, stage in [
        ("volume.zarr", "ingest"),
        ("model", "train"),
        ("segmentation.zarr", "segment"),
        ("measure.zarr", "measure"),
        ("simulate.zarr", "simulate"),
    ]:
        record = read_record(samples.stores[("rep-a", "MicroCT", name)])
        assert record["stage"] == stage
        assert f"<code>{record['digest'][:12]}</code>" in text
        assert f"{number(record['seconds'], 3)} s" in text
        assert record["finished"].replace("T", " ").replace("+00:00", " UTC") in text


def test_numbers_shown_are_the_stores(samples, report: Path) -> None:  # type: ignore[no-untyped-def]
    text = report.read_text(encoding="utf-8")
    measured = read_record(samples.stores[("rep-a", "MicroCT", "measure.zarr")])["summary"]
    simulated = read_record(samples.stores[("rep-a", "MicroCT", "simulate.zarr")])["summary"]
    assert f"porosity {number(measured['porosity'], 3)}" in text  # the summary
    for phase, fraction in measured["fractions"].items():
        assert f'{phase}</td><td class="num">' in text
        assert f'<td class="num">{number(fraction)}</td>' in text
    for axis in "zyx":
        assert f'<td class="num">{number(simulated["tau"][axis])}</td>' in text
        assert f'<td class="num">{number(simulated["permeability_mD"][axis])}</td>' in text


@pytest.mark.parametrize(("store", "normal", "index"), [
    ("volume.zarr", "z", np.s_[16, :, :]),
    ("segmentation.zarr", "y", np.s_[:, 16, :]),
    ("segmentation.zarr", "x", np.s_[:, :, 16]),
])  # fmt: skip
def test_middle_planes_are_the_volumes_middle(samples, store: str, normal: str, index) -> None:  # type: ignore[no-untyped-def]
    url = samples.stores[("rep-a", "MicroCT", store)]
    planes = middle_planes(url)
    assert planes.level == 0
    np.testing.assert_array_equal(planes.planes[normal].values, ooc.open_volume(url).values[index])
    assert float(planes.planes[normal][normal]) == pytest.approx(16 * 2.0)  # at voxel 16


def test_middle_planes_of_a_big_volume_come_from_a_coarser_level(samples) -> None:  # type: ignore[no-untyped-def]
    url = samples.stores[("rep-a", "MicroCT", "segmentation.zarr")]
    levels = ooc.open_volume(url).attrs
    coarse = middle_planes(url, max_pixels=16)
    assert coarse.level >= 1, levels
    level = ooc.open_volume(url, level=coarse.level)
    assert max(level.shape) <= 16
    np.testing.assert_array_equal(coarse.planes["z"].values, level.values[level.shape[0] // 2])
    assert coarse.shape == (32, 32, 32)


def test_report_of_an_unknown_sample_is_refused(samples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"'rep-z'.*no results"):
        write_report("rep-z", tmp_path / "z.html", catalog_url=samples.catalog_url)
    assert not (tmp_path / "z.html").exists()
