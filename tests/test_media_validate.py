"""`validate` on image fields written as files: where, what is wrong, and how to fix it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.diagnostics import Diagnostic, Severity
from reconciler.loader import load_stocks
from reconciler.spec.images import (
    BUSIFAVOR_COUPON_IMAGE,
    COUPON_IMAGE,
    LOGO,
    ImageFacts,
    check_image,
    file_key,
    size_text,
    substitute,
    token,
    tokens_in,
)
from tests.conftest import dump, example
from tests.media_support import image_bytes, write_image


def facts(name: str, fmt: str, size: int, width: int, height: int) -> ImageFacts:
    return ImageFacts(f"stocks/{name}", "0" * 64, size, fmt, width, height)


def test_a_logo_at_the_documented_size_passes() -> None:
    assert check_image(facts("logo.png", "PNG", 34_000, 120, 120), LOGO) == []
    assert check_image(facts("logo.JPG", "JPEG", 34_000, 120, 120), LOGO) == []


@pytest.mark.parametrize(
    ("name", "fmt", "size", "width", "height", "role", "error", "words"),
    [
        (
            "logo.jpg",
            "PNG",
            1000,
            120,
            120,
            LOGO,
            True,
            "really a PNG image, but its name ends in .jpg",
        ),
        ("logo", "PNG", 1000, 120, 120, LOGO, True, "ends in no suffix"),
        (
            "logo.gif",
            "GIF",
            1000,
            120,
            120,
            LOGO,
            True,
            "GIF image; the upload takes JPG, BMP or PNG",
        ),
        ("logo.png", "PNG", 1024 * 1024, 120, 120, LOGO, True, "must be under 1.0 MB"),
        ("big.png", "PNG", 2 * 1024 * 1024 + 1, 850, 350, COUPON_IMAGE, True, "at most 2 MB"),
        (
            "logo.png",
            "PNG",
            1000,
            200,
            200,
            LOGO,
            False,
            "200×200 px; the docs say a logo should be 120×120",
        ),
        ("c.png", "PNG", 1000, 800, 300, BUSIFAVOR_COUPON_IMAGE, False, "850×350 or 1074×603"),
    ],
)
def test_each_limit_names_the_counted_value_and_the_fix(
    name: str, fmt: str, size: int, width: int, height: int, role: Any, error: bool, words: str
) -> None:
    (problem,) = check_image(facts(name, fmt, size, width, height), role)
    assert problem.error is error
    assert words in problem.message, problem.message


def test_the_busifavor_coupon_image_takes_either_documented_size() -> None:
    for size in ((850, 350), (1074, 603)):
        assert check_image(facts("c.png", "PNG", 1000, *size), BUSIFAVOR_COUPON_IMAGE) == []


def test_sizes_read_as_people_count_them() -> None:
    assert [size_text(n) for n in (512, 34_816, 1_572_864)] == ["512 B", "34 KB", "1.5 MB"]


def test_paths_stay_inside_the_repository() -> None:
    assert file_key("stocks/b/latte.yaml", "img/logo.png") == "stocks/b/img/logo.png"
    assert file_key("stocks/b/latte.yaml", "../../logo.png") == "logo.png"
    assert file_key("stocks/b/latte.yaml", "../../../logo.png") is None
    assert file_key("stocks/b/latte.yaml", "/etc/passwd") is None
    assert file_key("stocks/b/latte.yaml", "img\\logo.png") is None


def test_tokens_are_found_and_replaced_everywhere() -> None:
    body = {"a": token("ab"), "b": [{"c": token("cd")}, "x"], "d": token("ab")}
    assert tokens_in(body) == ["ab", "cd"]
    assert substitute(body, {"ab": "u1", "cd": "u2"}) == {
        "a": "u1",
        "b": [{"c": "u2"}, "x"],
        "d": "u1",
    }


def busifavor_with(display: dict[str, Any]) -> str:
    data = example("busifavor")
    data["spec"]["display_pattern_info"].update(display)
    return dump(data)


def validate(root: Path, text: str) -> list[Diagnostic]:
    path = root / "stocks" / "b" / "latte.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return load_stocks([root / "stocks"], base=root).diagnostics


def line_col(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def test_a_valid_logo_file_gives_no_diagnostic(tmp_path: Path) -> None:
    write_image(tmp_path / "stocks" / "b" / "img" / "logo.png")
    assert validate(tmp_path, busifavor_with({"merchant_logo_url": {"file": "img/logo.png"}})) == []


def test_problems_point_at_the_file_value_with_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "stocks" / "b" / "img").mkdir(parents=True)
    (tmp_path / "stocks" / "b" / "img" / "logo.jpg").write_bytes(image_bytes(100, 100, "PNG"))
    text = busifavor_with(
        {
            "merchant_logo_url": {"file": "img/logo.jpg"},
            "coupon_image_url": {"file": "img/missing.png"},
            "finder_info": {
                "finder_id": "f",
                "finder_video_id": "v",
                "finder_video_cover_image_url": {"file": "../../../outside.png"},
            },
        }
    )
    found = validate(tmp_path, text)
    by_field = {d.field: d for d in found}
    logo = by_field["spec.display_pattern_info.merchant_logo_url.file"]
    assert logo.file == "stocks/b/latte.yaml"
    assert (logo.line, logo.col) == line_col(text, "file: img/logo.jpg")
    messages = [d.message for d in found if d.field == logo.field]
    assert any("rename it to end in .png" in m for m in messages)
    assert any("100×100 px" in m for m in messages)
    missing = by_field["spec.display_pattern_info.coupon_image_url.file"]
    assert missing.severity is Severity.ERROR and "does not exist" in missing.message
    outside = by_field["spec.display_pattern_info.finder_info.finder_video_cover_image_url.file"]
    assert "leaves the repository" in outside.message


def test_a_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    write_image(outside)
    root = tmp_path / "repo"
    (root / "stocks" / "b").mkdir(parents=True)
    (root / "stocks" / "b" / "logo.png").symlink_to(outside)
    (diagnostic,) = validate(root, busifavor_with({"merchant_logo_url": {"file": "logo.png"}}))
    assert "outside the repository" in diagnostic.message


def test_wrong_shapes_name_the_branch_that_was_meant(tmp_path: Path) -> None:
    found = validate(tmp_path, busifavor_with({"merchant_logo_url": {"path": "logo.png"}}))
    fields = {d.field for d in found}
    assert "spec.display_pattern_info.merchant_logo_url.path" in fields
    assert all("image-" not in f for f in fields)
