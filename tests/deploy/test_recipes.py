"""The scale-out recipes in deploy/: the SLURM job script, the Kubernetes manifests and the
Dockerfiles they name (which cannot be built here: base images cannot be pulled)."""

from __future__ import annotations

import importlib.util
import math
import re
import shlex
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from dask.utils import parse_bytes

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile*"))
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- SLURM (dask-jobqueue) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def start_cluster() -> ModuleType:
    import dask_jobqueue  # noqa: F401 - the test extra installs it; the recipe needs it

    return _load(DEPLOY / "slurm" / "start_cluster.py")


def _worker_line(script: str) -> list[str]:
    [line] = [ln for ln in script.splitlines() if "distributed.cli.dask_worker" in ln]
    return shlex.split(line)


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize(
    ("cores", "processes", "memory"),
    [(32, 8, "256GiB"), (12, 3, "90GB"), (4, 1, "7.5GiB")],
)
def test_slurm_job_script_has_the_configured_resources(
    start_cluster: ModuleType, cores: int, processes: int, memory: str
) -> None:
    cluster = start_cluster.slurm_cluster(
        cores=cores,
        processes=processes,
        memory=memory,
        walltime="02:30:00",
        host="127.0.0.1",
        queue="compute",
        account="rocks",
        local_directory="/local/scratch",
    )
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    directives = {ln.strip() for ln in script.splitlines() if ln.startswith("#SBATCH")}
    # SLURM's --mem is in binary units: G means GiB; jobqueue rounds up
    expected_mem = f"#SBATCH --mem={math.ceil(parse_bytes(memory) / 2**30)}G"
    assert {
        f"#SBATCH --cpus-per-task={cores}",
        expected_mem,
        "#SBATCH -t 02:30:00",
        "#SBATCH -p compute",
        "#SBATCH -A rocks",
    } <= directives
    for export in start_cluster.PROLOGUE:
        assert export in script.splitlines()
    args = _worker_line(script)
    # the worker command: ooc's Python (this one) runs Dask's worker against the scheduler
    assert args[:4] == [sys.executable, "-m", "distributed.cli.dask_worker", address]
    assert address.startswith("tcp://127.0.0.1:")
    # one worker process per job unless told otherwise (then jobqueue leaves --nworkers out)
    workers = int(_option(args, "--nworkers")) if "--nworkers" in args else 1
    assert workers == processes
    assert int(_option(args, "--nthreads")) == cores // processes
    per_worker = parse_bytes(_option(args, "--memory-limit"))
    assert per_worker == pytest.approx(parse_bytes(memory) / processes, rel=0.01)
    assert _option(args, "--local-directory") == "/local/scratch"
    # the interpreter named in the script is one that has ooc
    assert Path(args[0]).resolve() == Path(sys.executable).resolve()


def test_slurm_cluster_talks_tls_with_ooc_tls_settings(
    start_cluster: ModuleType, tls_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, path in tls_files.items():
        monkeypatch.setenv(f"OOC_{name.upper()}", path)
    monkeypatch.setenv("OOC_SCHEDULER", "tcp://elsewhere:8786")  # not this cluster's concern
    cluster = start_cluster.slurm_cluster(
        cores=2, processes=1, memory="2GiB", walltime="00:10:00", host="127.0.0.1"
    )
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    args = _worker_line(script)
    assert address.startswith("tls://127.0.0.1:")
    assert args[3] == address
    assert _option(args, "--tls-ca-file") == tls_files["tls_ca_file"]
    assert _option(args, "--tls-cert") == tls_files["tls_cert"]
    assert _option(args, "--tls-key") == tls_files["tls_key"]


def test_slurm_recipe_wants_an_interface_or_a_host(start_cluster: ModuleType) -> None:
    with pytest.raises(ValueError, match="exactly one of interface"):
        start_cluster.slurm_cluster(cores=1, processes=1, memory="1GiB", walltime="00:01:00")
    with pytest.raises(SystemExit):
        start_cluster.main(["--jobs", "1"])


# ---- Dockerfiles ------------------------------------------------------------------------


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _built_images() -> dict[str, Path]:
    """Image tag -> Dockerfile, from each Dockerfile's ``docker build ... -t TAG .`` line."""
    images = {}
    for dockerfile in DOCKERFILES:
        for match in re.finditer(r"docker build -f (\S+) -t (\S+) \.", dockerfile.read_text()):
            assert REPO / match[1] == dockerfile
            images[match[2]] = dockerfile
    return images


def _dockerignore_allows(path: str) -> bool:
    """Whether the top-level .dockerignore keeps ``path`` (Docker's rules: the last matching
    pattern wins, ``!`` re-includes, a pattern matching a folder matches what is inside it)."""
    keep = True
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, p) for p in prefixes):
            keep = negate
    return keep


def test_dockerfiles_copy_files_that_exist_and_reach_the_build() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile", "Dockerfile.cuda"}
    for dockerfile in DOCKERFILES:
        copies = [args.split() for word, args in _instructions(dockerfile) if word == "COPY"]
        sources = [src for *srcs, _dest in copies for src in srcs]
        # what `pip install .` reads: the project file, its readme, and the packages' sources
        assert {"pyproject.toml", "README.md", "src", "pipelines", "schemas"} <= set(sources)
        for src in sources:
            path = REPO / src
            assert path.exists(), f"{dockerfile.name}: COPY {src}: not in the checkout"
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            files = [f for f in files if "__pycache__" not in f.parts]
            assert files
            for f in files:
                relative = f.relative_to(REPO).as_posix()
                assert _dockerignore_allows(relative), f".dockerignore drops {relative}"
    assert not _dockerignore_allows(".venv/bin/python")
    assert not _dockerignore_allows("tests/test_config.py")
    assert not _dockerignore_allows("src/ooc/__pycache__/config.cpython-311.pyc")


