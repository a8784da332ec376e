"""The README's chain, typed as a user would: every ``ooc`` line of the README run as written in a
shell, each stage's output the next one's input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import ooc

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The ``ooc ...`` lines of the README's "Using it" chain, in order, comments removed."""
    text = README.read_text().split("## Using it", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line) for line in block.splitlines() if line.startswith("ooc ")]


def _shell(line: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OOC_DATA_DIR": str(cwd / "ooc-data"),  # the default folder, as the README's paths expect
        "OOC_PROGRESS": "0",
        "OOC_N_WORKERS": "1",
    }
    result = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)  # many verbs, each starting Prefect and a cluster
def test_the_readme_chain_runs_as_written(tmp_path: Path) -> None:
    """Every ``ooc`` line of the README, typed as shown: grey scan -> properties, then a spec."""
    lines = readme_commands()
    verbs = [line.split()[1] for line in lines]
    assert verbs[:6] == ["synth", "ingest", "features", "train", "segment", "measure"]
    every_verb = [
        "simulate",
        "history",
        "catalog",
        "run",
        "upscale",
        "reprocess",
        "report",
        "compare",
    ]
    assert set(every_verb) <= set(verbs), "each verb appears in the README's chain"
    out = {line: _shell(line, tmp_path) for line in lines}
    printed = dict(zip(verbs, out.values(), strict=False))
    assert "rock.zarr: written" in printed["ingest"]
    hessian = ooc.open_results(str(tmp_path / "features.zarr"))["features/hessian_s1.5"]
    assert sorted(hessian.to_dataset().data_vars) == [f"hessian_e{i}_s1.5" for i in range(3)]
    assert "classes 1=pore, 2=grain, 3=micro-porous" in printed["train"]
    kept = json.loads((tmp_path / "rock.model" / "model.json").read_text())["spec"]["filters"]
    assert sum(len(scales) for scales in kept.values()) <= 12  # --select 12: a pruned bank
    assert "most uncertain regions" in printed["segment"]

    seg = ooc.open_volume(str(tmp_path / "seg.zarr"))
    assert seg.attrs["kind"] == "labels"
    assert seg.attrs["voxel_size"] == [2.0, 2.0, 2.0]
    assert seg.attrs["labels"] == {"1": "pore", "2": "grain", "3": "micro-porous"}
    ome = json.loads((tmp_path / "seg.zarr/zarr.json").read_text())["attributes"]["ome"]
    assert [p["class"] for p in ome["image-label"]["properties"]] == [
        "pore",
        "grain",
        "micro-porous",
    ]
    assert ooc.open_volume(str(tmp_path / "seg.probabilities.zarr")).dims == ("c", "z", "y", "x")
    expected = np.bincount(seg.values.ravel(), minlength=4)[1:] / seg.size
    assert f"phase fractions: pore {expected[0]:.4f}, grain {expected[1]:.4f}" in printed["measure"]
    assert (tmp_path / "measure.pore_size.png").stat().st_size > 1000
    assert any("tortuosity factor: z" in o for line, o in out.items() if "simulate.zarr" in line)
    assert "segment" in printed["history"]
    rescaled = next(o for line, o in out.items() if "--prior scan" in line)
    assert "class shares estimated from the scan: pore 0." in rescaled

    found = json.loads(
        _shell("ooc catalog search --sample 'rock-*' --where 'porosity > 0' --json", tmp_path)
    )
    urls = {r["stage"]: r["url"] for r in found}  # results stores that record a porosity
    assert urls == {
        "measure": str(tmp_path / "measure.zarr"),
        "simulate": str(tmp_path / "simulate.zarr"),
    }
    listed = _shell("ooc catalog search --sample 'rock-*'", tmp_path)
    assert "seg.zarr" in listed
    assert "rock.model" in listed
    assert "already done" in _shell(
        "ooc measure seg.zarr measure.zarr --pore pore --objects grain", tmp_path
    )
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert set(spec["scans"]) == {"MicroCT", "FIB-SEM", "TEM"}
    assert "segmentation IoU" in out["ooc run spec.yaml"]
    assert "nothing is stale" in printed["reprocess"]
    assert "stands for 'micro-porous' of MicroCT" in printed["upscale"]
    multiscale = next(o for line, o in out.items() if "multiscale.zarr" in line)
    assert "tortuosity factor: z" in multiscale
    fib_blocks = next(o for line, o in out.items() if "fib-blocks.zarr --pore" in line)
    assert "whole volume by a coarse solve over the map: tau z" in fib_blocks
    fitted = next(o for line, o in out.items() if "fib-map.zarr --phase" in line)
    assert "relative_diffusivity = " in fitted
    assert "permeability = " in fitted
    per_voxel = next(o for line, o in out.items() if "--per-voxel" in line)
    assert "micro-porous per voxel (from " in per_voxel
    assert "permeability (mD): z" in per_voxel
    assert (tmp_path / "rock.html").stat().st_size > 10_000
    assert "porosity" in printed["compare"]
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_the_readme_spec_example_is_a_valid_spec(tmp_path: Path) -> None:
    from ooc.stages.spec import load_spec

    block = README.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "spec.yaml").write_text(block)
    spec = load_spec(str(tmp_path / "spec.yaml"))
    assert set(spec["scans"]) == {"MicroCT", "FIB-SEM"}
