from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forensics.casefile import load_case, parse_duration
from forensics.errors import CaseFileError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "case.toml"
    p.write_text(text)
    return p


BASE = '[case]\nname = "x"\n\n[[sources]]\npath = "logs"\n'


def test_minimal_case_defaults(tmp_path):
    case = load_case(write(tmp_path, BASE))
    assert case.timezone == "UTC"
    assert case.sources[0].format == "auto"
    assert case.sources[0].role == "origin"
    assert case.exposure is None
    assert case.sha256 and len(case.sha256) == 64


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (BASE.replace('path = "logs"', 'path = "logs"\ntimzone = "UTC"'), "unknown key 'timzone'"),
        (BASE + "\n[exposur]\nstart = 1\n", "unknown section [exposur]"),
        ('[case]\nname = "x"\n', "no [[sources]]"),
        (BASE.replace('path = "logs"', 'path = "logs"\nrole = "edge"'), "role = 'edge'"),
        ('[case]\ntimezone = "Mars/Olympus"\n[[sources]]\npath="x"\n', "not a time zone"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00-05:00"\nend = "2022-11-28T13:00:00-05:00"\n', "is not after start"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00"\nend = "2022-11-28T15:00:00-05:00"\n', "has no UTC offset"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\nmargin = "half an hour"\n', "not a duration"),
        (BASE + '[proxies]\ntrusted = ["not-a-net"]\n', "not a network"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\n[[resources]]\npath = "x.xlsx"\n', "does not start with /"),
        ("[case\n", "not valid TOML"),
    ],
)
def test_case_file_errors_name_the_problem(tmp_path, text, needle):
    with pytest.raises(CaseFileError) as exc:
        load_case(write(tmp_path, text))
    assert needle in str(exc.value)
    assert str(tmp_path / "case.toml") in str(exc.value)


def test_missing_case_file(tmp_path):
    with pytest.raises(CaseFileError, match="case file not found"):
        load_case(tmp_path / "nope.toml")


def test_exposure_is_aware_and_margin_applies(tmp_path):
    case = load_case(
        write(
            tmp_path,
            BASE
            + '[exposure]\nstart = "2022-11-28T14:02:00-05:00"\nend = "2022-11-28T19:05:00-05:00"\n'
            + '[[resources]]\npath = "/a/b.xlsx"\nhosts = ["WWW.Agency.gov"]\n[proxies]\ntrusted = ["130.176.0.1/16"]\n',
        )
    )
    e = case.exposure
    assert e is not None
    assert e.start == datetime(2022, 11, 28, 19, 2, tzinfo=UTC)
    assert e.end == datetime(2022, 11, 29, 0, 5, tzinfo=UTC)
    assert e.margin == timedelta(minutes=30)
    assert e.examine_from == datetime(2022, 11, 28, 18, 32, tzinfo=UTC)
    assert case.resources[0].hosts == ("www.agency.gov",)
    assert case.trusted_proxies == ("130.176.0.0/16",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("1h30m", timedelta(minutes=90)), ("90s", timedelta(seconds=90)), ("2d", timedelta(days=2)), ("0s", timedelta(0))],
)
def test_durations(text, expected):
    assert parse_duration(text, "x") == expected
