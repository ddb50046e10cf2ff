"""The outputs say what the logs can and cannot show: each limit of the evidence appears in the
report's answer box as rendered, in manifest.json and on the terminal, on hand-made logs read
through the real `forensics run` (nothing mocked)."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from forensics.casefile import load_case
from forensics.cli import app
from forensics.coverage import missing_delivery_files, named_period
from forensics.errors import CaseFileError
from forensics.limits import source_date_limits, trusted_network_limits
from tests.test_investigate import FILE, SIZE, case_toml, cf_file, cf_line, nginx_line

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _text(fragment: str) -> str:
    """Rendered text of an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def answer_box(page: str) -> str:
    start = page.index('<section class="answer" id="answer"')
    return _text(page[start: page.index("</section>", start)])


def section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}"')
    return _text(page[start: page.index("</section>", start)])


def run_cli(write_case: Any, tmp_path: Path, *, cdn: list[str] | None = None,
            cdn_files: dict[str, list[str]] | None = None, origin: list[str] | None = None,
            iis: list[str] | None = None, s3: list[str] | None = None, extra: str | None = None,
            **case_args: Any) -> dict[str, Any]:
    """`forensics run` on the given lines; returns terminal output, manifest, report and rows."""
    files: dict[str, bytes | str] = {}
    sources = []
    cdn_files = dict(cdn_files or {})
    if cdn is not None:
        cdn_files["E1.2022-11-28-20.a.gz"] = cdn
    for name, lines in cdn_files.items():
        files[f"cdn/{name}"] = cf_file(*lines)
    if cdn_files:
        sources.append({"path": "cdn/*.gz", "format": "cloudfront", "role": "cdn"})
    if origin is not None:
        files["origin/access.log"] = "\n".join(origin) + "\n"
        sources.append({"path": "origin/access.log", "format": "nginx_main", "role": "origin"})
    if iis is not None:
        files["iis/u_ex221128.log"] = (
            "#Software: Microsoft Internet Information Services 10.0\n"
            "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
            "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes time-taken\n"
            + "\n".join(iis) + "\n"
        )
        sources.append({"path": "iis/u_ex221128.log", "format": "iis", "role": "origin"})
    if s3 is not None:
        files["s3/2019-02-06-00-00-38-EXAMPLE"] = "\n".join(s3) + "\n"
        sources.append({"path": "s3/*", "format": "aws_s3", "role": "origin"})
    case_path = write_case(sources, extra=extra if extra is not None else case_toml(**case_args), files=files)
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(case_path), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text(encoding="utf-8")
    return {
        "terminal": res.output,
        "manifest": json.loads((out / "manifest.json").read_text()),
        "page": page,
        "answer": answer_box(page),
        "rows": {r["client_ip"]: r for r in json.loads((out / "downloaders.json").read_text())},
    }


