"""What every flow shares: settings, the Dask cluster, and the Prefect run id for provenance."""

from __future__ import annotations

from prefect.runtime import flow_run

from ooc.config import Settings, load_settings

__all__ = ["current_run_id", "settings_from"]


def current_run_id() -> str | None:
    """The Prefect flow run's id, or None outside a flow run."""
    run_id = flow_run.id
    return str(run_id) if run_id else None


def settings_from(overrides: dict | None) -> Settings:
    """Settings from the environment/TOML, with a flow's explicit overrides on top."""
    return load_settings(**(overrides or {}))
