"""The case file (TOML): the one contract that says what to read and what to look for.

The file is validated by type with pydantic models, one per table, before anything is read:
unknown keys are errors (a typo such as `timzone` silently ignored would change the answer), and
values are never coerced (`rdns = "false"` is a mistake to report, not a true value; `trusted =
[10]` is not the network 0.0.0.10/32). Every error names the file, the key and what to write
instead. Paths are relative to the case file's folder.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from forensics.errors import CaseFileError
from forensics.inputs import MAX_LINE_BYTES

ROLES = ("cdn", "origin")
# A margin widens the examined period on both sides; past a month it is a typo (100000d) or a
# period that belongs in [exposure] start and end, where the report shows it as exposure.
MAX_MARGIN = timedelta(days=31)

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _problem(message: str, hint: str) -> PydanticCustomError:
    """A value error with what to do; the hint travels in the error's context."""
    return PydanticCustomError("case_value", message, {"hint": hint})


def _non_empty(value: str) -> str:
    if not value.strip():
        raise _problem("is empty", "write a value between the quotes")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _problem("is not a time zone", 'use an IANA name such as "UTC" or "America/New_York"') from None
    return value


def _duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise _problem("is not a duration", 'write it in quotes like "30m", "1h30m", "90s" or "0s"')
    m = _DURATION.match(value.strip())
    if not m or not any(m.groups()):
        raise _problem("is not a duration", 'write it like "30m", "1h30m", "90s" or "0s"')
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    if d > MAX_MARGIN.days:
        raise _problem(
            f"is longer than {MAX_MARGIN.days} days",
            "a margin is a little time around the exposure; move [exposure] start or end for a longer period",
        )
    total = timedelta(days=d, hours=h, minutes=mi, seconds=s)
    if total > MAX_MARGIN:
        raise _problem(
            f"is longer than {MAX_MARGIN.days} days",
            "a margin is a little time around the exposure; move [exposure] start or end for a longer period",
        )
    return total


def _instant(value: Any) -> datetime:
    example = 'write it like "2022-11-28T14:02:00-05:00", or "...Z" for UTC'
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise _problem("is not an RFC 3339 time", example) from None
    elif isinstance(value, (date, time)):
        raise _problem("is not a full time with a date and an offset", example)
    else:
        raise _problem("is not a time", example)
    if dt.tzinfo is None:
        raise _problem("has no UTC offset", 'add the offset, e.g. "2022-11-28T14:02:00-05:00" or "...Z" for UTC')
    return dt


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise _problem("is not a network", 'write networks like "130.176.0.0/16" or "2600:9000::/28"') from None


def _resource_path(value: str) -> str:
    if not value.startswith("/"):
        raise _problem("does not start with /", 'give the path as published, e.g. "/files/roster.xlsx"')
    return value


_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def decoded_resource_path(value: str) -> str:
    """The resource path with percent-escapes decoded once: a path copied from a browser's address
    bar (/files/logstash%5FOSCON.pdf) names the same file as the decoded one, and the matching
    compares decoded paths. A path without escapes is returned as written."""
    return unquote(value, errors="surrogateescape") if _PERCENT_ESCAPE.search(value) else value


def host_without_port(host: str) -> str:
    """A host without a port: www.example.gov:443 -> www.example.gov, [2001:db8::1]:443 ->
    [2001:db8::1]. ALB, Front Door and GCP log the port with the host, and a host copied from such
    a log names the same site as one without."""
    h = host.strip().lower()
    if h.startswith("["):
        return h.split("]", 1)[0] + "]"
    if h.count(":") == 1:
        return h.split(":", 1)[0]
    return h


