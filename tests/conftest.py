"""Shared fixtures. Material from ../shared (real samples written by other projects, MaxMind test
databases) is read from there, never copied: a user's clone has no ../shared, so those tests skip;
in CI (CI set) a missing ../shared is a failure, not a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {path} is missing: CI must run with ../shared beside the clone")
        pytest.skip(f"{path} not found: ../shared is only beside the clone in CI")
    return path


@pytest.fixture
def write_case(tmp_path: Path):
    """Write log files and a case file into tmp_path; returns the case file's path."""

    def _write(sources: list[dict], extra: str = "", files: dict[str, bytes | str] | None = None) -> Path:
        for name, content in (files or {}).items():
            p = tmp_path / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content.encode() if isinstance(content, str) else content)
        lines = ['[case]', 'name = "test"', ""]
        for s in sources:
            lines.append("[[sources]]")
            for k, v in s.items():
                lines.append(f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) and "'" not in v and '"' not in v else f"{k} = '''{v}'''")
            lines.append("")
        case = tmp_path / "case.toml"
        case.write_text("\n".join(lines) + "\n" + extra)
        return case

    return _write
