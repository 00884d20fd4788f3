"""The two languages a reviewer reads: Chinese (zh) and English (en). Pure.

Every sentence a person reads in a plan, an apply summary or a validate report is a message id
with named parameters, looked up here in both languages (`t`). Field names are the API's; their
labels are the documentation's Chinese names (`reconciler.spec.labels`). JSON keeps English
keys whatever the language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from reconciler.diagnostic_messages import CATALOGUE, Msg

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "en"


def resolve_lang(option: str | None, configured: str | None, environ: Mapping[str, str]) -> Lang:
    """`--lang`, else reconciler.yaml's `language:`, else the locale (`LC_ALL`, `LC_MESSAGES`,
    `LANG`: zh_* is Chinese), else English."""
    for chosen in (option, configured):
        if chosen == "zh":
            return "zh"
        if chosen == "en":
            return "en"
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return DEFAULT_LANG


MESSAGES: dict[str, tuple[str, str]] = {
    # --- the headline -------------------------------------------------------------------------
    "title": ("reconciler plan", "reconciler 计划"),
    "headline.stocks": (
        "Stocks: {create} to create · {change} to change · {unchanged} unchanged",
        "批次：新建 {create} 个 · 变更 {change} 个 · 不变 {unchanged} 个",
    ),
    "headline.drift": ("{n} changed outside reconciler", "{n} 个在 reconciler 之外被改动"),
    "headline.orphan": ("{n} without a file", "{n} 个已无文件"),
    "headline.errors": ("{n} to fix before apply", "{n} 个须先修正"),
    "headline.locked": (
        "Locked at activation (预充值 代金券): {amount} from merchant {merchant}'s balance",
        "激活时锁定（预充值 代金券）：商户 {merchant} 余额中 {amount}",
    ),
    "headline.ceiling": (
        "Ceiling only, locks nothing (免充值, 商家券 discounts): up to {amount} for merchant {merchant}",
        "仅为上限、不锁定资金（免充值、商家券优惠）：商户 {merchant} 最多 {amount}",
    ),
    "headline.delta": (
        "Budget change {id}: {delta} ({before} → {after} × {unit})",
        "预算变更 {id}：{delta}（{before} → {after} × {unit}）",
    ),
    "headline.more_deltas": (
        "{n} more budget changes: {delta} in all",
        "另有 {n} 项预算变更，合计 {delta}",
    ),
    "headline.no_money": ("Money: none committed or locked", "资金：不锁定、不承诺任何金额"),
    "no_changes": ("No changes. {n} stocks in sync.", "没有变更。{n} 个批次均已同步。"),
    "refuses": (
        "Apply refuses this plan: {n} to fix first.",
        "apply 将拒绝此计划：须先修正 {n}。",
    ),
    "time": (
        "Estimated apply time: {time} (merchants run in parallel)",
        "预计执行时间：{time}（各商户并行）",
    ),
    # --- actions ------------------------------------------------------------------------------
    "action.create": ("create", "新建"),
    "action.update": ("update", "变更"),
    "action.recover": ("resume an interrupted create", "继续被中断的创建"),
    "action.recover_update": ("resume an interrupted change", "继续被中断的变更"),
    "action.no-op": ("in sync", "已同步"),
    "action.drift": ("changed outside reconciler", "在 reconciler 之外被改动"),
    "action.orphan": ("no file any more", "已无文件"),
    "action.blocked": ("cannot be created", "无法创建"),
    "action.immutable": ("cannot change", "不可更改"),
    "action.rename": ("renamed?", "疑似改名"),
    "action.unresolved": ("outcome unknown", "结果未知"),
    "action.untracked": ("untracked earlier", "曾被取消跟踪"),
    "action.mismatch": ("another stock", "另一个批次"),
    # --- what an error or an orphan means (the planner's reason gives the details) ------------
    "explain.immutable": (
        "WeChat Pay does not allow this change after creation; a replacement would be a second stock, and the budget would count twice.",
        "微信支付不允许在创建后做此更改；另建一个批次会使预算重复计算（批次无法删除）。",
    ),
    "explain.blocked": (
        "This stock cannot be created now.",
        "此批次现在无法创建。",
    ),
    "explain.rename": (
        "Probably a renamed id: the body equals a stock that lost its file.",
        "疑似改了 id：内容与一个已无文件的批次相同。",
    ),
    "explain.unresolved": (
        "An earlier create may have succeeded, and the stock cannot be looked up.",
        "之前的创建可能已成功，但无法查到该批次。",
    ),
    "explain.untracked": (
        "An earlier stock of this id is no longer tracked; creating again would make a second one.",
        "此 id 之前的批次已不再跟踪；再次创建会产生第二个批次。",
    ),
    "explain.mismatch": (
        "The stock WeChat Pay shows under the recorded 批次号 is another one; nothing is sent to it.",
        "微信支付上记录的批次号对应的是另一个批次；不会向它发送任何请求。",
    ),
    "explain.orphan": (
        "Recorded, but its file is gone; stocks cannot be deleted, so nothing is done.",
        "状态中有记录但文件已删除；批次无法删除，因此不做任何操作。",
    ),
    "details_en": ("Details: {reason}", "详情（英文）：{reason}"),
    # --- per stock ----------------------------------------------------------------------------
    "merchant": ("merchant {merchant}", "商户 {merchant}"),
    "file": ("file {file}", "文件 {file}"),
    "stock_id": ("stock_id {stock_id}", "批次号 {stock_id}"),
    "changes": ("What changes", "变更内容"),
    "fields": ("Every field", "全部字段"),
    "never_changes": ("cannot change after creation", "创建后不可更改"),
    "can_change": ("can change later", "创建后可更改"),
    "observed": ("Observed at WeChat Pay", "微信支付上的现状"),
    "fix": ("How to fix", "如何修正"),
    "fix_text": ("{text}", "{text}"),
    "technical": ("Technical details", "技术细节"),
    "sends": ("requests: {calls}", "请求：{calls}"),
    "request": ("{call}, request number {number}", "{call}，请求单号 {number}"),
    "plan_meta": (
        "planned {at} · reconciler {version} · state serial {serial} · refresh: {refresh}",
        "生成于 {at} · reconciler {version} · 状态序号 {serial} · 刷新模式：{refresh}",
    ),
    "checksum": ("checksum {checksum}", "校验和 {checksum}"),
    "budget_committed": ("budget committed: {amount}", "承诺预算：{amount}"),
    "budget_would": (
        "would commit {amount}, once it can be created",
        "可以创建后将承诺 {amount}",
    ),
    "locked_one": (
        "locked from the balance at activation (预充值): {amount}",
        "激活时从余额锁定（预充值）：{amount}",
    ),
    "ceiling_one": (
        "ceiling only, never locked: {amount}",
        "仅为上限、不锁定资金：{amount}",
    ),
    "delta_one": (
        "budget {delta} ({before} → {after} × {unit})",
        "预算 {delta}（{before} → {after} × {unit}）",
    ),
    "per_merchant": ("Per merchant", "按商户"),
    "merchant_totals": (
        "{merchant}: {creates} to create, {updates} to change, {recovers} to resume · {money} · {time}",
        "{merchant}：新建 {creates}，变更 {updates}，继续 {recovers} · {money} · {time}",
    ),
    "totals_money": (
        "budget {budget}, locked at activation {locked}, ceiling {ceiling}, budget changes {delta}",
        "预算 {budget}，激活锁定 {locked}，上限 {ceiling}，预算变更 {delta}",
    ),
    "errors_title": ("Errors: apply refuses this plan", "错误：apply 将拒绝此计划"),
    "details_title": ("Stocks", "批次"),
    "more_stocks": (
        "{n} more stocks are folded away to fit GitHub's comment limit; the full plan is in {where}.",
        "为符合 GitHub 评论长度上限，另有 {n} 个批次未展开；完整计划见{where}。",
    ),
    "more_errors": (
        "{n} more errors are not shown here; the full plan is in {where}.",
        "另有 {n} 个错误未在此显示；完整计划见{where}。",
    ),
    "full_plan_link": (
        "the [job summary and the plan artifact]({url})",
        "[任务摘要与计划附件]({url})",
    ),
    "full_plan_plain": (
        "the job summary and the plan artifact",
        "任务摘要与计划附件",
    ),
    "full_plan_line": ("Full plan: {where}.", "完整计划：{where}。"),
    "cut": (
        "Output cut to fit the comment size limit; the full plan is in {where}.",
        "内容已截断以符合评论长度上限；完整计划见{where}。",
    ),
    "note": ("Note: {note}", "说明：{note}"),
    "irreversible": ("irreversible", "不可撤销"),
    "none": ("(none)", "（无）"),
    "other": ("Other", "其他"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    # --- apply --------------------------------------------------------------------------------
    "apply.finished": ("Apply finished: {parts}.", "执行完成：{parts}。"),
    "apply.nothing": ("nothing to do", "无事可做"),
    "apply.no_changes": ("No changes to apply.", "没有需要执行的变更。"),
    "apply.skipped": ("skipped, nothing sent: {ids}", "已跳过，未发送：{ids}"),
    "apply.left": (
        "The state holds everything that succeeded; run `reconciler plan` to see what is left.",
        "状态已记录所有成功的步骤；运行 `reconciler plan` 查看剩余内容。",
    ),
    "apply.confirm": ("Apply these changes?", "执行这些变更吗？"),
    "outcome.succeeded": ("succeeded", "成功"),
    "outcome.failed": ("failed", "失败"),
    "outcome.unresolved": ("unresolved", "未决"),
    "outcome.skipped": ("skipped", "跳过"),
    "apply.failed_line": ("  {outcome}: {id}: {message}", "  {outcome}：{id}：{message}"),
    "apply.and_more": ("{ids} and {n} more", "{ids} 等，另有 {n} 个"),
    "apply.next": ("      next: {suggestion}", "      下一步：{suggestion}"),
    "apply.applying": ("applying", "执行中"),
    "apply.starting": ("starting", "刚开始"),
    "apply.rate": ("{rate}/min", "{rate} 个/分钟"),
    "apply.ticker": (
        "... {done}/{total} done, {rate}; {waiting}",
        "... 已完成 {done}/{total}，{rate}；{waiting}",
    ),
    "apply.waiting": ("waiting for the rate limit: {parts}", "等待限频：{parts}"),
    "apply.waiting_one": (
        "{call} {limit}, merchant {merchant} ({count} call{s})",
        "{call} {limit}，商户 {merchant}（{count} 个请求）",
    ),
    "apply.throttled": (
        "WeChat Pay answered 429 (too many requests) {total} time(s), each retried after a "
        "back-off: {parts}. Raise api.rate_limit_margin in reconciler.yaml if this repeats.",
        "微信支付返回 429（请求过多）{total} 次，每次均在退避后重试：{parts}。"
        "如果反复出现，请调大 reconciler.yaml 中的 api.rate_limit_margin。",
    ),
    "apply.lock_wait": (
        "Waiting up to {seconds} s for the lock held by {holder} ({command}, since {since})...",
        "最多等待 {seconds} 秒，直到 {holder} 释放锁（{command}，自 {since} 起）……",
    ),
    "apply.interrupted": (
        "Interrupted: no new request starts; finishing the requests on the wire and saving the state (Ctrl-C again to abort).",
        "已中断：不再发起新请求；正在完成已发出的请求并保存状态（再按 Ctrl-C 强行中止）。",
    ),
    "apply.scope": ("  scope: {scope}", "  范围：{scope}"),
    # --- one stock's result (the applier's English, matched part by part) ---------------------
    # The English is the applier's wording with its values as {names}; `result_text` finds
    # the entry a part of a result matches and shows the Chinese with the same values.
    "result.created": ("created stock_id {stock_id} (批次号)", "已创建，批次号 {stock_id}"),
    "result.activated": ("activated (start)", "已激活"),
    "result.paused": ("paused", "已暂停"),
    "result.restarted": ("restarted", "已重启"),
    "result.stopped": ("stopped (irreversible)", "已终止（不可撤销）"),
    "result.sent": ("{op} sent ({number})", "已发送 {op}（请求单号 {number}）"),
    "result.not_started": ("interrupted before it started", "开始前被中断，未发送"),
    "result.interrupted_before": ("interrupted before {op}", "在 {op} 之前被中断，未发送"),
    "result.interrupted_before_sent": (
        "interrupted before the {op} was sent",
        "在 {op} 发送之前被中断，未发送",
    ),
    "result.interrupted_activation": (
        "interrupted while waiting to activate ({why}); the next apply activates it",
        "等待激活时被中断（{why}）；下次 apply 会激活它",
    ),
    "result.image_kept": ("{file} already uploaded", "{file} 已上传过"),
    "result.image_uploaded": ("uploaded {file}", "已上传 {file}"),
    "result.image_interrupted": ("interrupted while uploading {file}", "上传 {file} 时被中断"),
    "result.not_activated": (
        "not activated: {why}; the stock stays created (unactivated) and the next apply activates it",
        "未激活：{why}；批次保持已创建（未激活），下次 apply 会激活它",
    ),
    "result.not_activated_after": (
        "not activated after {n} start(s) ({why}); the stock stays created (unactivated) and the next apply activates it",
        "已尝试激活 {n} 次仍未激活（{why}）；批次保持已创建（未激活），下次 apply 会激活它",
    ),
    "result.not_activated_unread": (
        "not activated after {n} start(s) ({why}), and the stock could not be read back to see whether one of them activated it; the state keeps the start pending and the next apply reads the stock back and settles it",
        "已尝试激活 {n} 次（{why}），且无法读回批次确认其中一次是否已激活；状态中保留这次激活待定，下次 apply 会读回批次并确定结果",
    ),
    "result.refused": ("{op} refused: {why}", "{op} 被拒绝：{why}"),
    "result.create_unknown": (
        "the create's outcome is unknown ({why}); the state keeps it pending and the next apply resends the identical body under the same out_request_no",
        "创建结果未知（{why}）；状态将其记为待定，下次 apply 会以同一 out_request_no 重发完全相同的请求",
    ),
    "result.create_interrupted": (
        "interrupted while the create's outcome is unknown ({why}); the next apply resends the identical body under the same out_request_no",
        "创建结果未知时被中断（{why}）；下次 apply 会以同一 out_request_no 重发完全相同的请求",
    ),
    "result.update_interrupted": (
        "interrupted while the {op}'s outcome is unknown ({why}); the next apply reads the stock back and settles it",
        "{op} 结果未知时被中断（{why}）；下次 apply 会读回批次并确定结果",
    ),
    "result.update_unknown": (
        "the {op}'s outcome is unknown ({why}); the next apply reads the stock back and settles it",
        "{op} 结果未知（{why}）；下次 apply 会读回批次并确定结果",
    ),
    "result.resend_unknown": (
        "the {op}'s outcome is unknown ({why}); the next apply resends it with the same request number",
        "{op} 结果未知（{why}）；下次 apply 会以同一请求单号重发",
    ),
    "result.read_back_differs": (
        "{op} was accepted, but reading it back: {differs}; nothing is recorded as applied",
        "{op} 已被受理，但读回时：{differs}；不记为已执行",
    ),
    "result.number_used": (
        "WeChat Pay says the out_request_no was already used ({why}) and the stock it created cannot be looked up",
        "微信支付称该 out_request_no 已被使用（{why}），且查不到它创建的批次",
    ),
    "result.find_and_import": (
        "find the stock_id in 商户平台, then: reconciler state import {id} <stock_id>",
        "在商户平台找到批次号，然后运行：reconciler state import {id} <stock_id>",
    ),
    "result.codes_uploaded": ("{n} code(s) uploaded ({number})", "已上传 {n} 个券码（{number}）"),
    "result.codes_found": (
        "{n} code(s) found uploaded ({number})",
        "{n} 个券码已在池中（{number}）",
    ),
    "result.codes_refused": (
        "code batch {number} refused: {why}",
        "券码批次 {number} 被拒绝：{why}",
    ),
    "result.codes_not_sent": (
        "interrupted before code batch {number} was sent",
        "券码批次 {number} 发送前被中断，未发送",
    ),
    "result.codes_unknown": (
        "code batch {number}: outcome unknown ({why}); the next apply resends the same codes under the same upload_request_no",
        "券码批次 {number}：结果未知（{why}）；下次 apply 会以同一 upload_request_no 重发相同的券码",
    ),
    "result.codes_elsewhere": (
        "WeChat Pay counts {total} codes, {recorded} uploaded by reconciler (the others were uploaded elsewhere)",
        "微信支付券码池共 {total} 个，reconciler 上传了 {recorded} 个（其余在别处上传）",
    ),
    "result.codes_mismatch": (
        "WeChat Pay counts {total} codes in the pool, the state records {recorded} uploaded; check the pool in 商户平台",
        "微信支付券码池共 {total} 个，状态记录已上传 {recorded} 个；请在商户平台核对券码池",
    ),
    "result.callback_set": ("{kind} callback set to {url}", "{kind} 回调地址已设为 {url}"),
    "result.callback_kept": (
        "{kind} callback is {url} (read back, nothing sent)",
        "{kind} 回调地址已是 {url}（已读回，未发送）",
    ),
    "result.callback_refused": ("{kind} callback refused: {why}", "{kind} 回调地址被拒绝：{why}"),
    "result.callback_not_sent": (
        "interrupted before the {kind} callback was set",
        "设置 {kind} 回调地址前被中断，未发送",
    ),
    "result.callback_unknown": (
        "the {kind} callback set's outcome is unknown ({why}); the next apply reads it back",
        "{kind} 回调地址设置结果未知（{why}）；下次 apply 会读回确认",
    ),
    # --- validate -----------------------------------------------------------------------------
    "severity.error": ("error", "错误"),
    "severity.warning": ("warning", "警告"),
    "validate.summary": (
        "{files} checked, {stocks} valid, {errors}, {warnings}",
        "已检查 {files} 个文件，{stocks} 个批次有效，{errors} 个错误，{warnings} 个警告",
    ),
    "validate.more": (
        "{errors} more error(s) and {warnings} more warning(s) are not annotated (GitHub shows 10 of each per step); see the full list in this log",
        "另有 {errors} 个错误和 {warnings} 个警告未标注（GitHub 每步各显示 10 个）；完整列表见此日志",
    ),
}


def t(lang: Lang, key: str, **params: object) -> str:
    """The message `key` in `lang`, with its parameters filled in."""
    en, zh = MESSAGES[key]
    return (zh if lang == "zh" else en).format(**params)


def count(lang: Lang, n: int, en_word: str, zh_word: str = "个") -> str:
    """`3 stocks` / `3 个`: a number with its word in either language."""
    if lang == "zh":
        return f"{n:,} {zh_word}"
    return f"{n:,} {en_word}" + ("" if n == 1 else "s")


def pick(lang: Lang, en: str, zh: str) -> str:
    """One of two wordings built in place (a kind's summary line), by language."""
    return zh if lang == "zh" else en


def date_range(begin: object, end: object) -> str:
    """`3月1日–3月31日` from two RFC3339 times, read in their own offsets; the year is shown
    when the two differ. Text that is not a time is shown as written."""
    import re

    def parts(value: object) -> tuple[str, str, str] | None:
        m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T", value) if isinstance(value, str) else None
        return (m.group(1), str(int(m.group(2))), str(int(m.group(3)))) if m else None

    b, e = parts(begin), parts(end)
    if b is None or e is None:
        return f"{begin if begin is not None else '?'}–{end if end is not None else '?'}"
    if b[0] != e[0]:
        return f"{b[0]}年{b[1]}月{b[2]}日–{e[0]}年{e[1]}月{e[2]}日"
    return f"{b[1]}月{b[2]}日–{e[1]}月{e[2]}日"


DIAGNOSTICS = CATALOGUE
"""Both wordings of the diagnostics that carry a `message_id`
(`reconciler.diagnostic_messages`); a diagnostic without one is shown as written."""


def diagnostic_message(
    message: str, message_id: str, params: Mapping[str, object], lang: Lang
) -> str:
    """A diagnostic's message in `lang`: the catalogue's wording when it has one. English is
    the message as the check wrote it (the catalogue's English filled in, or more)."""
    if lang == "zh" and message_id in DIAGNOSTICS:
        try:
            return Msg(message_id, params).text(1)
        except (KeyError, IndexError):
            return message
    return message
