"""`reconciler init [DIR] [--local]`: the project skeleton it writes, and that it works.

The fast tests run `init` in this process with a fixed clock (RECONCILER_NOW) and check what it
writes. The last test runs the README's "Try your own stocks locally" commands as written, each
as a subprocess, with the emulator in the background.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import Result

from reconciler import __version__, scaffold
from reconciler.config import load_project
from reconciler.emulator import Emulator
from reconciler.emulator.samples import favor_create_body
from reconciler.kinds import kind_of
from reconciler.loader import load_stocks
from reconciler.runtime import NOW_VARIABLE
from reconciler.wechatpay.client import WeChatPayClient
from tests.cli_invoke import invoke
from tests.test_distribution import installed_names

ROOT = Path(__file__).resolve().parent.parent
CST = timezone(timedelta(hours=8))
NOW = datetime(2030, 6, 15, 23, 30, tzinfo=CST)
FILES = {
    ".github/workflows/reconciler-apply.yml",
    ".github/workflows/reconciler-drift.yml",
    ".github/workflows/reconciler-plan.yml",
    ".gitignore",
    "reconciler.yaml",
    "stocks/busifavor/welcome-latte-8-off.yaml",
    "stocks/favor/welcome-10-off-100.yaml",
    "stocks/stock.schema.json",
}
LOCAL_FILES = {
    ".reconciler/local/1900000001_apiv3_key",
    ".reconciler/local/1900000001_key.pem",
    ".reconciler/local/emulator.json",
    ".reconciler/local/wechatpay_pub_key.pem",
}
SECRET_MARKERS = ("PRIVATE KEY", "BEGIN RSA", "MII")


def run(*args: str, now: datetime = NOW) -> Result:
    return invoke(list(args), env={NOW_VARIABLE: now.isoformat()})


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def assert_no_secret(text: str) -> None:
    for marker in SECRET_MARKERS:
        assert marker not in text


@pytest.fixture(scope="module")
def local_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `init --local` project for the read-only checks (key generation takes a moment)."""
    root = tmp_path_factory.mktemp("local") / "my-stocks"
    result = run("init", "--local", str(root), "--port", "9123")
    assert result.exit_code == 0, result.output
    return root


# --- what init writes --------------------------------------------------------------------------


def test_init_writes_the_project_and_lists_each_file(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "p") == FILES
    listed = {line.removeprefix(f"wrote {tmp_path / 'p'}/") for line in result.output.splitlines()}
    assert listed >= FILES


def test_init_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("init")
    assert result.exit_code == 0, result.output
    assert tree(tmp_path) == FILES


def test_init_local_adds_the_emulator_data_and_keys(local_project: Path) -> None:
    assert tree(local_project) == FILES | LOCAL_FILES
    local = local_project / ".reconciler" / "local"
    assert local.stat().st_mode & 0o777 == 0o700
    assert (local / "1900000001_key.pem").stat().st_mode & 0o777 == 0o600


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "stocks").mkdir()
    (tmp_path / "reconciler.yaml").write_text("mine\n", encoding="utf-8")
    (tmp_path / ".gitignore").write_text("mine too\n", encoding="utf-8")
    before = tree(tmp_path)
    result = run("init", "--local", str(tmp_path))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert ".gitignore, reconciler.yaml already exist; nothing was written" in message
    assert tree(tmp_path) == before
    assert (tmp_path / "reconciler.yaml").read_text(encoding="utf-8") == "mine\n"


def test_init_refuses_a_key_file_left_from_before(tmp_path: Path) -> None:
    key = tmp_path / ".reconciler" / "local" / "1900000001_key.pem"
    key.parent.mkdir(parents=True)
    key.write_text("an old key\n", encoding="utf-8")
    result = run("init", "--local", str(tmp_path))
    assert result.exit_code == 1
    assert ".reconciler/local/1900000001_key.pem already exists" in result.output
    assert tree(tmp_path) == {".reconciler/local/1900000001_key.pem"}


