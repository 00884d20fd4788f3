"""The parse cache: a warm cache gives the very stocks a fresh parse gives; files with
diagnostics are never cached (their errors keep file:line:col); a damaged, foreign or
tampered cache is ignored; concurrent writers leave a readable cache."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.desired import DesiredStock
from reconciler.diagnostics import Severity
from reconciler.loader import LoadResult, load_stocks
from reconciler.parsecache import CACHE_FILE, CACHE_FORMAT, ParseCache, cache_dir
from tests.conftest import dump, example


def write(stocks: Path, count: int) -> list[str]:
    ids = []
    for i in range(count):
        kind = ("favor", "busifavor")[i % 2]
        data = example(kind)
        data["id"] = f"cached-{i:03d}"
        data["spec"]["stock_name"] = f"缓存 {i}"
        (stocks / f"s{i:03d}.yaml").write_text(dump(data), encoding="utf-8")
        ids.append(data["id"])
    return ids


def load(root: Path, folder: Path | None) -> tuple[LoadResult, ParseCache | None]:
    cache = ParseCache(folder) if folder is not None else None
    return load_stocks([root / "stocks"], base=root, workers=1, cache=cache), cache


def same(a: list[DesiredStock], b: list[DesiredStock]) -> None:
    assert [s.stock for s in a] == [s.stock for s in b]
    assert [(s.file, s.line, s.digest) for s in a] == [(s.file, s.line, s.digest) for s in b]
    assert [(s.lines.paths, s.lines.lines) for s in a] == [
        (s.lines.paths, s.lines.lines) for s in b
    ]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stocks").mkdir()
    write(tmp_path / "stocks", 6)
    return tmp_path


def test_a_warm_cache_gives_what_a_fresh_parse_gives(root: Path) -> None:
    fresh, _ = load(root, None)
    first, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (0, 6)
    warm, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (6, 0)
    same(fresh.stocks, first.stocks)
    same(fresh.stocks, warm.stocks)
    assert warm.diagnostics == fresh.diagnostics and warm.valid == 6
    # One file changed: only it is parsed again, and its new content is what loads.
    changed = root / "stocks" / "s002.yaml"
    changed.write_text(changed.read_text(encoding="utf-8").replace("缓存 2", "缓存 二"))
    again, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (5, 1)
    assert (
        next(s for s in again.stocks if s.stock.id == "cached-002").stock.spec.stock_name
        == "缓存 二"
    )


def test_files_with_diagnostics_are_parsed_every_time_and_keep_their_places(root: Path) -> None:
    bad = root / "stocks" / "bad.yaml"
    data = example("busifavor")
    data["id"] = "bad-one"
    data["spec"]["stock_send_rule"]["max_coupons"] = -1
    bad.write_text(dump(data), encoding="utf-8")
    runs = [load(root, root / "cache") for _ in range(2)]
    errors = [
        [(d.file, d.line, d.col, d.code) for d in r.diagnostics if d.severity is Severity.ERROR]
        for r, _ in runs
    ]
    assert errors[0] and errors[0] == errors[1]
    assert errors[0][0][0] == "stocks/bad.yaml" and errors[0][0][1] > 1
    cache = runs[1][1]
    assert cache is not None and (cache.hits, cache.misses) == (6, 1)


def test_a_damaged_or_foreign_cache_is_ignored(root: Path) -> None:
    fresh, _ = load(root, None)
    load(root, root / "cache")
    path = root / "cache" / CACHE_FILE
    good = path.read_bytes()
    for damaged in (
        good[: len(good) // 2],  # torn
        good.replace(f'"format": {CACHE_FORMAT}'.encode(), b'"format": 99'),  # another format
        good.replace(b"cached-001", b"cached-00X"),  # body no longer matches its checksum
        b"\x00\xff not a cache",
    ):
        path.write_bytes(damaged)
        loaded, cache = load(root, root / "cache")
        assert cache is not None and cache.hits == 0
        same(fresh.stocks, loaded.stocks)
    # Another reconciler (a different fingerprint) finds nothing either.
    path.write_bytes(good)
    header, _, body = good.partition(b"\n")
    head = json.loads(header)
    head["fingerprint"] = "0" * 64
    path.write_bytes(json.dumps(head).encode() + b"\n" + body)
    _, cache = load(root, root / "cache")
    assert cache is not None and cache.hits == 0


def rewrite(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    """Edit a cache file's lines and seal it again with a matching checksum, as a cache
    written by a faulty reconciler of the same fingerprint would be."""
    header, _, body = path.read_bytes().partition(b"\n")
    body = b"".join(line + b"\n" for line in edit(body.splitlines()))
    head = json.loads(header)
    head["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_bytes(json.dumps(head).encode() + b"\n" + body)


def test_an_entry_that_does_not_validate_is_a_miss(root: Path) -> None:
    load(root, root / "cache")
    path = root / "cache" / CACHE_FILE

    def spoil(lines: list[bytes]) -> list[bytes]:
        out = []
        for line in lines:
            if line.startswith(b"E\t") and b"\tbusifavor\t" in line:
                line = line.replace(b'"max_coupons":', b'"max_coupons":"many","was":')
            out.append(line)
        return out

    rewrite(path, spoil)
    fresh, _ = load(root, None)
    loaded, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (3, 3)  # three dropped
    same(fresh.stocks, loaded.stocks)


def _lines_field(line: bytes, change: Callable[[bytes], bytes]) -> bytes:
    parts = line.split(b"\t", 7)
    return b"\t".join([*parts[:6], change(parts[6]), *parts[7:]])


@pytest.mark.parametrize(
    "spoil",
    [
        lambda line: line.rsplit(b"\t", 1)[0],  # no data
        lambda line: line.replace(b"\tfavor\t", b"\tnot-a-kind\t"),
        lambda line: line.replace(b"\tfavor\t", b"\tbusifavor\t"),  # data of another kind
        lambda line: line[:-3],  # JSON cut short
        lambda line: line.replace(b"\t", b"\t0000000000000000\t", 1),  # fields shifted
        lambda line: _lines_field(line, lambda v: v.replace(b"1", b"x")),  # lines not numbers
        lambda line: _lines_field(line, lambda v: v + b",7"),  # one line too many
        # JSON escapes could spell a `file` key unseen (a stock from the cache names no file)
        lambda line: line.replace(b'"kind":"favor"', b'"kind":"f\\u0061vor"'),
    ],
)
def test_a_damaged_entry_is_a_miss_and_the_file_loads_as_parsed(
    root: Path, spoil: Callable[[bytes], bytes]
) -> None:
    load(root, root / "cache")
    path = root / "cache" / CACHE_FILE
    rewrite(path, lambda lines: [spoil(x) if b"\tfavor\t" in x else x for x in lines])
    fresh, _ = load(root, None)
    loaded, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (3, 3)
    same(fresh.stocks, loaded.stocks)


def test_json_nested_too_deep_is_a_miss_not_a_crash(root: Path) -> None:
    """Deep JSON makes the standard parser raise RecursionError, not ValueError: in an entry's
    data, a layout line or the header, it is a damaged cache like any other."""
    load(root, root / "cache")
    path = root / "cache" / CACHE_FILE
    good = path.read_bytes()
    deep = b"[" * 100_000

    def deepen(tag: bytes) -> Callable[[list[bytes]], list[bytes]]:
        return lambda lines: [
            x.rsplit(b"\t", 1)[0] + b"\t" + deep if x.startswith(tag) else x for x in lines
        ]

    fresh, _ = load(root, None)
    rewrite(path, deepen(b"E\t"))
    loaded, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (0, 6)
    same(fresh.stocks, loaded.stocks)
    for damaged in (deepen(b"L\t"), None):
        path.write_bytes(good)
        if damaged is None:  # the header line
            path.write_bytes(deep + b"\n" + good.partition(b"\n")[2])
        else:
            rewrite(path, damaged)
        loaded, cache = load(root, root / "cache")
        assert cache is not None and cache.hits == 0
        same(fresh.stocks, loaded.stocks)


def test_an_entry_that_did_not_read_is_written_again(root: Path) -> None:
    """A damaged entry's file is parsed and cached afresh under the same key; the cache is
    rewritten then (whatever REWRITE_MIN says), or that file would be parsed on every run."""
    load(root, root / "cache")
    path = root / "cache" / CACHE_FILE
    rewrite(path, lambda lines: [x[:-3] if b"\tfavor\t" in x else x for x in lines])
    _, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (3, 3)
    _, cache = load(root, root / "cache")
    assert cache is not None and (cache.hits, cache.misses) == (6, 0)


def test_a_line_the_format_does_not_know_voids_the_whole_cache(root: Path) -> None:
    load(root, root / "cache")
    rewrite(root / "cache" / CACHE_FILE, lambda lines: [*lines, b"X\tsomething else"])
    _, cache = load(root, root / "cache")
    assert cache is not None and cache.hits == 0


def test_json_and_plain_data_validate_to_the_same_stock() -> None:
    """A cached stock is validated from JSON, a parsed one from the file's values: for every
    example stock both give the same model (the loader falls back to the values otherwise)."""
    from reconciler.kinds import KINDS
    from reconciler.loader import _as_json, _validated

    for name, kind in KINDS.items():
        data = example(name)
        from_json = _validated(kind.model, _as_json(data))
        assert from_json == kind.model.model_validate(data)
        assert kind.model.model_validate_json(_as_json(data)) == from_json


def test_data_json_cannot_hold_is_shipped_as_values_and_text_naming_nan_stays_json() -> None:
    import json

    from reconciler.loader import _as_json

    assert isinstance(_as_json({"a": float("nan")}), dict)
    assert isinstance(_as_json({"a": [1, float("inf")]}), dict)
    assert _as_json({"a": "\ud800"}) == {"a": "\ud800"}
    for text in ("NaN", "-Infinity", "NaN 打折"):
        out = _as_json({"comment": text, "n": 10**25, "x": 1e-7})
        assert isinstance(out, bytes)
        assert json.loads(out) == {"comment": text, "n": 10**25, "x": 1e-7}


def test_concurrent_writers_leave_a_readable_cache(root: Path) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(5):
                (root / "cache" / CACHE_FILE).unlink(missing_ok=True)
                load(root, root / "cache")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _, cache = load(root, root / "cache")
    assert cache is not None and cache.hits == 6


def test_the_cache_folder_is_configurable_and_can_be_turned_off(tmp_path: Path) -> None:
    assert cache_dir(tmp_path, {}) == tmp_path / ".reconciler" / "cache"
    assert cache_dir(tmp_path, {"RECONCILER_CACHE_DIR": "ci-cache"}) == tmp_path / "ci-cache"
    assert cache_dir(tmp_path, {"RECONCILER_CACHE_DIR": "/abs"}) == Path("/abs")
    assert cache_dir(tmp_path, {"RECONCILER_CACHE_DIR": "off"}) is None


def test_a_stock_naming_an_image_file_is_checked_again_every_time(root: Path) -> None:
    """The cache key covers the stock file only, so a stock that names another file is never
    cached: an image replaced by a wrong one is reported on the next load."""
    from tests.media_support import write_image

    logo = root / "stocks" / "img" / "logo.png"
    write_image(logo)
    data = example("busifavor")
    data["id"] = "with-logo"
    data["spec"]["display_pattern_info"]["merchant_logo_url"] = {"file": "img/logo.png"}
    (root / "stocks" / "logo.yaml").write_text(dump(data), encoding="utf-8")
    first, _ = load(root, root / "cache")
    assert not [d for d in first.diagnostics if d.severity is Severity.ERROR]
    logo.write_bytes(b"not an image at all")
    again, cache = load(root, root / "cache")
    assert cache is not None and cache.hits == 6  # the six plain stocks only
    errors = [d for d in again.diagnostics if d.severity is Severity.ERROR]
    assert [d.file for d in errors] == ["stocks/logo.yaml"], errors


def test_a_few_changed_files_are_parsed_again_rather_than_the_cache_rewritten(
    root: Path,
) -> None:
    """One edited file does not rewrite the whole cache (it is parsed again next time, and
    loads with its new content); once more files than REWRITE_MIN differ, the cache is
    rewritten and holds them."""
    from reconciler.parsecache import REWRITE_MIN

    load(root, root / "cache")
    cache_file = root / "cache" / CACHE_FILE
    written = cache_file.read_bytes()
    edited = root / "stocks" / "s001.yaml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("缓存 1", "缓存 一"))
    for _ in range(2):
        result, cache = load(root, root / "cache")
        assert cache is not None and (cache.hits, cache.misses) == (5, 1)
        assert cache_file.read_bytes() == written
        names = {s.stock.id: s.stock.spec.stock_name for s in result.stocks}
        assert names["cached-001"] == "缓存 一"
    write(root / "stocks", 7 + REWRITE_MIN)  # more new files than that: now it pays
    load(root, root / "cache")
    _, cache = load(root, root / "cache")
    assert cache is not None and cache.misses == 0
    assert cache_file.read_bytes() != written