Text = Annotated[StrictStr, AfterValidator(_non_empty)]
TimeZoneName = Annotated[StrictStr, AfterValidator(_zone)]
Instant = Annotated[datetime, BeforeValidator(_instant)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
Network = Annotated[StrictStr, AfterValidator(_network)]


class _Table(BaseModel):
    """A table of the case file: unknown keys are errors; values keep the type they are written in."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseInfo(_Table):
    name: Text | None = Field(default=None, description="the case's name", examples=['"Detention roster"'])
    timezone: TimeZoneName = Field(
        default="UTC", description="the zone times are shown in (IANA name)", examples=['"America/New_York"']
    )
    # Lines are never held whole past this length, so that no input can take memory without bound.
    max_line_bytes: Annotated[StrictInt, Field(ge=4096, le=1 << 30)] = Field(
        default=MAX_LINE_BYTES,
        description="lines longer than this many bytes are rejected as too long (4096 to 1073741824)",
        examples=["4194304"],
    )


class SourceSpec(_Table):
    path: Text = Field(
        description="a log file, a folder or a glob; with --engine spark also a URI (s3://, s3a://, hdfs://, "
        "abfss://, gs://, file://) read through Spark's file system layer",
        examples=['"logs/*.gz"', '"s3://bucket/cdn/*.gz"'],
    )
    format: Text = Field(
        default="auto", description="a name from `forensics formats`, or auto", examples=['"auto"']
    )
    role: Literal["cdn", "origin"] = Field(
        default="origin",
        description='"cdn" for a viewer-facing edge log, "origin" for the web server',
        examples=['"cdn"'],
    )
    timezone: TimeZoneName | None = Field(
        default=None, description="the zone of times logged without one", examples=['"America/New_York"']
    )
    fields: Text | None = Field(
        default=None,
        description="the W3C field list, for files that have no #Fields header",
        examples=['"date time c-ip cs-uri-stem"'],
    )


class Exposure(_Table):
    start: Instant = Field(description="when the file became public", examples=['"2022-11-28T14:02:00-05:00"'])
    end: Instant = Field(description="when it stopped being public", examples=['"2022-11-28T19:05:00-05:00"'])
    margin: Duration = Field(
        default=timedelta(minutes=30), description="time examined before start and after end", examples=['"30m"']
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> Exposure:
        if self.end <= self.start:
            raise _problem(
                f"end ({self.end.isoformat()}) is not after start ({self.start.isoformat()})",
                "check the two times and their offsets",
            )
        return self

    @property
    def examine_from(self) -> datetime:
        return self.start - self.margin

    @property
    def examine_to(self) -> datetime:
        return self.end + self.margin


class Resource(_Table):
    path: Annotated[Text, AfterValidator(_resource_path)] = Field(
        description="the leaked file's path as published", examples=['"/files/roster.xlsx"']
    )
    hosts: tuple[Annotated[Text, AfterValidator(str.lower)], ...] = Field(
        default=(), description="host names it was served on (empty: any)", examples=['["www.agency.gov"]']
    )
    size: Annotated[StrictInt, Field(gt=0)] | None = Field(
        default=None, description="the file's size in bytes", examples=["1572864"]
    )
    match_query: StrictBool = Field(
        default=False, description="whether a query string is part of the path", examples=["true"]
    )
    # What the case file wrote, when reading it changed the path or a host (said in the outputs).
    _written_path: str | None = PrivateAttr(default=None)
    _written_hosts: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _decode_and_strip(cls, data: Any, handler: Any) -> Resource:
        model: Resource = handler(data)
        path = decoded_resource_path(model.path)
        hosts = tuple(dict.fromkeys(host_without_port(h) for h in model.hosts))
        if path == model.path and hosts == model.hosts:
            return model
        out = model.model_copy(update={"path": path, "hosts": hosts})
        out._written_path = model.path if path != model.path else None
        out._written_hosts = tuple(h for h in model.hosts if host_without_port(h) != h)
        return out

    @property
    def reading_notes(self) -> list[str]:
        """How the case file's path and hosts were read, when that changed them."""
        notes = []
        if self._written_path:
            notes.append(
                f"the resource path {self._written_path} is percent-encoded; it was decoded to {self.path}, "
                "the file a server serves for it, and requests are matched against that"
            )
        for h in self._written_hosts:
            notes.append(f"the host {h} was compared without its port ({host_without_port(h)})")
        return notes


class Proxies(_Table):
    trusted: tuple[Network, ...] = Field(
        default=(), description="networks whose X-Forwarded-For entries are believed", examples=['["130.176.0.0/16"]']
    )
    allow_any: StrictBool = Field(
        default=False,
        description="accept 0.0.0.0/0 or ::/0 in trusted (every peer a trusted proxy)",
        examples=["true"],
    )

    @model_validator(mode="after")
    def _no_network_trusts_everyone(self) -> Proxies:
        # Trusting every address believes every client's own X-Forwarded-For: a client names any
        # address as itself, and every origin line becomes its own "unknown" downloader.
        anywhere = [n for n in self.trusted if ipaddress.ip_network(n).prefixlen == 0]
        if anywhere and not self.allow_any:
            raise _problem(
                f"trusts every address ({', '.join(anywhere)})",
                "list only the CDN's and load balancer's networks; set allow_any = true in [proxies] "
                "only if every peer of the origin really is a trusted proxy",
            )
        return self


class Enrich(_Table):
    databases: tuple[Text, ...] = Field(
        default=(), description="IP databases (.mmdb files or folders)", examples=['["geoip/GeoLite2-City.mmdb"]']
    )
    lists: Text | None = Field(
        default=None, description="the folder of published network lists", examples=['"lists"']
    )
    rdns: StrictBool = Field(
        default=False, description="forward-confirmed reverse DNS for crawler claims", examples=["true"]
    )
    # Made-up IP databases built from a seed CSV (the demo); every value is flagged demo_geography.
    demo_seed: Text | None = Field(
        default=None, description="a seed CSV for made-up demo databases", examples=['"seed.csv"']
    )


class SameDownloader(_Table):
    """The rules that suggest several addresses are one downloader (forensics/followup.py)."""

    ipv6_prefix: Annotated[StrictInt, Field(ge=16, le=128)] = Field(
        default=64,
        description="IPv6 addresses in one prefix of this many bits are suggested as one downloader "
        "(privacy addresses rotate inside a subscriber's /64)",
        examples=["64"],
    )
    agent_network_within: Duration = Field(
        default=timedelta(minutes=10),
        description="addresses of one network (ASN) sending the same user agent this close in time",
        examples=['"10m"'],
    )
    ranges_within: Duration = Field(
        default=timedelta(hours=1),
        description="byte ranges from two addresses that continue each other this close in time",
        examples=['"1h"'],
    )


class Agency(_Table):
    """Who is the agency itself, so that the spread of the link is told from the first outsider."""

    networks: tuple[Network, ...] = Field(
        default=(), description="the agency's own addresses: their downloads are not outsiders'",
        examples=['["4.31.166.0/24"]'],
    )
    sites: tuple[Annotated[Text, AfterValidator(str.lower)], ...] = Field(
        default=(), description="the agency's web sites besides the resources' hosts: referers from them are "
        "the agency's own pages", examples=['["intranet.agency.gov"]'],
    )


class CaseFile(_Table):
    """The whole file, table by table, as written."""

    case: CaseInfo = Field(default=CaseInfo(), description="the case")
    sources: tuple[SourceSpec, ...] = Field(
        description="the logs to read", examples=['[[sources]] tables with path = "logs/*.gz"'], min_length=1
    )
    exposure: Exposure | None = Field(default=None, description="when the file was public")
    resources: tuple[Resource, ...] = Field(default=(), description="the leaked files")
    proxies: Proxies = Field(default=Proxies(), description="trusted proxies")
    enrich: Enrich = Field(default=Enrich(), description="address enrichment")
    same_downloader: SameDownloader = Field(
        default=SameDownloader(), description="rules that suggest several addresses are one downloader"
    )
    agency: Agency = Field(default=Agency(), description="the agency's own addresses and sites")

    @model_validator(mode="after")
    def _resources_need_exposure(self) -> CaseFile:
        if self.resources and self.exposure is None:
            raise _problem("has [[resources]] but no [exposure]", "add [exposure] with start and end")
        return self


@dataclass(frozen=True)
class Case:
    """A validated case: the file's tables, where the file is and its hash."""

    path: Path | None
    name: str
    timezone: str
    sources: tuple[SourceSpec, ...]
    exposure: Exposure | None = None
    resources: tuple[Resource, ...] = ()
    proxies: Proxies = field(default_factory=Proxies)
    enrich: Enrich = field(default_factory=Enrich)
    same_downloader: SameDownloader = field(default_factory=SameDownloader)
    agency: Agency = field(default_factory=Agency)
    sha256: str | None = None
    max_line_bytes: int = MAX_LINE_BYTES

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        return self.proxies.trusted

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


def parse_duration(text: str, where: str, path: Path | None = None) -> timedelta:
    """Parse '30m', '1h30m', '90s', '2d' into a timedelta (at most MAX_MARGIN)."""
    try:
        return _duration(text)
    except PydanticCustomError as exc:
        raise CaseFileError(
            f"{where} = {_toml(text)} {exc.message()}", hint=(exc.context or {}).get("hint"), path=path
        ) from None


def check_timezone(name: str, where: str, path: Path | None = None) -> str:
    try:
        return _zone(name)
    except PydanticCustomError as exc:
        raise CaseFileError(
            f"{where} = {_toml(name)} {exc.message()}", hint=(exc.context or {}).get("hint"), path=path
        ) from None


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_case(path: str | Path) -> Case:
    """Read and validate a case file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise CaseFileError("case file not found", hint="give the path to your case.toml", path=p) from None
    except IsADirectoryError:
        raise CaseFileError("is a folder, not a case file", hint="give the path to your case.toml", path=p) from None
    except OSError as exc:
        raise CaseFileError(f"cannot read the case file: {exc.strerror}", path=p) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CaseFileError("the case file is not UTF-8 text", hint="save it as UTF-8", path=p) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's message ends with "(at line X, column Y)"; the attributes came later.
        message = str(exc)
        m = _TOML_POSITION.search(message)
        line = column = None
        if m:
            line, column = int(m.group(1)), int(m.group(2))
            message = message[: m.start()]
        raise CaseFileError(
            f"not valid TOML: {message}",
            hint='fix the syntax there; text goes in double quotes, e.g. name = "x"',
            path=p,
            line=line,
            column=column,
        ) from None
    return parse_case(data, p, hashlib.sha256(raw).hexdigest())


def parse_case(data: dict[str, Any], path: Path | None = None, sha256: str | None = None) -> Case:
    """Validate the parsed TOML of a case file; every problem found is reported at once."""
    try:
        model = CaseFile.model_validate(data)
    except ValidationError as exc:
        raise _case_error(exc, data, path) from None
    name = model.case.name or (path.stem if path else "case")
    return Case(
        path=path,
        name=name,
        timezone=model.case.timezone,
        sources=model.sources,
        exposure=model.exposure,
        resources=model.resources,
        proxies=model.proxies,
        enrich=model.enrich,
        same_downloader=model.same_downloader,
        agency=model.agency,
        sha256=sha256,
        max_line_bytes=model.case.max_line_bytes,
    )


# --- error messages in the case file's own words ---------------------------------------------

_ARRAYS_OF_TABLES = {"sources", "resources"}

# What a value of each pydantic type must look like, in TOML's words.
_EXPECTED = {
    "string_type": "must be text in double quotes",
    "bool_type": "must be true or false, without quotes",
    "int_type": "must be a whole number, without quotes",
    "greater_than": "must be more than 0",
    "tuple_type": "must be a list in square brackets",
    "too_short": "is empty",
    "model_type": "must be a table",
    "datetime_type": "must be a time",
}


def _toml(value: Any) -> str:
    """A value as it would be written in TOML, so the message quotes the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            return "an array of tables"
        inner = ", ".join(_toml(v) for v in value)
        return f"[{inner}]" if len(inner) < 60 else "[...]"
    return repr(value)


def _where(loc: tuple[int | str, ...]) -> str:
    """('sources', 0, 'role') -> '[[sources]] #1 role'; ('proxies', 'trusted', 2) -> '[proxies] trusted (item 3)'."""
    if not loc:
        return "the case file"
    head, rest = str(loc[0]), list(loc[1:])
    if head in _ARRAYS_OF_TABLES:
        where = f"[[{head}]]"
        if rest and isinstance(rest[0], int):
            where += f" #{int(rest.pop(0)) + 1}"
    else:
        where = f"[{head}]"
    for part in rest:
        where += f" (item {part + 1})" if isinstance(part, int) else f" {part}"
    return where


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the table a location is in (CaseFile for the top level)."""
    model: type[BaseModel] = CaseFile
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            return model
        inner = _table_type(info.annotation)
        if inner is None:
            return model
        model = inner
    return model


def _table_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _table_type(arg)
        if found is not None:
            return found
    return None


def _keys_of(model: type[BaseModel]) -> str:
    if model is CaseFile:
        return ", ".join(f"[[{k}]]" if k in _ARRAYS_OF_TABLES else f"[{k}]" for k in model.model_fields)
    return ", ".join(model.model_fields)


def _example(loc: tuple[int | str, ...]) -> str | None:
    """'write it like key = <example>' from the field's examples."""
    keys = tuple(p for p in loc if isinstance(p, str))
    if not keys:
        return None
    model = _model_at(keys[:-1])
    info = model.model_fields.get(keys[-1]) if model else None
    if info is None or not info.examples:
        return None
    if model is CaseFile and keys[-1] in _ARRAYS_OF_TABLES:
        return f"write {info.examples[0]}"
    return f"write it like {keys[-1]} = {info.examples[0]}"


def _present(data: Any, loc: tuple[int | str, ...]) -> bool:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _describe(err: Any, data: dict[str, Any]) -> tuple[str, str | None] | None:
    """One pydantic error as a sentence about the case file, and what to do."""
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _keys_of(_model_at(loc[:-1]) or CaseFile)
        if len(loc) == 1:
            return f"unknown section [{loc[0]}]", f"the sections are: {allowed}"
        return f"unknown key {str(loc[-1])!r} in {_where(loc[:-1])}", f"the keys allowed there are: {allowed}"
    if loc == ("sources",) and kind in ("missing", "too_short"):
        if data.get("sources"):  # the tables are there; their own errors say what is wrong
            return None
        return "no [[sources]] in the case file", 'add at least one [[sources]] table with path = "logs/*.gz"'
    if loc and loc[0] in _ARRAYS_OF_TABLES and len(loc) == 1 and kind in ("tuple_type", "list_type"):
        return f"{loc[0]} must be written as [[{loc[0]}]] tables", _example(loc)
    if kind == "missing":
        return f"{_where(loc[:-1])} has no {loc[-1]}", _example(loc)
    if kind == "case_value":
        if not loc:  # a rule across tables
            return f"the case file {err['msg']}", ctx.get("hint")
        if isinstance(loc[-1], int):  # an item of a list
            return f"{_where(loc[:-1])} has {_toml(err['input'])}, which {err['msg']}", ctx.get("hint")
        if len(loc) == 1:  # a rule across the keys of one table
            return f"{_where(loc)} {err['msg']}", ctx.get("hint")
        return f"{_where(loc)} = {_toml(err['input'])} {err['msg']}", ctx.get("hint")
    shown = f" = {_toml(err['input'])}" if _present(data, loc) else ""
    if kind == "model_type" and len(loc) == 1:
        return f"{loc[0]}{shown} must be a table", f"write [{loc[0]}] on a line of its own and its keys below it"
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", '"')
        return f"{_where(loc)}{shown} is not known", f"use {choices}: {_field_doc(loc)}"
    expected = _EXPECTED.get(kind, err["msg"])
    if loc and isinstance(loc[-1], int):
        return f"{_where(loc[:-1])} has {_toml(err['input'])}: each item {expected}", _example(loc)
    return f"{_where(loc)}{shown} {expected}", _example(loc)


def _field_doc(loc: tuple[int | str, ...]) -> str:
    keys = tuple(p for p in loc if isinstance(p, str))
    model = _model_at(keys[:-1])
    info = model.model_fields.get(keys[-1]) if model and keys else None
    return (info.description or "") if info else ""


def _case_error(exc: ValidationError, data: dict[str, Any], path: Path | None) -> CaseFileError:
    problems = []
    seen = set()
    for err in exc.errors():
        described = _describe(err, data)
        if described is not None and described not in seen:
            seen.add(described)
            problems.append(described)
    if not problems:  # cannot happen: a dropped error always has a sibling that says more
        problems.append((str(exc), None))
    if len(problems) == 1:
        message, hint = problems[0]
        return CaseFileError(message, hint=hint, path=path)
    lines = [f"{len(problems)} problems in the case file:"]
    lines += [f"  - {m}" + (f" ({h})" if h else "") for m, h in problems]
    return CaseFileError("\n".join(lines), path=path)
