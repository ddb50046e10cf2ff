"""The report's timeline adapts to the period it covers: bars and labelled ticks stay few whatever
its length (a year's margin must not draw a bar per five minutes), ticks fall on the case zone's
hours, midnights, Mondays or months, and a UTC case shows each time once."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forensics.casefile import load_case
from forensics.coverage import TIMELINE_MAX_BARS, timeline_bin
from forensics.pipeline import run_case
from forensics.report import MAX_TICKS, Zone, _duration, _period, _ticks

REPO = Path(__file__).resolve().parent.parent
START = datetime(2022, 11, 28, 18, 32, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "unit", "first_label"),
    [
        (timedelta(minutes=50), "time", "13:35"),
        (timedelta(hours=6, minutes=3), "time", "14:00"),
        (timedelta(days=3), "time", "18:00"),
        (timedelta(days=8), "day", "Nov 29"),
        (timedelta(days=40), "week", "Dec 5"),
        (timedelta(days=400), "month", "Jan 2023"),
        (timedelta(days=3650), "year", "2023"),
    ],
)
def test_ticks_and_bins_fit_the_period(span, unit, first_label):
    zone = Zone("America/New_York")
    ticks, got_unit = _ticks(START, START + span, zone)
    assert got_unit == unit
    assert 2 <= len(ticks) <= MAX_TICKS
    assert ticks[0]["local"] == first_label
    assert span / timeline_bin(span) <= TIMELINE_MAX_BARS
    assert all(START <= k["t"] <= START + span for k in ticks)
    if unit == "time":
        assert ticks[0]["date"] in ("Nov 28", "Nov 29") and ticks[0]["utc"].endswith("Z")
    else:
        assert all(k["utc"] == "" for k in ticks)  # dates are the zone's; no UTC time under them


def test_day_ticks_are_local_midnights_across_a_dst_change():
    zone = Zone("America/New_York")
    ticks, unit = _ticks(datetime(2022, 11, 2, tzinfo=UTC), datetime(2022, 11, 10, tzinfo=UTC), zone)
    assert unit == "day"
    assert [k["t"].astimezone(UTC).hour for k in ticks] == [4, 4, 4, 4, 4, 5, 5, 5]  # EDT to Nov 6, then EST


def test_a_utc_case_labels_each_tick_once():
    ticks, unit = _ticks(START, START + timedelta(hours=6), Zone("UTC"))
    assert unit == "time" and all(k["utc"] == "" for k in ticks)
    assert ticks[0]["local"] == "19:00"


def test_exposure_label_and_durations_have_dates_and_days():
    zone = Zone("America/New_York")
    assert _period(START, START + timedelta(hours=5), zone) == "Nov 28 13:32 to 18:32 EST"
    assert _period(START, START + timedelta(days=2), zone) == "Nov 28 13:32 to Nov 30 13:32 EST"
    assert _period(START, START + timedelta(days=40), zone) == "2022 Nov 28 13:32 to 2023 Jan 7 13:32 EST"
    assert _duration(timedelta(days=31)) == "31 days"
    assert _duration(timedelta(hours=5, minutes=3)) == "5 h 03 min"


def test_a_long_period_in_a_utc_case(tmp_path: Path) -> None:
    """A year's exposure with a 31-day margin: the report stays small, its chart has few
    elements, and no time is shown twice."""
    shutil.copytree(REPO / "sample_logs", tmp_path / "logs", ignore=shutil.ignore_patterns("__pycache__"))
    case = tmp_path / "logs" / "case.toml"
    text = case.read_text(encoding="utf-8")
    text = text.replace('timezone = "America/New_York"', 'timezone = "UTC"')
    text = text.replace('start = "2022-11-28T14:02:00-05:00"', 'start = "2021-12-01T00:00:00Z"')
    text = text.replace('margin = "30m"', 'margin = "31d"')
    case.write_text(text, encoding="utf-8")
    run_case(load_case(case), tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count("<rect") <= 3 * TIMELINE_MAX_BARS + 10 and svg.count("<text") <= 3 * MAX_TICKS + 20
    assert "exposed: 2021 Dec 1 00:00 to 2022 Nov 29 00:05 UTC" in svg
    assert "months in UTC" in svg and ">Jan 2022<" in svg
    # No time is shown twice ("00:00 UTC ... 00:00Z") anywhere in the report.
    assert not re.search(r"(\d\d:\d\d)(:\d\d)? UTC.{0,60}?\1\2?Z", page)
    assert "<dt>In UTC</dt>" not in page
    assert "a margin of 31 days on each side" in page
