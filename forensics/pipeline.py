"""`forensics run`: ingest, investigate, write the downloader list and the manifest (issue 3).

Outputs beside case.duckdb: downloaders.csv / .parquet / .json (one row per resource and resolved
client, ordered by outcome then first seen), the tables hits, downloaders, near_misses and
coverage in the database, and in manifest.json the counts per outcome, the exposure window, the
resources and the coverage gaps.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from forensics.casefile import Case
from forensics.db import connect
from forensics.errors import CaseFileError
from forensics.ingest import IngestReport, Progress, ingest, write_manifest
from forensics.investigate import OUTCOMES, investigate, run_stage

# Columns of the downloader list, in the order an investigator reads them.
DOWNLOADER_COLUMNS = (
    "resource_path", "client_ip", "outcome", "confidence", "first_seen", "last_seen", "requests",
    "bytes_received", "coverage_pct", "resource_size", "statuses", "user_agents", "referers",
    "sources", "claimed_forwarded_for", "flags",
)

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class RunReport:
    ingest: IngestReport
    headline: dict[str, int]
    outputs: dict[str, Path]
    gaps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def iso_utc(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, seconds unless the log has fractions."""
    if ts is None:
        return None
    text = ts.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def neutralise_formula(value: str) -> str:
    """Prefix a single quote to text a spreadsheet would run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return neutralise_formula(" | ".join("" if v is None else str(v) for v in value))
    if isinstance(value, datetime):
        return iso_utc(value) or ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise_formula(str(value))


def write_downloaders(frame: pl.DataFrame, out_dir: Path) -> dict[str, Path]:
    """The downloader list as CSV (lists joined with ' | ', formulas neutralised), Parquet (typed:
    UTC timestamps, lists) and JSON (an array of objects, times as ISO 8601 UTC)."""
    outputs = {
        "downloaders.csv": out_dir / "downloaders.csv",
        "downloaders.parquet": out_dir / "downloaders.parquet",
        "downloaders.json": out_dir / "downloaders.json",
    }
    with outputs["downloaders.csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(frame.columns)
        for row in frame.iter_rows():
            writer.writerow([_cell(v) for v in row])
    frame.write_parquet(outputs["downloaders.parquet"])
    records = [
        {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
        for row in frame.iter_rows(named=True)
    ]
    outputs["downloaders.json"].write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    return outputs


def run_case(case: Case, out_dir: Path, progress: Progress | None = None, workers: int = 2) -> RunReport:
    """Ingest the case's logs, run the investigation and write every output into out_dir."""
    if case.exposure is None or not case.resources:
        raise CaseFileError(
            "`run` needs [exposure] and at least one [[resources]] in the case file",
            hint="add them, or use `forensics ingest` to only load the logs",
            path=case.path,
        )
    out_dir = Path(out_dir)
    report = ingest(case, out_dir, progress=progress, workers=workers)
    con = connect(report.database)
    try:
        result = investigate(con, case)
        rows = run_stage(con, "downloaders", outcome=None)
        names = [d[0] for d in rows.description or []]
        frame = pl.DataFrame(rows.fetchall(), schema=names, orient="row").select(DOWNLOADER_COLUMNS)
        outputs = write_downloaders(frame, out_dir)
        exposure = case.exposure
        extra = {
            "investigation": {
                "headline": result.headline,
                "outcomes": list(OUTCOMES),
                "exposure": {
                    "start": iso_utc(exposure.start),
                    "end": iso_utc(exposure.end),
                    "margin_seconds": int(exposure.margin.total_seconds()),
                    "examined_from": iso_utc(exposure.examine_from),
                    "examined_to": iso_utc(exposure.examine_to),
                },
                "resources": [
                    {
                        "path": r.path,
                        "hosts": list(r.hosts),
                        "match_query": r.match_query,
                        "size": result.sizes[r.path].size,
                        "size_inferred": result.sizes[r.path].inferred,
                        "size_basis": result.sizes[r.path].basis,
                    }
                    for r in case.resources
                ],
                "trusted_proxies": list(case.trusted_proxies),
                "coverage_gaps": result.gaps,
                "warnings": result.warnings,
                "outputs": {name: path.name for name, path in outputs.items()},
            }
        }
        manifest = write_manifest(con, out_dir, case, extra=extra)
    finally:
        con.close()
    # After the manifest and the database are closed: the report reads both, read-only.
    from forensics.report import write_report
    from forensics.spreadsheet import write_downloaders_xlsx

    outputs["downloaders.xlsx"] = write_downloaders_xlsx(frame, out_dir / "downloaders.xlsx")
    all_outputs = {
        **outputs,
        "case.duckdb": report.database,
        "manifest.json": manifest,
        "report.html": write_report(out_dir),
    }
    return RunReport(
        ingest=report,
        headline=result.headline,
        outputs=all_outputs,
        gaps=result.gaps,
        warnings=[*report.warnings, *result.warnings],
    )
