"""Outputs of a case with many downloaders: the list is typed from every row, the report's tables
are cut (and say so, naming the files with the full lists), downloaders.json is written a slice
at a time with the same text as one json.dumps."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import forensics.followup as followup
import forensics.report as report
from forensics.casefile import load_case
from forensics.listfiles import iso_utc, write_json_records
from forensics.pipeline import run_case

RESOURCE = "/files/roster.xlsx"
CLIENTS = 150


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 clients fetch the file; only the last is a crawler, so the crawler columns are empty
    for the first hundred rows of the list."""
    folder = tmp_path_factory.mktemp("many")
    rows = []
    for i in range(CLIENTS):
        agent = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" if i == CLIENTS - 1 \
            else "curl/7.86.0"
        size = 1000 if i % 3 and i != CLIENTS - 1 else 400  # the crawler's copy is partial: listed late
        rows.append(f'198.51.{i // 250}.{i % 250 + 1} - - [28/Nov/2022:14:{i // 60 % 60:02d}:{i % 60:02d} -0500] '
                    f'"GET {RESOURCE} HTTP/1.1" 200 {size} "-" "{agent}"\n')
    (folder / "access.log").write_text("".join(rows))
    (folder / "case.toml").write_text(
        '[case]\nname = "many"\ntimezone = "America/New_York"\n\n[[sources]]\npath = "access.log"\n'
        'format = "combined"\n\n[exposure]\nstart = "2022-11-28T14:00:00-05:00"\nend = "2022-11-28T17:00:00-05:00"\n\n'
        f'[[resources]]\npath = "{RESOURCE}"\nsize = 1000\n'
    )
    run_case(load_case(folder / "case.toml"), folder / "out")
    return folder / "out"


def test_a_column_empty_for_the_first_hundred_downloaders_is_typed_from_all_rows(many: Path) -> None:
    frame = pl.read_parquet(many / "downloaders.parquet")
    assert frame.height == CLIENTS
    assert frame.filter(pl.col("client_kind") == "crawler").height == 1


def test_the_report_cuts_long_tables_and_says_where_the_full_lists_are(many: Path, monkeypatch) -> None:
    whole = (many / "report.html").read_text(encoding="utf-8")
    assert "This table is cut" not in whole and "This list is cut" not in whole
    monkeypatch.setattr(report, "REPORT_ROWS_PER_OUTCOME", 2)
    monkeypatch.setattr(followup, "REPORT_OPERATOR_ROWS", 3)
    html = report.render_report(many)
    table = html.split('id="downloader-table"', 1)[1].split("</table>", 1)[0]
    shown = re.findall(r'<tr data-client="([^"]*)" data-outcome="(\w+)"', table)
    outcomes = [o for _, o in shown]
    assert outcomes and all(outcomes.count(o) <= 2 for o in set(outcomes))
    # the first two of each outcome by first seen (then address), as the full list orders them
    listed = pl.read_parquet(many / "downloaders.parquet").sort("first_seen", "client_ip")
    first = listed.group_by("outcome", maintain_order=True).head(2)
    assert sorted(shown) == sorted(zip(first["client_ip"], first["outcome"], strict=True))
    assert f"({len(outcomes)} of {CLIENTS})" in html
    assert "This table is cut" in html and "downloaders.csv, downloaders.xlsx" in html
    assert "This list is cut" in html and "the first 3 of" in html
    assert len(html) < len(whole)


def test_downloaders_json_is_the_text_of_one_json_dumps(tmp_path: Path) -> None:
    at = datetime(2022, 11, 28, 19, 2, 3, 450000, tzinfo=UTC)
    for n in (0, 1, 7, 10):
        frame = pl.DataFrame({
            "client_ip": [f"198.51.100.{i}" for i in range(n)],
            "first_seen": [at] * n,
            "user_agents": [["curl/8.0", "ua \"quoted\"\nline", "é"]] * n,
            "asn": [None] * n,
        })
        path = write_json_records(frame, tmp_path / f"d{n}.json", rows_at_once=3)
        records = [{k: iso_utc(v) if isinstance(v, datetime) else v for k, v in r.items()}
                   for r in frame.iter_rows(named=True)]
        assert path.read_text(encoding="utf-8") == json.dumps(records, indent=2, ensure_ascii=False) + "\n"
