"""The demo incident end to end: `run_case` on sample_logs/ against the golden downloader list
(reviewed by hand against sample_logs/SCENARIO.md) and against the generator's own intent
(sample_logs/expected_downloaders.csv)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from forensics.casefile import load_case
from forensics.pipeline import run_case

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CASE = REPO / "sample_logs" / "case.toml"
GOLDEN = REPO / "tests" / "golden" / "sample_logs_downloaders.csv"
# Nothing in the downloader list depends on the machine or the run; the case file's folder is
# the only path that could, and it is not a column. Kept as a list so a future volatile column
# (e.g. an enrichment database date) is scrubbed here, in one place.
VOLATILE_COLUMNS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    if not SAMPLE_CASE.exists():
        if os.environ.get("CI"):
            pytest.fail("sample_logs/case.toml is missing: `make sample-logs` writes it")
        pytest.skip("sample_logs/ not generated yet (`make sample-logs`)")
    out = tmp_path_factory.mktemp("demo")
    return run_case(load_case(SAMPLE_CASE), out), out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in r.items() if k not in VOLATILE_COLUMNS} for r in csv.DictReader(fh)]


def test_demo_matches_the_golden_downloader_list(demo_run) -> None:
    _, out = demo_run
    got = _rows(out / "downloaders.csv")
    golden = _rows(GOLDEN)
    assert len(got) == len(golden)
    for i, (g, want) in enumerate(zip(got, golden, strict=True), start=1):
        assert g == want, f"row {i} ({want.get('client_ip')}) differs"


def test_demo_matches_the_generators_intent(demo_run) -> None:
    _, out = demo_run
    intended = _rows(REPO / "sample_logs" / "expected_downloaders.csv")
    got = {r["client_ip"]: r for r in _rows(out / "downloaders.csv")}
    assert set(got) == {r["client"] for r in intended}
    for want in intended:
        row = got[want["client"]]
        assert (row["outcome"], row["first_seen"], row["last_seen"], row["requests"]) == (
            want["outcome"], want["first_request_utc"], want["last_request_utc"], want["requests"]
        ), want["actor"]


def test_demo_headline_and_manifest(demo_run) -> None:
    report, out = demo_run
    intended = _rows(REPO / "sample_logs" / "expected_downloaders.csv")
    expected = {o: sum(r["outcome"] == o for r in intended) for o in ("complete", "partial", "undetermined", "failed", "headers_only")}
    assert report.headline == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["investigation"]["headline"] == expected
    assert manifest["investigation"]["exposure"]["start"] == "2022-11-28T19:02:00Z"
    assert manifest["investigation"]["coverage_gaps"] == report.gaps
    # Never a CloudFront address, a forged X-Forwarded-For or a private address behind a proxy.
    listed = {r["client_ip"] for r in _rows(out / "downloaders.csv")}
    assert not {"203.0.113.77", "10.44.3.19"} & listed
    assert not any(ip.startswith(("130.176.", "64.252.")) for ip in listed)


def test_running_out_of_memory_is_said_and_the_same_command_then_gives_the_clean_answer(
    demo_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forensics import pipeline
    from forensics.errors import ResourceError

    _, clean = demo_run
    out = tmp_path / "out"
    with monkeypatch.context() as short:
        short.setattr(pipeline, "ANALYSIS_MEMORY_LIMIT", "2MB")
        short.setattr(pipeline, "WORKING_MEMORY_LIMIT", "2MB")
        with pytest.raises(ResourceError, match="ran out of the memory it may use") as raised:
            run_case(load_case(SAMPLE_CASE), out)
    assert raised.value.exit_code == 1 and "run the same command again" in str(raised.value)
    run_case(load_case(SAMPLE_CASE), out)
    assert (out / "downloaders.csv").read_bytes() == (clean / "downloaders.csv").read_bytes()


def test_the_buffer_pool_is_larger_only_where_python_holds_little(
    demo_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The investigation and the lists get the larger pool; enrichment and the follow-up, which
    hold frames of addresses in Python beside it, the smaller one (the run's peak memory)."""
    import duckdb

    from forensics import followup, pipeline
    from forensics.db import ANALYSIS_MEMORY_LIMIT, WORKING_MEMORY_LIMIT

    def said(limit: str) -> str:
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{limit}'")
        return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])

    seen: dict[str, str] = {}

    def watched(module, name: str) -> None:
        real = getattr(module, name)

        def call(con, *args, **kwargs):
            seen[name] = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
            return real(con, *args, **kwargs)

        monkeypatch.setattr(module, name, call)

    for module, name in ((pipeline, "investigate"), (pipeline, "enrich_downloaders"),
                         (followup, "run_follow_up"), (pipeline, "write_downloaders")):
        watched(module, name)
    _, clean = demo_run
    run_case(load_case(SAMPLE_CASE), tmp_path / "out")
    assert said(WORKING_MEMORY_LIMIT) != said(ANALYSIS_MEMORY_LIMIT)
    assert seen == {
        "investigate": said(WORKING_MEMORY_LIMIT), "enrich_downloaders": said(ANALYSIS_MEMORY_LIMIT),
        "run_follow_up": said(ANALYSIS_MEMORY_LIMIT), "write_downloaders": said(WORKING_MEMORY_LIMIT),
    }
    assert (tmp_path / "out" / "downloaders.csv").read_bytes() == (clean / "downloaders.csv").read_bytes()


def test_a_full_disk_is_said_with_what_to_do(tmp_path: Path) -> None:
    import errno

    import duckdb

    from forensics.db import machine_limits
    from forensics.errors import ResourceError

    for full in (OSError(errno.ENOSPC, "No space left on device"),
                 duckdb.IOException('Could not write file "x": No space left on device')):
        with pytest.raises(ResourceError, match="writing: the disk is full"), machine_limits(tmp_path, "writing"):
            raise full
    with pytest.raises(PermissionError), machine_limits(tmp_path, "writing"):  # other errors stay as they are
        raise PermissionError(errno.EACCES, "Permission denied")
