from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

pytest_plugins = ("tests.emulator_support",)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "favor": ROOT / "stocks" / "favor" / "spring-sale-10-off-100.yaml",
    "busifavor": ROOT / "stocks" / "busifavor" / "member-day-latte-8-off.yaml",
}


def example(kind: str) -> dict[str, Any]:
    """The repository's example stock of `kind` as plain data (a fresh copy each time)."""
    data = YAML(typ="safe").load(EXAMPLES[kind].read_text(encoding="utf-8"))
    return copy.deepcopy(dict(data))


def dump(data: dict[str, Any]) -> str:
    """Block-style YAML, one key per line, so tests can predict line numbers."""
    y = YAML()
    y.default_flow_style = False
    y.width = 4096
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def line_of(text: str, path: tuple[str | int, ...]) -> int:
    """1-based line of the last key in `path`, found by indentation in block-style YAML."""
    lines = text.splitlines()
    start, indent = 0, -1
    line_no = 1
    for part in path:
        if isinstance(part, int):
            seen = -1
            for i in range(start, len(lines)):
                stripped = lines[i].lstrip()
                if stripped.startswith("- ") and len(lines[i]) - len(stripped) >= indent:
                    seen += 1
                    if seen == part:
                        start, line_no = i + 1, i + 1
                        break
            continue
        for i in range(start, len(lines)):
            stripped = lines[i].lstrip(" -")
            ind = len(lines[i]) - len(stripped)
            if stripped.startswith(f"{part}:") and ind > indent:
                start, indent, line_no = i + 1, ind, i + 1
                break
        else:
            raise AssertionError(f"{part!r} of {path} not in the text")
    return line_no


@pytest.fixture
def write_stock(tmp_path: Path) -> Callable[..., Path]:
    def write(data: dict[str, Any] | str, name: str = "stock.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = data if isinstance(data, str) else dump(data)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.long` tests (exhaustive, minutes) run only when RECONCILER_LONG=1."""
    import os

    if os.environ.get("RECONCILER_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="long run; set RECONCILER_LONG=1 to include it")
    for item in items:
        if item.get_closest_marker("long") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL DSN: RECONCILER_TEST_POSTGRES_DSN (what `.ci/run` starts), else a
    throwaway cluster started for this session; skipped with the reason when neither works."""
    import os

    from tests.pg_support import DSN_VARIABLE, throwaway_cluster

    given = os.environ.get(DSN_VARIABLE)
    if given:
        yield given
        return
    try:
        psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
        del psycopg
        cluster = throwaway_cluster()
        dsn = cluster.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL: {DSN_VARIABLE} is not set and none could be started ({exc})")
    try:
        yield dsn
    finally:
        cluster.__exit__(None, None, None)