def limits_of(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [lim for lim in result["manifest"]["investigation"]["limits"] if lim["kind"] == kind]


def iis_line(ts: str, client: str, status: int, sc_bytes: int, *, method: str = "GET", path: str = FILE) -> str:
    date, time = ts.split(" ")
    return f"{date} {time} 10.0.0.5 {method} {path} - 443 - {client} Mozilla/5.0 - {status} 0 0 {sc_bytes} 15"


def busy_origin(start: str, end: str, every_s: int = 20, skip: tuple[str, str] | None = None) -> list[str]:
    """An origin log with a line every `every_s` seconds (other pages), optionally silent in `skip`."""
    t = datetime.strptime(start, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    stop = datetime.strptime(end, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    hole = tuple(datetime.strptime(x, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for x in skip) if skip else None
    lines = []
    while t <= stop:
        if not (hole and hole[0] <= t < hole[1]):
            lines.append(nginx_line(t.strftime("%Y-%m-%d %H:%M:%S"), "192.0.2.10", 200, 5000, path="/index.html"))
        t += timedelta(seconds=every_s)
    return lines


# --- size ----------------------------------------------------------------------------------------


def test_without_any_size_every_client_is_listed_and_the_box_says_how_to_fix_it(write_case: Any, tmp_path: Path) -> None:
    origin = [
        *busy_origin("2022-11-28 18:25:00", "2022-11-28 23:35:00", every_s=600),
        # ranges only (no 200, no object size): no signal gives the size
        nginx_line("2022-11-28 20:00:00", "198.51.100.1", 206, 4096),
        nginx_line("2022-11-28 20:01:00", "198.51.100.2", 404, 153),
        nginx_line("2022-11-28 20:02:00", "198.51.100.3", 200, 0, method="HEAD"),
    ]
    r = run_cli(write_case, tmp_path, origin=origin, size=None)
    rows = r["rows"]
    assert rows["198.51.100.1"]["outcome"] == "undetermined"
    assert "size = <bytes>" in rows["198.51.100.1"]["outcome_reason"]
    assert rows["198.51.100.1"]["coverage_pct"] is None and rows["198.51.100.1"]["file_bytes_covered"] == 4096
    # failed and headers_only never need the size
    assert rows["198.51.100.2"]["outcome"] == "failed"
    assert rows["198.51.100.3"]["outcome"] == "headers_only"
    assert r["manifest"]["investigation"]["headline"]["undetermined"] == 1
    assert r["manifest"]["investigation"]["resources"][0]["size_basis"] == "unknown"
    assert limits_of(r, "size_unknown")
    assert "Size unknown:" in r["answer"] and "size = <bytes>" in r["answer"]
    assert "received bytes of a file of unknown size" in r["answer"]
    assert "1 undetermined (size unknown)" in r["terminal"]
    assert "size = <bytes>" in r["terminal"]


def test_size_from_total_bytes_less_headers_is_flagged_and_probable(write_case: Any, tmp_path: Path) -> None:
    iis = [
        iis_line("2022-11-28 20:00:00", "198.51.100.11", 200, 350, method="HEAD"),  # the headers alone
        iis_line("2022-11-28 20:01:00", "198.51.100.12", 200, SIZE + 350),
        iis_line("2022-11-28 20:02:00", "198.51.100.13", 200, SIZE + 350),
        iis_line("2022-11-28 20:03:00", "198.51.100.14", 200, 400_000),  # cut short
    ]
    r = run_cli(write_case, tmp_path, iis=iis, size=None)
    res = r["manifest"]["investigation"]["resources"][0]
    assert (res["size"], res["size_basis"]) == (SIZE, "total_minus_headers")
    rows = r["rows"]
    assert (rows["198.51.100.12"]["outcome"], rows["198.51.100.12"]["confidence"]) == ("complete", "probable")
    assert rows["198.51.100.14"]["outcome"] == "partial"
    assert "size_estimated" in rows["198.51.100.12"]["flags"]
    assert limits_of(r, "size_estimated")
    assert "Size estimated:" in r["answer"] and "total bytes of 200 responses less the response headers" in r["answer"]
    assert "Size estimated" not in r["terminal"] and "is an estimate" in r["terminal"]


def test_size_from_the_declared_content_length(write_case: Any, tmp_path: Path) -> None:
    cdn = [cf_line("2022-11-28 20:00:00", "198.51.100.21", 200, SIZE + 300)]
    r = run_cli(write_case, tmp_path, cdn=cdn, size=None)
    res = r["manifest"]["investigation"]["resources"][0]
    assert (res["size"], res["size_basis"]) == (SIZE, "content_length")
    assert r["rows"]["198.51.100.21"]["outcome"] == "complete"
    assert "Size inferred:" in r["answer"] and "Content-Length declared on 200 responses" in r["answer"]


def test_size_from_the_object_size_the_server_logged(write_case: Any, tmp_path: Path) -> None:
    # S3 logs the object's size beside the bytes sent: a 200 cut short at 524,288 bytes is partial,
    # though the most common 200 body would have called it the whole file.
    line = ('79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 '
            '[06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT files/roster.xlsx '
            '"GET /awsexamplebucket1/files/roster.xlsx HTTP/1.1" 200 - 524288 1572864 70 10 "-" "curl/8.0" -')
    extra = ('[exposure]\nstart = "2019-02-05T23:00:00Z"\nend = "2019-02-06T01:00:00Z"\n\n'
             '[[resources]]\npath = "/awsexamplebucket1/files/roster.xlsx"\n')
    r = run_cli(write_case, tmp_path, s3=[line], extra=extra)
    res = r["manifest"]["investigation"]["resources"][0]
    assert (res["size"], res["size_basis"]) == (1572864, "object_size")
    assert [s["basis"] for s in res["size_signals"]] == ["object_size", "body_of_200"]
    row = r["rows"]["192.0.2.3"]
    assert (row["outcome"], row["file_bytes_covered"], row["coverage_pct"]) == ("partial", 524288, 33.33)
    assert "Size inferred: the size of /awsexamplebucket1/files/roster.xlsx was inferred: 1,572,864 bytes from the object size the server logged" in r["answer"]
    assert "1,572,864 bytes from the object size the server logged" in r["terminal"]


# --- coverage ------------------------------------------------------------------------------------


def test_no_log_covers_the_window_is_a_blocking_warning(write_case: Any, tmp_path: Path) -> None:
    origin = busy_origin("2022-11-27 10:00:00", "2022-11-27 12:00:00", every_s=60)
    r = run_cli(write_case, tmp_path, origin=origin)
    assert r["manifest"]["investigation"]["limits"][0]["kind"] == "no_log"
    assert r["manifest"]["investigation"]["limits"][0]["severity"] == "blocking"
    assert "Not a complete answer: no log covers the window" in r["answer"]
    assert 'role="alert"' in r["page"]
    assert "Not a complete answer: no log covers the window" in r["terminal"]
    assert "No log of this role covers the window:" in r["answer"]


def test_logs_that_start_late_and_end_early_are_said_in_the_answer_box(write_case: Any, tmp_path: Path) -> None:
    # examined 18:30 to 23:30; the origin log runs 19:40 to 22:00 only
    origin = busy_origin("2022-11-28 19:40:00", "2022-11-28 22:00:00", every_s=60)
    r = run_cli(write_case, tmp_path, origin=origin)
    assert {g["kind"] for g in r["manifest"]["investigation"]["log_gaps"]} == {"starts_late", "ends_early"}
    assert "Logs start late: origin logs start at 2022-11-28 19:40 UTC, 1 h 10 min after" in r["answer"]
    assert "Logs end early: origin logs end at 2022-11-28 22:00 UTC, 1 h 30 min before" in r["answer"]
    assert "about 70 lines expected" in r["answer"]
    assert "origin logs start at 2022-11-28 19:40 UTC" in r["terminal"]
    quality = section(r["page"], "quality")
    assert "starts late" in quality and "ends early" in quality
    assert "No coverage gaps" not in quality


def test_a_silent_quarter_hour_is_found_at_five_minute_resolution(write_case: Any, tmp_path: Path) -> None:
    origin = busy_origin("2022-11-28 18:00:00", "2022-11-29 00:00:00", every_s=20,
                         skip=("2022-11-28 20:30:00", "2022-11-28 20:45:00"))
    r = run_cli(write_case, tmp_path, origin=origin)
    gaps = r["manifest"]["investigation"]["log_gaps"]
    assert [(g["kind"], g["gap_start"], g["gap_end"]) for g in gaps] == [
        ("silent_stretch", "2022-11-28T20:30:00Z", "2022-11-28T20:45:00Z")
    ]
    assert gaps[0]["expected_lines"] == pytest.approx(45.0)
    assert gaps[0]["chance"] < 1e-15
    # the hourly table alone would not show it: every hour has lines
    assert r["manifest"]["investigation"]["coverage_gaps"] == []
    assert "Silent stretch in the logs: no origin nginx_main log lines from 2022-11-28 20:30 UTC to 2022-11-28 20:45 UTC" in r["answer"]
    assert "about 45 lines expected" in r["answer"]
    assert "no origin nginx_main log lines from 2022-11-28 20:30 UTC" in r["terminal"]
    quality = section(r["page"], "quality")
    # a UTC case shows each time once, in the From and To columns
    assert "silent stretch" in quality and "2022-11-28 20:30:00 UTC 2022-11-28 20:45:00 UTC" in quality


def test_an_empty_hour_of_a_quiet_log_is_said_in_the_answer_box(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line(f"2022-11-28 {h}:10:00", "198.51.100.90", 200, 10) for h in (18, 19, 20, 22, 23)]
    origin.append(nginx_line("2022-11-28 20:30:00", "198.51.100.91", 200, SIZE))
    r = run_cli(write_case, tmp_path, origin=origin, start="2022-11-28T19:30:00Z", end="2022-11-28T23:00:00Z")
    # too quiet for a silent stretch at 5-minute resolution: the hourly table says it
    assert [g["kind"] for g in r["manifest"]["investigation"]["log_gaps"]] == ["ends_early"]
    assert limits_of(r, "coverage_hour")
    assert "Empty hour in the logs: no origin log lines from 2022-11-28 21:00 UTC to 2022-11-28 22:00 UTC (1 hour)" in r["answer"]
    assert "no origin log lines from 2022-11-28 21:00 UTC to 2022-11-28 22:00 UTC" in r["terminal"]
    assert "empty hour" in section(r["page"], "quality")


def test_quiet_logs_are_not_called_gaps(write_case: Any, tmp_path: Path) -> None:
    # a line every 10 minutes: empty 5-minute bins are ordinary
    origin = busy_origin("2022-11-28 18:00:00", "2022-11-29 00:00:00", every_s=600)
    origin.append(nginx_line("2022-11-28 20:00:01", "198.51.100.5", 200, SIZE))
    r = run_cli(write_case, tmp_path, origin=origin)
    assert r["manifest"]["investigation"]["log_gaps"] == []
    assert "No limit of the evidence was found" in r["answer"]
    assert "No coverage gaps" in section(r["page"], "quality")
    assert "limit" not in r["terminal"]


def test_a_missing_cloudfront_delivery_file_is_reported(write_case: Any, tmp_path: Path) -> None:
    def hour(h: int) -> list[str]:
        day = "2022-11-28" if h < 24 else "2022-11-29"
        return [cf_line(f"{day} {h % 24:02d}:{m:02d}:00", "192.0.2.50", 200, 900, path="/index.html", content_len=600)
                for m in range(0, 60, 2)]
    cdn_files = {f"E1.2022-11-28-{h:02d}.x{h}.gz": hour(h) for h in (18, 19, 20, 22, 23)}
    r = run_cli(write_case, tmp_path, cdn_files=cdn_files)
    kinds = {(g["kind"], g["gap_start"]) for g in r["manifest"]["investigation"]["log_gaps"]}
    assert ("missing_delivery_file", "2022-11-28T21:00:00Z") in kinds
    assert ("silent_stretch", "2022-11-28T21:00:00Z") in kinds
    assert "Missing delivery file: no cdn cloudfront delivery file for 2022-11-28 21:00 UTC to 2022-11-28 22:00 UTC" in r["answer"]
    assert "no cdn cloudfront delivery file" in r["terminal"]


def test_delivery_file_names_give_their_period() -> None:
    assert named_period("E2ABC.2022-11-28-14.8211D5FE.gz") == (
        "E2ABC*.gz", datetime(2022, 11, 28, 14, tzinfo=UTC), None)
    _key, start, end = named_period("20221128T140000Z_20221128T140500Z_abcdef.log.gz") or ("", None, None)
    assert (start, end) == (datetime(2022, 11, 28, 14, tzinfo=UTC), datetime(2022, 11, 28, 14, 5, tzinfo=UTC))
    assert named_period("access.log-20221129.gz") is None
    # Cloudflare's 5-minute files: one missing between busy ones
    files = [{"path": f"logs/2022112{8}T14{m:02d}00Z_2022112{8}T14{m + 5:02d}00Z_x{m}.log.gz", "role": "cdn",
              "format": "cloudflare_logpush", "lines_parsed": 200} for m in (0, 5, 15, 20)]
    gaps = missing_delivery_files(files, datetime(2022, 11, 28, 13, tzinfo=UTC), datetime(2022, 11, 28, 15, tzinfo=UTC))
    assert [(g.gap_start.minute, g.gap_end.minute, g.expected_lines) for g in gaps] == [(10, 15, 200)]


# --- rejected lines, no match, case-file sanity --------------------------------------------------


def test_rejected_lines_in_the_window_are_said(write_case: Any, tmp_path: Path) -> None:
    origin = [
        nginx_line("2022-11-28 20:00:00", "198.51.100.31", 200, SIZE),
        f"garbled GET {FILE} line without a layout",
        "another garbled line",
        nginx_line("2022-11-28 21:00:00", "198.51.100.32", 200, SIZE),
    ]
    r = run_cli(write_case, tmp_path, origin=origin)
    assert limits_of(r, "rejected_lines")
    assert ("Rejected lines: 2 origin log lines in 1 file covering the examined period could not be read, "
            "1 of them naming detention-roster.xlsx") in r["answer"]
    assert "2 origin log lines in 1 file covering the examined period could not be read" in r["terminal"]


def test_a_resource_nothing_matched_is_said_with_its_near_misses(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line("2022-11-28 20:00:00", "198.51.100.41", 200, SIZE)]
    extra = case_toml().replace(f'path = "{FILE}"', 'path = "/docs/2022/detention_roster.xlsx"')
    r = run_cli(write_case, tmp_path, origin=origin, extra=extra)
    assert r["rows"] == {}
    assert limits_of(r, "no_match")
    assert ("No request matched: no request in the examined period matched /docs/2022/detention_roster.xlsx on "
            "www.agency.gov, d3abc.cloudfront.net; near misses: /docs/2022/detention-roster.xlsx (similar name, 1 requests)"
            ) in r["answer"]
    assert "near misses: /docs/2022/detention-roster.xlsx" in r["terminal"]


def test_a_percent_encoded_resource_path_is_decoded_and_said(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line("2022-11-28 20:00:00", "198.51.100.51", 200, SIZE, path="/files/logstash_OSCON.pdf")]
    extra = case_toml(hosts='["www.agency.gov:443"]').replace(f'path = "{FILE}"', 'path = "/files/logstash%5FOSCON.pdf"')
    r = run_cli(write_case, tmp_path, origin=origin, extra=extra)
    assert r["rows"]["198.51.100.51"]["outcome"] == "complete"
    assert r["manifest"]["investigation"]["resources"][0]["path"] == "/files/logstash_OSCON.pdf"
    assert "Resource path decoded: the resource path /files/logstash%5FOSCON.pdf is percent-encoded" in r["answer"]
    assert "Host port removed: the host www.agency.gov:443 was compared without its port" in r["answer"]
    assert "Note: the resource path /files/logstash%5FOSCON.pdf is percent-encoded" in r["terminal"]


def test_a_host_with_a_port_in_the_case_file_matches(write_case: Any, tmp_path: Path) -> None:
    cdn = [cf_line("2022-11-28 20:00:00", "198.51.100.61", 200, SIZE + 300)]
    r = run_cli(write_case, tmp_path, cdn=cdn, hosts='["www.agency.gov:443"]')
    assert r["rows"]["198.51.100.61"]["outcome"] == "complete"


def test_a_very_wide_trusted_network_is_warned_about(write_case: Any, tmp_path: Path) -> None:
    origin = [nginx_line("2022-11-28 20:00:00", "198.51.100.71", 200, SIZE)]
    extra = case_toml().replace('trusted = ["130.176.0.0/16", "64.252.64.0/18"]', 'trusted = ["10.0.0.0/7", "2600::/24"]')
    r = run_cli(write_case, tmp_path, origin=origin, extra=extra)
    assert len(limits_of(r, "trusted_network_wide")) == 2
    assert "Very wide trusted network: [proxies] trusted has 10.0.0.0/7, wider than /8" in r["answer"]
    assert "[proxies] trusted has 2600::/24, wider than /32" in r["terminal"]
    assert trusted_network_limits(["10.0.0.0/8", "2600:9000::/32"]) == []


@pytest.mark.parametrize("network", ["0.0.0.0/0", "::/0"])
def test_trusting_every_address_is_an_error_unless_allowed(write_case: Any, network: str) -> None:
    extra = case_toml().replace('trusted = ["130.176.0.0/16", "64.252.64.0/18"]', f'trusted = ["{network}"]')
    path = write_case([{"path": "a.log"}], extra=extra, files={"a.log": "x\n"})
    with pytest.raises(CaseFileError, match="trusts every address") as info:
        load_case(path)
    assert "allow_any = true" in info.value.render()
    path.write_text(path.read_text() + "allow_any = true\n")
    assert load_case(path).trusted_proxies == (network,)


def test_an_ip_database_from_another_year_is_warned_about(write_case: Any, tmp_path: Path) -> None:
    # the demo's databases are built 2022-11-27; this exposure is in 2024
    origin = [nginx_line("2024-06-01 20:00:00", "198.51.100.81", 200, SIZE)]
    extra = case_toml(start="2024-06-01T19:00:00Z", end="2024-06-01T23:00:00Z") + (
        f'\n[enrich]\ndemo_seed = "{REPO / "sample_logs" / "enrich_seed.csv"}"\n')
    r = run_cli(write_case, tmp_path, origin=origin, extra=extra)
    dated = limits_of(r, "source_date")
    assert len(dated) == 3
    assert "IP data from another time: the IP database demo-ASN.mmdb was built 2022-11-27 (build_epoch), 552 days before the exposure" in r["answer"]
    assert "demo-City.mmdb was built 2022-11-27 (build_epoch), 552 days before" in r["terminal"]


def test_list_dates_come_from_their_content_or_are_said_to_be_missing() -> None:
    exposure = datetime(2022, 11, 28, 19, tzinfo=UTC)
    rows = [
        {"source": "list", "name": "googlebot.json", "built": datetime(2022, 11, 27, tzinfo=UTC), "date_basis": "creationTime"},
        {"source": "list", "name": "geofeed.csv", "built": datetime(2026, 1, 1, tzinfo=UTC), "date_basis": "file mtime"},
        {"source": "list", "name": "ip-ranges.json", "built": datetime(2024, 1, 1, tzinfo=UTC), "date_basis": "createDate"},
    ]
    out = source_date_limits(rows, exposure, exposure + timedelta(hours=5))
    assert [(lim.kind, lim.message.split(" ")[2]) for lim in out] == [
        ("source_undated", "geofeed.csv"), ("source_date", "ip-ranges.json")]
    assert "398 days after" in out[1].message


# --- bytes ---------------------------------------------------------------------------------------


def test_overlapping_ranges_show_distinct_bytes_and_bytes_transferred(write_case: Any, tmp_path: Path) -> None:
    half = SIZE // 2
    cdn = [
        cf_line("2022-11-28 20:00:00", "198.51.100.91", 206, half + 400, content_len=half, ranges=(0, half - 1)),
        cf_line("2022-11-28 20:00:05", "198.51.100.91", 206, half + 400, content_len=half, ranges=(0, half - 1)),
        cf_line("2022-11-28 20:00:09", "198.51.100.91", 206, 100_400, content_len=100_000, ranges=(half, half + 99_999)),
    ]
    r = run_cli(write_case, tmp_path, cdn=cdn)
    row = r["rows"]["198.51.100.91"]
    assert (row["outcome"], row["bytes_received"], row["file_bytes_covered"]) == ("partial", SIZE + 100_000, half + 100_000)
    assert row["coverage_pct"] == 60.0
    downloaders = section(r["page"], "downloaders")
    assert "share of the file; distinct bytes; bytes transferred" in downloaders
    assert "60.0 % of the file 600,000 B of the file 1,100,000 B transferred" in downloaders


def test_demo_report_labels_both_byte_counts(tmp_path: Path) -> None:
    from forensics.pipeline import run_case

    run_case(load_case(REPO / "sample_logs" / "case.toml"), tmp_path / "demo")
    page = (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    # 102.89.34.118 fetched overlapping ranges: 1,700,001 bytes sent for 1,200,001 distinct bytes
    assert "76.3 % of the file 1,200,001 B of the file 1,700,001 B transferred" in section(page, "downloaders")
    assert "Undated list: the list digitalocean-geofeed.csv carries no date of its own" in answer_box(page)

