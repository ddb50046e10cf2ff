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

from forensics.coverage import BIN_MINUTES, how_unusual
from forensics.db import connect, named_queries
from forensics.errors import InputError
from forensics.followup import report_context as follow_up_context
from forensics.schema import ALL_TABLES, DOWNLOADERS

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
TIMELINE_BIN_MINUTES = 5
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


@dataclass(frozen=True)
class Zone:
    """The case's display zone, for times shown both locally and in UTC."""

    name: str

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
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
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
    """Older cases lack later tables: add them empty (TEMP) so every query has its columns."""
    for table in ALL_TABLES:
        if table.name not in have:
            con.execute(table.ddl().replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))


# --- sections ------------------------------------------------------------------------------------


def _timeline(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, examine_from: datetime,
              examine_to: datetime, zone: Zone) -> dict[str, Any]:
    """Requests and counted requests for the resource per bin over the window and margin, as
    coordinates for an inline SVG bar chart (drawn by the template)."""
    step = timedelta(minutes=TIMELINE_BIN_MINUTES)
    rows = con.execute(
        """
        SELECT time_bucket(INTERVAL (?) MINUTE, r.ts, ?::TIMESTAMPTZ) AS bin,
               count(*) AS requests,
               count(h.line_no) FILTER (WHERE h.counts) AS resource_requests,
               count(h.line_no) FILTER (WHERE h.counts AND r.status IN (200, 206)) AS deliveries
        FROM requests r
        LEFT JOIN hits h ON h.source_id = r.source_id AND h.line_no = r.line_no
        WHERE r.ts >= ? AND r.ts < ?
        GROUP BY bin ORDER BY bin
        """,
        [TIMELINE_BIN_MINUTES, examine_from, examine_from, examine_to],
    ).fetchall()
    by_bin = {r[0].astimezone(UTC): r[1:] for r in rows}
    bins: list[tuple[datetime, int, int, int]] = []
    t = examine_from.astimezone(UTC)
    while t < examine_to:
        req, res, dl = by_bin.get(t, (0, 0, 0))
        bins.append((t, int(req), int(res), int(dl)))
        t += step
    # Two panels over one time axis: all requests, then requests for the file on its own scale
    # (a handful against hundreds would not show on a shared one).
    width, left, right = 960, 64, 16
    top_a, h_a, gap, h_b = 22, 120, 26, 70
    top_b = top_a + h_a + gap
    axis_y = top_b + h_b
    height = axis_y + 56
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
        label = (f"{zone.local(ts, seconds=False)} ({zone.utc(ts, seconds=False)}): {req} requests, "
                 f"{res} for the file, {dl} of them delivering content (200/206)")
        bars.append({
            "x": round(x_of(ts) + 0.5, 1), "w": round(max(bar_w - 1, 1), 1),
            "y": round(top_a + h_a - ha, 1), "h": round(ha, 1),
            "ry": round(top_b + h_b - hb, 1), "rh": round(hb, 1),
            "dy": round(top_b + h_b - hd, 1), "dh": round(hd, 1),
            "title": label,
        })
    ticks = []
    first_tick = examine_from.astimezone(ZoneInfo(zone.name)).replace(minute=0, second=0, microsecond=0)
    tick = first_tick + (timedelta(hours=1) if first_tick < examine_from else timedelta(0))
    while tick <= examine_to:
        ticks.append({"x": round(x_of(tick), 1), "local": tick.astimezone(ZoneInfo(zone.name)).strftime("%H:%M"),
                      "utc": tick.astimezone(UTC).strftime("%H:%MZ")})
        tick += timedelta(hours=1)
    return {
        "width": width, "height": height, "left": left, "plot_w": plot_w,
        "top_a": top_a, "h_a": h_a, "top_b": top_b, "h_b": h_b, "axis_y": axis_y,
        "max_a": max_a, "max_b": max_b, "bars": bars, "ticks": ticks,
        "exposure_x": round(x_of(start), 1), "exposure_w": round(x_of(end) - x_of(start), 1),
        "bin_minutes": TIMELINE_BIN_MINUTES, "peak": peak, "resource_peak": res_peak,
        "total_requests": sum(b[1] for b in bins), "total_resource": sum(b[2] for b in bins),
        "total_delivering": sum(b[3] for b in bins),
    }


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
    sql = f"""
        SELECT {base}, {", ".join(select)}
        FROM downloaders d {join}
        ORDER BY d.resource_path,
            CASE d.outcome WHEN 'complete' THEN 1 WHEN 'partial' THEN 2 WHEN 'undetermined' THEN 3
                WHEN 'failed' THEN 4 ELSE 5 END,
            d.first_seen, d.client_ip
    """
    out = []
    for i, r in enumerate(_rows(con, sql), start=1):
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

    con = connect(db_path, read_only=True)
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
        timeline = _timeline(con, start, end, examine_from, examine_to, zone)
        context: dict[str, Any] = {
            "case": case,
            "zone": zone.name,
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
            "total_clients": len(downloaders),
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
                shlex.quote(case.get("file") or "CASE.toml"), shlex.quote(str(case_dir))
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
    html = render_report(case_dir)
    path = case_dir / REPORT_NAME
    path.write_text(html, encoding="utf-8")
    return path