def test_dockerfiles_install_ooc_with_extras_that_exist() -> None:
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    wanted = {"Dockerfile": {"torch", "s3"}, "Dockerfile.cuda": {"gpu", "torch", "s3"}}
    for dockerfile in DOCKERFILES:
        runs = " ".join(args for word, args in _instructions(dockerfile) if word == "RUN")
        [installed] = re.findall(r'pip install "\.\[([a-z0-9_,-]+)\]"', runs)
        assert set(installed.split(",")) == wanted[dockerfile.name]
        assert set(installed.split(",")) <= extras
        # torch comes from PyTorch's own index (CPU or CUDA build) before ooc is installed
        assert re.search(r"pip install --index-url \S+ \"torch", runs)
        assert [w for w, _ in _instructions(dockerfile)][-2:] == ["WORKDIR", "CMD"]
        assert ("USER", "ooc") in _instructions(dockerfile)  # not root at run time


# ---- Kubernetes -------------------------------------------------------------------------


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in MANIFESTS:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _containers(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The containers of a manifest by role: scheduler, worker or prefect-worker."""
    spec = doc["spec"]
    if doc["kind"] == "DaskCluster":
        return {
            "scheduler": spec["scheduler"]["spec"]["containers"],
            "worker": spec["worker"]["spec"]["containers"],
        }
    if doc["kind"] == "DaskWorkerGroup":
        return {"worker": spec["worker"]["spec"]["containers"]}
    if doc["kind"] == "Deployment":
        return {"prefect-worker": spec["template"]["spec"]["containers"]}
    raise AssertionError(f"unexpected kind {doc['kind']}")


def test_kubernetes_manifests_parse_and_name_the_built_images_and_ooc_commands() -> None:
    images = _built_images()
    docs = _documents()
    assert sorted(d["kind"] for d in docs) == ["DaskCluster", "DaskWorkerGroup", "Deployment"]
    seen = set()
    for doc in docs:
        assert doc["metadata"]["name"]
        for role, containers in _containers(doc).items():
            for c in containers:
                assert c["image"] in images, (
                    f"{c['image']}: no Dockerfile in deploy/docker builds it"
                )
                dockerfile = images[c["image"]].name
                seen.add(dockerfile)
                args = c["args"]
                if role == "scheduler":
                    assert args[:2] == ["dask", "scheduler"]
                elif role == "prefect-worker":
                    assert args[:3] == ["prefect", "worker", "start"]
                elif dockerfile == "Dockerfile.cuda":
                    assert args[:3] == ["dask", "cuda", "worker"]
                    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
                else:
                    assert args[:2] == ["dask", "worker"]
    assert seen == {"Dockerfile", "Dockerfile.cuda"}


def test_kubernetes_workers_fit_their_pods() -> None:
    for doc in _documents():
        for c in _containers(doc).get("worker", []):
            limits = c["resources"]["limits"]
            if "--nthreads" in c["args"]:
                assert int(_option(c["args"], "--nthreads")) == int(limits["cpu"])
            if "--memory-limit" in c["args"]:
                assert parse_bytes(_option(c["args"], "--memory-limit")) < parse_bytes(
                    limits["memory"]
                )
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert _option(c["args"], "--local-directory") in mounts


def test_kubernetes_pieces_point_at_each_other() -> None:
    docs = {d["kind"]: d for d in _documents()}
    cluster = docs["DaskCluster"]
    name = cluster["metadata"]["name"]
    assert docs["DaskWorkerGroup"]["spec"]["cluster"] == name
    [comm] = [
        p for p in cluster["spec"]["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm"
    ]
    [worker] = _containers(docs["Deployment"])["prefect-worker"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    # the operator names the scheduler's service <cluster>-scheduler
    assert env["OOC_SCHEDULER"] == f"tcp://{name}-scheduler:{comm['port']}"
    pools = {
        d["work_pool"]["name"]
        for d in yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["deployments"]
    }
    assert [_option(worker["args"], "--pool")] == sorted(pools)
    assert _option(worker["args"], "--type") == "process"
    assert env["OOC_DATA_ROOTS"].startswith("s3://")
    assert "OOC_CATALOG_URL" in env  # from a secret


# ---- the example configuration ----------------------------------------------------------


def test_example_config_documents_every_setting_and_loads(tmp_path: Path) -> None:
    from dataclasses import fields

    from ooc.config import Settings, load_settings

    text = (DEPLOY / "ooc.example.toml").read_text()
    names = [f.name for f in fields(Settings) if f.name != "source"]
    for name in names:
        assert re.search(rf"^(# )?{name} = ", text, re.MULTILINE), f"{name} not in the example"
    uncommented = re.sub(rf"^# ({'|'.join(names)}) = ", r"\1 = ", text, flags=re.MULTILINE)
    path = tmp_path / "ooc.toml"
    path.write_text(uncommented)
    settings = load_settings(path)
    assert settings.data_roots
    assert settings.tls_ca_file
