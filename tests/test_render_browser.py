"""The Markdown plan as GitHub shows it: converted with a GFM renderer (markdown-it-py with GFM
tables and strikethrough, HTML allowed as GitHub allows `<details>`), laid out at 830 px (the
width of a pull-request comment) in headless Chromium with every `<details>` open, and no element
may be wider than the page.

A script in the page measures the page's scrollWidth and every element's bounding box and writes
what sticks out into the DOM, which `chromium --headless --dump-dom` prints. A screenshot is kept
in test-artifacts/ (ignored by git) to look at. Without Chromium (`apt-get install chromium`) the
test is skipped with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from reconciler.i18n import LANGS
from reconciler.render.markdown import render_markdown
from tests.render_plans import mixed_plan, plan_150

WIDTH = 830
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
RUN = "https://github.com/acme/coupon-stocks/actions/runs/7"

# The rules of GitHub's comment styles that decide widths: wrapping of long words and code,
# list indents, the monospace and system fonts.
STYLE = """
body { margin: 0; width: WIDTHpx; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans",
  Helvetica, Arial, "WenQuanYi Micro Hei", sans-serif; word-wrap: break-word; }
.markdown-body { box-sizing: border-box; width: 100%; padding: 16px; }
code { font: 85%/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; padding: .2em .4em;
  white-space: break-spaces; }
ul { padding-left: 2em; }
table { display: block; width: max-content; max-width: 100%; overflow: auto; }
summary { display: list-item; cursor: pointer; }
""".replace("WIDTH", str(WIDTH))

MEASURE = """
<script>
document.querySelectorAll('details').forEach(d => d.open = true);
const limit = WIDTH;
const found = {};
for (const article of document.querySelectorAll('article')) {
  const left = article.getBoundingClientRect().left;
  const wide = [];
  for (const el of article.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    const scrolls = el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible';
    if (box.right - left > limit + 0.5 || scrolls) {
      wide.push({tag: el.tagName, right: Math.round(box.right - left), text: (el.textContent || '').slice(0, 80)});
    }
  }
  found[article.dataset.name] = {scrollWidth: article.scrollWidth, wide: wide};
}
const out = document.createElement('pre');
out.id = 'measured';
out.textContent = JSON.stringify(found);
document.body.appendChild(out);
</script>
""".replace("WIDTH", str(WIDTH))


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed (apt-get install chromium); the layout is not checked")


def page(documents: dict[str, str]) -> str:
    """One HTML page holding each Markdown document, GFM-rendered, in its own 830 px column."""
    gfm = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    articles = "".join(
        f'<article class="markdown-body" data-name="{name}">{gfm.render(text)}</article>'
        for name, text in documents.items()
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><style>{STYLE}</style></head>'
        f"<body>{articles}{MEASURE}</body></html>"
    )


def run_chromium(binary: str, *args: str) -> str:
    done = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={WIDTH},1200", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def measure(binary: str, html_file: Path) -> dict[str, Any]:
    dom = run_chromium(binary, "--dump-dom", html_file.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    data: dict[str, Any] = json.loads(text)
    return data


def wide_table() -> str:
    """The old layout's kind of content: a table of long values (it must be caught)."""
    value = "`1900000001_FC0_spring-sale-10-off-100_0f3a9c2e7b1d4a6e8c5b2f1a9d7e3c4b`"
    return "| a | b | c |\n|---|---|---|\n| " + " | ".join([value] * 3) + " |\n"


def test_the_comment_fits_830_px(tmp_path: Path) -> None:
    binary = chromium()
    documents = {
        f"mixed.{lang}": render_markdown(mixed_plan(), lang=lang, full_plan_url=RUN)
        for lang in LANGS
    }
    documents["plan150.zh"] = render_markdown(plan_150(), lang="zh", full_plan_url=RUN)
    documents["control"] = wide_table()
    html_file = tmp_path / "comments.html"
    html_file.write_text(page(documents), encoding="utf-8")
    measured = measure(binary, html_file)
    assert measured["control"]["wide"], "the check no longer notices a table wider than the page"
    for name in documents:
        if name == "control":
            continue
        assert measured[name]["scrollWidth"] <= WIDTH, (name, measured[name])
        assert measured[name]["wide"] == [], (name, measured[name]["wide"][:5])
    # A screenshot of the mixed plan in Chinese, every section open, to look at.
    shot_file = tmp_path / "mixed.zh.html"
    shot_file.write_text(page({"mixed.zh": documents["mixed.zh"]}), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "plan-mixed-zh.png"
    run_chromium(binary, f"--screenshot={shot}", "--window-size=830,4000", shot_file.as_uri())
    assert shot.stat().st_size > 10_000
