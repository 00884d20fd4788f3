"""`reconciler validate` and `reconciler schema` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.schema import stock_schema_text
from tests.cli_invoke import invoke
from tests.conftest import EXAMPLES, ROOT, dump, example


def run(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    result = invoke(args)
    return result.exit_code, result.output


def test_repository_examples_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(["validate", "stocks"], ROOT, monkeypatch)
    assert code == 0, out
    assert "0 errors, 0 warnings" in out


def test_seed_examples_validate_without_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(["validate", "tests/fixtures/seeds"], ROOT, monkeypatch)
    assert code == 0, out
    assert "2 valid stocks, 0 errors" in out


def _broken_tree(tmp_path: Path, errors: int) -> None:
    stocks = tmp_path / "stocks"
    stocks.mkdir()
    for i in range(errors):
        data = example("favor")
        data["id"] = f"bad-{i:02d}"
        data["spec"]["stock_use_rule"]["max_coupons_per_user"] = 61
        data["spec"]["stock_use_rule"]["max_amount"] = 20_000_000 + 1000 * (i + 1)
        (stocks / f"bad-{i:02d}.yaml").write_text(dump(data), encoding="utf-8")


def test_text_format_lists_every_error_with_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _broken_tree(tmp_path, 2)
    code, out = run(["validate"], tmp_path, monkeypatch)
    assert code == 1
    lines = [line for line in out.splitlines() if ": error: " in line]
    assert len(lines) == 4
    assert lines[0].startswith("stocks/bad-00.yaml:")
    assert (
        ": error: spec.stock_use_rule.max_amount: must equal coupon_amount × max_coupons"
        in lines[0]
    )
    assert "2 files checked, 0 valid stocks, 4 errors, 0 warnings" in out


def test_json_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _broken_tree(tmp_path, 1)
    code, out = run(["validate", "--format", "json", "stocks"], tmp_path, monkeypatch)
    assert code == 1
    doc = json.loads(out)
    assert doc["errors"] == 2 and doc["valid_stocks"] == 0
    first = doc["diagnostics"][0]
    assert set(first) == {"file", "line", "col", "severity", "field", "message", "code"}
    assert first["field"] == "spec.stock_use_rule.max_amount"


def test_github_format_caps_annotations_and_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _broken_tree(tmp_path, 7)
    code, out = run(["validate", "--format", "github"], tmp_path, monkeypatch)
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 10
    assert errors[0].startswith("::error file=stocks/bad-00.yaml,line=")
    assert ",title=reconciler%3A spec.stock_use_rule.max_amount::" in errors[0]
    notices = [line for line in out.splitlines() if line.startswith("::notice ")]
    assert notices == [notices[0]] and "4 more error(s)" in notices[0]


def test_github_escaping_of_newlines_and_percent() -> None:
    from reconciler.diagnostics import Diagnostic, Severity
    from reconciler.render.diagnostics import github

    d = Diagnostic("a,b:c.yaml", 3, 1, Severity.WARNING, ("x",), "100% sure\nsecond line")
    first = github([d]).splitlines()[0]
    assert (
        first
        == "::warning file=a%2Cb%3Ac.yaml,line=3,col=1,title=reconciler%3A x::100%25 sure%0Asecond line"
    )


def test_schema_is_up_to_date() -> None:
    committed = (ROOT / "stocks" / "stock.schema.json").read_text(encoding="utf-8")
    assert committed == stock_schema_text(), "run: reconciler schema -o stocks/stock.schema.json"


def test_examples_carry_the_schema_modeline() -> None:
    for path in (ROOT / "stocks").rglob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        rel = Path("../" * (len(path.relative_to(ROOT / "stocks").parts) - 1) or "./")
        assert first == f"# yaml-language-server: $schema={(rel / 'stock.schema.json').as_posix()}"


def test_schema_rejects_unknown_keys_and_knows_kinds() -> None:
    schema = json.loads(stock_schema_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {b["if"]["properties"]["kind"]["const"]: b["then"]["$ref"] for b in schema["allOf"]} == {
        "favor": "#/$defs/FavorStock",
        "busifavor": "#/$defs/BusifavorStock",
    }
    assert "oneOf" not in schema and "discriminator" not in schema
    assert schema["$defs"]["FavorSpec"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("kind", "field", "typo"),
    [
        ("favor", "max_coupons_per_user", "max_coupon_per_user"),
        ("busifavor", "stock_name", "stock_nmae"),
    ],
)
def test_check_jsonschema_names_the_misspelled_field_first(
    tmp_path: Path, kind: str, field: str, typo: str
) -> None:
    """Issue 11, finding 5: with oneOf + discriminator, check-jsonschema's best match was the
    other kind's fields; with if/then on kind its first error names the misspelled key."""
    text = EXAMPLES[kind].read_text(encoding="utf-8").replace(f"{field}:", f"{typo}:", 1)
    (tmp_path / "stock.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "stock.schema.json").write_text(stock_schema_text(), encoding="utf-8")
    schema, stock = tmp_path / "stock.schema.json", tmp_path / "stock.yaml"
    out = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "-o", "json", "--schemafile", schema, stock],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    errors = json.loads(out.stdout)["errors"]
    first = errors[0]
    assert typo in first["message"] and "unexpected" in first["message"], errors
    best = first.get("best_match") or first.get("best_deep_match")
    assert best is None or typo in best["message"], errors


@pytest.mark.parametrize(
    "entry", [["-m", "reconciler"], ["-c", "from reconciler.cli import main; main()"]]
)
def test_module_entry_points(entry: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, *entry, "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("reconciler, version ")
