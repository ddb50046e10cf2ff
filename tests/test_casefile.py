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
        (BASE.replace('path = "logs"', 'path = "logs"\nrole = "edge"'), 'role = "edge" is not known'),
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


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (BASE + '[enrich]\nrdns = "false"\n', '[enrich] rdns = "false" must be true or false, without quotes (write it like rdns = true)'),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\n[[resources]]\npath = "/a.xlsx"\nmatch_query = "no"\n',
         '[[resources]] #1 match_query = "no" must be true or false'),
        (BASE + "[proxies]\ntrusted = [10]\n", "[proxies] trusted has 10: each item must be text in double quotes"),
        ('[case]\ntimezone = 5\n[[sources]]\npath = "logs"\n', "[case] timezone = 5 must be text in double quotes"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\n[[resources]]\npath = "/a"\nsize = "1572864"\n',
         '[[resources]] #1 size = "1572864" must be a whole number'),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\n[[resources]]\npath = "/a"\nsize = 0\n', "size = 0 must be more than 0"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\nmargin = "100000d"\n', '[exposure] margin = "100000d" is longer than 31 days'),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\nmargin = "745h"\n', "is longer than 31 days"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\nmargin = 30\n', "[exposure] margin = 30 is not a duration"),
        (BASE + "[exposure]\nstart = 2022-11-28T14:00:00\nend = 2022-11-28T15:00:00Z\n", "[exposure] start = 2022-11-28T14:00:00 has no UTC offset"),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\n', '[exposure] has no end (write it like end = "2022-11-28T19:05:00-05:00")'),
        (BASE + '[exposure]\nstart = "2022-11-28T14:00:00Z"\nend = "2022-11-28T15:00:00Z"\n[[resources]]\npath = "/a"\nhosts = "www.agency.gov"\n',
         '[[resources]] #1 hosts = "www.agency.gov" must be a list in square brackets'),
        ('[[sources]]\npath = "a"\n[[sources]]\nformat = "combined"\n', '[[sources]] #2 has no path (write it like path = "logs/*.gz")'),
        ('[sources]\npath = "a"\n', "sources must be written as [[sources]] tables"),
        ('case = "x"\n[[sources]]\npath = "a"\n', 'case = "x" must be a table'),
        (BASE + '[[resources]]\npath = "/a"\n', "has [[resources]] but no [exposure]"),
        (BASE + '[enrich]\nlists = ""\n', '[enrich] lists = "" is empty'),
    ],
)
def test_values_keep_their_type(tmp_path, text, needle):
    """A value of the wrong type is an error naming the key, never coerced (a quoted "false" is not false)."""
    with pytest.raises(CaseFileError) as exc:
        load_case(write(tmp_path, text))
    assert needle in str(exc.value)
    assert str(exc.value).startswith(str(tmp_path / "case.toml") + ": ")


def test_every_problem_is_reported_at_once(tmp_path):
    text = '[case]\ntimezone = "Mars/Olympus"\n[[sources]]\npath = "a"\nrole = "edge"\n[enrich]\nrdns = "yes"\n'
    with pytest.raises(CaseFileError) as exc:
        load_case(write(tmp_path, text))
    lines = str(exc.value).splitlines()
    assert lines[0].endswith("3 problems in the case file:")
    assert [ln.split(" = ")[0] for ln in lines[1:]] == ["  - [case] timezone", "  - [[sources]] #1 role", "  - [enrich] rdns"]


def test_toml_syntax_error_gives_line_and_column(tmp_path):
    with pytest.raises(CaseFileError) as exc:
        load_case(write(tmp_path, '[case]\nname = "x"\ntimezone = UTC\n'))
    assert str(exc.value).startswith(f"{tmp_path / 'case.toml'}:3:12: not valid TOML: Invalid value")
    assert exc.value.line == 3 and exc.value.column == 12


def test_typed_values_are_kept(tmp_path):
    case = load_case(
        write(
            tmp_path,
            BASE + '[exposure]\nstart = 2022-11-28T14:00:00-05:00\nend = "2022-11-28T20:00:00Z"\nmargin = "31d"\n'
            '[[resources]]\npath = "/a"\nsize = 10\nmatch_query = true\n[enrich]\nrdns = true\n',
        )
    )
    assert case.exposure is not None and case.exposure.margin == timedelta(days=31)
    assert case.exposure.start == datetime(2022, 11, 28, 19, tzinfo=UTC)
    assert case.resources[0].match_query is True and case.resources[0].size == 10
    assert case.enrich.rdns is True


def test_every_key_documents_itself():
    """Each key has a description and an example, which the error messages quote."""
    from forensics.casefile import (
        Agency,
        CaseFile,
        CaseInfo,
        Enrich,
        Exposure,
        Proxies,
        Resource,
        SameDownloader,
        SourceSpec,
    )

    for model in (CaseFile, CaseInfo, SourceSpec, Exposure, Resource, Proxies, Enrich, SameDownloader, Agency):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"
            if model is not CaseFile or name == "sources":
                assert info.examples, f"{model.__name__}.{name}"
