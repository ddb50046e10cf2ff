"""report.html: the incident summary for leadership, counsel and a regulator (issue 5).

One self-contained file (inline CSS, inline SVG, a few lines of inline JS to sort tables; no
external scripts, fonts or images) that reads on a laptop, prints, and does not rely on colour.
Everything in it comes from the case database and manifest.json; nothing about the incident is
written here. The template renders with autoescaping on, so every string that came from a log
(user agents, referers, paths, rejected lines) is text, never markup.

The breakdowns reuse the named queries in forensics/queries/ (countries, networks, referrers, crawlers,
rejects_by_reason), so the report and `forensics query` give the same numbers.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import jinja2

from forensics.coverage import BIN_MINUTES, how_unusual, timeline_bin
from forensics.db import ANALYSIS_MEMORY_LIMIT, connect, machine_limits, named_queries
from forensics.errors import InputError
from forensics.followup import report_context as follow_up_context
from forensics.listfiles import replaced_whole
from forensics.schema import ALL_TABLES, DOWNLOADERS, HIT_REQUESTS

REPORT_NAME = "report.html"
OUTCOME_ORDER = ("complete", "partial", "undetermined", "failed", "headers_only")
OUTCOME_LABELS = {
    "complete": "obtained a complete copy",
    "partial": "obtained part of the file",
    "undetermined": "received bytes of a file of unknown size",
    "failed": "tried and failed",
    "headers_only": "asked for headers only",
}
# Libraries whose versions shape the results or the outputs, for the chain of custody.
DEPENDENCIES = ("duckdb", "polars", "pyarrow", "jinja2", "maxminddb", "xlsxwriter", "typer", "isal", "zstandard")
# Enrichment values shown in the downloader table, from `downloaders` when the enrichment step
# joined them there, else from `ip_enrichment`.
ENRICHMENT_COLUMNS = (
    "country", "country_name", "city", "asn", "as_org", "client_kind", "client_name", "cloud_provider",
    "crawler", "crawler_verified", "tor_exit", "vpn", "hosting",
)
REJECT_EXAMPLES = 3
# The answer box names each limit of the evidence (forensics.limits) in the reader's words.
LIMIT_LABELS = {
    "no_log": "No log covers the window",
    "coverage_no_log": "No log of this role covers the window",
    "coverage_starts_late": "Logs start late",
    "coverage_ends_early": "Logs end early",
    "coverage_silent_stretch": "Silent stretch in the logs",
    "coverage_missing_delivery_file": "Missing delivery file",
    "coverage_hour": "Empty hour in the logs",
    "size_unknown": "Size unknown",
    "size_estimated": "Size estimated",
    "size_inferred": "Size inferred",
    "no_match": "No request matched",
    "rejected_lines": "Rejected lines",
    "trusted_network_wide": "Very wide trusted network",
    "source_date": "IP data from another time",
    "source_undated": "Undated list",
    "resource_path_decoded": "Resource path decoded",
    "host_port_removed": "Host port removed",
}


UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu",
                       "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "Etc/Greenwich", "Greenwich"})


@dataclass(frozen=True)
class Zone:
    """The case's display zone, for times shown both locally and in UTC."""

    name: str

    @property
    def is_utc(self) -> bool:
        """A UTC case shows each time once: a second, identical UTC rendering would only repeat it."""
        return self.name in UTC_NAMES

    def local(self, ts: datetime | None, seconds: bool = True) -> str:
        if ts is None:
            return ""
        t = ts.astimezone(ZoneInfo(self.name))
        return t.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")

    def utc(self, ts: datetime | None, seconds: bool = True) -> str:
        if ts is None:
            return ""
        return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _duration(delta: timedelta) -> str:
    """'5 h 03 min', '30 min', '31 days', '2 days 4 h'."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "") + (
            f" {minutes:02d} min" if minutes else "")
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({n:,} bytes)"
        value /= 1024
    return f"{n:,} bytes"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or {})
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _named(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    q = named_queries()[name]
    return _rows(con, q.sql, {p: params.get(p) for p in q.params})


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall():
        out.setdefault(table, set()).add(column)
    return out


def _ensure_tables(con: duckdb.DuckDBPyConnection, have: dict[str, set[str]]) -> None:
    """Older cases lack later tables: add them empty (TEMP) so every query has its columns; the
    copied rows of the hits (hit_requests) as a view of `requests`, the rows the stage copies."""
    for table in ALL_TABLES:
        if table.name == HIT_REQUESTS.name and table.name not in have:
            con.execute(f"CREATE TEMP VIEW hit_requests AS {named_queries()['stage_hit_requests'].sql}")
        elif table.name not in have:
            con.execute(table.ddl().replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))


# --- sections ------------------------------------------------------------------------------------


# Tick steps for the timeline, shortest first: the shortest that keeps the chart within MAX_TICKS
# labelled ticks is used (its bins: forensics.coverage.timeline_bin).
TICK_LADDER = (
    timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15), timedelta(minutes=30),
    timedelta(hours=1), timedelta(hours=2), timedelta(hours=3), timedelta(hours=6), timedelta(hours=12),
    timedelta(days=1), timedelta(days=2), timedelta(days=7), timedelta(days=14),
)
MONTH_LADDER = (1, 2, 3, 6, 12, 24, 60, 120)
MAX_TICKS = 12


def _ticks(examine_from: datetime, examine_to: datetime, zone: Zone) -> tuple[list[dict[str, Any]], str]:
    """Tick times on wall-clock boundaries of the case's zone (whole hours, midnights, Mondays,
    first days of months) at a step that gives at most MAX_TICKS, with labels that say what
    changes: times of day, with the date where the day changes; dates; or months."""
    tz = ZoneInfo(zone.name)
    span = examine_to - examine_from
    step = next((s for s in TICK_LADDER if span / s <= MAX_TICKS), None)
    local_from = examine_from.astimezone(tz)
    ticks: list[datetime] = []
    if step is None:  # months: the first of every k-th month of the calendar (Jan, Apr, Jul, Oct)
        months = next((k for k in MONTH_LADDER if span / timedelta(days=30.44 * k) <= MAX_TICKS),
                      12 * -(-int(span / timedelta(days=365.25)) // MAX_TICKS))
        y, m = local_from.year, 1
        if months >= 12:  # whole years, on multiples of the step
            y -= y % (months // 12)
        while True:
            t = datetime(y, m, 1, tzinfo=tz)
            if t > examine_to:
                break
            if t >= examine_from:
                ticks.append(t)
            y, m = (y + (m - 1 + months) // 12, (m - 1 + months) % 12 + 1)
        unit = "month" if months < 12 else "year"
    elif step >= timedelta(days=1):  # midnights (Mondays for weeks), stepped in local dates
        day = local_from.date()
        if step >= timedelta(days=7):
            day -= timedelta(days=day.weekday())
        while True:
            t = datetime(day.year, day.month, day.day, tzinfo=tz)
            if t > examine_to:
                break
            if t >= examine_from:
                ticks.append(t)
            day += timedelta(days=step.days)
        unit = "week" if step >= timedelta(days=7) else "day"
    else:  # times of day: multiples of the step after local midnight, stepped in real time
        midnight = datetime(local_from.year, local_from.month, local_from.day, tzinfo=tz)
        t = midnight + step * -(-(local_from - midnight) // step)
        while t <= examine_to:
            ticks.append(t)
            t += step
        unit = "time"
    out = []
    previous_day = None
    for t in ticks:
        local = t.astimezone(tz)
        if unit == "time":
            label = local.strftime("%H:%M")
            day_name = local.strftime("%b %-d")
            date = day_name if day_name != previous_day else ""
            previous_day = day_name
        elif unit == "month":
            label, date = local.strftime("%b %Y"), ""
        elif unit == "year":
            label, date = local.strftime("%Y"), ""
        else:
            label, date = local.strftime("%b %-d"), ""
        # The UTC line only where it says something: times in a zone other than UTC.
        utc = t.astimezone(UTC).strftime("%H:%MZ") if unit == "time" and not zone.is_utc else ""
        out.append({"t": t, "local": label, "date": date, "utc": utc})
    return out, unit


def _timeline(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, examine_from: datetime,
              examine_to: datetime, zone: Zone, has_timeline: bool = True) -> dict[str, Any]:
    """Requests and counted requests for the resource per bin over the window and margin, as
    coordinates for an inline SVG bar chart (drawn by the template). Bins and ticks adapt to the
    period, so the chart has at most TIMELINE_MAX_BARS bars and MAX_TICKS ticks whatever its length."""
    step = timeline_bin(examine_to - examine_from)
    window = {"examine_from": examine_from, "examine_to": examine_to, "bin_us": step // timedelta(microseconds=1)}
    # All requests per bin: counted by the investigation on the engine that holds `requests`
    # (request_timeline); a case written before that table was read here, from `requests`.
    if has_timeline:
        totals = con.execute("SELECT bin_start, requests FROM request_timeline").fetchall()
    else:
        totals = con.execute(named_queries()["stage_request_timeline"].sql, window).fetchall()
    # The file's requests per bin, from the hits and their copied rows (no scan of `requests`).
    resource = dict(
        (r[0], r[1:]) for r in con.execute(
            """
            SELECT time_bucket(to_microseconds($bin_us), h.ts, $examine_from::TIMESTAMPTZ) AS bin,
                   count(*) FILTER (WHERE h.counts) AS resource_requests,
                   count(*) FILTER (WHERE h.counts AND r.status IN (200, 206)) AS deliveries
            FROM hits h
            JOIN hit_requests r ON r.source_id = h.source_id AND r.line_no = h.line_no
            WHERE r.ts >= $examine_from AND r.ts < $examine_to
            GROUP BY bin
            """,
            window,
        ).fetchall()
    )
    rows = [(b, n, *resource.get(b, (0, 0))) for b, n in totals]
    by_bin = {r[0].astimezone(UTC): r[1:] for r in rows}
    bins: list[tuple[datetime, int, int, int]] = []
    t = examine_from.astimezone(UTC)
    while t < examine_to:
        req, res, dl = by_bin.get(t, (0, 0, 0))
        bins.append((t, int(req), int(res), int(dl)))
        t += step
    # Two panels over one time axis: all requests, then requests for the file on its own scale
    # (a handful against hundreds would not show on a shared one).
    ticks, unit = _ticks(examine_from, examine_to, zone)
    width, left, right = 960, 64, 16
    top_a, h_a, gap, h_b = 22, 120, 26, 70
    top_b = top_a + h_a + gap
    axis_y = top_b + h_b
    # Tick labels: the local time or date, the local date where the day changes, the UTC time.
    label_y = axis_y + 16
    date_y = label_y + 13 if any(k["date"] for k in ticks) else label_y
    utc_y = date_y + 13 if any(k["utc"] for k in ticks) else date_y
    height = utc_y + 24
    plot_w = width - left - right
    n = max(len(bins), 1)
    bar_w = plot_w / n
    peak = max((b[1] for b in bins), default=0)
    res_peak = max((b[2] for b in bins), default=0)
    max_a, max_b = max(peak, 1), max(res_peak, 1)
    span = (examine_to - examine_from).total_seconds() or 1

    def x_of(ts: datetime) -> float:
        return left + plot_w * (ts - examine_from).total_seconds() / span

    bars = []
    for ts, req, res, dl in bins:
        ha = h_a * req / max_a
        hb = h_b * res / max_b
        hd = h_b * dl / max_b
        when = f"{zone.local(ts, seconds=False)}" + ("" if zone.is_utc else f" ({zone.utc(ts, seconds=False)})")
        label = f"{when}: {req} requests, {res} for the file, {dl} of them delivering content (200/206)"
        bars.append({
            "x": round(x_of(ts) + 0.5, 1), "w": round(max(bar_w - 1, 0.5), 1),
            "y": round(top_a + h_a - ha, 1), "h": round(ha, 1),
            "ry": round(top_b + h_b - hb, 1), "rh": round(hb, 1),
            "dy": round(top_b + h_b - hd, 1), "dh": round(hd, 1),
            "title": label,
        })
    for k in ticks:
        k["x"] = round(x_of(k.pop("t")), 1)
    exposure_x, exposure_end_x = x_of(start), x_of(end)
    return {
        "width": width, "height": height, "left": left, "plot_w": plot_w,
        "top_a": top_a, "h_a": h_a, "top_b": top_b, "h_b": h_b, "axis_y": axis_y,
        "max_a": max_a, "max_b": max_b, "bars": bars, "ticks": ticks, "tick_unit": unit,
        "label_y": label_y, "utc_y": utc_y, "date_y": date_y,
        "axis_note": (
            ("times in UTC" if zone.is_utc else f"times: {zone.name} above, UTC below")
            if unit == "time" else f"{unit}s in {zone.name}"
        ),
        "exposure_x": round(exposure_x, 1), "exposure_w": round(exposure_end_x - exposure_x, 1),
        # The exposure label starts at the window, or ends at it when the window is far right.
        "exposure_label_x": round(exposure_x + 4 if exposure_x < left + plot_w * 0.55 else exposure_end_x - 4, 1),
        "exposure_label_anchor": "start" if exposure_x < left + plot_w * 0.55 else "end",
        "exposure_label": _period(start, end, zone),
        "bin": _duration_words(step), "peak": peak, "resource_peak": res_peak,
        "total_requests": sum(b[1] for b in bins), "total_resource": sum(b[2] for b in bins),
        "total_delivering": sum(b[3] for b in bins),
    }


def _period(start: datetime, end: datetime, zone: Zone) -> str:
    """'Nov 28 14:02 to 19:05 EST' on one day, 'Nov 28 14:02 to Nov 30 09:00 EST' across days."""
    tz = ZoneInfo(zone.name)
    a, b = start.astimezone(tz), end.astimezone(tz)
    first = a.strftime("%b %-d %H:%M")
    second = b.strftime("%H:%M %Z") if a.date() == b.date() else b.strftime("%b %-d %H:%M %Z")
    if a.year != b.year:
        first, second = a.strftime("%Y %b %-d %H:%M"), b.strftime("%Y %b %-d %H:%M %Z")
    return f"{first} to {second}"


def _duration_words(step: timedelta) -> str:
    """'5 minutes', '1 hour', '2 days', '1 week' (the width of a bar)."""
    minutes = int(step.total_seconds() // 60)
    for size, name in ((7 * 24 * 60, "week"), (24 * 60, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            n = minutes // size
            return name if n == 1 else f"{n} {name}s"
    return f"{minutes} minutes"


# The report's downloader table shows the first clients of each outcome and resource: a table of
# a million rows is hundreds of megabytes of HTML that no browser opens. The full list is in the
# downloader files (CSV, XLSX, JSON, Parquet), and the report says when its table is cut.
REPORT_ROWS_PER_OUTCOME = 1000


def _downloader_rows(con: duckdb.DuckDBPyConnection, have: dict[str, set[str]], zone: Zone) -> list[dict[str, Any]]:
    dcols = have.get("downloaders", set())
    ecols = have.get("ip_enrichment", set())
    select = []
    for c in ENRICHMENT_COLUMNS:
        if c in dcols:
            select.append(f"d.{c} AS e_{c}")
        elif c in ecols:
            select.append(f"e.{c} AS e_{c}")
        else:
            select.append(f"NULL AS e_{c}")
    select.append("e.flags AS e_flags" if "flags" in ecols else "NULL::VARCHAR[] AS e_flags")
    base = ", ".join(f"d.{c.name}" for c in DOWNLOADERS.columns)
    join = "LEFT JOIN ip_enrichment e ON e.address = d.client_ip" if ecols else ""
    # The rows shown are chosen by their keys alone, then read whole: numbering every row with its
    # lists of user agents held a million rows' values (10 s and a spill at a million clients).
    sql = f"""
        SELECT {base}, {", ".join(select)}
        FROM downloaders d {join}
        WHERE d.rowid IN (
            SELECT rowid FROM downloaders
            QUALIFY row_number() OVER (
                PARTITION BY resource_path, outcome ORDER BY first_seen, client_ip
            ) <= $per_outcome
        )
        ORDER BY d.resource_path,
            CASE d.outcome WHEN 'complete' THEN 1 WHEN 'partial' THEN 2 WHEN 'undetermined' THEN 3
                WHEN 'failed' THEN 4 ELSE 5 END,
            d.first_seen, d.client_ip
    """
    out = []
    for i, r in enumerate(_rows(con, sql, {"per_outcome": REPORT_ROWS_PER_OUTCOME}), start=1):
        location = ", ".join(v for v in (r["e_city"], r["e_country_name"] or r["e_country"]) if v)
        network = " ".join(v for v in (f"AS{r['e_asn']}" if r["e_asn"] is not None else "", r["e_as_org"] or "") if v)
        kind = r["e_client_kind"] or ""
        if r["e_client_name"] and kind:
            kind = f"{kind} ({r['e_client_name']})"
        flags = list(dict.fromkeys([*(r["flags"] or []), *(r["e_flags"] or [])]))
        out.append({
            **r,
            "n": i,
            "first_local": zone.local(r["first_seen"]),
            "first_utc": zone.utc(r["first_seen"]),
            "first_sort": r["first_seen"].timestamp() if r["first_seen"] else 0,
            "location": location,
            "network": network,
            "kind": kind,
            "all_flags": flags,
        })
    return out


def _rejects(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    summary = _named(con, "rejects_by_reason")
    examples = _rows(
        con,
        """
        SELECT source_id, reason, line_no, line FROM (
            SELECT *, row_number() OVER (PARTITION BY source_id, reason ORDER BY line_no) AS k FROM rejects
        ) JOIN sources USING (source_id)
        WHERE k <= $n ORDER BY source_id, reason, line_no
        """,
        {"n": REJECT_EXAMPLES},
    )
    paths = dict(con.execute("SELECT source_id, path FROM sources").fetchall())
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in examples:
        by_key.setdefault((paths[e["source_id"]], e["reason"]), []).append(e)
    for s in summary:
        s["examples"] = by_key.get((s["source_file"], s["reason"]), [])
    return summary


def _out_from_case_folder(case_dir: Path, case: dict[str, Any]) -> str:
    """The output folder as the reproduce command names it: relative to the case file's folder,
    which the manifest records once, so the report carries no other path of the machine."""
    folder = case.get("folder")
    if not folder:
        return Path(case_dir).name
    return Path(os.path.relpath(Path(case_dir).resolve(), folder)).as_posix()


def _versions() -> list[tuple[str, str]]:
    out = [("python", platform.python_version())]
    for name in DEPENDENCIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def gather(case_dir: Path) -> dict[str, Any]:
    """Everything the report shows, read from DIR/case.duckdb and DIR/manifest.json."""
    case_dir = Path(case_dir)
    manifest_path = case_dir / "manifest.json"
    db_path = case_dir / "case.duckdb"
    if not manifest_path.exists() or not db_path.exists():
        raise InputError(
            "no case here (manifest.json and case.duckdb are missing)",
            hint="give the folder written by `forensics run`",
            path=case_dir,
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    inv = manifest.get("investigation")
    if not inv:
        raise InputError(
            "this case was loaded but not investigated, so there is nothing to report",
            hint="run `forensics run CASE.toml --out DIR` (ingest alone does not find downloaders)",
            path=manifest_path,
        )
    case = manifest.get("case", {})
    zone = Zone(case.get("timezone") or "UTC")
    exp = inv["exposure"]
    start, end = _parse_iso(exp["start"]), _parse_iso(exp["end"])
    examine_from, examine_to = _parse_iso(exp["examined_from"]), _parse_iso(exp["examined_to"])
    assert start and end and examine_from and examine_to

    # A bounded buffer pool, as for the run: the report's summaries over millions of requests
    # spill instead of taking most of the machine (20,000,000 requests: 4.4 GB without it).
    con = connect(db_path, read_only=True, config={"memory_limit": ANALYSIS_MEMORY_LIMIT})
    try:
        have = _tables(con)
        _ensure_tables(con, have)
        headline = inv.get("headline", {})
        counts_db = dict(con.execute("SELECT outcome, count(*) FROM downloaders GROUP BY outcome").fetchall())
        downloaders = _downloader_rows(con, have, zone)
        enrichment_sources = _rows(con, "SELECT * FROM enrichment_sources ORDER BY source, name")
        enriched = con.execute("SELECT count(*) FROM ip_enrichment").fetchone()[0]  # type: ignore[index]
        client_kinds = _rows(
            con,
            """
            SELECT coalesce(e.client_kind, 'unknown') AS kind, count(*) AS clients,
                   count(*) FILTER (WHERE d.outcome = 'complete') AS complete
            FROM downloaders d LEFT JOIN ip_enrichment e ON e.address = d.client_ip
            GROUP BY ALL ORDER BY clients DESC, kind
            """,
        )
        sources = _rows(con, "SELECT * FROM sources ORDER BY source_id")
        skipped = _rows(
            con,
            "SELECT s.path, k.kind, k.lines FROM skipped_lines k JOIN sources s USING (source_id) "
            "ORDER BY s.source_id, k.kind",
        )
        gaps = [{**g, "hour_end": g["hour_start"] + timedelta(hours=1)} for g in _named(con, "coverage_gaps")]
        log_gaps = [
            {**g,
             "expected_text": "" if g["expected_lines"] is None else f"{g['expected_lines']:,.0f}",
             "chance_text": how_unusual(g["expected_lines"]).split(", ", 1)[-1] if g["expected_lines"] is not None
             else ("no rate: the log has no lines near it" if g["kind"] == "no_log" else "")}
            for g in _rows(con, "SELECT * FROM log_gaps ORDER BY role, gap_start, kind")
        ]
        limits = inv.get("limits")
        if limits is None:  # a case written before limits were recorded: its warnings and gaps
            limits = [{"kind": "warning", "severity": "warning", "message": w, "fix": None}
                      for w in [*inv.get("warnings", []), *inv.get("coverage_gaps", [])]]
        coverage_hours = _rows(
            con,
            "SELECT role, count(*) AS hours, sum(lines) AS lines, count(*) FILTER (WHERE is_gap) AS gaps "
            "FROM coverage GROUP BY role ORDER BY role",
        )
        timeline = _timeline(con, start, end, examine_from, examine_to, zone, has_timeline="request_timeline" in have)
        context: dict[str, Any] = {
            "case": case,
            "zone": zone.name,
            "zone_is_utc": zone.is_utc,
            "manifest": manifest,
            "written_at": zone.utc(_parse_iso(manifest.get("written_at"))),
            "tool_version": manifest.get("tool_version"),
            "headline": [
                {"outcome": o, "label": OUTCOME_LABELS[o], "count": int(headline.get(o, counts_db.get(o, 0)))}
                for o in OUTCOME_ORDER
                # undetermined only exists when a size is unknown; a zero card would only puzzle
                if o != "undetermined" or headline.get(o) or counts_db.get(o)
            ],
            "counts_db": counts_db,
            "total_clients": sum(counts_db.values()),
            "downloaders_shown": len(downloaders),
            "rows_per_outcome": REPORT_ROWS_PER_OUTCOME,
            "resources": [{**r, "size_text": _size(r.get("size"))} for r in inv.get("resources", [])],
            "exposure": {
                "start_local": zone.local(start), "end_local": zone.local(end),
                "start_utc": zone.utc(start), "end_utc": zone.utc(end),
                "duration": _duration(end - start),
                "margin": _duration(timedelta(seconds=exp.get("margin_seconds", 0))),
                "from_local": zone.local(examine_from), "to_local": zone.local(examine_to),
                "from_utc": zone.utc(examine_from), "to_utc": zone.utc(examine_to),
            },
            "timeline": timeline,
            "downloaders": downloaders,
            "has_enrichment": enriched > 0,
            "databases": [s for s in enrichment_sources if s["source"] == "database"],
            "lists": [s for s in enrichment_sources if s["source"] == "list"],
            "demo_enrichment": any(s.get("demo") for s in enrichment_sources),
            "countries": _named(con, "countries"),
            "networks": _named(con, "networks"),
            "client_kinds": client_kinds,
            "referrers": _named(con, "referrers"),
            "crawlers": _named(con, "crawlers"),
            "near_misses": _named(con, "near_misses"),
            "sources": sources,
            "skipped": skipped,
            "rejects": _rejects(con),
            "gaps": gaps,
            "log_gaps": log_gaps,
            "bin_minutes": BIN_MINUTES,
            "limits": [lim for lim in limits if lim["severity"] == "warning"],
            "notes": [lim for lim in limits if lim["severity"] == "note"],
            "blocking": [lim for lim in limits if lim["severity"] == "blocking"],
            "limit_labels": LIMIT_LABELS,
            "coverage_hours": coverage_hours,
            "warnings": inv.get("warnings", []),
            "trusted_proxies": inv.get("trusted_proxies", []),
            "versions": _versions(),
            "command": "forensics run {} --out {}".format(
                shlex.quote(case.get("file") or "CASE.toml"), shlex.quote(_out_from_case_folder(case_dir, case))
            ),
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "local": zone.local,
            "utc": zone.utc,
        }
        context["follow_up"] = follow_up_context(con)
    finally:
        con.close()
    return context


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("forensics", "templates"),
        autoescape=True,  # every string from a log is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v: "" if v is None else f"{v:,}"
    env.filters["pct"] = lambda v: "" if v is None else f"{v:.0f} %" if v >= 99.95 or v == 0 else f"{v:.1f} %"
    env.filters["join_list"] = lambda v: " | ".join("" if x is None else str(x) for x in (v or []))
    return env


def render_report(case_dir: Path) -> str:
    return _environment().get_template("report.html.j2").render(**gather(case_dir))


def write_report(case_dir: Path) -> Path:
    """Write DIR/report.html from the case database and manifest in DIR; returns its path."""
    case_dir = Path(case_dir)
    path = case_dir / REPORT_NAME
    with machine_limits(case_dir, "writing the report"), replaced_whole(path) as partial:
        partial.write_text(render_report(case_dir), encoding="utf-8")
    return path
