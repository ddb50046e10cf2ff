"""Telling a file's format from its first lines.

W3C files say what they are in their directives (#Software, #Fields). JSON files (a first line
that opens an object or array, perhaps after a "service  | " prefix) are tried against every JSON
format, which tell themselves apart by the keys their records have. Lines that start with date
and time columns but have no #Fields header above them are tried against the W3C formats'
default field lists (IIS, CloudFront), and refused with a hint to give `fields` when none fits.
Tab-separated files without a header are tried against the W3C formats that have none
(CloudFront real-time). Text-line files
are tried against every text format; the format that reads the most lines exactly wins, and among equals
the more specific one (its `detect_priority`). When no format reads most of the lines, detection
stops and says which formats came close and how to name one in the case file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forensics.errors import DetectionError
from forensics.formats import FormatDef, builtin_formats
from forensics.readers import make_reader
from forensics.readers.jsonl import CUT_SHORT, NOT_JSON

SURE = 0.9
# A JSON line, possibly behind a docker-compose style "service  | " prefix or a syslog-style
# "<134>time host service[pid]: " prefix (Fastly's syslog endpoints).
_JSON_START = re.compile(
    r"^\s*(?:[\w.-]+\s+\|\s?|(?:<\d{1,3}>)?\S+ \S+ \S+\[\d+\]: )?(?:\{|\[\s*(?:[{\[]|$))"
)
# A W3C extended line: date and time columns first (IIS, CloudFront standard logs).
_W3C_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}[ \t]\d{2}:\d{2}:\d{2}(?:\.\d+)?[ \t]")


@dataclass(frozen=True)
class Detection:
    format: FormatDef
    score: float
    candidates: tuple[tuple[str, float], ...]


def score_format(fmt: FormatDef, lines: list[str], fields: str | None = None) -> float:
    """Share of the non-blank lines the format reads (lines kept only as trailing text count a
    little less, so that a format that names every field beats one that tolerates extras)."""
    data = [ln for ln in lines if ln.strip()]
    if not data:
        return 0.0
    reader = make_reader(fmt, "UTC", fields)
    result = reader.read_lines(1, data)
    # Skipped lines are the format's own non-requests (directives, blanks, a JSON format's
    # non-access records and document framing): they neither count for nor against it.
    n_data = len(data) - sum(result.skipped.values())
    # Lines the format recognises as another log of the same place (an NLB line in an ALB
    # bucket), lines that are not JSON at all, and the record a JSON document's first lines
    # leave open (detection sees only the head of the file) say nothing for or against it.
    if result.rejects.height:
        reasons = result.rejects.get_column("reason")
        neutral = (
            reasons.is_in([*fmt.reject_reasons.values(), CUT_SHORT])
            | reasons.str.starts_with(NOT_JSON)
        )
        n_data -= int(neutral.sum())
    if n_data <= 0:
        return 0.0
    parsed = result.requests.height
    trailing = 0
    if parsed and "extra" in result.requests.columns:
        trailing = int(
            result.requests.get_column("extra").str.contains('"trailing":', literal=True).sum() or 0
        )
    return min(1.0, max(0.0, (parsed - 0.01 * trailing) / n_data))


def detect_lines(lines: list[str], path: str = "<lines>") -> Detection:
    formats = [f for f in builtin_formats().values() if f.detect]
    directives = [ln for ln in lines if ln.startswith("#")]
    if directives:
        software = " ".join(ln for ln in directives if ln.startswith("#Software:"))
        fields = next((ln.split(":", 1)[1].split() for ln in directives if ln.startswith("#Fields:")), [])
        w3c = [f for f in formats if f.family == "w3c"]
        for f in sorted(w3c, key=lambda f: -f.detect_priority):
            if f.detect_fields and all(x in fields for x in f.detect_fields):
                return Detection(f, 1.0, ((f.name, 1.0),))
            if f.detect_software and f.detect_software in software:
                return Detection(f, 1.0, ((f.name, 1.0),))
        if fields:
            generic = next((f for f in w3c if f.name == "iis"), None)
            if generic is not None:
                return Detection(generic, score_format(generic, lines), (("iis", 1.0),))
    first = next((ln for ln in lines if ln.strip()), "")
    w3c_shaped = not directives and bool(_W3C_SHAPE.match(first))
    if w3c_shaped:
        # A W3C file without its #Fields header (lost, or exported without it): tried against
        # the field lists the formats' writers use by default.
        shaped = sorted(
            ((score_format(f, lines), f.detect_priority, f) for f in formats
             if f.family == "w3c" and f.default_fields and not f.detect_headerless),
            key=lambda t: (-round(t[0], 4), -t[1]),
        )
        if shaped and shaped[0][0] >= SURE:
            score, _, f = shaped[0]
            return Detection(f, score, tuple((g.name, round(s, 3)) for s, _, g in shaped if s > 0))
    if _JSON_START.match(first):
        candidates_of = [f for f in formats if f.family == "json"]
    else:
        # Without directives, W3C formats are tried only when they have a fixed default field
        # list and no header (CloudFront real-time); other headerless W3C files are read when
        # the case names the format (and its fields).
        headerless = [f for f in formats if f.family == "w3c" and f.detect_headerless]
        if "\t" in first:
            for f in headerless:
                score = score_format(f, lines)
                if score >= SURE:
                    return Detection(f, score, ((f.name, round(score, 3)),))
        candidates_of = [f for f in formats if f.family == "text"]
    scored = sorted(
        ((score_format(f, lines), f.detect_priority, f) for f in candidates_of),
        key=lambda t: (-round(t[0], 4), -t[1]),
    )
    candidates = tuple((f.name, round(s, 3)) for s, _, f in scored if s > 0)[:4]
    best_score, _, best = scored[0]
    if best_score < SURE and w3c_shaped:
        n_fields = len(first.rstrip("\r\n").split("\t" if "\t" in first else None))
        raise DetectionError(
            f"cannot tell the format from the first {len(lines)} lines: they look like W3C "
            f"extended log lines without a #Fields header (date and time first, {n_fields} "
            "fields), and no default field list of iis or cloudfront reads them",
            hint="name the format and the fields in the case file, e.g. format = \"iis\" and "
            "fields = \"date time s-ip cs-method ...\" (the #Fields line of another log of the "
            "same server, or the server's logging settings)",
            path=path,
        )
    if best_score < SURE:
        close = ", ".join(f"{n} ({s:.0%} of lines)" for n, s in candidates) or "none"
        raise DetectionError(
            f"cannot tell the format from the first {len(lines)} lines; closest: {close}",
            hint="name it in the case file, e.g. format = \"combined\", or give the server's own "
            "layout as format = \"apache:<LogFormat>\" / \"nginx:<log_format>\"; "
            "`forensics formats` lists the names",
            path=path,
        )
    return Detection(best, best_score, candidates)
