"""`forensics detect`: the format of each file and a few parsed rows, to check before loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forensics.casefile import SourceSpec
from forensics.errors import InputError
from forensics.ingest import resolve_format
from forensics.inputs import check_readable, head_lines, looks_binary, sniff_compression
from forensics.readers import make_reader


@dataclass
class FileDetection:
    path: str
    summary: str
    rows: list[str]


def detect_files(files: list[Path], fmt: str = "auto", rows: int = 3) -> list[FileDetection]:
    results = []
    for path in files:
        if not path.exists():
            raise InputError("no such file", hint="check the path", path=path)
        if path.is_dir():
            raise InputError("this is a folder", hint="give log files, e.g. logs/*.gz", path=path)
        check_readable(path)
        if path.stat().st_size == 0:
            results.append(FileDetection(str(path), "empty file", []))
            continue
        compression = sniff_compression(path)
        raw = head_lines(path, compression)
        if looks_binary(raw):
            raise InputError("this is a binary file, not a text log", path=path)
        lines = [b.decode("utf-8", "backslashreplace") for b in raw]
        spec = SourceSpec(path=str(path), format=fmt)
        found, detected = resolve_format(spec, path, lines)
        reader = make_reader(found, "UTC")
        res = reader.read_lines(1, lines)
        parsed = res.requests
        how = "detected" if detected else "as named"
        summary = (
            f"{found.name} ({how}; {compression}; {parsed.height} of the first {len(lines)} lines read"
            + (f", {res.rejects.height} rejected" if res.rejects.height else "")
            + ")"
        )
        shown = []
        for r in parsed.head(rows).iter_rows(named=True):
            ts = r["ts"].isoformat().replace("+00:00", "Z") if r["ts"] else "-"
            size = r["body_bytes"] if r["body_bytes"] is not None else r["total_bytes"]
            shown.append(
                f"line {r['line_no']}: {ts} {r['client_addr']} {r['method'] or '-'} "
                f"{r['path'] or '-'} {r['status']} {size}"
            )
        for ln, why in res.rejects.select("line_no", "reason").head(rows).rows():
            shown.append(f"line {ln}: rejected: {why}")
        shown.extend(f"note: {note}" for note in getattr(reader, "notes", []))
        results.append(FileDetection(str(path), summary, shown))
    return results