def test_init_into_a_file_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("", encoding="utf-8")
    result = run("init", str(tmp_path / "f"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {tmp_path / 'f'} is a file; give a directory")


def test_port_without_local_is_refused(tmp_path: Path) -> None:
    result = run("init", "--port", "9000", str(tmp_path / "p"))
    assert result.exit_code == 2
    assert "--port sets the local emulator's port: use it with --local" in result.output
    assert not (tmp_path / "p").exists()


# --- the generated files work ------------------------------------------------------------------


def test_the_generated_stocks_validate_cleanly(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).exit_code == 0
    loaded = load_stocks([tmp_path / "stocks"], base=tmp_path)
    assert loaded.diagnostics == []
    assert sorted((s.stock.kind, s.stock.id) for s in loaded.stocks) == [
        ("busifavor", "welcome-latte-8-off"),
        ("favor", "welcome-10-off-100"),
    ]


@pytest.mark.parametrize("now", [NOW, datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)])
def test_the_stocks_begin_a_week_after_the_clock_and_can_be_created(
    tmp_path: Path, now: datetime
) -> None:
    assert run("init", str(tmp_path), now=now).exit_code == 0
    loaded = load_stocks([tmp_path / "stocks"], base=tmp_path)
    day = now.astimezone(CST).date() + timedelta(days=7)
    begin = f"{day.isoformat()}T00:00:00+08:00"
    for s in loaded.stocks:
        assert begin in (tmp_path / s.file).read_text(encoding="utf-8")
        kind = kind_of(s.stock.kind)
        assert kind.creation_rules(s.stock, now) == []
        assert kind.creation_rules(s.stock, now + timedelta(days=7, hours=1)) != []


def test_the_project_file_loads_and_names_no_secret(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).exit_code == 0
    project, diagnostics = load_project(tmp_path / "reconciler.yaml")
    assert diagnostics == [] and project is not None
    assert project.project.api.base_url == "https://api.mch.weixin.qq.com"
    assert project.stocks_dir == tmp_path / "stocks"
    [merchant] = project.project.merchants
    assert merchant.private_key.env == "WECHATPAY_1900000001_PRIVATE_KEY"
    text = (tmp_path / "reconciler.yaml").read_text(encoding="utf-8")
    assert text.count("\n#") + text.startswith("#") >= 3  # commented


def test_the_local_project_file_points_at_the_emulator_and_its_keys(local_project: Path) -> None:
    project, diagnostics = load_project(local_project / "reconciler.yaml")
    assert diagnostics == [] and project is not None
    assert project.project.api.base_url == "http://127.0.0.1:9123"
    [merchant] = project.project.merchants
    assert merchant.private_key.file == ".reconciler/local/1900000001_key.pem"
    assert merchant.wechatpay_public_key is not None
    assert merchant.wechatpay_public_key.file == ".reconciler/local/wechatpay_pub_key.pem"
    # No environment variable is needed: every credential is a file the project names.
    credentials = project.credentials("1900000001", {})
    data = json.loads((local_project / scaffold.EMULATOR_DATA).read_text(encoding="utf-8"))
    assert data["keys"]["public_key_id"] == merchant.wechatpay_public_key_id
    assert data["merchants"]["1900000001"]["serial_no"] == credentials.serial_no


def test_the_local_merchant_is_accepted_by_the_emulator(local_project: Path) -> None:
    project, _ = load_project(local_project / "reconciler.yaml")
    assert project is not None
    emu = Emulator(data_path=local_project / scaffold.EMULATOR_DATA)
    now = time.time()
    with WeChatPayClient(
        project.credentials("1900000001", {}), transport=emu.transport()
    ) as client:
        result = client.favor_create(favor_create_body("1900000001", now, "init-check-0001"))
    assert result.stock_id in emu.stocks


def test_gitignore_keeps_the_local_keys_and_the_venv_out_of_git(local_project: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(local_project)], check=True)
    paths = [".reconciler/local/1900000001_key.pem", ".reconciler/local/emulator.json", ".venv/x"]
    check = subprocess.run(
        ["git", "check-ignore", *paths], cwd=local_project, capture_output=True, text=True
    )
    assert check.stdout.split() == paths
    kept = ["reconciler.yaml", "stocks/favor/welcome-10-off-100.yaml", ".github/workflows"]
    for path in kept:
        assert (
            subprocess.run(["git", "check-ignore", "-q", path], cwd=local_project).returncode == 1
        )
    shutil.rmtree(local_project / ".git")


