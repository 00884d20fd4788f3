"""`reconciler emulator --project DIR` and `reconciler emulator add-merchant MCHID`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler import scaffold
from reconciler.config import load_project
from reconciler.emulator import Emulator
from reconciler.emulator.samples import favor_create_body
from reconciler.runtime import NOW_VARIABLE
from reconciler.wechatpay.client import WeChatPayClient
from tests.test_init import assert_no_secret, run, start_background, stop_background


@pytest.fixture(scope="module")
def local_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local") / "my-stocks"
    result = run("init", "--local", str(root), "--port", "9123")
    assert result.exit_code == 0, result.output
    return root


def test_add_merchant_registers_and_prints_lines_that_work(
    local_project: Path, tmp_path: Path
) -> None:
    project_dir = tmp_path / "p"
    shutil.copytree(local_project, project_dir)
    result = run("emulator", "add-merchant", "1900000002", "--project", str(project_dir))
    assert result.exit_code == 0, result.output
    assert_no_secret(result.output)
    data = json.loads((project_dir / scaffold.EMULATOR_DATA).read_text(encoding="utf-8"))
    assert sorted(data["merchants"]) == ["1900000001", "1900000002"]
    assert data["keys"]["public_key_id"] in result.output
    lines = result.output.split("under merchants:\n\n", 1)[1]
    assert '  - mchid: "1900000002"\n' in lines
    assert "private_key: {file: .reconciler/local/1900000002_key.pem}" in lines
    # The printed lines, pasted under merchants:, make a project whose merchant can call.
    yaml_path = project_dir / "reconciler.yaml"
    yaml_path.write_text(yaml_path.read_text(encoding="utf-8") + lines, encoding="utf-8")
    project, diagnostics = load_project(yaml_path)
    assert diagnostics == [] and project is not None
    emu = Emulator(data_path=project_dir / scaffold.EMULATOR_DATA)
    with WeChatPayClient(project.credentials("1900000002", {}), transport=emu.transport()) as c:
        c.favor_create(favor_create_body("1900000002", time.time(), "add-merchant-0001"))


def test_add_merchant_with_a_data_file_prints_absolute_paths(tmp_path: Path) -> None:
    data = tmp_path / "emu" / "emulator.json"
    result = run("emulator", "add-merchant", "1234567", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert f"private_key: {{file: {(data.parent / '1234567_key.pem').resolve()}}}" in result.output
    assert_no_secret(result.output)
    again = run("emulator", "add-merchant", "1234567", "--data", str(data))
    assert again.exit_code == 1
    assert again.output.startswith("error: ") and "already exists" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["emulator", "add-merchant", "19x"], "'19x' is not a mchid"),
        (["emulator", "add-merchant", "1900000002"], "no reconciler.yaml here: give --data FILE"),
        (
            ["emulator", "add-merchant", "1900000002", "--data", "x.json", "--project", "."],
            "give --data FILE or --project DIR, not both",
        ),
        (["emulator", "--data", "bad.json"], "bad.json: not a reconciler emulator data file"),
    ],
)
def test_emulator_user_mistakes_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    result = run(*args)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {message}")
    assert "Traceback" not in result.output and result.output.count("\n") == 1


def test_emulator_project_needs_a_local_project(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).exit_code == 0
    result = run("emulator", "--project", str(tmp_path))
    assert result.exit_code == 1
    assert "no local emulator data" in result.output and "reconciler init --local" in result.output
    (tmp_path / ".reconciler" / "local").mkdir(parents=True)
    (tmp_path / scaffold.EMULATOR_DATA).write_text("{}", encoding="utf-8")
    result = run("emulator", "--project", str(tmp_path))
    assert result.exit_code == 1
    assert "api.base_url is https://api.mch.weixin.qq.com, not a local emulator" in result.output


def test_a_busy_port_is_a_user_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("emulator", "--port", str(port), "--data", str(tmp_path / "e.json"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.output


def test_serving_options_before_a_subcommand_are_refused() -> None:
    result = run("emulator", "--port", "1", "add-merchant", "1900000002")
    assert result.exit_code == 2
    assert "--port: options for serving the emulator, not for add-merchant" in result.output


def test_emulator_project_serves_on_the_projects_port(local_project: Path, tmp_path: Path) -> None:
    """`--project` alone: the data file under .reconciler/local and the port of api.base_url."""
    project_dir = tmp_path / "p"
    shutil.copytree(local_project, project_dir)
    port = _free_port()
    yaml_path = project_dir / "reconciler.yaml"
    yaml_path.write_text(
        yaml_path.read_text(encoding="utf-8").replace(":9123", f":{port}"), encoding="utf-8"
    )
    with _Serving([*_reconciler(), "emulator", "--project", str(project_dir)]) as (_, url):
        assert url == f"http://127.0.0.1:{port}"


# --- helpers ---------------------------------------------------------------------------------


def _reconciler() -> list[str]:
    return [sys.executable, "-m", "reconciler"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Serving:
    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd

    def __enter__(self) -> tuple[subprocess.Popen[str], str]:
        env = {k: v for k, v in os.environ.items() if k != NOW_VARIABLE}
        self.proc, url = start_background(self.cmd, Path.cwd(), env)
        return self.proc, url

    def __exit__(self, *exc: object) -> None:
        stop_background(self.proc)


def test_set_balance_tops_up_a_registered_merchant(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    assert run("emulator", "add-merchant", "1900000002", "--data", str(data)).exit_code == 0
    result = run("emulator", "set-balance", "1900000002", "150000", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("merchant 1900000002: balance 150000 分 (¥1,500.00)")
    stored = json.loads(data.read_text(encoding="utf-8"))["merchants"]["1900000002"]
    assert stored["balance_fen"] == 150000
    unknown = run("emulator", "set-balance", "1900000003", "1", "--data", str(data))
    assert unknown.exit_code == 1
    assert unknown.output == f"error: merchant 1900000003 is not registered in {data}\n"
