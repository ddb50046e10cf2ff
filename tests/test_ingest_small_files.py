"""Small files are parsed in batches (many files in one reader call, numbered back to their own
file and line). The rows, rejects, skipped counts and sources rows must be exactly those of
reading each file on its own, whatever the files hold."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

import forensics.ingest as ingest_mod
from forensics.casefile import load_case
from forensics.errors import InputError
from forensics.ingest import ingest
from tests.test_case_lifecycle import snapshot

COMBINED = '198.51.100.{a} - - [28/Nov/2022:14:{m:02d}:{s:02d} -0500] "GET /p{n} HTTP/1.1" 200 {n} "-" "ua {n}"'

# Kinds of line a text log may hold, each read differently (fast path, exact path, reject, skip).
TEXT_LINES = [
    lambda n: COMBINED.format(a=n % 250, m=n % 60, s=n % 60, n=n),
    lambda n: COMBINED.format(a=n % 250, m=n % 60, s=n % 60, n=n).replace('"ua ', '"ua \\"quoted\\" '),
    lambda n: "",
    lambda n: "   ",
    lambda n: f"not a log line {n}",
    lambda n: COMBINED.format(a=n % 250, m=n % 60, s=n % 60, n=n).replace('" 200 ', '" 2x0 '),
    lambda n: COMBINED.format(a=n % 250, m=n % 60, s=n % 60, n=n) + "\r",
    lambda n: COMBINED.format(a=n % 250, m=n % 60, s=n % 60, n=n).replace("/p", "/caf\udce9/p"),
    lambda n: "x" * 300,  # over the test's line limit
]

CF_FIELDS = (
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query"
)
CF_LINE = "2022-11-28\t14:{m:02d}:{s:02d}\tHEL51-P1\t{n}\t198.51.100.{a}\tGET\td3abc.cloudfront.net\t/p{n}\t200\t-\tua%20{n}\t-"
W3C_LINES = [
    lambda n: CF_LINE.format(m=n % 60, s=n % 60, n=n, a=n % 250),
    lambda n: CF_LINE.format(m=n % 60, s=n % 60, n=n, a=n % 250) + "\textra",
    lambda n: CF_LINE.format(m=n % 60, s=n % 60, n=n, a=n % 250).rsplit("\t", 3)[0],
    lambda n: "2022-11-28\tnot-a-time\tHEL51-P1\t1\t198.51.100.1\tGET\th\t/x\t200\t-\tua\t-",
    lambda n: "",
    lambda n: "#Version: 1.0",
    lambda n: CF_FIELDS,
    lambda n: "#GMT-Offset: -05:00",
    lambda n: "#GMT-Offset: +05:30",  # not a whole hour: the lines under it are rejected
]


def _body(rnd: random.Random, kinds: list, n_lines: int, first: int) -> str:
    # The first line reads, as a log of the named format does (a file whose first lines all
    # fail stops the run: tested below).
    rows = [kinds[0](first)] + [rnd.choice(kinds)(first + i) for i in range(1, n_lines)]
    return "\n".join(rows) + ("\n" if rnd.random() < 0.8 else "")


def _write(folder: Path, name: str, body: str, rnd: random.Random) -> None:
    data = body.encode("utf-8", "surrogateescape")
    if rnd.random() < 0.5:
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    else:
        (folder / name).write_bytes(data)


def _both_ways(tmp_path: Path, case: Path, monkeypatch: pytest.MonkeyPatch, **kw) -> tuple[dict, dict]:
    batched = ingest(load_case(case), tmp_path / "batched", **kw)
    monkeypatch.setattr(ingest_mod, "BATCH_FILES", 1)  # every file read on its own
    alone = ingest(load_case(case), tmp_path / "alone", **kw)
    assert len(batched.loaded) == len(alone.loaded)
    assert [r.reject_examples for r in batched.loaded] == [r.reject_examples for r in alone.loaded]
    return snapshot(tmp_path / "batched"), snapshot(tmp_path / "alone")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_text_files_read_in_batches_give_the_rows_of_files_read_alone(tmp_path, monkeypatch, seed):
    rnd = random.Random(seed)
    logs = tmp_path / "logs"
    logs.mkdir()
    # The first file is plain: its lines decide the format check at planning.
    (logs / "a000.log").write_text("\n".join(TEXT_LINES[0](n) for n in range(1, 21)) + "\n")
    for i in range(1, 40):
        _write(logs, f"a{i:03d}.log", _body(rnd, TEXT_LINES, rnd.randint(1, 30), 1000 * i), rnd)
    case = tmp_path / "case.toml"
    case.write_text('[case]\nname = "t"\n\n[[sources]]\npath = "logs"\nformat = "combined"\n')
    batched, alone = _both_ways(tmp_path, case, monkeypatch, max_line_bytes=200)
    assert batched["rejects"] and batched["skipped_lines"]  # the kinds of line were exercised
    assert batched == alone


@pytest.mark.parametrize("seed", [1, 2])
def test_w3c_files_read_in_batches_give_the_rows_of_files_read_alone(tmp_path, monkeypatch, seed):
    rnd = random.Random(seed)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "e000").write_text(CF_FIELDS + "\n" + "\n".join(W3C_LINES[0](n) for n in range(1, 11)) + "\n")
    for i in range(1, 30):
        # Some files have no header (read with the format's fields, with a note), some change
        # their #Fields half-way.
        head = rnd.choice(["#Version: 1.0\n" + CF_FIELDS + "\n", "", CF_FIELDS + " x-extra\n"])
        _write(logs, f"e{i:03d}", head + _body(rnd, W3C_LINES, rnd.randint(1, 20), 1000 * i), rnd)
    case = tmp_path / "case.toml"
    case.write_text('[case]\nname = "t"\n\n[[sources]]\npath = "logs"\nformat = "cloudfront"\n')
    batched, alone = _both_ways(tmp_path, case, monkeypatch)
    assert batched["rejects"] and any("no #Fields header" in str(s) for s in batched["sources"])
    assert batched == alone


def test_a_small_file_of_another_format_stops_the_run_naming_it(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(5):
        (logs / f"a{i}.log").write_text(COMBINED.format(a=i, m=i, s=i, n=i) + "\n")
    (logs / "b.log").write_text("#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
                                "2022-11-28 14:00:00 198.51.100.1 GET /x 200\n")
    case = tmp_path / "case.toml"
    case.write_text('[case]\nname = "t"\n\n[[sources]]\npath = "logs"\nformat = "combined"\n')
    with pytest.raises(InputError) as exc:
        ingest(load_case(case), tmp_path / "out")
    assert "b.log" in str(exc.value) and "as format 'combined'" in str(exc.value)
    assert "'iis'" in str(exc.value)
