"""The case file (TOML): the one contract that says what to read and what to look for.

Unknown keys are errors, because a typo such as `timzone` silently ignored would change the
answer. Paths are relative to the case file's folder.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from forensics.errors import CaseFileError

ROLES = ("cdn", "origin")


@dataclass(frozen=True)
class SourceSpec:
    path: str
    format: str = "auto"
    role: str = "origin"
    timezone: str | None = None
    fields: str | None = None  # W3C field list for files that have no #Fields header


@dataclass(frozen=True)
class Exposure:
    start: datetime
    end: datetime
    margin: timedelta

    @property
    def examine_from(self) -> datetime:
        return self.start - self.margin

    @property
    def examine_to(self) -> datetime:
        return self.end + self.margin


@dataclass(frozen=True)
class Resource:
    path: str
    hosts: tuple[str, ...] = ()
    size: int | None = None
    match_query: bool = False


@dataclass(frozen=True)
class Enrich:
    databases: tuple[str, ...] = ()
    lists: str | None = None
    rdns: bool = False
    # Made-up IP databases built from a seed CSV (the demo); every value is flagged demo_geography.
    demo_seed: str | None = None


@dataclass(frozen=True)
class Case:
    path: Path | None
    name: str
    timezone: str
    sources: tuple[SourceSpec, ...]
    exposure: Exposure | None = None
    resources: tuple[Resource, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    enrich: Enrich = field(default_factory=Enrich)
    sha256: str | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


_SCHEMA: dict[str, set[str]] = {
    "case": {"name", "timezone"},
    "sources": {"path", "format", "role", "timezone", "fields"},
    "exposure": {"start", "end", "margin"},
    "resources": {"path", "hosts", "size", "match_query"},
    "proxies": {"trusted"},
    "enrich": {"databases", "lists", "rdns", "demo_seed"},
}

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str, where: str, path: Path | None = None) -> timedelta:
    """Parse '30m', '1h30m', '90s', '2d' into a timedelta."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise CaseFileError(
            f"{where} = {text!r} is not a duration",
            hint="write it like \"30m\", \"1h30m\", \"90s\" or \"0s\"",
            path=path,
        )
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def check_timezone(name: str, where: str, path: Path | None = None) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CaseFileError(
            f"{where} = {name!r} is not a time zone",
            hint="use an IANA name such as \"UTC\" or \"America/New_York\"",
            path=path,
        ) from None
    return name


def _parse_instant(value: Any, where: str, path: Path | None) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise CaseFileError(
                f"{where} = {value!r} is not an RFC 3339 time",
                hint="write it like \"2022-11-28T14:02:00-05:00\"",
                path=path,
            ) from None
    else:
        raise CaseFileError(f"{where} must be a time", path=path)
    if dt.tzinfo is None:
        raise CaseFileError(
            f"{where} = {value!s} has no UTC offset",
            hint="add the offset, e.g. \"2022-11-28T14:02:00-05:00\" or \"...Z\" for UTC",
            path=path,
        )
    return dt


def _check_keys(table: dict[str, Any], section: str, where: str, path: Path | None) -> None:
    allowed = _SCHEMA[section]
    for key in table:
        if key not in allowed:
            close = sorted(allowed)
            raise CaseFileError(
                f"unknown key {key!r} in {where}",
                hint=f"the keys allowed there are: {', '.join(close)}",
                path=path,
            )


