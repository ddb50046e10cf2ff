"""Where the logs are silent: gaps at the logs' own resolution, and logs that start late or end early.

A missing log file makes every answer for its stretch incomplete, and a short one (a 10-minute
CDN delivery file) is invisible in an hourly count. Three readings, each with how unusual it is:

- silent stretches: runs of empty 5-minute bins inside a log's span where the log's own
  neighbouring rate expects many lines (forensics/queries/stage_silent_stretches.sql);
- missing delivery files: CDN log files named by the time they cover (CloudFront
  `DIST.YYYY-MM-DD-HH.id.gz`, Cloudflare Logpush `START_END_id`, Fastly `YYYY-MM-DDTHH:MM:SS`)
  form a series; a period with no file between files that hold many lines is missing;
- edges: a log role whose first line comes after the examined period begins, or whose last
  line comes before it ends, or that has no line in it at all.

"How unusual" is the chance of seeing no line at all at the neighbouring rate under a Poisson
count, exp(-expected): small for real gaps, and said as it is, never hidden.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

import duckdb

BIN_MINUTES = 5

# Bin widths of the report's timeline, shortest first: the shortest that keeps the chart within
# TIMELINE_MAX_BARS bars is used, so a chart over an hour and one over a year (a long exposure
# with its margin) both have a bounded number of bars. The investigation counts the requests per
# bin (stage_request_timeline) so the report needs no scan of `requests`.
TIMELINE_BINS = (
    timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=5), timedelta(minutes=10),
    timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
    timedelta(hours=3), timedelta(hours=6), timedelta(hours=12), timedelta(days=1), timedelta(days=2),
    timedelta(days=7), timedelta(days=14), timedelta(days=28),
)
TIMELINE_MAX_BARS = 120


def timeline_bin(span: timedelta) -> timedelta:
    """The width of the timeline's bins for an examined period of `span`."""
    for step in TIMELINE_BINS:
        if span / step <= TIMELINE_MAX_BARS:
            return step
    return timedelta(days=-(-span.days // TIMELINE_MAX_BARS) + 1)
NEIGHBOURHOOD_MINUTES = 60
# A silent stretch is reported when its neighbourhood expects at least this many lines in it:
# the chance of such a silence by luck is exp(-10), about 1 in 22,000.
MIN_EXPECTED_LINES = 10.0

# Delivery-file names that say the time they cover: (pattern, start format, end format or None).
_NAMED_PERIODS: tuple[tuple[re.Pattern[str], str, str | None], ...] = (
    # Cloudflare Logpush: 20221128T140000Z_20221128T140500Z_abcdef.log.gz
    (re.compile(r"(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)"), "%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%SZ"),
    # Fastly (default path format): 2022-11-28T14:00:00.000-abcdef.log
    (re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})"), "%Y-%m-%dT%H:%M:%S", None),
    # CloudFront standard logs: E2ABC.2022-11-28-14.abcdef.gz (the hour the file was written for)
    (re.compile(r"\.(\d{4}-\d{2}-\d{2}-\d{2})\."), "%Y-%m-%d-%H", None),
)


@dataclass(frozen=True)
class LogGap:
    """One stretch a log may be missing (a row of `log_gaps`)."""

    role: str
    format: str | None
    kind: str
    gap_start: datetime
    gap_end: datetime
    expected_lines: float | None
    detail: str

    @property
    def chance(self) -> float | None:
        return None if self.expected_lines is None else math.exp(-self.expected_lines)

    def row(self) -> dict[str, Any]:
        return {
            "role": self.role, "format": self.format, "kind": self.kind, "gap_start": self.gap_start,
            "gap_end": self.gap_end, "expected_lines": self.expected_lines, "chance": self.chance,
            "detail": self.detail,
        }


def fmt_utc(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_span(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def how_unusual(expected: float | None) -> str:
    """The silence in words: lines expected and the chance of none by luck."""
    if expected is None:
        return "no rate to compare with"
    chance = math.exp(-expected)
    if chance < 1e-12:
        odds = "practically never by chance"
    elif chance < 0.001:
        odds = f"about 1 in {1 / chance:,.0f} by chance"
    else:
        odds = f"a {chance:.1%} chance of no line by luck"
    return f"about {expected:,.0f} lines expected from the log's own rate around it, {odds}"


def named_period(name: str) -> tuple[str, datetime, datetime | None] | None:
    """(series key, start, end or None) when a delivery file's name says the time it covers."""
    for pattern, start_fmt, end_fmt in _NAMED_PERIODS:
        m = pattern.search(name)
        if not m:
            continue
        try:
            start = datetime.strptime(m.group(1), start_fmt).replace(tzinfo=UTC)
            end = datetime.strptime(m.group(2), end_fmt).replace(tzinfo=UTC) if end_fmt else None
        except ValueError:
            continue
        # files of one series differ by time and a unique id, not by prefix or extension
        extensions = "".join(x for x in PurePosixPath(name[m.end():]).suffixes if x[1:].isalpha())
        return name[: m.start()] + "*" + extensions, start, end
    return None


def missing_delivery_files(
    files: Iterable[dict[str, Any]], examine_from: datetime, examine_to: datetime,
    min_expected: float = MIN_EXPECTED_LINES,
) -> list[LogGap]:
    """Periods of a time-named delivery series with no file, between files that hold many lines.

    `files`: rows with path, role, format, lines_parsed. A series is the files of one role and
    format in one folder whose names differ only by the time. Its period is the named end minus
    start (Cloudflare) or the most common step between consecutive starts (CloudFront's hour,
    Fastly's configured period). CloudFront writes no file for an hour without requests, so a
    missing period is only reported when the files on both sides expect many lines in it.
    """
    series: dict[tuple[str, str, str, str], dict[datetime, tuple[datetime | None, int]]] = {}
    for f in files:
        path = PurePosixPath(str(f["path"]))
        named = named_period(path.name)
        if named is None:
            continue
        key, start, end = named
        periods = series.setdefault((f["role"], f["format"], str(path.parent), key), {})
        prev_end, lines = periods.get(start, (end, 0))
        periods[start] = (end or prev_end, lines + int(f["lines_parsed"] or 0))
    gaps: list[LogGap] = []
    for (role, fmt, _folder, _key), periods in sorted(series.items()):
        starts = sorted(periods)
        if len(starts) < 3:
            continue
        steps = Counter(b - a for a, b in itertools.pairwise(starts))
        ends = [periods[s][0] for s in starts]
        if all(e is not None for e in ends):
            step = Counter(e - s for s, e in zip(starts, ends, strict=True) if e is not None).most_common(1)[0][0]
        else:
            step = steps.most_common(1)[0][0]
        if step <= timedelta(0):
            continue
        for a, b in itertools.pairwise(starts):
            a_end = periods[a][0] or a + step
            missing = b - a_end
            if missing < step:
                continue
            if b <= examine_from or a_end >= examine_to:
                continue
            per_period = min(periods[a][1], periods[b][1])
            expected = per_period * (missing / step)
            if expected < min_expected:
                continue
            gaps.append(LogGap(
                role, fmt, "missing_delivery_file", a_end, b, expected,
                f"no {role} {fmt} delivery file for {fmt_utc(a_end)} to {fmt_utc(b)} "
                f"({fmt_span(missing)}) in a series of files each covering {fmt_span(step)}; "
                f"{how_unusual(expected)}: a delivery file may be missing",
            ))
    return gaps


def edge_gaps(
    edges: Sequence[tuple[str, datetime, datetime, int, int, int]], examine_from: datetime, examine_to: datetime
) -> list[LogGap]:
    """Roles whose logs start after the examined period begins, end before it ends, or do not
    reach it at all. `edges`: (role, first_ts, last_ts, lines_examined, lines_first_hour,
    lines_last_hour) from forensics/queries/log_edges.sql."""
    gaps: list[LogGap] = []
    for role, first_ts, last_ts, lines_examined, first_hour, last_hour in edges:
        if not lines_examined and (last_ts < examine_from or first_ts > examine_to):
            gaps.append(LogGap(
                role, None, "no_log", examine_from, examine_to, None,
                f"no {role} log covers the examined period: {role} logs run from {fmt_utc(first_ts)} "
                f"to {fmt_utc(last_ts)}, outside {fmt_utc(examine_from)} to {fmt_utc(examine_to)}",
            ))
            continue
        # (kind, gap start, gap end, lines in the log's hour next to the gap, words)
        for kind, start, end, near_hour, words in (
            ("starts_late", examine_from, first_ts, first_hour,
             f"{role} logs start at {fmt_utc(first_ts)}, {{span}} after the examined period begins "
             f"({fmt_utc(examine_from)}); {{unusual}}: requests before then are not in the answer"),
            ("ends_early", last_ts, examine_to, last_hour,
             f"{role} logs end at {fmt_utc(last_ts)}, {{span}} before the examined period ends "
             f"({fmt_utc(examine_to)}); {{unusual}}: requests after then are not in the answer"),
        ):
            if end <= start:
                continue
            expected = near_hour * (end - start) / timedelta(hours=1)
            detail = words.format(span=fmt_span(end - start), unusual=how_unusual(expected))
            gaps.append(LogGap(role, None, kind, start, end, expected, detail))
    return gaps


def silent_stretch_gaps(rows: Iterable[tuple[Any, ...]], files: Sequence[dict[str, Any]]) -> list[LogGap]:
    """Silent stretches from forensics/queries/stage_silent_stretches.sql, with the files around
    them when no file's own records span the stretch (a file is missing between them)."""
    gaps: list[LogGap] = []
    for role, fmt, start, end, _bins, expected in rows:
        same = [f for f in files if f["role"] == role and f["format"] == fmt and f["first_ts"] is not None]
        spanning = [f for f in same if f["first_ts"] < start and f["last_ts"] >= end]
        where = ""
        before = [f for f in same if f["last_ts"] < end]
        after = [f for f in same if f["first_ts"] >= start]
        if not spanning and before and after:
            b = max(before, key=lambda f: f["last_ts"])
            a = min(after, key=lambda f: f["first_ts"])
            if b["path"] != a["path"]:
                where = (f"; no file's records span it: {b['path']} ends at {fmt_utc(b['last_ts'])}, "
                         f"{a['path']} starts at {fmt_utc(a['first_ts'])}")
        gaps.append(LogGap(
            role, fmt, "silent_stretch", start, end, float(expected),
            f"no {role} {fmt} log lines from {fmt_utc(start)} to {fmt_utc(end)} ({fmt_span(end - start)}); "
            f"{how_unusual(float(expected))}{where}: a log file or delivery may be missing",
        ))
    return gaps


def store_gaps(con: duckdb.DuckDBPyConnection, gaps: Sequence[LogGap]) -> None:
    """Write the gaps into `log_gaps` (the table is emptied by the investigation first)."""
    if not gaps:
        return
    con.executemany(
        "INSERT INTO log_gaps (role, format, kind, gap_start, gap_end, expected_lines, chance, detail) "
        "VALUES ($role, $format, $kind, $gap_start, $gap_end, $expected_lines, $chance, $detail)",
        [g.row() for g in gaps],
    )
