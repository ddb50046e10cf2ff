"""Parquet logs (CloudFront standard logs v2 with Parquet output): read row by row with the JSON
family's field map; a row's line_no is its row number. The fixture follows AWS's documented v2
field names (no public Parquet sample exists)."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from forensics.casefile import load_case
from forensics.errors import InputError
from forensics.ingest import ingest

ROWS = {
    "date": ["2022-11-28", "2022-11-28", "2022-11-28"],
    "time": ["19:10:00", "19:11:00", "19:12:00"],
    "x-edge-location": ["IAD89-C1", "FRA56-P5", "IAD89-C1"],
    "sc-bytes": [1573200, 400, 655692],
    "c-ip": ["198.51.100.7", "2001:db8::9", "203.0.113.5"],
    "cs-method": ["GET", "GET", "GET"],
    "cs-uri-stem": ["/a.xlsx", "/a.xlsx", "/a.xlsx"],
    "sc-status": [200, 404, 0],
    "cs(User-Agent)": ["Mozilla/5.0%20(X11)", "curl/8.0", "Wget/1.21"],
    "x-edge-request-id": ["abc", "def", "ghi"],
    "x-edge-result-type": ["Miss", "Error", "Hit"],
    "sc-content-len": [1572864, 153, 1572864],
}


def test_parquet_rows_are_read_with_row_numbers(tmp_path):
    pl.DataFrame(ROWS).write_parquet(tmp_path / "E2.2022-11-28-19.parquet")
    (tmp_path / "case.toml").write_text('[[sources]]\npath = "*.parquet"\nrole = "cdn"\n')
    rep = ingest(load_case(tmp_path / "case.toml"), tmp_path / "out")
    r = rep.loaded[0]
    assert (r.planned.fmt.name, r.planned.compression) == ("cloudfront_v2", "parquet")
    assert (r.lines_read, r.lines_parsed, r.lines_rejected, r.requests) == (3, 3, 0, 3)
    con = duckdb.connect(str(tmp_path / "out" / "case.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        "SELECT line_no, strftime(ts, '%Y-%m-%dT%H:%M:%S'), client_addr, status, user_agent, cache_status, content_length "
        "FROM requests ORDER BY line_no"
    ).fetchall()
    assert rows[0] == (1, "2022-11-28T19:10:00", "198.51.100.7", 200, "Mozilla/5.0 (X11)", "miss", 1572864)
    assert rows[2][3] == 0 and rows[2][5] == "hit"


def test_parquet_with_a_text_format_is_a_clear_error(tmp_path):
    pl.DataFrame(ROWS).write_parquet(tmp_path / "a.parquet")
    (tmp_path / "case.toml").write_text('[[sources]]\npath = "a.parquet"\nformat = "combined"\n')
    with pytest.raises(InputError, match="cloudfront_v2"):
        ingest(load_case(tmp_path / "case.toml"), tmp_path / "out")
