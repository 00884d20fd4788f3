"""Service providers (服务商): sub-merchants in reconciler.yaml, the partner rules at plan time
(each at its file:line:col), the emulator's provider–sub-merchant relation, and the plan's
totals per sub-merchant where the money lands."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings
from reconciler.errors import ApiError
from reconciler.runtime import Runtime
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.retry import RetryPolicy
from tests.cli_invoke import invoke
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Workspace,
    assert_one_remote_per_id,
    dump_yaml,
    emulator_stocks,
    generated_stock,
    make_workspace,
)

PROVIDER = MCHID
SUBS = [f"19001000{i:02d}" for i in range(1, 21)]


def _write(ws: Workspace, data: dict[str, Any]) -> Path:
    path = ws.stocks_dir / str(data["kind"]) / f"{data['id']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(data), encoding="utf-8")
    return path


def _declare(ws: Workspace, lines: str) -> None:
    """Append settings to the (last, here the only) merchant of reconciler.yaml."""
    with ws.project_file.open("a", encoding="utf-8") as f:
        f.write(lines)


def _subs_yaml(subs: list[str]) -> str:
    return "    sub_merchants:\n" + "".join(
        f'      - {{mchid: "{m}", name: 门店{i + 1:02d}}}\n' for i, m in enumerate(subs)
    )


def busi_for(index: int, owner: str) -> dict[str, Any]:
    data = generated_stock("busifavor", index, PROVIDER)
    data["spec"]["belong_merchant"] = owner
    return data


def no_cash_favor(index: int, available: list[str], merchant: str = PROVIDER) -> dict[str, Any]:
    data = generated_stock("favor", index, merchant)
    data["spec"]["no_cash"] = True
    data["spec"]["coupon_use_rule"]["available_merchants"] = available
    return data


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "project")


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        running.emu.add_sub_merchants(PROVIDER, SUBS)
        _declare(ws, _subs_yaml(SUBS))
        yield running


# --- a provider with 20 sub-merchants, planned and applied ------------------------------------


def test_a_provider_plans_and_applies_for_twenty_sub_merchants(
    ws: Workspace, local: LocalEmulator
) -> None:
    owner_of: dict[str, list[str]] = {}
    for i in range(100):
        data = busi_for(i, SUBS[i % 20])
        owner_of[data["id"]] = [SUBS[i % 20]]
        _write(ws, data)
    for i in range(20):
        data = no_cash_favor(i, [SUBS[i]])
        owner_of[data["id"]] = [SUBS[i]]
        _write(ws, data)

    run = ws.cli("plan", "--format", "json")
    assert run.exit_code == 0, str(run)
    doc = run.json()
    budget = {c["id"]: c["budget_fen"] for c in doc["changes"]}
    assert len(budget) == 120 and all(c["action"] == "create" for c in doc["changes"])
    expected: dict[str, list[int]] = {}
    for stock, owners in owner_of.items():
        for sub in owners:
            row = expected.setdefault(sub, [0, 0])
            row[0] += 1
            row[1] += budget[stock]
    rows = doc["sub_merchant_totals"]
    assert [r["sub_merchant"] for r in rows] == SUBS
    for r in rows:
        assert r["merchant"] == PROVIDER
        assert r["name"] == f"门店{SUBS.index(r['sub_merchant']) + 1:02d}"
        assert [r["creates"], r["create_budget_fen"]] == expected[r["sub_merchant"]]
        assert r["creates"] == 6  # five 商家券 and one 免充值 代金券 each
        # Everything here is a ceiling (商家券 discounts, 免充值): nothing is locked.
        assert r["ceiling_fen"] == r["create_budget_fen"] and r["locked_fen"] == 0
    (provider,) = doc["totals"]
    assert provider["create_budget_fen"] == sum(r["create_budget_fen"] for r in rows)
    text = ws.cli("plan").stdout
    assert "Per sub-merchant" in text and f"{PROVIDER} → {SUBS[0]} 门店01: 6 creates" in text

    applied = ws.cli("apply", "--yes")
    assert applied.exit_code == 0, str(applied)
    remote = local.emu.stocks
    assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), sorted(owner_of))
    for created in remote.values():
        assert created.creator_mchid == PROVIDER
        if created.kind == "busifavor":
            assert created.body["belong_merchant"] in SUBS
    again = ws.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, str(again)


# --- every partner rule violation, at file:line:col --------------------------------------------


_DIAGNOSTIC = re.compile(r"^\S+:\d+:\d+: error: .*$", re.MULTILINE)


def _plan_errors(ws: Workspace) -> str:
    """plan's errors; `validate` reports every one of them too, at the same place with the
    same words (it checks the partner rules per file as it reads them)."""
    run = ws.cli("plan", "--refresh", "false")
    assert run.exit_code == 1, str(run)
    assert "Traceback" not in run.output
    planned = set(_DIAGNOSTIC.findall(run.output))
    # validate has no --project: it reads the reconciler.yaml where it runs.
    checked = invoke(["validate"], runtime=Runtime(ws.root, dict(os.environ), ws.clock.clock()))
    assert checked.exit_code == 1, checked.output
    validated = set(_DIAGNOSTIC.findall(checked.output))
    assert planned and planned <= validated, (run.output, checked.output)
    return run.output


def test_a_busifavor_for_a_merchant_the_provider_does_not_serve(
    ws: Workspace, local: LocalEmulator
) -> None:
    path = _write(ws, busi_for(1, "1999999999"))
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "belong_merchant" in t)
    out = _plan_errors(ws)
    assert f"{path.relative_to(ws.root).as_posix()}:{line}:" in out
    assert "spec.belong_merchant" in out and "'1999999999' is neither the creating merchant" in out


def test_a_direct_merchant_s_busifavor_belongs_to_itself(ws: Workspace) -> None:
    with LocalEmulator(ws):
        _write(ws, busi_for(1, SUBS[0]))  # no sub_merchants declared
        out = _plan_errors(ws)
        assert "spec.belong_merchant" in out and "nor one of its sub_merchants" in out


def test_a_no_cash_favor_usable_outside_the_sub_merchants(
    ws: Workspace, local: LocalEmulator
) -> None:
    _write(ws, no_cash_favor(1, [SUBS[0], "1999999999"]))
    out = _plan_errors(ws)
    assert "spec.coupon_use_rule.available_merchants" in out
    assert "'1999999999' is not the creating merchant" in out


def test_brand_merchants_may_be_listed_and_a_prefunded_favor_is_not_checked(
    ws: Workspace, local: LocalEmulator
) -> None:
    _declare(ws, '    brand_merchants: ["1999999999"]\n')
    _write(ws, no_cash_favor(1, [SUBS[0], "1999999999"]))
    prefunded = no_cash_favor(2, ["1888888888"])
    prefunded["spec"]["no_cash"] = False
    _write(ws, prefunded)
    run = ws.cli("plan", "--refresh", "false")
    assert run.exit_code == 0, str(run)


def test_a_sub_merchant_cannot_create_a_favor_stock(ws: Workspace) -> None:
    ws.mchids = (PROVIDER, SUBS[0])
    from tests.e2e_support import write_keys

    write_keys(ws.root, ws.mchids)
    with LocalEmulator(ws):
        text = ws.project_file.read_text(encoding="utf-8")
        # The provider is listed first: declare its sub-merchant under it.
        at = text.index(f'  - mchid: "{SUBS[0]}"')
        ws.project_file.write_text(
            text[:at] + f'    sub_merchants: ["{SUBS[0]}"]\n' + text[at:], encoding="utf-8"
        )
        _write(ws, no_cash_favor(1, [SUBS[0]], merchant=SUBS[0]) | {"id": "sub-own-favor"})
        out = _plan_errors(ws)
        assert "merchant: '1900100001' is a sub-merchant of '1900000001'" in out


def test_sub_merchants_listed_twice_or_the_merchant_itself_are_refused(ws: Workspace) -> None:
    with LocalEmulator(ws):
        _declare(ws, f'    sub_merchants: ["{SUBS[0]}", "{SUBS[0]}", "{PROVIDER}"]\n')
        run = ws.cli("plan", "--refresh", "false")
        assert run.exit_code == 1 and "reconciler.yaml:" in run.output, str(run)
        assert "more than once" in run.output


# --- the emulator refuses what WeChat Pay refuses ----------------------------------------------


def signed_client(emu: Emulator, mchid: str) -> WeChatPayClient:
    merchant = DemoMerchant.generate(mchid)
    merchant.register(emu)
    credentials = MerchantCredentials(
        mchid,
        merchant.serial_no,
        merchant.private_key,
        wechatpay_public_key=emu.wechatpay_public_key,
        wechatpay_public_key_id=emu.wechatpay_public_key_id,
    )
    return WeChatPayClient(credentials, transport=emu.transport(), retry=RetryPolicy(1))


@pytest.fixture
def provider_client(tmp_path: Path) -> Iterator[tuple[Emulator, WeChatPayClient]]:
    emu = Emulator(EmulatorSettings(rate_limiting=False), data_path=tmp_path / "emulator.json")
    with signed_client(emu, PROVIDER) as client:
        emu.add_sub_merchants(PROVIDER, SUBS[:2])
        yield emu, client
    again = Emulator(EmulatorSettings(), data_path=tmp_path / "emulator.json")
    # The relation is kept in the data file, and read back at start.
    assert again.sub_merchants(PROVIDER) == frozenset(SUBS[:2])
    assert again.sub_merchants(SUBS[0]) == frozenset()


def _body(data: dict[str, Any], number: str) -> dict[str, Any]:
    return {**data["spec"], "out_request_no": number}


def test_the_emulator_knows_the_provider_and_its_sub_merchants(
    provider_client: tuple[Emulator, WeChatPayClient],
) -> None:
    emu, client = provider_client
    client.busifavor_create(_body(busi_for(1, SUBS[0]), "n1"))
    with pytest.raises(ApiError, match="服务商已授权的子商户号") as refused:
        client.busifavor_create(_body(busi_for(2, "1999999999"), "n2"))
    assert "PARAM_ERROR" in str(refused.value)
    client.favor_create(_body(no_cash_favor(3, [PROVIDER, SUBS[1]]), "n3"))
    with pytest.raises(ApiError, match="免充值批次的可用商户"):
        client.favor_create(_body(no_cash_favor(4, [SUBS[0], "1999999999"]), "n4"))
    with signed_client(emu, SUBS[0]) as sub, pytest.raises(ApiError, match="NO_AUTH"):
        sub.favor_create(_body(no_cash_favor(5, [SUBS[0]], merchant=SUBS[0]), "n5"))
    assert len(emu.stocks) == 2


def test_add_merchant_registers_a_sub_merchant_of_a_registered_provider(tmp_path: Path) -> None:
    from tests.test_init import run

    data = tmp_path / "emu" / "emulator.json"
    missing = run(
        "emulator", "add-merchant", SUBS[0], "--data", str(data), "--sub-merchant-of", PROVIDER
    )
    assert missing.exit_code == 1 and f"add-merchant {PROVIDER} first" in missing.output
    assert run("emulator", "add-merchant", PROVIDER, "--data", str(data)).exit_code == 0
    added = run(
        "emulator", "add-merchant", SUBS[0], "--data", str(data), "--sub-merchant-of", PROVIDER
    )
    assert added.exit_code == 0, added.output
    assert f'sub_merchants: ["{SUBS[0]}"]' in added.output
    assert not (data.parent / f"{SUBS[0]}_key.pem").exists()  # the provider calls for it
    assert Emulator(data_path=data).sub_merchants(PROVIDER) == frozenset({SUBS[0]})


def test_validate_checks_the_partner_rules_in_worker_processes_too(tmp_path: Path) -> None:
    from reconciler.loader import load_stocks
    from reconciler.spec.rules_partner import Partners, Relation

    for i, owner in enumerate([SUBS[0], "1999999999", PROVIDER]):
        data = busi_for(i, owner)
        (tmp_path / f"{data['id']}.yaml").write_text(dump_yaml(data), encoding="utf-8")
    rules = Partners({PROVIDER: Relation({SUBS[0]: ""})})
    alone = load_stocks([tmp_path], base=tmp_path, keep=False, workers=1, partners=rules)
    forked = load_stocks([tmp_path], base=tmp_path, keep=False, workers=2, partners=rules)
    assert forked.diagnostics == alone.diagnostics and forked.valid == alone.valid == 2
    (problem,) = alone.diagnostics
    assert problem.path == ("spec", "belong_merchant") and problem.line > 1
    assert "'1999999999' is neither the creating merchant" in problem.message
    unchecked = load_stocks([tmp_path], base=tmp_path, keep=False, workers=1)
    assert unchecked.ok and unchecked.valid == 3
