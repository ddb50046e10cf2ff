"""`forensics run`: ingest, investigate, enrich, write the downloader list, report and manifest.

Outputs beside case.duckdb: downloaders.csv / .parquet / .json (one row per resource and resolved
client, ordered by outcome then first seen), the tables hits, downloaders, near_misses, coverage
and log_gaps in the database, and in manifest.json the counts per outcome, the exposure window, the
resources with their size and its signals, the coverage gaps and the limits of the evidence
(forensics.limits), which the terminal and the report's answer box also show.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
import pyarrow as pa

from forensics.casefile import Case
from forensics.db import ANALYSIS_MEMORY_LIMIT, WORKING_MEMORY_LIMIT, connect, machine_limits
from forensics.errors import CaseFileError, EnrichmentError, InputError
from forensics.ingest import IngestReport, Progress, check_output_folder, ingest, write_manifest
from forensics.investigate import OUTCOMES, Investigation, investigate, query_to_parquet, run_stage
from forensics.limits import Limit, limits_manifest, source_date_limits
from forensics.listfiles import iso_utc, replaced_whole, write_csv, write_json_records

if TYPE_CHECKING:
    from forensics.followup import FollowUp

# Columns of the downloader list, in the order an investigator reads them.
DOWNLOADER_COLUMNS = (
    "resource_path", "client_ip", "outcome", "confidence", "first_seen", "last_seen", "requests",
    "bytes_received", "file_bytes_covered", "coverage_pct", "resource_size", "outcome_reason",
    "statuses", "user_agents", "referers",
    "sources", "claimed_forwarded_for", "flags",
    "country", "country_name", "city", "asn", "as_org", "client_kind", "client_name", "cloud_provider",
    "crawler", "crawler_verified", "tor_exit", "vpn", "hosting",
)

# Downloader rows read at a time for enrichment.
AGENT_BATCH_ROWS = 50_000


@dataclass
class RunReport:
    ingest: IngestReport
    headline: dict[str, int]
    outputs: dict[str, Path]
    gaps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)


def write_downloaders(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, Path]:
    """The downloader list as Parquet (typed by the query: UTC timestamps, lists; written by
    DuckDB), then CSV (lists joined with ' | ', formulas neutralised) and JSON (an array of
    objects, times as ISO 8601 UTC) generated from that file a block of rows at a time."""
    outputs = {
        "downloaders.csv": out_dir / "downloaders.csv",
        "downloaders.parquet": out_dir / "downloaders.parquet",
        "downloaders.json": out_dir / "downloaders.json",
    }
    # Each file is written beside its final name and renamed into place, so an interrupted run
    # leaves the previous list or the new one, never half of one.
    with replaced_whole(outputs["downloaders.parquet"]) as parquet:
        query_to_parquet(con, "downloaders", parquet, DOWNLOADER_COLUMNS, outcome=None)
        listed = pl.scan_parquet(parquet)
        with replaced_whole(outputs["downloaders.csv"]) as csv, replaced_whole(outputs["downloaders.json"]) as js:
            write_csv(listed, csv)
            write_json_records(listed, js)
    return outputs


def _database_paths(case: Case, extra: Sequence[Path], out_dir: Path) -> tuple[list[Path], list[str]]:
    """The IP databases to use: the case's and --db's (files or folders of .mmdb files), the demo's
    when the case names a seed, else those geoipupdate left in its default places."""
    from forensics.enrich import find_default_databases
    from forensics.enrich.demo import build_demo_databases
    from forensics.enrich.mmdb import open_database

    notes: list[str] = []
    named = [case.base_dir / p for p in case.enrich.databases] + [Path(p) for p in extra]
    paths: list[Path] = []
    for p in named:
        if p.is_dir():
            found = sorted(p.glob("*.mmdb"))
            if not found:
                raise EnrichmentError("the folder holds no .mmdb file", hint="give IP database files", path=p)
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            raise EnrichmentError("IP database not found", hint="check the path in [enrich] or --db", path=p)
    if case.enrich.demo_seed:
        paths.extend(build_demo_databases(out_dir / "demo-ipdb", case.base_dir / case.enrich.demo_seed))
        notes.append("IP databases built from the demo seed: demo data, not real geography")
    for p in paths:
        open_database(p).close()  # a corrupt or foreign file stops the run here, naming it
    if not paths:
        paths = find_default_databases()
        if paths:
            notes.append("IP databases found where geoipupdate writes them: " + ", ".join(str(p) for p in paths))
        else:
            notes.append("no IP databases were given or found: no countries or networks")
    return paths, notes


def _lists_dir(case: Case) -> Path | None:
    lists_dir = case.base_dir / case.enrich.lists if case.enrich.lists else None
    if lists_dir is not None and not lists_dir.is_dir():
        raise EnrichmentError("the lists folder does not exist", hint="check [enrich] lists", path=lists_dir)
    return lists_dir


def enrich_downloaders(
    con: duckdb.DuckDBPyConnection,
    case: Case,
    paths: Sequence[Path],
    notes: Sequence[str] = (),
    rdns: bool = False,
) -> dict[str, Any]:
    """Enrich every downloader's address and copy the values onto `downloaders`."""
    from forensics.enrich import enrich

    lists_dir = _lists_dir(case)
    # Through Arrow, as frames, a batch of rows at a time, each batch's agents made categorical
    # (each distinct text held once) before the next is read: a Python tuple, datetime and list of
    # agents per downloader took gigabytes and half a minute for a million addresses.
    reader = con.sql(
        "SELECT client_ip AS address, first_seen, last_seen, user_agents FROM downloaders "
        "WHERE client_ip IS NOT NULL"
    ).to_arrow_reader(batch_size=AGENT_BATCH_ROWS)
    batches = []
    for batch in reader:
        # Polars takes Arrow columns without copying them, and a column kept keeps its whole batch
        # (Arrow frees a batch as one): the small columns are copied, so that each batch's agents'
        # text is freed once they are categorical (a million addresses' batches held 1.2 GB).
        small = pa.RecordBatch.from_arrays(
            [pa.concat_arrays([batch.column(name)]) for name in ("address", "first_seen", "last_seen")],
            names=["address", "first_seen", "last_seen"],
        )
        agents = pl.from_arrow(batch.column("user_agents"))
        frame = pl.from_arrow(small)
        assert isinstance(frame, pl.DataFrame) and isinstance(agents, pl.Series)
        batches.append(frame.with_columns(agents.cast(pl.List(pl.Categorical())).alias("user_agents")))
        del batch, agents
    listed = pl.concat(batches) if batches else pl.DataFrame(schema={
        "address": pl.String, "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
        "user_agents": pl.List(pl.Categorical()),
    })
    addresses = pl.concat([
        listed.select("address", pl.col(when).alias("seen")) for when in ("first_seen", "last_seen")
    ])
    agents = listed.select("address", "user_agents")
    report = enrich(con, addresses, agents, paths, lists_dir, rdns=rdns or case.enrich.rdns, base_dir=case.base_dir)
    run_stage(con, "stage_enrich_downloaders")
    manifest = report.manifest()
    manifest["notes"] = [*notes, *manifest.get("notes", [])]
    return manifest


