"""Log format definitions: one TOML file per format in this folder, read by one reader per family.

A definition names its family (text, w3c, json), the spec it follows, how to read a line (a
layout for text formats, a field map for W3C and JSON), its time-zone policy, its cache-status mapping and
real sample lines with the records they must give. Adding a format of an existing family is a new
TOML file and a sample; no Python changes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from forensics.errors import FormatError

FAMILIES = ("text", "w3c", "json")
TIMEZONE_POLICIES = ("offset", "utc", "source")


@dataclass(frozen=True)
class Sample:
    """A line the format must read, with the record it must give (`extra.<key>` names a value
    kept in extra), or `reject` for a line it must refuse. `source` says where the line comes
    from (a documentation page or a test suite, or that it was written to a documented layout)
    and `license` under which terms."""

    line: str
    expect: dict[str, Any]
    reject: bool = False
    source: str | None = None
    license: str | None = None


_SAMPLE_KEYS = {"line", "expect", "reject", "source", "license"}


@dataclass(frozen=True)
class FormatDef:
    name: str
    family: str
    title: str
    spec: str
    description: str
    timezone: str = "offset"
    # text family
    dialect: str = "apache"
    layouts: tuple[str, ...] = ()
    trailing: bool = False
    # w3c family
    delimiter: str = " "
    fields: dict[str, str] = field(default_factory=dict)
    default_fields: str | None = None
    # Other field lists the format's writers use by default (IIS versions, "all fields"): a file
    # without a #Fields header is read with the list whose field count and values fit its lines.
    headerless_fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    detect_fields: tuple[str, ...] = ()
    detect_software: str | None = None
    decode: dict[str, str] = field(default_factory=dict)
    # w3c without a header (CloudFront real-time): detection tries default_fields on tab-separated
    # lines
    detect_headerless: bool = False
    # json family: `fields` maps dotted key paths to "target[:kind]" (several paths may feed one
    # target: the first present wins); `identity` are the keys every record of the format has
    # ("a|b" = either), `required` the keys an access record must have; `access` says which
    # records are access records ({key, prefix | values}, or {key, present = true}: records that
    # have the key), others are skipped and counted by kind (the value of `access.kind`, or of
    # `access.key`);
    # `records_key` names the array of a records document; `line_prefix` is a regular
    # expression removed from the start of a line (docker-compose "caddy  | "); `repair` lists
    # repairs tried on lines that are not valid JSON ("unquoted_values": nginx's unquoted - or
    # lists for numeric variables).
    identity: tuple[str, ...] = ()
    access: dict[str, Any] = field(default_factory=dict)
    records_key: str | None = None
    line_prefix: str | None = None
    repair: tuple[str, ...] = ()
    # text family: reason given for lines matched by a layout variant holding a `reject` field
    reject_reasons: dict[str, str] = field(default_factory=dict)
    # all
    null: tuple[str, ...] = ("-",)
    cache: dict[str, str] = field(default_factory=dict)
    detect_priority: int = 0
    detect: bool = True
    samples: tuple[Sample, ...] = ()
    custom: bool = False

    def one_line(self) -> str:
        return f"{self.name:<22} {self.family:<5} {self.title} <{self.spec}>"


_KEYS = {
    "name", "family", "title", "spec", "description", "timezone", "dialect", "layouts",
    "trailing", "delimiter", "fields", "default_fields", "headerless_fields", "required", "detect_fields",
    "detect_software", "decode", "null", "cache", "detect_priority",
    "detect", "samples", "detect_headerless", "identity", "access", "records_key", "line_prefix",
    "repair", "reject_reasons",
}


def _from_toml(data: dict[str, Any], origin: str) -> FormatDef:
    unknown = set(data) - _KEYS
    if unknown:
        raise FormatError(f"unknown keys {sorted(unknown)} in format definition", path=origin)
    for key in ("name", "family", "title", "spec", "description"):
        if key not in data:
            raise FormatError(f"format definition has no {key}", path=origin)
    if data["family"] not in FAMILIES:
        raise FormatError(f"unknown family {data['family']!r}", path=origin)
    if data.get("timezone", "offset") not in TIMEZONE_POLICIES:
        raise FormatError(f"unknown timezone policy {data.get('timezone')!r}", path=origin)
    for s in data.get("samples", []):
        unknown_sample = set(s) - _SAMPLE_KEYS
        if unknown_sample or "line" not in s:
            raise FormatError(
                f"sample keys {sorted(unknown_sample) or ['line (missing)']} in format definition",
                path=origin,
            )
    samples = tuple(
        Sample(
            line=s["line"],
            expect=dict(s.get("expect", {})),
            reject=bool(s.get("reject", False)),
            source=s.get("source"),
            license=s.get("license"),
        )
        for s in data.get("samples", [])
    )
    return FormatDef(
        name=data["name"],
        family=data["family"],
        title=data["title"],
        spec=data["spec"],
        description=data["description"].strip(),
        timezone=data.get("timezone", "offset"),
        dialect=data.get("dialect", "apache"),
        layouts=tuple(data.get("layouts", ())),
        trailing=bool(data.get("trailing", False)),
        delimiter=data.get("delimiter", " "),
        fields=dict(data.get("fields", {})),
        default_fields=data.get("default_fields"),
        headerless_fields=tuple(data.get("headerless_fields", ())),
        required=tuple(data.get("required", ())),
        detect_fields=tuple(data.get("detect_fields", ())),
        detect_software=data.get("detect_software"),
        decode=dict(data.get("decode", {})),
        null=tuple(data.get("null", ("-",))),
        cache={k.lower(): v for k, v in data.get("cache", {}).items()},
        detect_priority=int(data.get("detect_priority", 0)),
        detect=bool(data.get("detect", True)),
        samples=samples,
        detect_headerless=bool(data.get("detect_headerless", False)),
        identity=tuple(data.get("identity", ())),
        access=dict(data.get("access", {})),
        records_key=data.get("records_key"),
        line_prefix=data.get("line_prefix"),
        repair=tuple(data.get("repair", ())),
        reject_reasons=dict(data.get("reject_reasons", {})),
    )


@cache
def builtin_formats() -> dict[str, FormatDef]:
    out: dict[str, FormatDef] = {}
    folder = resources.files("forensics.formats")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        fmt = _from_toml(data, f"forensics/formats/{entry.name}")
        if fmt.name in out:
            raise FormatError(f"format {fmt.name!r} is defined twice", path=entry.name)
        out[fmt.name] = fmt
    return out


def custom_layout(spec: str) -> FormatDef:
    """`apache:<LogFormat string>` or `nginx:<log_format string>` as a one-off format."""
    dialect, _, layout = spec.partition(":")
    layout = layout.strip()
    if len(layout) >= 2 and layout[0] == layout[-1] == "'":
        layout = layout[1:-1]
    has_time = ("%t" in layout or ("%{" in layout and "}t" in layout)) if dialect == "apache" else (
        "$time_local" in layout or "$time_iso8601" in layout or "$msec" in layout
    )
    zone_less = dialect == "apache" and "}t" in layout and "%z" not in layout and "%t" not in layout
    return FormatDef(
        name=spec,
        family="text",
        title=f"custom {dialect} layout",
        spec="https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats"
        if dialect == "apache"
        else "https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format",
        description=f"Site-specific layout {layout!r}.",
        timezone="source" if zone_less else "offset",
        dialect=dialect,
        layouts=(layout,),
        detect=False,
        custom=True,
        null=("-",) if has_time or True else (),
    )


def get_format(name: str) -> FormatDef:
    if name.startswith(("apache:", "nginx:")):
        return custom_layout(name)
    formats = builtin_formats()
    if name not in formats:
        raise FormatError(
            f"unknown format {name!r}",
            hint="run `forensics formats` for the names, or give format = \"apache:<LogFormat>\" "
            "or \"nginx:<log_format>\" for a site's own layout",
        )
    return formats[name]
