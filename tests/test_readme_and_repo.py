"""The README a new user follows, and what the repository carries (issue 14, defects 8 and 9)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CPU_WHEEL = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
MACHINE_PATHS = tuple(f"/{d}/" for d in ("work", "root", "home"))  # built, so that this file holds none


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:bash|sh)\n(.*?)```", markdown, flags=re.S)


def section(markdown: str, title: str) -> str:
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


needs_git = pytest.mark.skipif(git("rev-parse", "--git-dir").returncode != 0, reason="not a git checkout")


# ---- defect 8: the README --------------------------------------------------------------------------------------
def test_the_two_commands_stay_on_top_and_match_ci():
    install, tests = code_blocks(README)[:2]
    assert README.index(install) < README.index("\n## ")  # before the first section
    assert "pip install torch==2.13.0 && pip install -e \".[dev]\" && chromalab compare" in install
    assert tests.strip() == ". .venv/bin/activate && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q torch==2.13.0\n" in ci and 'pip install -q -e ".[dev]"' in ci  # CI runs the same


def test_readme_says_how_to_get_the_cpu_wheel_on_an_ordinary_machine():
    blocks = code_blocks(README)
    assert any(b.strip() == CPU_WHEEL for b in blocks), blocks
    text = " ".join(README.split())
    assert "CUDA build" in text and "CPU index" in text


def test_colorize_section_starts_with_a_minimal_install():
    colorize = section(README, "Colorize your photos")
    first = code_blocks(colorize)[0]
    assert colorize.index(first) < colorize.index("chromalab colorize")
    assert CPU_WHEEL in first and "pip install ." in first
    assert "[dev]" not in first and " -e " not in first


# ---- defect 9: repository hygiene ------------------------------------------------------------------------------------
@needs_git
def test_no_profiler_output_is_tracked_and_new_output_is_ignored():
    tracked = git("ls-files").stdout.splitlines()
    assert not [f for f in tracked if "onnxruntime_profile_" in f or f.endswith(".prof")]
    for name in ("onnxruntime_profile__2026-11-26_08-04-56_194.json", "onnxruntime_profile__x.json", "run.prof"):
        assert git("check-ignore", "-q", "--no-index", name).returncode == 0, name


@needs_git
def test_provenance_notes_live_in_docs_without_machine_paths():
    tracked = git("ls-files").stdout.splitlines()
    assert not [f for f in tracked if f.startswith("configs/")]  # the root configs/ folder is gone
    notes = sorted((ROOT / "docs" / "provenance").glob("*.yaml"))
    assert [p.name for p in notes] == ["regression_model.yaml", "vivid_model.yaml"]
    assert (ROOT / "docs" / "provenance" / "default_model.md").is_file()  # the default ColorNet's note
    for p in [*notes, ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
              *sorted((ROOT / "docs" / "provenance").glob("*.md"))]:
        text = p.read_text()
        assert not [m for m in MACHINE_PATHS if m in text], p
        assert "`configs/default_model.yaml`" not in text and "`configs/vivid_model.yaml`" not in text, p


@needs_git
def test_no_tracked_file_holds_a_machine_path():
    """No absolute path of a development machine in any tracked text file (docs, results, code, configs)."""
    found = []
    for name in git("ls-files", "-z").stdout.split("\0"):
        p = ROOT / name
        if not name or not p.is_file():
            continue
        data = p.read_bytes()
        if b"\0" in data[:8192]:  # binary: weights, figures
            continue
        text = data.decode("utf-8", errors="replace")
        found += [f"{name}:{i}: {m}" for i, line in enumerate(text.splitlines(), 1) for m in MACHINE_PATHS
                  if m in line]
    assert not found, "\n".join(found)


def test_local_links_in_the_readme_and_docs_resolve():
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            assert (md.parent / target.split("#", 1)[0]).exists(), (md.name, target)