def _run_manifest(
    case: Case, result: Investigation, limits: list[Limit], outputs: dict[str, Path], enrichment: dict[str, Any],
    follow_up: FollowUp,
) -> dict[str, Any]:
    """What `run` adds to manifest.json: the investigation's answer and its limits, the enrichment
    and the follow-up."""
    exposure = case.exposure
    assert exposure is not None
    return {
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
                    "size_basis_text": result.sizes[r.path].basis_text,
                    "size_signals": [
                        {"basis": b, "size": n, "responses": k} for b, n, k in result.sizes[r.path].signals
                    ],
                }
                for r in case.resources
            ],
            "trusted_proxies": list(case.trusted_proxies),
            "coverage_gaps": result.gaps,
            "log_gaps": [
                {**g.row(), "gap_start": iso_utc(g.gap_start), "gap_end": iso_utc(g.gap_end)}
                for g in result.log_gaps
            ],
            "limits": limits_manifest(limits),
            "warnings": result.warnings,
            "outputs": {name: path.name for name, path in outputs.items()},
        },
        "enrichment": enrichment,
        "follow_up": follow_up.manifest(),
    }


def run_case(
    case: Case,
    out_dir: Path,
    progress: Progress | None = None,
    workers: int = 2,
    databases: Sequence[Path] = (),
    rdns: bool = False,
    prune: bool = False,
    replace: bool = False,
    engine: str = "duckdb",
    master: str | None = None,
    warehouse: str | None = None,
) -> RunReport:
    """Ingest the case's logs, run the investigation, enrich the downloaders' addresses and write
    every output into out_dir.

    Everything after the load is rebuilt from the case database on every run, in one transaction,
    so a rerun after an interruption, new files or a changed setting gives the outputs a clean run
    on the same files gives.

    engine "spark" loads and investigates on Spark (`master`: the cluster, else the session's own;
    `warehouse`: where the Parquet tables go, else out_dir/warehouse) and collects the results into
    the local case database, from which everything else is written as here (forensics.engine.spark_run)."""
    if case.exposure is None or not case.resources:
        raise CaseFileError(
            "`run` needs [exposure] and at least one [[resources]] in the case file",
            hint="add them, or use `forensics ingest` to only load the logs",
            path=case.path,
        )
    if engine not in ("duckdb", "spark"):
        raise InputError(f"no engine named {engine!r}", hint="use --engine duckdb or --engine spark")
    if engine != "spark" and (master or warehouse):
        raise InputError("--master and --warehouse are for the Spark engine", hint="add --engine spark")
    out_dir = Path(out_dir)
    check_output_folder(case, out_dir)
    # IP databases and lists are checked before the (long) load, so a typo stops the run at once.
    db_paths, enrich_notes = _database_paths(case, databases, out_dir)
    _lists_dir(case)
    spark_result = None
    with machine_limits(out_dir, "loading the logs"):
        if engine == "spark":
            from forensics.engine.spark_run import ingest_and_investigate

            report, spark_result = ingest_and_investigate(case, out_dir, master=master, warehouse=warehouse)
        else:
            report = ingest(case, out_dir, progress=progress, workers=workers, prune=prune, replace=replace)
    con = connect(report.database)
    # A bounded buffer pool, as for the load: joins and sorts over millions of requests spill to
    # the case folder's temporary files instead of holding gigabytes (2M requests: 3.0 -> 2.2 GB).
    # It is larger where DuckDB does the work and Python holds little (forensics.db says how much).
    con.execute(f"SET memory_limit = '{WORKING_MEMORY_LIMIT}'")
    try:
        with machine_limits(out_dir, "investigating and writing the lists"):
            # The investigation's tables are replaced whole or not at all: a run stopped half-way
            # leaves the previous answer, which the next run replaces.
            con.execute("BEGIN TRANSACTION")
            result = spark_result or investigate(con, case)
            con.execute(f"SET memory_limit = '{ANALYSIS_MEMORY_LIMIT}'")
            enrichment = enrich_downloaders(con, case, db_paths, enrich_notes, rdns)
            cur = con.execute("SELECT source, name, built, date_basis FROM enrichment_sources ORDER BY source, name")
            used = [dict(zip(("source", "name", "built", "date_basis"), row, strict=True)) for row in cur.fetchall()]
            limits = [*result.limits, *source_date_limits(used, case.exposure.start, case.exposure.end)]
            from forensics.followup import run_follow_up, settings_from_case, write_operator_export

            follow_up = run_follow_up(con, settings_from_case(case), [h for r in case.resources for h in r.hosts])
            con.execute("COMMIT")
            con.execute(f"SET memory_limit = '{WORKING_MEMORY_LIMIT}'")
            # Typed by the query: a column empty for the first downloaders (crawler names) or for all
            # of them (no IP databases) keeps its type in the Parquet file.
            outputs = write_downloaders(con, out_dir)
            follow_up_outputs = write_operator_export(con, out_dir)
            extra = _run_manifest(case, result, limits, outputs, enrichment, follow_up)
            manifest = write_manifest(con, out_dir, case, extra=extra)
    finally:
        con.close()
    # After the manifest and the database are closed: the report reads both, read-only. The
    # workbook (polars, outside the GIL) is written on a thread while the report is rendered
    # (Python): neither reads the other.
    from forensics.report import write_report
    from forensics.spreadsheet import write_downloaders_xlsx

    with machine_limits(out_dir, "writing the report and downloaders.xlsx"):
        # The thread is waited for (the executor closes) before the workbook replaces the last one.
        with replaced_whole(out_dir / "downloaders.xlsx") as partial, ThreadPoolExecutor(max_workers=1) as beside:
            listed = pl.scan_parquet(outputs["downloaders.parquet"])
            workbook = beside.submit(write_downloaders_xlsx, listed, partial, timezone=case.timezone)
            report_html = write_report(out_dir)
            workbook.result()
        outputs["downloaders.xlsx"] = out_dir / "downloaders.xlsx"
    all_outputs = {
        **outputs,
        **follow_up_outputs,
        "case.duckdb": report.database,
        "manifest.json": manifest,
        "report.html": report_html,
    }
    return RunReport(
        ingest=report,
        headline=result.headline,
        outputs=all_outputs,
        gaps=result.gaps,
        # the investigation's own warnings are limits (said once, before the headline)
        warnings=[*report.warnings, *enrich_notes, *follow_up.notes],
        limits=limits,
    )
