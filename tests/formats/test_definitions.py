"""Every format definition's own sample lines give the records written beside them, on both the
exact path and (for text formats) the fast path."""

from __future__ import annotations

import json

import pytest

from forensics.formats import builtin_formats
from forensics.readers import make_reader

FORMATS = builtin_formats()
SAMPLES = [
    pytest.param(fmt, i, id=f"{name}-{i}")
    for name, fmt in sorted(FORMATS.items())
    for i in range(len(fmt.samples))
]


def test_every_format_has_samples_and_a_spec():
    for fmt in FORMATS.values():
        assert fmt.samples, f"{fmt.name} has no samples"
        assert fmt.spec.startswith("https://"), fmt.name
        assert fmt.description


def _check(row: dict, expect: dict) -> None:
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    for key, want in expect.items():
        got = extra.get(key.removeprefix("extra.")) if key.startswith("extra.") else row[key]
        if key == "ts":
            got = got.isoformat()
        assert got == want, f"{key}: {got!r} != {want!r}"


@pytest.mark.parametrize(("fmt", "i"), SAMPLES)
def test_sample_gives_expected_record(fmt, i):
    sample = fmt.samples[i]
    res = make_reader(fmt, None).read_lines(1, [sample.line])
    if sample.reject:
        assert res.rejects.height == 1
        return
    assert res.rejects.height == 0, res.rejects.to_dicts()
    assert res.requests.height == 1
    row = res.requests.row(0, named=True)
    assert row["ts"].tzinfo is not None and row["ts"].utcoffset().total_seconds() == 0
    _check(row, sample.expect)


@pytest.mark.parametrize(("fmt", "i"), [p for p in SAMPLES if p.values[0].family == "text"])
def test_fast_path_agrees_with_exact_path(fmt, i):
    sample = fmt.samples[i]
    reader = make_reader(fmt, None)
    chunk = (sample.line + "\n").encode()
    fast = reader.read_chunk(1, chunk)
    reader.fast_enabled = False
    exact = reader.read_chunk(1, chunk)
    assert fast.requests.to_dicts() == exact.requests.to_dicts()
    assert fast.rejects.to_dicts() == exact.rejects.to_dicts()
