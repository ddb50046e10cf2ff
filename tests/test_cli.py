"""The CLI: every command has help with an example; bad input gives one clear line and a
non-zero exit, never a traceback."""

from __future__ import annotations

import gzip

import pytest
from typer.testing import CliRunner

from forensics.cli import app

runner = CliRunner()
LINE = '198.51.100.1 - - [28/Nov/2022:14:00:00 -0500] "GET / HTTP/1.1" 200 5 "-" "x"\n'


def test_formats_lists_each_format_with_its_spec():
    res = runner.invoke(app, ["formats"])
    assert res.exit_code == 0
    assert "nginx_main" in res.output and "cloudfront" in res.output
    assert all("https://" in ln for ln in res.output.strip().splitlines())


def test_ingest_and_detect(tmp_path):
    (tmp_path / "a.log.gz").write_bytes(gzip.compress(LINE.encode() * 3))
    (tmp_path / "case.toml").write_text('[[sources]]\npath = "a.log.gz"\n')
    res = runner.invoke(app, ["ingest", str(tmp_path / "case.toml"), "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    assert "3 requests" in res.output and "case.duckdb" in res.output
    assert "Loaded 1 file: 3 lines read" in res.output
    res = runner.invoke(app, ["detect", str(tmp_path / "a.log.gz")])
    assert res.exit_code == 0
    assert "combined (detected; gzip; 3 of the first 3 lines read)" in res.output


@pytest.mark.parametrize(
    ("case_text", "files", "needle"),
    [
        ('[[sources]]\npath = "nope.log"\n', {}, "no such file or directory"),
        ('[[sources]]\npath = "a.log"\nformat = "apache2"\n', {"a.log": LINE}, "unknown format 'apache2'"),
        ('[[sources]]\npath = "a.log"\nfromat = "combined"\n', {"a.log": LINE}, "unknown key 'fromat'"),
        ('[[sources]\npath = "a.log"\n', {"a.log": LINE}, "not valid TOML"),
        ('[[sources]]\npath = "b.bin"\n', {"b.bin": b"\x00\x01\x02" * 100}, "binary file"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, case_text, files, needle):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    (tmp_path / "case.toml").write_text(case_text)
    res = runner.invoke(app, ["ingest", str(tmp_path / "case.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert needle in res.output
    assert "Error:" in res.output


def test_detect_missing_file(tmp_path):
    res = runner.invoke(app, ["detect", str(tmp_path / "x.log")])
    assert res.exit_code == 1 and "no such file" in res.output and "Traceback" not in res.output


def test_messages_print_brackets_as_they_are(tmp_path):
    (tmp_path / "case.toml").write_text('[[sources]]\npath = "logs[bold]/a.log"\n')
    res = runner.invoke(app, ["ingest", str(tmp_path / "case.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "logs[bold]/a.log" in res.output


def test_lines_per_second_is_over_the_load_time(monkeypatch):
    """`run` prints the loading speed: lines over the time until the last file was read, not over
    the whole run with its investigation and report."""
    from forensics import cli

    clock = iter([100.0, 103.0, 250.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    bar = cli._Bar(enabled=False)  # starts at 100
    bar("file_done", {"path": "a.log"})  # last file read at 103
    assert bar.load_seconds() == 3.0
    fresh = cli._Bar(enabled=False)  # starts at 250; nothing loaded: the time so far
    monkeypatch.setattr(cli.time, "monotonic", lambda: 252.0)
    assert fresh.load_seconds() == 2.0


def test_detect_reports_every_file_and_fails_at_the_end(tmp_path):
    """One bad file does not hide the good ones before or after it; the exit code says one failed."""
    (tmp_path / "a.log").write_text(LINE.replace(" 5 ", " - "))
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "c.log.gz").write_bytes(gzip.compress(LINE.encode()))
    files = [str(tmp_path / n) for n in ("a.log", "b.bin", "missing.log", "c.log.gz")]
    res = runner.invoke(app, ["detect", *files])
    assert res.exit_code == 1
    assert "a.log: combined (detected; not compressed; 1 of the first 1 lines read)" in res.output
    assert "c.log.gz: combined (detected; gzip; 1 of the first 1 lines read)" in res.output
    assert "b.bin: this is a binary file" in res.output and "missing.log: no such file" in res.output
    assert "2 of 4 files" in res.output
    assert "None" not in res.output and "Traceback" not in res.output


def test_detect_shows_zone_less_times_as_logged(tmp_path):
    (tmp_path / "z.log").write_text('198.51.100.7 [2022-11-28 14:00:00] "GET /x HTTP/1.1" 200 -\n')
    res = runner.invoke(app, ["detect", "-f", 'apache:%h [%{%Y-%m-%d %H:%M:%S}t] "%r" %>s %b', str(tmp_path / "z.log")])
    assert res.exit_code == 0, res.output
    assert "line 1: 2022-11-28T14:00:00 198.51.100.7 GET /x 200 " in res.output
    assert "14:00:00Z" not in res.output and "None" not in res.output
    assert "times carry no zone" in res.output
