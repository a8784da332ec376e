"""Configuration in one place: environment variables over an optional TOML file over defaults.

Looked up, first found wins:

1. environment variables ``OOC_DATA_DIR``, ``OOC_CATALOG_URL``, ``OOC_SCHEDULER``,
   ``OOC_N_WORKERS``, ``OOC_THREADS_PER_WORKER``, ``OOC_MEMORY_LIMIT``, ``OOC_CHUNKS``,
   ``OOC_S3_ENDPOINT_URL``, ``OOC_TLS_CA_FILE``, ``OOC_TLS_CERT``, ``OOC_TLS_KEY``,
   ``OOC_DATA_ROOTS`` (comma-separated);
2. the TOML file named by ``OOC_CONFIG``, else ``./ooc.toml`` if present, with the same names
   in lower case under an ``[ooc]`` table (``data_dir = "/scratch/ooc"``, ``chunks = [128, 128,
   128]``...);
3. the embedded defaults: data under ``./ooc-data``, a SQLite catalog in it, a Dask
   ``LocalCluster`` started for the run.

:func:`check_store_url` refuses store URLs outside the configured data roots (flows started from
deployments call it on every store they are given).
"""

from __future__ import annotations

import os
import posixpath
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ooc.errors import ConfigError

__all__ = ["ConfigError", "Settings", "check_store_url", "load_settings"]

_ENV_PREFIX = "OOC_"


@dataclass(frozen=True)
class Settings:
    """Where data lives, where the catalog is, and which Dask cluster runs the work.

    ``scheduler`` is ``None`` for a ``LocalCluster`` started for the run, or the address of a
    running scheduler (``tcp://host:8786``; one started by dask-jobqueue, Kubernetes or
    ``dask cuda worker``). ``memory_limit`` is per worker, in Dask's notation ("4GiB", "auto").
    """

    data_dir: str = "ooc-data"
    catalog_url: str | None = None
    scheduler: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    chunks: tuple[int, int, int] = (128, 128, 128)
    s3_endpoint_url: str | None = None
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    data_roots: tuple[str, ...] = ()
    source: str = field(default="defaults", compare=False)

    @property
    def resolved_catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL; default a SQLite file in ``data_dir``."""
        if self.catalog_url:
            return self.catalog_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'catalog.sqlite'}"

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec options for ``url``: the S3 endpoint for ``s3://`` URLs, nothing otherwise."""
        if url.startswith("s3://") and self.s3_endpoint_url:
            return {"endpoint_url": self.s3_endpoint_url}
        return {}

    @property
    def resolved_data_roots(self) -> tuple[str, ...]:
        """The folders and URL prefixes stores may live under: ``data_roots``, else ``data_dir``."""
        return self.data_roots or (self.data_dir,)


def _coerce(name: str, value: Any, origin: str) -> Any:
    expected = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if name in ("n_workers", "threads_per_worker"):
            number = int(value)
            if number < 1:
                raise ValueError
            return number
        if name == "chunks":
            parts = value.split(",") if isinstance(value, str) else list(value)
            chunks = tuple(int(p) for p in parts)
            if len(chunks) != 3 or min(chunks) < 1:
                raise ValueError
            return chunks
        if name == "data_roots":
            parts = value.split(",") if isinstance(value, str) else list(value)
            if not all(isinstance(p, str) for p in parts):
                raise ValueError
            return tuple(p.strip() for p in parts if p.strip())
        return None if value in ("", None) else str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: '{name}' = {value!r} is not valid; expected {expected}"
            + (" of three positive integers (z, y, x)" if name == "chunks" else "")
            + (" (folders or URL prefixes)" if name == "data_roots" else "")
            + (" (a positive integer)" if name in ("n_workers", "threads_per_worker") else "")
        ) from None


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the settings from the environment, a TOML file and the defaults.

    Parameters
    ----------
    config_file
        TOML file to read; default ``$OOC_CONFIG``, else ``./ooc.toml`` when it exists.
    **overrides
        Values that win over everything else (e.g. from command-line options); ``None`` ignored.
    """
    names = [f.name for f in fields(Settings) if f.name != "source"]
    values: dict[str, Any] = {}
    sources = ["defaults"]

    path = config_file or os.environ.get("OOC_CONFIG")
    if path is None and Path("ooc.toml").is_file():
        path = "ooc.toml"
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text()).get("ooc", {})
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {unknown} in [ooc]; expected some of {names}"
            )
        values.update({k: _coerce(k, v, str(path)) for k, v in table.items()})
        sources.append(str(path))

    for name in names:
        env = os.environ.get(_ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = _coerce(name, env, f"environment variable {_ENV_PREFIX}{name.upper()}")
            sources.append(_ENV_PREFIX + name.upper())

    for name, value in overrides.items():
        if name not in names:
            raise ConfigError(f"unknown setting {name!r}; expected one of {names}")
        if value is not None:
            values[name] = _coerce(name, value, "override")
    return replace(Settings(**values), source=" < ".join(sources))


def _location(url: str, origin: str) -> tuple[str, str]:
    """``(scheme, path)`` of a store URL or root: ``("", resolved path)`` for local paths and
    ``file://`` URLs (symlinks and ``..`` resolved), else the lower-case scheme and the path
    with ``..`` and ``.`` resolved as a POSIX path under the bucket/host."""
    if "::" in url:
        raise ConfigError(f"{origin} {url!r}: chained fsspec URLs ('::') are not allowed here")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() == "file":
        return "", str(Path(rest if sep else url).resolve())
    return scheme.lower(), posixpath.normpath("/" + rest.lstrip("/"))


def check_store_url(url: str, settings: Settings | None = None) -> None:
    """Refuse a store URL that lies outside the configured data roots.

    Local paths (and ``file://`` URLs) are compared after resolving ``..`` and symlinks, so a
    link inside a root that points outside it is refused; other URLs (``s3://bucket/key``) are
    compared by scheme and path after resolving ``..``. A root is a whole path component:
    ``/data/ooc`` allows ``/data/ooc/a.zarr``, not ``/data/ooc-old/a.zarr``.

    Parameters
    ----------
    url
        The store's path or URL.
    settings
        Where ``data_roots`` (default: ``data_dir``) come from; default :func:`load_settings`.

    Raises
    ------
    ConfigError
        When ``url`` is under none of the roots; the message names the URL and the roots.
    """
    settings = settings or load_settings()
    roots = settings.resolved_data_roots
    scheme, path = _location(url, "store")
    for root in roots:
        root_scheme, root_path = _location(root, "data root")
        if root_scheme == scheme and (
            path == root_path or path.startswith(root_path.rstrip("/") + "/")
        ):
            return
    raise ConfigError(
        f"store {url!r} is outside the allowed data roots {list(roots)}; "
        "add its folder or URL prefix to 'data_roots' (OOC_DATA_ROOTS) to allow it"
    )
