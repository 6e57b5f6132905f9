"""One fix to Dagster 1.13 that the code location needs, applied when it loads.

Dagster orders the outputs of the blocking checks that feed a downstream asset by output name only.
Every `@asset_check` op names its output `result`, so the order falls back to the iteration order of
a Python set, which changes with the interpreter's hash seed. The job snapshot, and with it its id,
then differs from one process to the next: a run launched by `satudata run`, by the schedule or by
the UI is stored with one snapshot id, and the code server reports another, so the UI warns "this run
was launched with a different version of the job" on every re-execution. Sorting by the node too
makes the snapshot the same in every process (satudata_pipeline_tests/test_definitions.py checks
it across hash seeds, so an upgrade that changes this function fails there, not silently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster import AssetKey, AssetsDefinition
from dagster._core.definitions.assets.job import asset_job as _asset_job
from dagster._core.definitions.dependency import NodeHandle, NodeOutputHandle

_original = _asset_job._get_blocking_asset_check_output_handles_by_asset_key


def _blocking_check_outputs_in_stable_order(
    assets_defs_by_node_handle: Mapping[NodeHandle, AssetsDefinition],
) -> Mapping[AssetKey, Sequence[NodeOutputHandle]]:
    return {
        key: sorted(handles, key=lambda h: (str(h.node_handle), h.output_name))
        for key, handles in _original(assets_defs_by_node_handle).items()
    }


def apply() -> None:
    if getattr(
        _asset_job._get_blocking_asset_check_output_handles_by_asset_key, "__wrapped__", None
    ):
        return
    _blocking_check_outputs_in_stable_order.__wrapped__ = _original  # type: ignore[attr-defined]
    _asset_job._get_blocking_asset_check_output_handles_by_asset_key = (
        _blocking_check_outputs_in_stable_order
    )
