"""Service providers and their sub-merchants (`merchants[].sub_merchants` in reconciler.yaml):
the partner rules checked against every stock file, and the plan's totals per sub-merchant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.config import ProjectFile
from reconciler.desired import DesiredStock
from reconciler.diagnostics import Diagnostic
from reconciler.plan import Action, Plan, SubMerchantTotals
from reconciler.spec.rules_partner import (
    Partners,
    Relation,
    landing_merchants,
    partner_findings,
)
from reconciler.validation import findings_to_diagnostics
from reconciler.yamlsource import read_document


def relations(project: ProjectFile) -> tuple[dict[str, Relation], dict[str, str]]:
    """Each configured merchant's partners, and each sub-merchant's provider."""
    out: dict[str, Relation] = {}
    providers_of: dict[str, str] = {}
    for m in project.project.merchants:
        names = m.sub_merchant_names
        out[m.mchid] = Relation(names, tuple(m.brand_merchants))
        for sub in names:
            providers_of.setdefault(sub, m.mchid)
    return out, providers_of


def partner_rules(project: ProjectFile) -> Partners:
    """The project's partner rules, for the loader to run on each file as it is read."""
    return Partners(*relations(project))


def partner_diagnostics(project: ProjectFile, desired: Sequence[DesiredStock]) -> list[Diagnostic]:
    """The partner rules over every stock, each problem at its file:line:col (the file is read
    again only for a stock that has one)."""
    rels, providers_of = relations(project)
    out: list[Diagnostic] = []
    for d in desired:
        findings = partner_findings(d.stock, rels, providers_of)
        if not findings:
            continue
        try:
            raw = (project.root / d.file).read_bytes()
        except OSError:
            raw = b""
        doc = read_document(raw, d.file)
        if doc.data is None:
            out += [
                Diagnostic(
                    d.file, d.line, 1, f.severity, f.path, f.message, f.code, f.message_id, f.params
                )
                for f in findings
            ]
        else:
            out += findings_to_diagnostics(doc, findings)
    return sorted(out, key=lambda x: (x.file, x.line, x.col))


def with_sub_totals(plan: Plan, desired: Sequence[DesiredStock], project: ProjectFile) -> Plan:
    """`plan` with its per-sub-merchant totals: for every create (and recovered create) of a
    merchant that declares sub-merchants, its budget counted at each sub-merchant where the
    money lands (`landing_merchants`)."""
    rels, _ = relations(project)
    providers = {m: r for m, r in rels.items() if r.sub_merchants}
    if not providers:
        return plan
    by_id: Mapping[str, DesiredStock] = {d.stock.id: d for d in desired}
    rows: dict[tuple[str, str], list[int]] = {}
    for change in plan.changes:
        relation = providers.get(change.merchant)
        d = by_id.get(change.id)
        if relation is None or d is None or change.budget_fen is None:
            continue
        if change.action is not Action.CREATE and not (
            change.action is Action.RECOVER and change.stock_id is None
        ):
            continue
        for where in landing_merchants(d.stock):
            if where not in relation.sub_merchants:
                continue
            row = rows.setdefault((change.merchant, where), [0, 0, 0, 0])
            row[0] += 1
            row[1] += change.budget_fen
            row[2] += change.ceiling_fen or 0
            row[3] += change.locked_fen or 0
    totals = tuple(
        SubMerchantTotals(m, sub, providers[m].sub_merchants[sub], *row)
        for (m, sub), row in sorted(rows.items())
    )
    return replace(plan, sub_totals=totals) if totals else plan
