"""Features stage: one filter of the filter bank over a grey volume -> a results store (to look
at it; segmentation computes features block by block and never stores them)."""

from __future__ import annotations

from ooc.config import Settings
from ooc.features import feature
from ooc.provenance import make_record
from ooc.results import write_dataset
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input
from ooc.stages.record import open_results_store

__all__ = ["CODE_VERSION", "run_features"]

CODE_VERSION = 1


def run_features(
    volume: str,
    output: str,
    *,
    settings: Settings,
    filter: str,
    sigma: float,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Write filter ``filter`` at scale ``sigma`` (voxels) of the grey store ``volume`` as group
    ``features/<filter>_s<sigma>`` of the results store ``output``.

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).
    """
    parameters = {"filter": filter, "sigma": sigma}
    vol, parent = open_input(volume, kind="grey", role="volume", settings=settings)
    group = f"features/{filter}_s{sigma:g}"

    def body(ctx: Context) -> Product:
        ds = feature(vol, filter=filter, sigma=sigma)
        open_results_store(ctx.url, "features", ctx.digest, storage_options=ctx.storage_options)
        record = make_record(
            "features",
            parameters=parameters,
            inputs=[{"source": parent.url, "digest": parent.digest}],
            run_id=run_id,
        )
        write_dataset(
            ds,
            ctx.url,
            group=group,
            provenance=record,
            storage_options=ctx.storage_options,
            desc=f"features {volume.rstrip('/').rsplit('/', 1)[-1]}",
            progress=progress,
        )
        return Product(
            store_kind="results",
            summary={"group": group, "channels": sorted(ds.data_vars)},
            sample_id=vol.attrs["sample_id"],
            modality=vol.attrs["modality"],
        )

    return run_stage(
        "features",
        code_version=CODE_VERSION,
        output=output,
        parameters=parameters,
        parents=[parent],
        settings=settings,
        body=body,
        check_only=check_only,
    )
