"""The list files are the text Python's csv.writer (with cell_text) and json.dumps write, generated
column-wise: the same bytes on awkward and on generated values."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics import listfiles
from forensics.listfiles import cell_text, iso_utc, write_csv, write_json_records


def _reference_csv(frame: pl.DataFrame, path: Path) -> bytes:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(frame.columns)
        for row in frame.iter_rows():
            writer.writerow([cell_text(v) for v in row])
    return path.read_bytes()


def _reference_json(frame: pl.DataFrame) -> bytes:
    records = [{k: iso_utc(v) if isinstance(v, datetime) else v for k, v in r.items()}
               for r in frame.iter_rows(named=True)]
    return (json.dumps(records, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _assert_same(frame: pl.DataFrame, tmp_path: Path, json_too: bool = True) -> None:
    """The files are csv.writer's and json.dumps' bytes, with values made per value and per
    distinct value (each way for every column that has both)."""
    assert write_csv(frame, tmp_path / "fast.csv").read_bytes() == _reference_csv(frame, tmp_path / "plain.csv")
    if json_too:
        reference = _reference_json(frame)
        for share in (0.0, 1.0):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(listfiles, "DISTINCT_SHARE", share)
                written = write_json_records(frame, tmp_path / "fast.json", rows_at_once=3).read_bytes()
            assert written == reference, share


AWKWARD = ["a\x00b", "=1+1", "-2", "@x", "\tx", "\rx", "a,b", 'say "hi"', "line\nbreak", "cr\rx", "é\u202e",
           "back\\slash", "", None, "\x08\x0c\x1f", "plain"]


def test_awkward_values_are_written_as_csv_writer_and_json_dumps_write_them(tmp_path: Path) -> None:
    t = datetime(2022, 11, 28, 19, 5, 1, 250_000, tzinfo=UTC)
    n = len(AWKWARD)
    frame = pl.DataFrame({
        "text": AWKWARD,
        "count": [2**53, -5, -(2**60), 0, None, *range(n - 5)],
        "share": [float("nan"), float("inf"), -float("inf"), 0.1 + 0.2, 1e20, 1e-7, None, 100.0, -0.0, 1 / 3,
                  *[2.5] * (n - 10)],
        "flag": [True, False, None, True] * (n // 4),
        "statuses": [[200, None], [], None, [-206]] * (n // 4),
        "agents": [["a", None, "\x07"], [], None, ['=x, "y"']] * (n // 4),
        "referers": pl.Series([[None], [], None, [None, None]] * (n // 4), dtype=pl.List(pl.Null)),
        "first_seen": [t, None, t + timedelta(microseconds=1), datetime(999, 1, 1, tzinfo=UTC),
                       datetime(1, 1, 1, tzinfo=UTC), *[t.replace(microsecond=0)] * (n - 5)],
        "asn": [None] * n,
        "small": pl.Series([1] * n, dtype=pl.UInt8),
        "ratio": pl.Series([0.1] * n, dtype=pl.Float32),
        "verified": [[True], None] * (n // 2),
    })
    _assert_same(frame, tmp_path)
    for name in frame.columns:  # one column: a row of one empty cell is written ""
        _assert_same(frame.select(name), tmp_path)
    for rows in (0, 1):
        _assert_same(frame.head(rows), tmp_path)
    _assert_same(pl.DataFrame(), tmp_path)
    # Types JSON has no rule for stay as json.dumps leaves them; CSV writes their text.
    _assert_same(pl.DataFrame({"day": [date(2022, 1, 1), None], "amount": [Decimal("-1.5"), None]}), tmp_path,
                 json_too=False)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=10)), min_size=0, max_size=10),
    numbers=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=10, max_size=10),
    shares=st.lists(st.one_of(st.none(), st.floats()), min_size=10, max_size=10),
    times=st.lists(st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))), min_size=10, max_size=10),
)
def test_any_values_are_written_as_csv_writer_and_json_dumps_write_them(
    tmp_path: Path, texts: list[str | None], numbers: list[int | None], shares: list[float | None],
    times: list[datetime | None],
) -> None:
    n = len(texts)
    # Polars strings are UTF-8: a lone surrogate cannot reach the writer.
    texts = [None if t is None else t.encode("utf-8", "replace").decode("utf-8") for t in texts]
    frame = pl.DataFrame({
        "text": pl.Series(texts, dtype=pl.String),
        "count": pl.Series(numbers[:n], dtype=pl.Int64),
        "share": pl.Series(shares[:n], dtype=pl.Float64),
        "seen": pl.Series(times[:n], dtype=pl.Datetime("us", "UTC")),
        "agents": pl.Series([[t, None] for t in texts], dtype=pl.List(pl.String)),
    })
    _assert_same(frame, tmp_path)


def test_a_list_read_from_parquet_a_few_rows_at_a_time_gives_the_same_files(tmp_path: Path, monkeypatch) -> None:
    t = datetime(2022, 11, 28, 19, 5, 1, 250_000, tzinfo=UTC)
    frame = pl.DataFrame({
        "client_ip": [f"192.0.2.{i}" for i in range(10)],
        "first_seen": [t + timedelta(seconds=i) for i in range(10)],
        "user_agents": [["curl/8", f'say "{i}"'] for i in range(10)],
        "requests": list(range(10)),
    })
    frame.write_parquet(tmp_path / "list.parquet")
    monkeypatch.setattr(listfiles, "BLOCK_ROWS", 3)
    monkeypatch.setattr(listfiles, "CSV_BLOCK_ROWS", 3)
    listed = pl.scan_parquet(tmp_path / "list.parquet")
    assert write_csv(listed, tmp_path / "lazy.csv").read_bytes() == _reference_csv(frame, tmp_path / "plain.csv")
    assert write_json_records(listed, tmp_path / "lazy.json", rows_at_once=4).read_bytes() == _reference_json(frame)


def test_blocks_made_ahead_on_threads_come_back_in_order_and_no_more_are_held_than_allowed() -> None:
    import threading
    import time

    from forensics.listfiles import made_in_order

    running = 0
    most = 0
    lock = threading.Lock()

    def make(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02 if i % 2 == 0 else 0.0)  # the later block of each pair is done first
        with lock:
            running -= 1
        return i * i

    assert list(made_in_order(make, range(12), ahead=3)) == [i * i for i in range(12)]
    assert 1 < most <= 3
    assert list(made_in_order(make, [], ahead=2)) == []


def test_a_block_that_fails_stops_the_writing_with_its_error() -> None:
    from forensics.listfiles import made_in_order

    made: list[int] = []

    def make(i: int) -> int:
        if i == 3:
            raise ValueError("block 3")
        made.append(i)
        return i

    got = []
    try:
        for value in made_in_order(make, range(100), ahead=2):
            got.append(value)
    except ValueError as error:
        assert str(error) == "block 3"
    else:
        raise AssertionError("the error was lost")
    assert got == [0, 1, 2]
    assert max(made) < 10  # nothing runs far ahead of the writer


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    import pytest

    from forensics.listfiles import replaced_whole

    path = tmp_path / "list.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), replaced_whole(path) as partial:
        partial.write_text("half of the n")
        raise RuntimeError("stopped while writing")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["list.csv"]
    with replaced_whole(path) as partial:
        partial.write_text("new\n")
        assert path.read_text() == "old\n"
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["list.csv"]
