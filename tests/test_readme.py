"""The README shows what `make demo` really prints.

The demo block is compared line by line with the output of the command the Makefile's demo
recipe runs (the same command line, from a folder laid out like the repository), followed by the
recipe's closing echo.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_demo_block() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```\n\$ make demo\n(.*?)```", readme, re.S)
    assert m, "README has no ```$ make demo``` block"
    return m.group(1).splitlines()


def _demo_recipe() -> tuple[list[str], str]:
    """The forensics command line and the closing echo of the Makefile's demo recipe."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    out_dir = re.search(r"^DEMO_OUT \?= (\S+)", makefile, re.M).group(1)  # type: ignore[union-attr]
    run = next(ln.strip() for ln in recipe.splitlines() if "/forensics run" in ln)
    run = run.replace("$(BIN)", ".venv/bin").replace("$(DEMO_OUT)", out_dir)
    echo = next(ln.strip() for ln in recipe.splitlines() if ln.strip().startswith("@echo"))
    echo = echo.removeprefix("@echo ").strip('"').replace("$(DEMO_OUT)", out_dir)
    return run.split(), echo


def test_readme_demo_output_is_what_make_demo_prints(tmp_path: Path) -> None:
    command, echo = _demo_recipe()
    shutil.copytree(REPO / "sample_logs", tmp_path / "sample_logs", ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run(
        [sys.executable, "-m", "forensics", *command[1:]],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stdout
    printed = [" ".join(command), *res.stdout.splitlines(), echo]
    assert _readme_demo_block() == printed
