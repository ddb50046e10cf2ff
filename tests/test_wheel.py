"""A wheel built from the repository works from any folder, as a user's `pip install .` would.

The wheel is built offline with the locked flit_core (`pip wheel --no-build-isolation`) and
installed with `--no-deps` into a fresh virtual environment that borrows the project's installed
dependencies through a .pth file (no network, a few seconds). Then the installed `forensics`
command runs the demo case from another folder: the named queries, formats and report template
must come from inside the installed package, not from the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str | Path], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    had_build = (REPO / "build").exists()
    res = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-q", "-w", tmp / "dist", REPO],
        cwd=tmp,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    wheels = list((tmp / "dist").glob("forensics-*.whl"))
    assert len(wheels) == 1, wheels
    # Building leaves nothing behind in the source tree.
    assert had_build or not (REPO / "build").exists()

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    res = _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", wheels[0]],
        cwd=tmp,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # The dependencies come from the project's environment, added after the install so that pip
    # never sees (or touches) the project's own editable install.
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip())
    (site / "_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def test_installed_package_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    res = _run([installed / "python", "-c", "import forensics; print(forensics.__file__)"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()).is_relative_to(installed.parent), res.stdout


def test_wheel_runs_the_demo_case_from_another_folder(installed: Path, tmp_path: Path) -> None:
    logs = tmp_path / "evidence"
    shutil.copytree(REPO / "sample_logs", logs, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    res = _run([installed / "forensics", "run", logs / "case.toml", "--out", "case-out", "--quiet"], cwd=elsewhere)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Who obtained the file: 22 complete, 7 partial, 4 tried and failed, 2 headers only" in res.stdout
    for name in ("report.html", "downloaders.csv", "downloaders.xlsx", "manifest.json", "case.duckdb"):
        assert (elsewhere / "case-out" / name).stat().st_size > 0, name

    res = _run([installed / "forensics", "queries"], cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert "client_activity (client_ip)" in res.stdout and "downloaders" in res.stdout

    res = _run([installed / "forensics", "query", "downloaders", "--case", "case-out", "-p", "outcome", "complete",
                "--format", "csv"], cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1 + 22

    res = _run([installed / "python", "-m", "forensics", "formats"], cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert "cloudfront" in res.stdout