def _str(value: Any, where: str, path: Path | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CaseFileError(f"{where} must be a non-empty string", path=path)
    return value


def load_case(path: str | Path) -> Case:
    """Read and validate a case file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise CaseFileError(
            "case file not found", hint="give the path to your case.toml", path=p
        ) from None
    except OSError as exc:
        raise CaseFileError(f"cannot read the case file: {exc.strerror}", path=p) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CaseFileError("the case file is not UTF-8 text", path=p) from None
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        msg = str(exc).split(" (at line")[0]
        raise CaseFileError(
            f"not valid TOML: {msg}", hint="fix the syntax at that line", path=p, line=line
        ) from None
    return parse_case(data, p, hashlib.sha256(raw).hexdigest())


def parse_case(data: dict[str, Any], path: Path | None = None, sha256: str | None = None) -> Case:
    for key in data:
        if key not in _SCHEMA:
            raise CaseFileError(
                f"unknown section [{key}]",
                hint=f"the sections are: {', '.join('[' + s + ']' for s in _SCHEMA)}",
                path=path,
            )
    case_t = data.get("case", {})
    if not isinstance(case_t, dict):
        raise CaseFileError("[case] must be a table", path=path)
    _check_keys(case_t, "case", "[case]", path)
    name = case_t.get("name", path.stem if path else "case")
    tz = check_timezone(case_t.get("timezone", "UTC"), "[case] timezone", path)

    raw_sources = data.get("sources")
    if not raw_sources:
        raise CaseFileError(
            "no [[sources]] in the case file",
            hint="add at least one [[sources]] table with a path",
            path=path,
        )
    if not isinstance(raw_sources, list):
        raise CaseFileError("sources must be written as [[sources]] tables", path=path)
    sources = []
    for i, s in enumerate(raw_sources, 1):
        where = f"[[sources]] #{i}"
        _check_keys(s, "sources", where, path)
        if "path" not in s:
            raise CaseFileError(f"{where} has no path", hint="add path = \"logs/*.gz\"", path=path)
        role = s.get("role", "origin")
        if role not in ROLES:
            raise CaseFileError(
                f"{where} role = {role!r} is not known",
                hint="use \"cdn\" for a viewer-facing edge log or \"origin\" for the web server",
                path=path,
            )
        stz = s.get("timezone")
        if stz is not None:
            check_timezone(stz, f"{where} timezone", path)
        sources.append(
            SourceSpec(
                path=_str(s["path"], f"{where} path", path),
                format=_str(s.get("format", "auto"), f"{where} format", path),
                role=role,
                timezone=stz,
                fields=s.get("fields"),
            )
        )

    exposure = None
    if "exposure" in data:
        e = data["exposure"]
        _check_keys(e, "exposure", "[exposure]", path)
        for k in ("start", "end"):
            if k not in e:
                raise CaseFileError(
                    f"[exposure] has no {k}",
                    hint="give start and end as RFC 3339 times with an offset",
                    path=path,
                )
        start = _parse_instant(e["start"], "[exposure] start", path)
        end = _parse_instant(e["end"], "[exposure] end", path)
        if end <= start:
            raise CaseFileError(
                f"[exposure] end ({end.isoformat()}) is not after start ({start.isoformat()})",
                hint="check the two times and their offsets",
                path=path,
            )
        margin = parse_duration(e.get("margin", "30m"), "[exposure] margin", path)
        exposure = Exposure(start, end, margin)

    resources = []
    for i, r in enumerate(data.get("resources", []), 1):
        where = f"[[resources]] #{i}"
        _check_keys(r, "resources", where, path)
        if "path" not in r:
            raise CaseFileError(f"{where} has no path", path=path)
        rpath = _str(r["path"], f"{where} path", path)
        if not rpath.startswith("/"):
            raise CaseFileError(
                f"{where} path = {rpath!r} does not start with /",
                hint="give the path as published, e.g. \"/files/roster.xlsx\"",
                path=path,
            )
        size = r.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise CaseFileError(f"{where} size must be a positive number of bytes", path=path)
        hosts = r.get("hosts", [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise CaseFileError(f"{where} hosts must be a list of host names", path=path)
        resources.append(
            Resource(
                path=rpath,
                hosts=tuple(h.lower() for h in hosts),
                size=size,
                match_query=bool(r.get("match_query", False)),
            )
        )

    trusted: list[str] = []
    if "proxies" in data:
        _check_keys(data["proxies"], "proxies", "[proxies]", path)
        for net in data["proxies"].get("trusted", []):
            try:
                trusted.append(str(ipaddress.ip_network(net, strict=False)))
            except ValueError:
                raise CaseFileError(
                    f"[proxies] trusted has {net!r}, which is not a network",
                    hint="write networks like \"130.176.0.0/16\" or \"2600:9000::/28\"",
                    path=path,
                ) from None

    enrich = Enrich()
    if "enrich" in data:
        en = data["enrich"]
        _check_keys(en, "enrich", "[enrich]", path)
        enrich = Enrich(
            databases=tuple(en.get("databases", [])),
            lists=en.get("lists"),
            rdns=bool(en.get("rdns", False)),
            demo_seed=en.get("demo_seed"),
        )

    if exposure is None and resources:
        raise CaseFileError(
            "[[resources]] are given but [exposure] is not",
            hint="add [exposure] with start and end",
            path=path,
        )
    return Case(
        path=path,
        name=str(name),
        timezone=tz,
        sources=tuple(sources),
        exposure=exposure,
        resources=tuple(resources),
        trusted_proxies=tuple(trusted),
        enrich=enrich,
        sha256=sha256,
    )
