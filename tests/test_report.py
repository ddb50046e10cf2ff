"""The incident summary (report.html) and the reviewers' spreadsheet (downloaders.xlsx), issue 5.

The report must say what the downloader list says, show every string from a log as text, and
fetch nothing: no script, style, font or image from anywhere but the file itself.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from forensics.casefile import load_case
from forensics.cli import app
from forensics.db import request_parts
from forensics.investigate import run_stage
from forensics.pipeline import run_case
from forensics.report import write_report

REPO = Path(__file__).resolve().parent.parent
SCRIPT_UA = "<script>alert(1)</script>"
QUOTED_REFERER = 'https://evil.example/?q="a" \'b\' "><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_case(load_case(REPO / "sample_logs" / "case.toml"), out)
    return out


@pytest.fixture
def case_copy(demo_case: Path, tmp_path: Path) -> Path:
    """A writable copy of the demo case, to plant hostile strings or enrichment rows in."""
    dst = tmp_path / "case"
    shutil.copytree(demo_case, dst)
    return dst


class _Rows(HTMLParser):
    """Collects the downloader table's rows and the headline counts by their data attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.clients: list[tuple[str, str]] = []
        self.headline: dict[str, int] = {}
        self._count: str | None = None
        self._in_n = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-client" in a:
            self.clients.append((a["data-client"] or "", a.get("data-outcome") or ""))
        if tag == "div" and "data-outcome" in a:
            self._count = a["data-outcome"]
        if tag == "div" and a.get("class") == "n" and self._count:
            self._in_n = True

    def handle_data(self, data: str) -> None:
        if self._in_n and self._count:
            self.headline[self._count] = int(data.strip())
            self._in_n = False
            self._count = None


def _parse(page: str) -> _Rows:
    p = _Rows()
    p.feed(page)
    return p


def test_run_writes_report_and_spreadsheet(demo_case: Path) -> None:
    assert (demo_case / "report.html").stat().st_size > 10_000
    assert (demo_case / "downloaders.xlsx").exists()


