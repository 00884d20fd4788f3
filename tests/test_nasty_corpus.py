"""The nasty corpus: hand-written stock and project files that once broke, or could break, the
reader. Each is a regression case with its exact diagnostics in `tests/nasty/expected.json`.

- `tests/nasty/stocks/*.yaml` are read as stock files, `tests/nasty/project/*.yaml` as
  project files; each says what it tests in its first line (a comment), or, where the bytes
  cannot hold one, in the `purpose` of its expected.json entry.
- `generated/...` entries are built here, because they are large (up to 1 MiB).
- Every file is read within DEADLINE_SECONDS and twice with the same result.

After a deliberate change to a message position or code, rewrite the entry by hand; the
test prints the actual diagnostics in the same JSON shape when they differ. An entry's
diagnostic may also pin its whole `message`, for the messages that teach (what is wrong, and
the fix with the counted length or amount): then the message must be exactly that.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_project
from reconciler.diagnostics import Diagnostic
from reconciler.loader import load_stock_file
from tests.cli_invoke import invoke
from tests.conftest import EXAMPLES

NASTY = Path(__file__).resolve().parent / "nasty"
EXPECTED: dict[str, dict[str, Any]] = json.loads((NASTY / "expected.json").read_text("utf-8"))
DEADLINE_SECONDS = 2.0

GENERATED: dict[str, Callable[[], bytes]] = {
    "generated/too-large.yaml": lambda: b"a: " + b"x" * (1024 * 1024 - 2),
    "generated/deep-flow-50000.yaml": lambda: b"a: " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
    "generated/deep-dashes-30000.yaml": lambda: b"- " * 30_000 + b"x\n",
    "generated/flat-list-1mib.yaml": lambda: b"a: [" + b"1, " * 340_000 + b"1]\n",
    "generated/many-keys.yaml": lambda: "".join(f"k{i}: v\n" for i in range(100_000)).encode(),
}
SECRETS = {
    "project/secret-inline.yaml": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "project/secret-in-env.yaml": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "project/apiv3-key-inline.yaml": "Zx9Qk2Lm8Np4Rt6Vw1Yb3Cd5Fg7Hj0Ks",
    "project/apiv3-key-as-env-name.yaml": "Zx9Qk2Lm8Np4Rt6Vw1Yb3Cd5Fg7Hj0Ks",
}


def corpus_files() -> list[str]:
    return sorted(
        f"{folder}/{path.name}"
        for folder in ("stocks", "project")
        for path in (NASTY / folder).iterdir()
    )


def read(name: str) -> tuple[list[Diagnostic], float]:
    """The file's diagnostics and how long reading it took."""
    raw = GENERATED[name]() if name in GENERATED else (NASTY / name).read_bytes()
    start = time.perf_counter()
    if name.startswith("project/"):
        _, diagnostics = load_project(NASTY / name, name)
    else:
        _, diagnostics = load_stock_file(raw, name)
    return diagnostics, time.perf_counter() - start