def test_init_output_holds_no_secret(tmp_path: Path) -> None:
    result = run("init", "--local", str(tmp_path))
    assert result.exit_code == 0
    assert_no_secret(result.output)
    key = (tmp_path / scaffold.key_file("1900000001")).read_text(encoding="ascii")
    assert "PRIVATE KEY" in key
    for path in FILES:
        assert_no_secret((tmp_path / path).read_text(encoding="utf-8"))


# --- the workflows -----------------------------------------------------------------------------


def test_the_packaged_workflows_equal_the_repository_copies() -> None:
    packaged = ROOT / "reconciler" / "templates" / "workflows"
    repository = sorted(p.name for p in (ROOT / ".github" / "workflows").glob("reconciler-*.yml"))
    assert sorted(p.name for p in packaged.glob("*.yml")) == repository == list(scaffold.WORKFLOWS)
    for name in repository:
        assert scaffold.template(f"workflows/{name}") == (
            ROOT / ".github" / "workflows" / name
        ).read_text(encoding="utf-8"), (
            f"reconciler/templates/workflows/{name} drifted; copy it again"
        )


def test_generated_workflows_install_the_pinned_distribution(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).exit_code == 0
    pin = f"'{scaffold.DISTRIBUTION}=={__version__}'"
    for name in scaffold.WORKFLOWS:
        written = (tmp_path / ".github" / "workflows" / name).read_text(encoding="utf-8")
        original = (ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8")
        changed = set(written.splitlines()) ^ set(original.splitlines())
        assert len(changed) == 6, changed  # the install step's two comment lines and its run line
        [install] = [line for line in written.splitlines() if "run: python -m pip install" in line]
        assert install.endswith(pin)
        assert installed_names(install) == [scaffold.DISTRIBUTION]
        assert "--quiet .\n" not in written


# --- the README, as written --------------------------------------------------------------------


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Try your own stocks locally\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the section has no sh code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_section_is_the_documented_loop() -> None:
    commands = readme_commands()
    assert [c.split()[:2] for c in commands] == [
        ["reconciler", "init"],
        ["cd", "my-stocks"],
        ["reconciler", "emulator"],
        ["reconciler", "validate"],
        ["reconciler", "plan"],
        ["reconciler", "apply"],
        ["reconciler", "plan"],
        ["kill", "%1"],
    ]


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    """`init --local`, the emulator in the background, validate, plan, apply, plan again."""
    if not _port_is_free(scaffold.DEFAULT_PORT):
        pytest.skip(f"port {scaffold.DEFAULT_PORT} is in use, and the README's commands use it")
    env = {
        k: v for k, v in os.environ.items() if k != NOW_VARIABLE and not k.startswith("WECHATPAY_")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cwd = tmp_path
    outputs: list[tuple[str, str]] = []
    with _jobs() as jobs:
        for line in readme_commands():
            words = shlex.split(line)
            if words[0] == "cd":
                cwd = cwd / words[1]
            elif words[-1] == "&":
                proc, url = start_background(words[:-1], cwd, env)
                jobs.append(proc)
                assert url == f"http://127.0.0.1:{scaffold.DEFAULT_PORT}"
            elif words == ["kill", "%1"]:
                stop_background(jobs.pop(0))
            else:
                assert words[0] == "reconciler", line
                done = subprocess.run(
                    words, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                outputs.append((line, done.stdout + done.stderr))
    for _, out in outputs:
        assert_no_secret(out)
    by_command = [line for line, _ in outputs]
    first_plan, second_plan = [out for line, out in outputs if line == "reconciler plan"]
    apply_out = outputs[by_command.index("reconciler apply --yes")][1]
    assert first_plan.startswith("Plan: 2 to create, 0 to update")
    assert "Apply finished: 2 succeeded." in apply_out
    assert second_plan.startswith("No changes. 2 stocks in sync.")
    data = json.loads((cwd / scaffold.EMULATOR_DATA).read_text(encoding="utf-8"))
    assert len(data["stocks"]) == 2


# --- helpers -----------------------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_background(
    cmd: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the first line, once it serves
    found = re.search(r"listening on (http://\S+)", line)
    if found is None:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"the emulator did not start: {line}{err}")
    return proc, found.group(1)


def stop_background(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class _jobs:
    """Background processes, stopped however the block ends."""

    def __enter__(self) -> list[subprocess.Popen[str]]:
        self.procs: list[subprocess.Popen[str]] = []
        return self.procs

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            stop_background(proc)