def test_report_counts_and_rows_agree_with_the_downloader_list(demo_case: Path) -> None:
    page = (demo_case / "report.html").read_text(encoding="utf-8")
    with (demo_case / "downloaders.csv").open(encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    parsed = _parse(page)
    assert sorted(parsed.clients) == sorted((r["client_ip"], r["outcome"]) for r in listed)
    for outcome in ("complete", "partial", "failed", "headers_only"):
        assert parsed.headline[outcome] == sum(r["outcome"] == outcome for r in listed), outcome
    # The demo incident's known answer (sample_logs/SCENARIO.md).
    assert parsed.headline == {"complete": 22, "partial": 7, "failed": 4, "headers_only": 2}
    assert "/sites/default/files/documents/2022/detention-roster.xlsx" in page
    assert "1,572,864 bytes" in page
    # The window in the case's zone and in UTC.
    assert "2022-11-28 14:02:00 EST" in page and "2022-11-28 19:02:00Z" in page
    assert "2022-11-28 19:05:00 EST" in page and "2022-11-29 00:05:00Z" in page


def test_report_has_every_section_and_custody_facts(demo_case: Path) -> None:
    page = (demo_case / "report.html").read_text(encoding="utf-8")
    for section in ("answer", "timeline", "downloaders", "breakdowns", "follow-up", "quality", "method", "custody"):
        assert f'id="{section}"' in page, section
    con = duckdb.connect(str(demo_case / "case.duckdb"), read_only=True)
    try:
        hashes = [r[0] for r in con.execute("SELECT sha256 FROM sources").fetchall()]
        case_sha = con.execute("SELECT value FROM case_info WHERE key = 'case_sha256'").fetchone()[0]
    finally:
        con.close()
    assert all(h in page for h in hashes)
    assert case_sha in page
    assert "forensics run sample_logs/case.toml --out" in page or "forensics run " in page
    assert "duckdb " in page and "polars " in page
    assert "<svg" in page and "exposure window" in page
    # The demo's IP data is made up, and the report says so.
    assert "not real geography" in page and "demo-City.mmdb" in page


def test_log_strings_come_out_as_text(case_copy: Path) -> None:
    con = duckdb.connect(str(case_copy / "case.duckdb"))
    try:
        ip = con.execute("SELECT client_ip FROM downloaders ORDER BY first_seen LIMIT 1").fetchone()[0]
        con.execute(
            "UPDATE downloaders SET user_agents = [$ua], referers = [$ref] WHERE client_ip = $ip",
            {"ua": SCRIPT_UA, "ref": QUOTED_REFERER, "ip": ip},
        )
        for part, columns in request_parts(con).items():  # `requests` is a view over these
            if {"referer", "user_agent"} <= columns:
                con.execute(
                    f"UPDATE {part} SET referer = $ref, user_agent = $ua FROM hits "
                    f"WHERE hits.source_id = {part}.source_id AND hits.line_no = {part}.line_no "
                    "AND hits.client_ip = $ip",
                    {"ua": SCRIPT_UA, "ref": QUOTED_REFERER, "ip": ip},
                )
    finally:
        con.close()
    page = write_report(case_copy).read_text(encoding="utf-8")
    assert SCRIPT_UA not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page  # the planted tag is text: &lt;img ...
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert page.count("<script") == 1  # the report's own sorting script, nothing else


def test_report_fetches_nothing(demo_case: Path) -> None:
    page = (demo_case / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", page, re.I)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?!#)[^"'\s>]""", page, re.I), "only in-page #anchors"
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//|<link\b|<iframe\b|<object\b|<embed\b", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_demo_report_shows_countries_networks_and_kinds(demo_case: Path) -> None:
    page = (demo_case / "report.html").read_text(encoding="utf-8")
    assert "verified_crawler:googlebot" in page and "claimed_crawler" in page and "tor_exit" in page
    assert "Iran" in page and "AS15169" in page


def test_report_without_ip_databases_says_so(case_copy: Path) -> None:
    con = duckdb.connect(str(case_copy / "case.duckdb"))
    try:
        con.execute("DELETE FROM ip_enrichment")
        con.execute("DELETE FROM enrichment_sources")
        con.execute("UPDATE downloaders SET country = NULL, country_name = NULL, city = NULL, asn = NULL, as_org = NULL")
    finally:
        con.close()
    page = write_report(case_copy).read_text(encoding="utf-8")
    assert "No IP databases were given" in page


def test_report_shows_enrichment_when_the_case_has_it(case_copy: Path) -> None:
    con = duckdb.connect(str(case_copy / "case.duckdb"))
    try:
        con.execute("DELETE FROM ip_enrichment")
        con.execute("DELETE FROM enrichment_sources")
        con.execute("UPDATE downloaders SET country = NULL, country_name = NULL, city = NULL, asn = NULL, as_org = NULL, "
                    "client_kind = NULL, crawler = NULL, crawler_verified = NULL")
        ip = con.execute("SELECT client_ip FROM downloaders WHERE outcome = 'complete' LIMIT 1").fetchone()[0]
        con.execute(
            "INSERT INTO ip_enrichment (address, country, country_name, city, asn, as_org, client_kind, crawler, "
            "crawler_verified, flags) VALUES ($ip, 'DE', 'Germany', 'Testburg', 64500, 'Example Transit', 'crawler', "
            "'examplebot', false, ['claimed_crawler'])",
            {"ip": ip},
        )
        con.execute(
            "INSERT INTO enrichment_sources (source, name, type, kind, built, date_basis, sha256, path, demo) "
            "VALUES ('database', 'Test-City.mmdb', 'GeoIP2-City', 'maxmind-city', TIMESTAMPTZ '2022-11-01 00:00:00+00', "
            "'build_epoch', 'ab12', '/x/Test-City.mmdb', false)"
        )
        run_stage(con, "stage_enrich_downloaders")  # the pipeline's own step
    finally:
        con.close()
    page = write_report(case_copy).read_text(encoding="utf-8")
    assert "Testburg, Germany" in page
    assert "AS64500 Example Transit" in page
    assert "claimed_crawler" in page and "examplebot" in page
    assert "Test-City.mmdb" in page and "2022-11-01" in page
    assert "No IP databases were given" not in page


def test_report_command_rewrites_the_report(case_copy: Path) -> None:
    (case_copy / "report.html").unlink()
    res = CliRunner().invoke(app, ["report", str(case_copy)])
    assert res.exit_code == 0, res.output
    assert (case_copy / "report.html").exists() and "report.html" in res.output


def test_timeline_counts_every_request_and_hit_in_the_examined_period(demo_case: Path) -> None:
    """The chart's totals come from request_timeline and the hits' copied rows; they are the
    counts of the case's own rows over the examined period, however the table was filled."""
    from forensics.report import gather

    timeline = gather(demo_case)["timeline"]
    exposure = json.loads((demo_case / "manifest.json").read_text())["investigation"]["exposure"]
    window = [exposure["examined_from"], exposure["examined_to"]]
    period = "ts >= CAST(? AS TIMESTAMPTZ) AND ts < CAST(? AS TIMESTAMPTZ)"
    con = duckdb.connect(str(demo_case / "case.duckdb"), read_only=True)
    try:
        requests = con.execute(f"SELECT count(*) FROM requests WHERE {period}", window).fetchone()
        resource = con.execute(f"SELECT count(*) FROM hits WHERE counts AND {period}", window).fetchone()
    finally:
        con.close()
    assert requests is not None and resource is not None
    assert (timeline["total_requests"], timeline["total_resource"]) == (requests[0], resource[0])
    assert requests[0] > 1000 and resource[0] > 30


def test_report_of_a_case_written_before_the_timeline_and_hit_copies_were_stored(case_copy: Path) -> None:
    """A case database from an earlier version has no request_timeline and no hit_requests: the
    report counts them from `requests` and shows the same numbers."""
    from forensics.report import gather

    before = gather(case_copy)
    con = duckdb.connect(str(case_copy / "case.duckdb"))
    con.execute("DROP TABLE request_timeline")
    con.execute("DROP TABLE hit_requests")
    con.close()
    after = gather(case_copy)
    for key in ("timeline", "referrers"):
        assert after[key] == before[key], key
    assert before["timeline"]["total_requests"] > 1000 and before["referrers"]


def test_report_command_on_a_folder_without_a_case(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output
