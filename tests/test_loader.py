"""File-level problems: each gets a clear diagnostic with a place, quickly, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.diagnostics import Severity
from reconciler.loader import load_stock_file, load_stocks
from reconciler.yamlsource import read_document
from tests.conftest import EXAMPLES, dump, example


def _one(raw: bytes) -> tuple[str, int, str]:
    loaded, diagnostics = load_stock_file(raw, "s.yaml")
    assert loaded is None
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert errors
    return errors[0].code, errors[0].line, errors[0].message


@pytest.mark.parametrize("amount", ["1e+308", "-1e+308", "1.0e+15"])
def test_a_float_amount_too_large_for_a_yuan_hint_is_a_plain_type_error(amount: str) -> None:
    """A decimal amount gets a hint in yuan; one whose fen do not fit a number (1e308 × 100 is
    infinite) is an integer type error like any other, not a traceback."""
    text = dump(example("favor")).replace("max_amount: 20000000", f"max_amount: {amount}")
    assert f"max_amount: {amount}" in text
    code, line, message = _one(text.encode())
    assert code == "int_type"
    assert message.startswith("expected an integer"), message
    lines = text.splitlines()
    assert line == next(i for i, x in enumerate(lines, 1) if x.strip() == f"max_amount: {amount}")


def test_duplicate_key_names_both_lines() -> None:
    text = "id: a\nkind: favor\nid: b\n"
    code, line, message = _one(text.encode())
    assert (code, line) == ("duplicate_key", 3)
    assert "'id'" in message and "line 1" in message


def test_yaml_11_directive_is_refused() -> None:
    code, line, message = _one(b"%YAML 1.1\n---\nid: a\n")
    assert (code, line) == ("yaml_version", 1)
    assert "1.2" in message


def test_yaml_12_directive_is_fine() -> None:
    text = "%YAML 1.2\n---\n" + dump(example("favor"))
    loaded, diagnostics = load_stock_file(text.encode(), "s.yaml")
    assert loaded is not None and diagnostics == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"- a\n- b\n", "not_mapping"),
        (b"just text\n", "not_mapping"),
        (b"", "empty"),
        (b"# only a comment\n", "empty"),
    ],
)
def test_not_a_mapping_or_empty(raw: bytes, code: str) -> None:
    assert _one(raw)[0] == code


def test_several_documents() -> None:
    code, line, message = _one(b"id: a\n---\nid: b\n")
    assert (code, line) == ("multiple_documents", 3)
    assert "2 YAML documents" in message


def test_binary_and_non_utf8() -> None:
    assert _one(b"id: a\x00\x01\x02")[0] == "binary"
    code, line, message = _one("id: a\nkind: 代金券\n".encode("gbk"))
    assert (code, line) == ("encoding", 2)
    assert "UTF-8" in message


def test_huge_file_is_refused_without_parsing() -> None:
    start = time.perf_counter()
    assert _one(b"a: " + b"x" * (2 * 1024 * 1024))[0] == "too_large"
    assert time.perf_counter() - start < 1


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    start = time.perf_counter()
    code, _, message = _one("\n".join(lines).encode())
    assert code == "too_many_nodes" and "aliases" in message
    assert time.perf_counter() - start < 1


def test_deep_nesting_is_refused() -> None:
    code, _, message = _one(("a: " + "[" * 5000 + "]" * 5000 + "\n").encode())
    assert code in ("too_deep", "yaml_syntax")
    assert message


def test_syntax_error_points_at_the_line() -> None:
    code, line, message = _one(b"id: a\nkind: favor\nspec:\n  x: [1, 2\n")
    assert code == "yaml_syntax" and line >= 4
    assert "YAML syntax error" in message


def test_tab_indentation_is_named_as_a_tab() -> None:
    code, line, message = _one(b"id: a\nspec:\n\tstock_name: x\n")
    assert (code, line) == ("yaml_tab", 3)
    assert "tab" in message and "spaces" in message


def test_a_tab_after_spaces_is_found_at_its_column() -> None:
    raw = b"id: a\nkind: favor\nspec:\n  a:\n    b: 1\n  \tc: 2\n"
    assert _one(raw)[:2] == ("yaml_tab", 6)
    doc = read_document(raw, "t.yaml")
    assert (doc.diagnostics[0].line, doc.diagnostics[0].col) == (6, 3)


def test_a_tab_inside_a_value_is_not_blamed() -> None:
    code, _, message = _one(b"id: a\nkind: favor\nspec:\n  x: [1,\t2\n")
    assert code == "yaml_syntax" and "tab" not in message


def test_bom_and_crlf_are_accepted() -> None:
    text = dump(example("favor")).replace("\n", "\r\n")
    loaded, diagnostics = load_stock_file(b"\xef\xbb\xbf" + text.encode(), "s.yaml")
    assert loaded is not None and diagnostics == []


def test_unquoted_times_stay_text() -> None:
    text = dump(example("favor")).replace(
        "'2027-03-01T00:00:00+08:00'", "2027-03-01T00:00:00+08:00"
    )
    assert "available_begin_time: 2027-03-01T00:00:00+08:00" in text
    loaded, _ = load_stock_file(text.encode(), "s.yaml")
    assert loaded is not None
    assert loaded.stock.spec.available_begin_time == "2027-03-01T00:00:00+08:00"  # type: ignore[union-attr]


def test_yaml_12_booleans_and_octals() -> None:
    data = example("favor")
    text = dump(data).replace("no_cash: false", "no_cash: no")
    _, _, message = _one(text.encode())
    assert "true or false" in message and "'no'" in message


def test_anchors_and_merge_keys_work() -> None:
    data = example("favor")
    text = (
        dump(data)
        .replace("  natural_person_limit: true\n", "  natural_person_limit: &yes true\n")
        .replace("  prevent_api_abuse: true\n", "  prevent_api_abuse: *yes\n")
    )
    loaded, diagnostics = load_stock_file(text.encode(), "s.yaml")
    assert loaded is not None and diagnostics == []


def test_all_files_reported_sorted_and_duplicate_ids_name_both(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.yaml").write_text(dump(example("favor")), encoding="utf-8")
    (tmp_path / "one.yml").write_text(dump(example("favor")), encoding="utf-8")
    (tmp_path / "zz.yaml").write_text("id: [\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text("id: [\n", encoding="utf-8")
    result = load_stocks([tmp_path], base=tmp_path)
    assert result.files == 3
    located = [(d.file, d.line, d.code) for d in result.diagnostics]
    assert located == [
        ("b/two.yaml", 1, "duplicate_id"),
        ("one.yml", 1, "duplicate_id"),
        ("zz.yaml", 2, "yaml_syntax"),
    ]
    first = result.diagnostics[0]
    assert "one.yml:1" in first.message
    assert "b/two.yaml:1" in result.diagnostics[1].message


def test_missing_path_is_reported(tmp_path: Path) -> None:
    result = load_stocks([tmp_path / "nope"], base=tmp_path)
    assert not result.ok
    assert result.diagnostics[0].code == "not_found"


def test_parallel_and_serial_agree(tmp_path: Path) -> None:
    for i in range(12):
        data = example("busifavor")
        data["id"] = f"s-{i}"
        data["spec"]["stock_send_rule"]["max_coupons"] = 50000 + i
        if i % 5 == 0:
            data["spec"]["stock_send_rule"]["max_coupons_per_user"] = 0
        (tmp_path / f"s{i}.yaml").write_text(dump(data), encoding="utf-8")
    serial = load_stocks([tmp_path], base=tmp_path, workers=1)
    parallel = load_stocks([tmp_path], base=tmp_path, workers=2)
    assert [d.to_data() for d in serial.diagnostics] == [d.to_data() for d in parallel.diagnostics]
    assert [s.stock for s in serial.stocks] == [s.stock for s in parallel.stocks]
    assert len(serial.stocks) == 9
    light = load_stocks([tmp_path], base=tmp_path, workers=2, keep=False)
    assert light.stocks == [] and light.valid == 9
    assert [d.to_data() for d in light.diagnostics] == [d.to_data() for d in serial.diagnostics]


def test_a_loaded_stock_knows_the_line_of_every_field() -> None:
    text = EXAMPLES["favor"].read_text(encoding="utf-8")
    loaded, _ = load_stock_file(text.encode(), "stocks/f.yaml")
    assert loaded is not None
    lines = text.splitlines()
    for path in ("id", "spec.available_begin_time", "spec.stock_use_rule.max_amount"):
        line = loaded.line_of(path)
        assert lines[line - 1].lstrip().startswith(path.rsplit(".", 1)[-1] + ":"), path
    rule_line = loaded.line_of("spec.stock_use_rule")
    assert loaded.line_of("spec.stock_use_rule.no_such_field") == rule_line
    assert loaded.line_of("nowhere") == loaded.line


def test_field_lines_survive_the_worker_processes(tmp_path: Path) -> None:
    text = EXAMPLES["favor"].read_text(encoding="utf-8")
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(text.replace("spring-sale-10-off-100", name))
    result = load_stocks([tmp_path], workers=2)
    line = text.splitlines().index(
        next(x for x in text.splitlines() if x.strip().startswith("max_amount:"))
    )
    assert [s.line_of("spec.stock_use_rule.max_amount") for s in result.stocks] == [line + 1] * 2
    assert result.stocks[0].lines.paths is result.stocks[1].lines.paths
