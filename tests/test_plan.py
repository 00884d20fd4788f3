"""The plan document: format 2 and a checksum over the document as saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import load_plan_file
from reconciler.errors import ConfigError
from reconciler.plan import Plan, PlanFormatError, document_checksum
from reconciler.render.json_doc import render_json
from tests.test_render_plan import sample_plan


def saved(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_json(sample_plan()))
    return data


def test_a_saved_plan_reads_back_equal(tmp_path: Path) -> None:
    assert load_plan_file(saved(tmp_path, document())) == sample_plan()


def test_every_create_and_update_operation_carries_its_body_generation_and_after() -> None:
    doc = document()
    assert doc["format_version"] == 2
    ops = [op for c in doc["changes"] for op in c["operations"]]
    assert {op["type"] for op in ops} == {"create", "modify", "budget", "start"}
    for op in ops:
        assert op["body"] and isinstance(op["generation"], int) and op["after"]
        # The favor lifecycle calls take no number: theirs names the intent, never sent.
        sent = op["type"] != "start"
        assert (op["request_no"] in json.dumps(op["body"])) == sent


def test_editing_the_summary_gets_the_plan_refused(tmp_path: Path) -> None:
    doc = document()
    doc["summary"]["create"] += 1
    with pytest.raises(ConfigError, match="checksum does not match"):
        load_plan_file(saved(tmp_path, doc))


def test_editing_has_changes_gets_the_plan_refused(tmp_path: Path) -> None:
    doc = document()
    doc["has_changes"] = False
    with pytest.raises(ConfigError, match="checksum does not match"):
        load_plan_file(saved(tmp_path, doc))


def test_a_key_a_newer_version_writes_is_accepted_and_covered(tmp_path: Path) -> None:
    doc = document()
    doc["approvals"] = {"finance": "wang.li"}
    doc["changes"][0]["review_note"] = "checked against the campaign brief"
    doc["checksum"] = document_checksum(doc)
    assert load_plan_file(saved(tmp_path, doc)) == sample_plan()

    doc["approvals"]["finance"] = "someone else"
    with pytest.raises(ConfigError, match="checksum does not match"):
        load_plan_file(saved(tmp_path, doc))


def test_editing_an_operation_body_gets_the_plan_refused(tmp_path: Path) -> None:
    doc = document()
    doc["changes"][0]["operations"][0]["body"]["stock_use_rule"]["max_amount"] *= 10
    with pytest.raises(ConfigError, match="checksum does not match"):
        load_plan_file(saved(tmp_path, doc))


def test_a_format_1_plan_is_refused_with_what_to_do(tmp_path: Path) -> None:
    doc = document()
    doc["format_version"] = 1
    doc["checksum"] = document_checksum(doc)
    with pytest.raises(ConfigError) as info:
        load_plan_file(saved(tmp_path, doc))
    assert "older reconciler" in str(info.value)
    assert "reconciler plan --out" in str(info.value)


def test_a_plan_from_a_newer_format_is_refused() -> None:
    doc = document()
    doc["format_version"] = 3
    with pytest.raises(PlanFormatError, match="is not 2"):
        Plan.from_document(doc)


def test_a_truncated_file_is_not_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(render_json(sample_plan())[:200], encoding="utf-8")
    with pytest.raises(ConfigError, match="not a readable reconciler plan"):
        load_plan_file(path)
