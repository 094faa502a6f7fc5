"""Data-quality gate for the curated index (Great Expectations).

The suite encodes what downstream stages rely on: the index schema, plausible metadata
ranges (fps, duration, resolution), unique ids, non-empty regions, and that no
pretraining clip comes from a benchmark val/test video or a quarantined file. The gate
runs inside the curate stage; a failed expectation fails the stage with a readable summary.

Great Expectations is imported lazily (it costs ~7 s and ~260 MB) and validates pandas
DataFrames read from the Parquet files (its SQL path does not work with DuckDB 2.0).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MAX_FPS = 240.0


class QualityGateError(RuntimeError):
    """The curated index failed the data-quality gate; the message lists every failed expectation."""


@dataclass(frozen=True)
class Check:
    table: str
    expectation: str
    column: str | None
    success: bool
    detail: str


def _suites(gx, videos: pd.DataFrame, clips: pd.DataFrame) -> dict[str, list]:
    E = gx.expectations
    video_cols = list(videos.columns)
    clip_cols = list(clips.columns)
    from .index import CLIP_SCHEMA, VIDEO_SCHEMA

    kept = videos[videos["status"] == "kept"]
    return {
        "videos": [
            E.ExpectTableColumnsToMatchSet(column_set=VIDEO_SCHEMA.names, exact_match=True),
            E.ExpectColumnValuesToBeUnique(column="video_id"),
            E.ExpectColumnValuesToNotBeNull(column="path"),
            E.ExpectColumnValuesToBeInSet(column="status", value_set=["kept", "duplicate", "excluded", "quarantined"]),
            E.ExpectColumnValuesToNotBeNull(column="region"),
            E.ExpectColumnValuesToMatchRegex(column="region", regex=r"\S"),
        ]
        if video_cols
        else [],
        "kept_videos": [
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeBetween(column="fps", min_value=1.0, max_value=MAX_FPS),
            E.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0.0, strict_min=True),
            E.ExpectColumnValuesToBeBetween(column="width", min_value=16),
            E.ExpectColumnValuesToBeBetween(column="height", min_value=16),
            E.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
            E.ExpectColumnValuesToBeUnique(column="sha256"),
            # a benchmark video may feed pretraining only if it is in its benchmark's training split
            E.ExpectColumnValuesToBeInSet(column="split", value_set=["", "train"]),
        ]
        if len(kept.columns)
        else [],
        "clips": [
            E.ExpectTableColumnsToMatchSet(column_set=CLIP_SCHEMA.names, exact_match=True),
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeUnique(column="clip_id"),
            E.ExpectColumnValuesToBeBetween(column="start_frame", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="num_frames", min_value=2),
            E.ExpectColumnValuesToBeBetween(column="weight", min_value=0.0, strict_min=True),
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="end_s", column_B="start_s"),
            E.ExpectColumnValuesToBeBetween(column="motion", min_value=0.0, max_value=255.0),
            # every clip belongs to a kept video (never a quarantined/excluded/duplicate one)
            E.ExpectColumnValuesToBeInSet(column="video_id", value_set=sorted(kept["video_id"].tolist())),
        ]
        if clip_cols
        else [],
    }


def validate_index(out: Path) -> list[Check]:
    """Run the suites on ``out/{videos,clips}.parquet``; return every check's outcome."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx  # deferred: heavy import, only needed here
    import pyarrow.parquet as pq
    from great_expectations.data_context.types.base import ProgressBarsConfig

    videos = pq.read_table(out / "videos.parquet").to_pandas()
    # the signature column holds lists, which GX cannot hash: validate it as text
    videos["signature"] = videos["signature"].map(lambda s: ",".join(str(x) for x in s))
    clips = pq.read_table(out / "clips.parquet").to_pandas()
    frames = {"videos": videos, "kept_videos": videos[videos["status"] == "kept"], "clips": clips}
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no bars in pipeline logs
    source = context.data_sources.add_pandas("curation")
    checks: list[Check] = []
    for name, expectations in _suites(gx, videos, clips).items():
        asset = source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe(f"{name}-all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{name}-suite", expectations=expectations))
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}-gate", data=batch, suite=suite))
        result = vd.run(batch_parameters={"dataframe": frames[name]}, result_format="SUMMARY")
        for r in result.results:
            cfg = r.expectation_config
            res = r.result or {}
            detail = ""
            if not r.success:
                unexpected = res.get("partial_unexpected_list") or res.get("details") or res.get("observed_value")
                detail = f"{res.get('unexpected_count', '')} unexpected; e.g. {str(unexpected)[:200]}"
            checks.append(Check(name, cfg.type, cfg.kwargs.get("column"), bool(r.success), detail))
    return checks


def run_gate(out: Path) -> list[Check]:
    """Validate the index; raise QualityGateError listing every failed expectation."""
    checks = validate_index(out)
    failed = [c for c in checks if not c.success]
    log.info("quality gate: %d/%d expectations passed", len(checks) - len(failed), len(checks))
    if failed:
        lines = "\n".join(f"  [{c.table}] {c.expectation}({c.column or ''}): {c.detail}" for c in failed)
        raise QualityGateError(f"curated index in {out} failed {len(failed)} of {len(checks)} expectations:\n{lines}")
    return checks
