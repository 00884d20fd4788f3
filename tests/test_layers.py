"""The pure core loads nothing of the shell: checked on what importing it actually loads.

`lint-imports` (in the test command) checks the import statements; this checks the result, in a
fresh interpreter. pydantic itself loads `socket` (through importlib.metadata and email), so the
baseline is an interpreter that already built a pydantic model: what the core adds on top of it
must hold no network, no processes, no YAML and none of the shell's modules.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

CORE = [
    "reconciler.planner",
    "reconciler.plan",
    "reconciler.kinds",
    "reconciler.mapping",
    "reconciler.ids",
    "reconciler.render.text",
    "reconciler.render.markdown",
    "reconciler.render.json_doc",
    "reconciler.state.model",
]
FORBIDDEN = ("httpx", "ruamel", "multiprocessing", "socket", "click", "concurrent", "ssl")
SHELL = (
    "reconciler.loader",
    "reconciler.yamlsource",
    "reconciler.state.store",
    "reconciler.state.lock",
    "reconciler.wechatpay",
    "reconciler.applier",
    "reconciler.engine",
    "reconciler.config",
    "reconciler.runtime",
)

PROBE = """
import json, sys
import pydantic
class Baseline(pydantic.BaseModel):
    x: int
before = set(sys.modules)
for name in {core!r}:
    __import__(name)
print(json.dumps({{"added": sorted(set(sys.modules) - before), "all": sorted(sys.modules)}}))
"""


def test_importing_the_pure_core_loads_no_shell_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(core=CORE)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(out.stdout)
    added = loaded["added"]
    assert "reconciler.planner" in added
    leaked = [m for m in added if m.split(".")[0] in FORBIDDEN]
    assert not leaked, leaked
    shell = [m for m in loaded["all"] if m.startswith(SHELL)]
    assert not shell, shell


CLI_PROBE = """
import contextlib, io, json, sys
from reconciler.cli import main
loaded = {{}}
for args in {runs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    loaded[" ".join(args)] = {{"code": code, "modules": sorted(sys.modules)}}
print(json.dumps(loaded))
"""
NOT_FOR_HELP = (
    "reconciler.engine",
    "reconciler.config",
    "reconciler.loader",
    "reconciler.applier",
    "reconciler.wechatpay",
    "reconciler.emulator",
    "reconciler.schema",
    "reconciler.render.markdown",
    "cryptography",
    "ruamel",
    "multiprocessing",
)
NOT_FOR_VALIDATE = ("reconciler.emulator", "reconciler.render.markdown", "reconciler.render.text")


def test_the_cli_loads_what_a_command_needs() -> None:
    """`reconciler --help` starts without the engine, the client or the emulator, and
    `reconciler validate` without the emulator or the plan renderers (each command imports
    what it uses when it runs)."""
    runs = [["--help"], ["validate", str(ROOT / "stocks")]]
    out = subprocess.run(
        [sys.executable, "-c", CLI_PROBE.format(runs=runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(out.stdout)
    helped = loaded["--help"]
    assert helped["code"] == 0
    assert not [m for m in helped["modules"] if m.startswith(NOT_FOR_HELP)]
    validated = loaded[" ".join(runs[1])]
    assert validated["code"] == 0
    assert "reconciler.loader" in validated["modules"]
    assert not [m for m in validated["modules"] if m.startswith(NOT_FOR_VALIDATE)]


def test_the_commands_name_the_project_file_as_config_does() -> None:
    """commands.common repeats PROJECT_FILE so that options need no config import."""
    from reconciler.commands.common import PROJECT_FILE
    from reconciler.config import PROJECT_FILE as CONFIG_PROJECT_FILE

    assert PROJECT_FILE == CONFIG_PROJECT_FILE