def as_expected(
    diagnostics: list[Diagnostic], pinned: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The expected.json shape; with the message where the same entry of `pinned` has one."""
    out: list[dict[str, Any]] = []
    for i, d in enumerate(diagnostics):
        entry: dict[str, Any] = {
            "severity": d.severity.value,
            "code": d.code,
            "line": d.line,
            "col": d.col,
            "field": d.field,
        }
        if i < len(pinned) and "message" in pinned[i]:
            entry["message"] = d.message
        out.append(entry)
    return out


def test_every_file_has_an_expectation_and_a_purpose() -> None:
    files = corpus_files()
    assert len(files) >= 25
    assert sorted(set(EXPECTED) - set(GENERATED)) == files
    assert set(GENERATED) <= set(EXPECTED)
    for name in files:
        head = (NASTY / name).read_bytes()[:200]
        commented = head.removeprefix(b"\xef\xbb\xbf").startswith(b"# ")
        assert commented or EXPECTED[name].get("purpose"), f"{name}: say what it tests"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_diagnostics_are_exactly_the_expected_ones(name: str) -> None:
    diagnostics, seconds = read(name)
    actual = as_expected(diagnostics, EXPECTED[name]["diagnostics"])
    shown = "\n".join(json.dumps(d, ensure_ascii=False) for d in actual)
    assert actual == EXPECTED[name]["diagnostics"], f"{name} now gives:\n{shown}"
    assert seconds < DEADLINE_SECONDS, f"{name} took {seconds:.2f} s"
    assert [d.to_data() for d in read(name)[0]] == [d.to_data() for d in diagnostics]
    for d in diagnostics:
        assert "Traceback" not in d.message
        assert len(d.message) < 400, d.message  # values are quoted in part, never in full


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_a_pasted_secret_is_never_repeated(name: str) -> None:
    diagnostics, _ = read(name)
    assert diagnostics
    for d in diagnostics:
        assert SECRETS[name] not in d.message and "BEGIN" not in d.message, d.message


PINNED = {
    "stocks/tab-indent.yaml": "tab",
    "stocks/typo-key.yaml": "did you mean 'max_coupons_per_user' (required, and missing)",
    "stocks/name-too-long-chinese.yaml": "is 12 Chinese characters; at most 9",
    "stocks/name-too-long-mixed.yaml": "7 Chinese characters and 5 others",
    "stocks/combining-chars.yaml": "is 22 characters",
    "stocks/id-uppercase.yaml": "did you mean 'spring-sale'?",
    "stocks/money-in-yuan.yaml": "amounts are in 分 (fen), whole numbers: write 500 for ¥5.00",
    "stocks/amount-strict-range.yaml": "is 100 分 (¥1.00); some docs allow only more than ¥1.00",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_teaching_messages_are_pinned(name: str) -> None:
    """Finding 4 of issue 11: these messages say what is wrong and how to fix it, with the
    count or amount; expected.json pins each whole, and none may lose its pin."""
    pinned = [d["message"] for d in EXPECTED[name]["diagnostics"] if "message" in d]
    assert pinned and PINNED[name] in pinned[0]
    assert [d.message for d in read(name)[0]][: len(pinned)] == pinned


def test_merge_keys_merge_and_explicit_keys_win() -> None:
    base, _ = load_stock_file(EXAMPLES["favor"].read_bytes(), "favor.yaml")
    merged, diagnostics = load_stock_file((NASTY / "stocks/merge-key.yaml").read_bytes(), "m.yaml")
    assert base is not None and merged is not None and diagnostics == []
    rule = merged.stock.spec.stock_use_rule  # type: ignore[union-attr]
    assert (rule.max_coupons, rule.max_amount, rule.max_coupons_per_user) == (20000, 20000000, 2)


def test_times_stay_exactly_as_written() -> None:
    loaded, _ = load_stock_file(
        (NASTY / "stocks/date-unquoted-with-offset.yaml").read_bytes(), "d.yaml"
    )
    assert loaded is not None
    spec = loaded.stock.spec
    assert spec.available_begin_time == "2027-03-01T00:00:00+08:00"  # type: ignore[union-attr]
    assert spec.available_end_time == "2027-03-31T23:59:59Z"  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_validate_reports_the_whole_corpus(fmt: str) -> None:
    result = invoke(["validate", str(NASTY / "stocks"), "--format", fmt])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    if fmt == "json":
        doc = json.loads(result.stdout)
        seen = {(Path(d["file"]).name, d["code"], d["line"]) for d in doc["diagnostics"]}
        for name, entry in EXPECTED.items():
            if name.startswith("stocks/"):
                for d in entry["diagnostics"]:
                    assert (name.removeprefix("stocks/"), d["code"], d["line"]) in seen, (name, d)
    if fmt == "github":
        annotations = [line for line in result.stdout.splitlines() if line.startswith("::error")]
        assert 0 < len(annotations) <= 10
        assert all(
            re.match(r"::error file=[^,]+(,line=\d+,col=\d+)?,title=", a) for a in annotations
        )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    """A FIFO blocked validate forever, /dev/zero read until MemoryError, and a huge file was
    read whole before being refused: none of them is read now."""
    stocks = tmp_path / "stocks"
    stocks.mkdir()
    os.mkfifo(stocks / "fifo.yaml")
    (stocks / "zero.yaml").symlink_to("/dev/zero")
    (stocks / "broken.yaml").symlink_to(tmp_path / "nowhere")
    with (stocks / "sparse.yaml").open("wb") as f:
        f.truncate(8 * 1024**3)  # 8 GiB, sparse: reading it whole would take minutes
    start = time.perf_counter()
    result = invoke(["validate", str(stocks), "--format", "json"])
    assert time.perf_counter() - start < DEADLINE_SECONDS * 5
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    found = {
        Path(d["file"]).name: (d["code"], d["line"])
        for d in json.loads(result.stdout)["diagnostics"]
    }
    assert found == {
        "broken.yaml": ("unreadable", 0),
        "fifo.yaml": ("unreadable", 0),
        "sparse.yaml": ("too_large", 0),
        "zero.yaml": ("unreadable", 0),
    }
    os.mkfifo(tmp_path / "reconciler.yaml")
    project, diagnostics = load_project(tmp_path / "reconciler.yaml")
    assert project is None and [d.code for d in diagnostics] == ["unreadable"]


def test_an_invisible_line_separator_is_named() -> None:
    diagnostics, _ = read("stocks/line-separator.yaml")
    assert "U+2028 (LINE SEPARATOR) at 7:23" in diagnostics[0].message, diagnostics
