"""The use cases (validate, plan, apply, import and the state commands), each returning a
result value. The commands parse arguments, call these, render and choose the exit code.

- `workspace`: open a project once per command; clients; refreshing details.
- `planning`: the plan use case; saved plans (write, read back, freshness).
- `applying`: the apply use case: lock, freshness, confirmation, interruption.
- `state_ops`: list, show, rm, mv, import, unlock.
- `importing`: `reconciler import`: the files and state entries of stocks that already exist
  (imported by its command where it runs).
"""

from __future__ import annotations

from reconciler.engine.applying import (
    Applied,
    NotConfirmed,
    PlanHasErrors,
    Stop,
    Waiting,
    apply,
    stop_on_signals,
    waiting_calls,
)
from reconciler.engine.planning import (
    REFRESH_MODES,
    Planned,
    check_fresh,
    load_plan_file,
    plan,
    write_output,
)
from reconciler.engine.workspace import (
    PlanInvalid,
    Workspace,
    clients_for,
    desired_digest,
    open_workspace,
    refresh,
    refresh_targets,
    validate,
)

__all__ = [
    "REFRESH_MODES",
    "Applied",
    "NotConfirmed",
    "PlanHasErrors",
    "PlanInvalid",
    "Planned",
    "Stop",
    "Waiting",
    "Workspace",
    "apply",
    "check_fresh",
    "clients_for",
    "desired_digest",
    "load_plan_file",
    "open_workspace",
    "plan",
    "refresh",
    "refresh_targets",
    "stop_on_signals",
    "validate",
    "waiting_calls",
    "write_output",
]
