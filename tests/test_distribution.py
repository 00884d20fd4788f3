"""The distribution name: every install line in the docs and workflows agrees with pyproject.toml.

`reconciler` on the package index is an unrelated project, so a copied `pip install reconciler`
would install a stranger's code into a job that holds payment keys. The command stays
`reconciler`; only the distribution has its own name.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / ".github/workflows").glob("*.yml")]
)

# `pip install`, `pip3 install`, `python -m pip install`, `uv pip install`, `pipx install`, then
# its arguments up to the end of the shell word list (a backtick, `&&`, `;`, `|`, `)` or `#`).
_INSTALL = re.compile(
    r"\b(?:pip3?|pipx) install((?:\s+(?:'[^'\n]*'|\"[^\"\n]*\"|[^\s`'\"|&;()#]+))*)"
)
_TAKES_VALUE = {
    "-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
    "-f", "--find-links", "-t", "--target", "--python", "--prefix", "--root",
}  # fmt: skip


def distribution() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    name = data["project"]["name"]
    assert isinstance(name, str)
    return name


def installed_names(line: str) -> list[str]:
    """The distribution names a line installs from the index; local paths and URLs are skipped
    (`pip install .` in this repository installs this project, whatever it is called)."""
    names: list[str] = []
    for match in _INSTALL.finditer(line):
        words = shlex.split(match.group(1))
        skip = False
        for word in words:
            if skip:
                skip = False
                continue
            if word in _TAKES_VALUE:
                skip = True
                continue
            if word.startswith("-"):
                continue
            if word.startswith((".", "/", "~")) or "://" in word or word.startswith("git+"):
                continue
            names.append(canonicalize_name(Requirement(word).name))
    return names


def install_lines() -> list[tuple[str, str]]:
    """Every (place, line) in the README, docs/*.md and the workflows that runs an install."""
    return [
        (f"{path.relative_to(ROOT)}:{number}", line)
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _INSTALL.search(line)
    ]


def test_the_distribution_is_not_the_bare_command_name() -> None:
    assert canonicalize_name(distribution()) != "reconciler"
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["scripts"] == {"reconciler": "reconciler.cli:entry_point"}


def test_every_install_line_names_the_distribution() -> None:
    want = canonicalize_name(distribution())
    lines = install_lines()
    named = [(place, line) for place, line in lines if installed_names(line)]
    # The README, docs/ci.md and each copyable workflow tell a stocks repository what to pin.
    places = {place.rsplit(":", 1)[0] for place, _ in named}
    assert {
        "README.md",
        "docs/ci.md",
        ".github/workflows/reconciler-apply.yml",
        ".github/workflows/reconciler-drift.yml",
        ".github/workflows/reconciler-plan.yml",
    } <= places
    wrong = [
        (place, line.strip())
        for place, line in named
        if any(name != want for name in installed_names(line))
    ]
    assert wrong == [], f"install lines that do not name {want}"


def test_no_line_installs_the_bare_name() -> None:
    bare = [
        (place, line.strip())
        for place, line in install_lines()
        if "reconciler" in installed_names(line)
    ]
    assert bare == []


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("pip install 'reconciler==0.1.0'", ["reconciler"]),
        ("`python -m pip install reconciler` and", ["reconciler"]),
        ("pip install --quiet -U Reconciler>=0.1", ["reconciler"]),
        (
            "run: python -m pip install --quiet 'wechatpay-stock-reconciler==0.1.0'",
            ["wechatpay-stock-reconciler"],
        ),
        (
            "# e.g. python -m pip install 'Wechatpay_Stock.Reconciler==0.1.0' (docs)",
            ["wechatpay-stock-reconciler"],
        ),
        (".venv/bin/pip install -q -e . && .venv/bin/reconciler demo", []),
        (".venv/bin/pip install -q -e '.[dev]' && .venv/bin/ruff check", []),
        ("pip install -r requirements.txt git+https://example.invalid/x.git@abc", []),
        ("pipx install reconciler", ["reconciler"]),
    ],
)
def test_the_checker_finds_what_a_line_installs(line: str, names: list[str]) -> None:
    assert installed_names(line) == names
