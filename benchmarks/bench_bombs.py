"""`make bench-bombs`: peak memory of `forensics ingest` on hostile inputs, beside the 300 MB target.

Builds, streaming into a temporary folder (nothing is committed or kept):
  1. a gzip bomb: about 1 MB of gzip holding 1 GiB of NUL bytes (zero-filled blocks, as a file
     system leaves them after an unclean shutdown, at the scale of an attack);
  2. a 512 MiB file of "A" without a newline (one giant line);
each next to a small valid combined log in the same source, and ingests each case in a fresh
process, printing the peak RSS, the seconds and what the manifest says about the bomb file.
Not a test: numbers vary by machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

FORENSICS = str(Path(sys.executable).with_name("forensics"))
TARGET_MB = 300
MIB = 1 << 20
OK_LINES = "".join(
    f'192.0.2.{i} - - [28/Nov/2022:14:0{i}:00 -0500] "GET /leak.pdf HTTP/1.1" 200 1024 "-" "curl/8"\n'
    for i in range(1, 6)
)


def gzip_of_nuls(path: Path, gib: int = 1) -> None:
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    with open(path, "wb") as out:
        for _ in range(gib * 1024):
            out.write(co.compress(zeros))
        out.write(co.flush())


def one_giant_line(path: Path, mib: int = 512) -> None:
    block = b"A" * MIB
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(block)


def ingest_peak(case: Path, out: Path) -> tuple[float, float, int]:
    """Seconds, peak RSS in MB and exit code of `forensics ingest` in a fresh interpreter."""
    rss_file = out.parent / f"{out.name}.rss"
    code = (
        "import resource,subprocess,sys;"
        f"r=subprocess.run([{FORENSICS!r},'ingest',{str(case)!r},'--out',{str(out)!r},'-q']);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode, file=sys.stderr)"
    )
    start = time.perf_counter()
    with open(rss_file, "w") as err:
        subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=err, check=True)
    secs = time.perf_counter() - start
    rss_kib, rc = rss_file.read_text().split()[-2:]
    return secs, int(rss_kib) / 1024, int(rc)


def main() -> None:
    bombs = {
        "gzip: 1 GiB of NUL in ~1 MB": ("bomb.log.gz", gzip_of_nuls),
        "512 MiB of 'A', no newline": ("giant.log", one_giant_line),
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="forensics-bombs-", dir=os.environ.get("BENCH_DIR")) as tmp:
        for i, (label, (name, build)) in enumerate(bombs.items()):
            folder = Path(tmp) / f"case{i}"
            (folder / "logs").mkdir(parents=True)
            print(f"building {label} ...", flush=True)
            build(folder / "logs" / name)
            (folder / "logs" / "ok.log").write_text(OK_LINES)
            case = folder / "case.toml"
            case.write_text('[case]\nname = "bomb"\n\n[[sources]]\npath = "logs/*"\nformat = "combined"\n')
            size = (folder / "logs" / name).stat().st_size
            secs, peak, rc = ingest_peak(case, folder / "out")
            said = "-"
            manifest = folder / "out" / "manifest.json"
            if rc == 0 and manifest.exists():
                src = next(s for s in json.loads(manifest.read_text())["sources"] if s["path"].endswith(name))
                said = (
                    f"{src['lines_read']} lines read, {src['lines_rejected']} rejected, "
                    f"{src['lines_skipped']} skipped; note: {src['note'] or '-'}"
                )
            rows.append((label, size, secs, peak, rc, said))
    print(f"\n{'bomb':<30} {'file':>10} {'seconds':>8} {'peak RSS':>9} {'target':>7} {'exit':>5}")
    for label, size, secs, peak, rc, _ in rows:
        verdict = "ok" if peak <= TARGET_MB else "OVER"
        print(f"{label:<30} {size / 1e6:>7.1f} MB {secs:>8.1f} {peak:>6.0f} MB {TARGET_MB:>4} MB {rc:>5}  {verdict}")
    for label, *_, said in rows:
        print(f"  {label}: {said}")


if __name__ == "__main__":
    main()
