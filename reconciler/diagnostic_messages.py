"""The validation messages in both languages: a message id with named parameters. Pure.

A check says `msg("range.between", lo="5", ...)`; the English sentence it stores in the
diagnostic is the catalogue's English filled in, and `reconciler.i18n.diagnostic_message`
shows the Chinese one from the same id and parameters. Numbers are formatted once, by the
check, so both languages show the same figures. Another field named in a message carries its
API name in both languages and its documented Chinese name in Chinese.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Msg:
    """One message: its catalogue id and the values its wording takes."""

    id: str
    params: Mapping[str, object] = field(default_factory=dict)

    @property
    def en(self) -> str:
        return self.text(0)

    def text(self, lang: int) -> str:
        """The wording at `lang` (0 English, 1 Chinese); a parameter that is itself a `Msg`
        (a phrase such as "a list") is worded in the same language."""
        values = {k: v.text(lang) if isinstance(v, Msg) else v for k, v in self.params.items()}
        return CATALOGUE[self.id][lang].format(**values)


def msg(message_id: str, /, **params: object) -> Msg:
    return Msg(message_id, params)


class MsgError(ValueError):
    """A validator's refusal that carries its catalogue message (pydantic keeps the error)."""

    def __init__(self, message: Msg) -> None:
        super().__init__(message.en)
        self.message = message


def coded(message: Msg, code: str) -> tuple[str, str, str, Mapping[str, object]]:
    """A diagnostic's message, code, message id and parameters, in `Diagnostic`'s order."""
    return message.en, code, message.id, message.params


def parts(message: str | Msg) -> tuple[str, str, Mapping[str, object]]:
    """A diagnostic's message, message id and parameters, from a `Msg` or plain English."""
    if isinstance(message, Msg):
        return message.en, message.id, message.params
    return message, "", {}


CATALOGUE: dict[str, tuple[str, str]] = {
    # --- shape (reconciler.validation) -------------------------------------------------------
    "missing": ("required field {name!r} is missing", "缺少必填字段 {name!r}"),
    "unknown_field": ("unknown field {name!r}", "未知字段 {name!r}"),
    "unknown_field.out_request_no": (
        "unknown field {name!r}; reconciler derives it from the merchant, kind and id, so remove it",
        "未知字段 {name!r}：reconciler 会根据商户、类型和 id 生成它，请删除",
    ),
    "unknown_field.hint": (
        "unknown field {name!r}; did you mean {hint!r}?",
        "未知字段 {name!r}；是否应为 {hint!r}？",
    ),
    "unknown_field.known": (
        "unknown field {name!r}; expected one of: {known}",
        "未知字段 {name!r}；可用字段：{known}",
    ),
    "type.int_type": ("expected an integer, got {got}", "应为整数，实际为 {got}"),
    "type.int_parsing": ("expected an integer, got {got}", "应为整数，实际为 {got}"),
    "type.string_type": (
        "expected a string (quote it), got {got}",
        "应为字符串（请加引号），实际为 {got}",
    ),
    "type.bool_type": ("expected true or false, got {got}", "应为 true 或 false，实际为 {got}"),
    "type.list_type": ("expected a list, got {got}", "应为列表，实际为 {got}"),
    "type.model_type": ("expected a mapping, got {got}", "应为映射（键值对），实际为 {got}"),
    "type.dict_type": ("expected a mapping, got {got}", "应为映射（键值对），实际为 {got}"),
    "type.model_attributes_type": (
        "expected a mapping, got {got}",
        "应为映射（键值对），实际为 {got}",
    ),
    "bound.greater_than_equal": (
        "must be at least {bound}; is {value}",
        "不得小于 {bound}；当前为 {value}",
    ),
    "bound.greater_than": (
        "must be more than {bound}; is {value}",
        "必须大于 {bound}；当前为 {value}",
    ),
    "bound.less_than_equal": (
        "must be at most {bound}; is {value}",
        "不得大于 {bound}；当前为 {value}",
    ),
    "bound.less_than": (
        "must be less than {bound}; is {value}",
        "必须小于 {bound}；当前为 {value}",
    ),
    "too_long": (
        "{text} is {n} characters; at most {max}: shorten it",
        "{text} 共 {n} 个字符；最多 {max} 个：请缩短",
    ),
    "empty": ("must not be empty", "不能为空"),
    "one_of": ("must be one of {expected}; got {got}", "必须是 {expected} 之一；实际为 {got}"),
    # --- reading a file (reconciler.yamlsource, reconciler.yamlnodes, reconciler.loader) -----
    "contents.stock": ("a stock file", "批次文件"),
    "contents.stock_keys": ("id, kind, merchant and spec", "id、kind、merchant 和 spec"),
    "contents.project": ("a project file", "项目文件"),
    "contents.project_keys": (
        "stocks, state, api and merchants",
        "stocks、state、api 和 merchants",
    ),
    "value.nothing": ("nothing", "空值"),
    "value.list": ("a list", "列表"),
    "value.text": ("text", "文本"),
    "value.number": ("a number", "数字"),
    "value.bool": ("a boolean", "布尔值"),
    "value.other": ("a value", "单个值"),
    "file.too_large": (
        "file is {size} bytes; a stock or project file may be at most {max}",
        "文件有 {size} 字节；批次文件或项目文件最多 {max} 字节",
    ),
    "file.wide": (
        "file is {encoding} (it starts with a {encoding} byte order mark); save it as UTF-8",
        "文件编码为 {encoding}（以 {encoding} 字节顺序标记开头）；请另存为 UTF-8",
    ),
    "file.binary": (
        "file looks binary (it contains NUL bytes); expected UTF-8 YAML text",
        "文件似乎是二进制文件（含有 NUL 字节）；应为 UTF-8 编码的 YAML 文本",
    ),
    "file.not_utf8": (
        "file is not UTF-8 (invalid byte {byte}); save it as UTF-8",
        "文件不是 UTF-8 编码（无效字节 {byte}）；请另存为 UTF-8",
    ),
    "file.empty": (
        "file is empty; {what} holds one mapping with {keys}",
        "文件为空；{what}应包含一个映射，其中有 {keys}",
    ),
    "file.not_mapping": (
        "top level is {shown}; expected a mapping with {keys}",
        "顶层是{shown}；应为包含 {keys} 的映射",
    ),
    "file.unreadable": ("cannot read: {reason}", "无法读取：{reason}"),
    "file.not_found": ("no such file or directory", "文件或目录不存在"),
    "yaml.version": (
        "%YAML {version} directive: only YAML 1.2 is read; remove the directive (1.1 changes what yes, no and 010 mean)",
        "%YAML {version} 指令：只读取 YAML 1.2；请删除该指令（1.1 会改变 yes、no 和 010 的含义）",
    ),
    "yaml.tab": (
        "tab character in the indentation: YAML indents with spaces only; replace the tab with spaces",
        "缩进中有制表符：YAML 只能用空格缩进；请把制表符换成空格",
    ),
    "yaml.syntax": ("YAML syntax error: {problem}", "YAML 语法错误（解析器原文）：{problem}"),
    "yaml.syntax_odd_break": (
        "YAML syntax error: {problem}; note: the file holds {char} at {at}, which this YAML "
        "reader takes as a line break unless it is inside double quotes: remove it, or quote the value",
        "YAML 语法错误（解析器原文）：{problem}；注意：文件在 {at} 处有 {char}，"
        "除非位于双引号内，本 YAML 读取器会把它当作换行：请删除它，或给值加上引号",
    ),
    "yaml.character": (
        "character {char} is not allowed in YAML (a control or non-character); remove it",
        "YAML 中不允许字符 {char}（控制字符或非字符）；请删除",
    ),
    "yaml.unreadable": ("cannot read YAML: {error}", "无法读取 YAML：{error}"),
    "yaml.documents": (
        "file holds {n} YAML documents; put one per file",
        "文件包含 {n} 个 YAML 文档；每个文件只放一个",
    ),
    "yaml.too_many_nodes": (
        "expands to more than {max} values (through anchors and aliases?); refusing to read it",
        "展开后超过 {max} 个值（是否通过锚点和别名？）；拒绝读取",
    ),
    "yaml.too_deep": ("nested more than {max} levels deep", "嵌套超过 {max} 层"),
    "yaml.not_null": (
        "{value!r} is tagged !!null but is not null",
        "{value!r} 标记为 !!null，但不是空值",
    ),
    "yaml.not_bool": (
        "{value!r} is not a boolean; write true or false",
        "{value!r} 不是布尔值；请写 true 或 false",
    ),
    "yaml.long_number": (
        "a number written with {n} characters; no field takes one that long",
        "数字写了 {n} 个字符；没有字段接受这么长的数字",
    ),
    "yaml.bad_number": ("{value!r} is not a usable number", "{value!r} 不是可用的数字"),
    "yaml.tag": ("unsupported YAML tag {tag!r}; remove it", "不支持的 YAML 标签 {tag!r}；请删除"),
    "yaml.recursive": ("an alias refers to its own anchor", "别名引用了它自己的锚点"),
    "yaml.key": (
        "a mapping key must be a plain value, not a list or mapping",
        "映射的键必须是简单值，不能是列表或映射",
    ),
    "yaml.duplicate_key": (
        "duplicate key {key!r} (first on line {first}); each key may appear once",
        "重复的键 {key!r}（首次出现在第 {first} 行）；每个键只能出现一次",
    ),
    "yaml.node": ("unsupported YAML node", "不支持的 YAML 节点"),
    "yaml.merge": (
        "a merge key (<<) takes a mapping or a list of mappings",
        "合并键（<<）只接受一个映射或映射列表",
    ),
    "kind.missing": (
        "required field 'kind' is missing: favor (代金券) or busifavor (商家券)",
        "缺少必填字段 'kind'：favor（代金券）或 busifavor（商家券）",
    ),
    "kind.unknown": (
        "must be favor (代金券) or busifavor (商家券); got {kind!r}",
        "必须是 favor（代金券）或 busifavor（商家券）；实际为 {kind!r}",
    ),
    "duplicate_id": (
        "id {stock_id!r} is also used by {others}; ids must be unique",
        "id {stock_id!r} 也被 {others} 使用；id 必须唯一",
    ),
    "duplicate_spec": (
        "same merchant, kind and spec as {other!r} ({file}); creating both locks the budget twice",
        "与 {other!r}（{file}）的商户、类型和 spec 相同；两者都创建会锁定两次预算",
    ),
    "unknown_field.missing": (
        "unknown field {name!r}; did you mean {wanted!r} (required, and missing)? Rename the key",
        "未知字段 {name!r}；是否应为必填但缺少的 {wanted!r}？请改正键名",
    ),
    "type.fen": (
        "expected an integer, got {got}; amounts are in 分 (fen), whole numbers: write {fen} for {yuan}",
        "应为整数，实际为 {got}；金额以分为单位，须为整数：{yuan} 应写作 {fen}",
    ),
    "type.fen_or": (
        "expected an integer, got {got}; amounts are in 分 (fen), whole numbers: write {fen} for "
        "{yuan} (or {whole} for {whole_yuan})",
        "应为整数，实际为 {got}；金额以分为单位，须为整数：{yuan} 应写作 {fen}"
        "（若指 {whole_yuan} 则写 {whole}）",
    ),
    "pattern.id": (
        "{value} is not a valid id: use lower-case letters a-z, digits and hyphens (not first or "
        "last), 1 to 64 characters, e.g. 'spring-sale-10-off-100'",
        "{value} 不是有效的 id：请使用小写字母 a-z、数字和连字符（不能在首尾），1 到 64 个字符，"
        "例如 'spring-sale-10-off-100'",
    ),
    "pattern.mchid": (
        "{value} is not a valid merchant id (mchid): use 5 to 32 ASCII digits, quoted, e.g. '1900000001'",
        "{value} 不是有效的商户号（mchid）：请使用 5 到 32 位半角数字并加引号，例如 '1900000001'",
    ),
    "did_you_mean": ("{message}; did you mean {fix!r}?", "{message}；是否应为 {fix!r}？"),
    "key_not_allowed": (
        "{key!r} is not allowed here: {message}",
        "此处不允许键 {key!r}：{message}",
    ),
    "invalid_key": ("keys should be strings; got {got}", "键应为字符串；实际为 {got}"),
    "too_short": ("is {n} characters; at least {min}", "共 {n} 个字符；至少 {min} 个"),
    "time.not_rfc3339": (
        "{value} is not an RFC3339 time with an offset; write it like '2026-05-20T10:00:00+08:00'",
        "{value} 不是带时区偏移的 RFC3339 时间；请写成 '2026-05-20T10:00:00+08:00' 这样的格式",
    ),
    "time.not_real": (
        "{value} is not a real date and time: {reason}",
        "{value} 不是真实存在的日期时间（{reason}）",
    ),
    "got.null": ("nothing (null)", "空值（null）"),
    "got.bool": ("boolean {value}", "布尔值 {value}"),
    "got.string": ("string {value!r}", "字符串 {value!r}"),
    "got.number": ("number {value}", "数字 {value}"),
    "got.mapping": ("a mapping", "映射"),
    "got.type": ("{name}", "{name}"),
    # --- rules of both kinds (reconciler.spec.rules_common) ----------------------------------
    "list_size.exactly_one": (
        "must have exactly 1 entry, has {n}",
        "必须恰好有 1 项；当前有 {n} 项",
    ),
    "list_size.exactly": (
        "must have exactly {lo} entries, has {n}",
        "必须恰好有 {lo} 项；当前有 {n} 项",
    ),
    "list_size.between": (
        "must have {lo} to {hi} entries, has {n}",
        "必须有 {lo} 到 {hi} 项；当前有 {n} 项",
    ),
    "duplicate_entry": ("{item} is listed twice", "{item} 重复出现"),
    "time_order.after": (
        "must be later than {other} ({begin})",
        "必须晚于 {other}（{begin}）",
    ),
    "time_order": ("must be later than begin_time", "必须晚于开始时间 begin_time"),
    "not_open": (
        "the docs say this field is not open yet (暂未开放); WeChat Pay may ignore or refuse it",
        "文档注明此字段暂未开放；微信支付可能忽略或拒绝它",
    ),
    "four_byte_char": (
        "contains characters WeChat Pay refuses (4-byte UTF-8, e.g. emoji): {chars}",
        "含有微信支付拒收的字符（4 字节 UTF-8，如表情符号）：{chars}",
    ),
    "begin_in_past": (
        "{begin} is in the past; a stock must start now or later when it is created",
        "{begin} 已经过去；批次创建时的开始时间须为现在或之后",
    ),
    "begin_too_far": (
        "{begin} is {days} days ahead; WeChat Pay refuses a begin time more than {max} days ahead",
        "{begin} 在 {days} 天之后；微信支付不接受 {max} 天以后的开始时间",
    ),
    "weekday": ("{day} is not a weekday (0 = Sunday … 6)", "{day} 不是星期数（0 = 星期日 … 6）"),
    "required_when": ("is required when {switch} is {value}", "当 {switch} 为 {value} 时必填"),
    "ignored_unless": (
        "has no effect unless {switch} is {value}",
        "仅当 {switch} 为 {value} 时有效，此处不起作用",
    ),
    "wrong_kind": (
        "belongs to stock_type {other}, but stock_type is {stock_type}",
        "属于批次类型 stock_type {other}，但当前批次类型为 {stock_type}",
    ),
    "above.max_coupons": (
        "{value} is above max_coupons ({limit})",
        "{value} 超过发放总上限 max_coupons（{limit}）",
    ),
    "above.max_amount": (
        "{value} is above max_amount ({limit})",
        "{value} 超过总预算 max_amount（{limit}）",
    ),
    "above.send_max_coupons": (
        "{value} is above max_coupons ({limit})",
        "{value} 超过批次最大发放个数 max_coupons（{limit}）",
    ),
    "colour": (
        "{value} is not a colour; use one of {colours}",
        "{value} 不是可用的颜色；请使用以下之一：{colours}",
    ),
    # --- image files (reconciler.spec.images, reconciler.media) -----------------------------
    "either": ("{a} or {b}", "{a} 或 {b}"),
    "image_role.logo": ("logo", "商户logo"),
    "image_role.coupon_image": ("coupon image", "券详情图片"),
    "image_role.finder_video_cover": ("finder video cover", "视频号封面"),
    "image.no_suffix": ("no suffix", "无后缀"),
    "image.format": (
        "{name} is a {format} image; the upload takes JPG, BMP or PNG only: convert it to PNG or JPG",
        "{name} 是 {format} 图片；上传只接受 JPG、BMP 或 PNG：请转换为 PNG 或 JPG",
    ),
    "image.suffix": (
        "{name} is really a {format} image, but its name ends in {suffix}; WeChat Pay wants the "
        "suffix to match: rename it to end in {wanted}",
        "{name} 实际是 {format} 图片，但文件名以 {suffix} 结尾；微信支付要求后缀与格式一致："
        "请改名为以 {wanted} 结尾",
    ),
    "image.too_large": (
        "{name} is {size}; the upload takes at most 2 MB: compress or shrink it",
        "{name} 为 {size}；上传最多 2 MB：请压缩或缩小",
    ),
    "image.role_too_large": (
        "{name} is {size}; a {role} must be under {max}: compress or shrink it",
        "{name} 为 {size}；{role}必须小于 {max}：请压缩或缩小",
    ),
    "image.pixels": (
        "{name} is {pixels} px; the docs say a {role} should be {wanted} px: resize it, or "
        "WeChat Pay may scale or crop it",
        "{name} 为 {pixels} 像素；文档要求{role}为 {wanted} 像素：请调整尺寸，否则微信支付可能缩放或裁剪",
    ),
    "image.outside": (
        "{key} leads outside the repository (a link); copy the image in",
        "{key} 指向仓库之外（链接）；请把图片复制到仓库内",
    ),
    "image.not_file": ("{key} is not a file", "{key} 不是文件"),
    "image.missing": (
        "{key} does not exist; check the path (relative to the stock file)",
        "{key} 不存在；请检查路径（相对于批次文件）",
    ),
    "image.cannot_read": ("{key} cannot be read: {reason}", "无法读取 {key}：{reason}"),
    "image.unreadable": (
        "{name} is not an image that can be read (JPG, BMP or PNG wanted)",
        "{name} 不是可读取的图片（应为 JPG、BMP 或 PNG）",
    ),
    "image.path": (
        "{file!r} leaves the repository or is absolute; give a path relative to the stock file, inside the repository",
        "{file!r} 超出仓库范围或是绝对路径；请给出相对于批次文件、位于仓库内的路径",
    ),
    "image.changed": (
        "{key} changed since the plan was made (its sha256 is no longer {sha}…); make a new plan",
        "{key} 在生成计划后已被修改（其 sha256 不再是 {sha}…）；请重新生成计划",
    ),
    # --- code pools (reconciler.codes) ------------------------------------------------------
    # The characters the upload documentation lists for a code (docs page D14 as read; see
    # docs/codes-and-callbacks.md).
    "codes.allowed": (
        "0-9 a-z A-Z, space, and - _ \\ / = |",
        "0-9 a-z A-Z、空格，以及 - _ \\ / = |",
    ),
    "codes.mode": (
        "a code pool is uploaded only for spec.coupon_code_mode: MERCHANT_UPLOAD",
        "只有 spec.coupon_code_mode（券code模式）为 MERCHANT_UPLOAD 的批次才能上传券码",
    ),
    "codes.space": (
        "code {code!r} has a leading or trailing space; remove it",
        "券码 {code!r} 首尾有空格；请删除",
    ),
    "codes.character": (
        "code {code!r}: character {char!r} is not allowed; codes use {allowed}",
        "券码 {code!r}：不允许字符 {char!r}；券码只能使用 {allowed}",
    ),
    "codes.length": (
        "code {code!r} has {n} characters; at most {max}",
        "券码 {code!r} 共 {n} 个字符；最多 {max} 个",
    ),
    "codes.duplicate": (
        "code {code!r} is also on line {first}; each code once",
        "券码 {code!r} 也出现在第 {first} 行；每个券码只能出现一次",
    ),
    "codes.path": (
        "give the codes file relative to the stock file's folder",
        "请给出相对于批次文件所在文件夹的券码文件路径",
    ),
    "codes.size": (
        "{file} has {size} bytes; at most {max}",
        "{file} 有 {size} 字节；最多 {max} 字节",
    ),
    "codes.unreadable": (
        "cannot read the codes file {file}: {reason}",
        "无法读取券码文件 {file}：{reason}",
    ),
    "codes.encoding": ("not UTF-8 text", "不是 UTF-8 文本"),
    "codes.empty": ("the codes file {file} holds no code", "券码文件 {file} 中没有券码"),
    "codes.fewer": (
        "{file} holds {n} codes, fewer than max_coupons ({capacity}): each coupon needs a code, "
        "so the stock stops issuing after {n}",
        "{file} 有 {n} 个券码，少于批次最大发放个数 max_coupons（{capacity}）：每张券需要一个券码，"
        "发放 {n} 张后批次将停止发放",
    ),
    "codes.other_stock": (
        "code {code!r} is also in {where} (stock {stock!r}) of merchant {merchant}; a code belongs to one stock",
        "券码 {code!r} 也出现在商户 {merchant} 的 {where}（批次 {stock!r}）中；一个券码只属于一个批次",
    ),
    # --- 代金券 (reconciler.spec.rules_favor) -------------------------------------------------
    "weighted.cjk": (
        "{text} is {cjk} Chinese characters; at most {max_cjk} Chinese characters or {max_other} letters: shorten it",
        "{text} 共 {cjk} 个汉字；最多 {max_cjk} 个汉字或 {max_other} 个字母：请缩短",
    ),
    "weighted.other": (
        "{text} is {other} characters; at most {max_cjk} Chinese characters or {max_other} letters: shorten it",
        "{text} 共 {other} 个字符；最多 {max_cjk} 个汉字或 {max_other} 个字母：请缩短",
    ),
    "weighted.mixed": (
        "{text} is {cjk} Chinese characters and {other} others, which count as {used} letters "
        "(a Chinese character counts as {ratio}); at most {max_cjk} Chinese characters or {max_other} letters: shorten it",
        "{text} 含 {cjk} 个汉字和 {other} 个其他字符，折合 {used} 个字母（一个汉字按 {ratio} 个字母计）；"
        "最多 {max_cjk} 个汉字或 {max_other} 个字母：请缩短",
    ),
    "forbidden_char": (
        "must not contain {chars} (the docs forbid _ , ; |)",
        "不得包含 {chars}（文档禁止 _ , ; |）",
    ),
    "belong_merchant": (
        "must be the creating merchant {merchant!r}; other values are not supported yet",
        "必须是创建批次的商户 {merchant!r}；暂不支持其他值",
    ),
    "window_too_long": (
        "the usable window is {days} days; at most 90 days are allowed",
        "可用时间为 {days} 天；最多 90 天",
    ),
    "stock_type": (
        "the docs support only NORMAL through this API; {stock_type} may be refused",
        "文档中此接口只支持 NORMAL；{stock_type} 可能被拒绝",
    ),
    "not_json": (
        'must be a JSON string, e.g. \'{{"key": "value"}}\'',
        '必须是 JSON 字符串，例如 \'{{"key": "value"}}\'',
    ),
    "range.between": (
        "must be between {lo} and {hi}, is {value}",
        "必须在 {lo} 到 {hi} 之间；当前为 {value}",
    ),
    "budget_mismatch": (
        "must equal coupon_amount × max_coupons = {amount} × {coupons} = {expected}; is {value}",
        "必须等于 面额 × 发放总上限 = {amount} × {coupons} = {expected}；当前为 {value}",
    ),
    "max_amount.cap": (
        "{value} is above the cap of {cap}",
        "{value} 超过上限 {cap}",
    ),
    "max_amount.cap_strict": (
        "{value} is above {cap}, the cap some versions of the docs give",
        "{value} 超过 {cap}，即部分版本文档给出的上限",
    ),
    "max_amount_by_day.zero": (
        "must not be 0; leave it out for no daily cap",
        "不能为 0；不设单天上限时请省略此字段",
    ),
    "description_too_long": ("is {n} characters; at most 1000", "共 {n} 个字符；最多 1000 个"),
    "enum_case.upper": (
        "write it upper case ({value}) as the API's enum does",
        "请按接口枚举值写成大写（{value}）",
    ),
    "coupon_amount.range": (
        "must be more than {lo} and at most {hi}; is {value}",
        "必须大于 {lo} 且不超过 {hi}；当前为 {value}",
    ),
    "coupon_amount.strict": (
        "is {value}; some docs allow only more than {lo} and at most {hi}, so WeChat Pay may refuse it",
        "当前为 {value}；部分文档只允许大于 {lo} 且不超过 {hi}，微信支付可能拒绝",
    ),
    "transaction_minimum": (
        "must be greater than coupon_amount ({amount}); is {value}",
        "必须大于面额 coupon_amount（{amount}）；当前为 {value}",
    ),
    "goods_tag": (
        "{tag}: letters, digits and _ only, at most 128",
        "{tag}：只能含字母、数字和 _，最多 128 个",
    ),
    "card_name": ("at most 4 Chinese characters", "最多 4 个汉字"),
    "card_bin": ("{bin}: a card BIN is 6 to 9 digits", "{bin}：卡 BIN 为 6 到 9 位数字"),
    "limit_card.ignored": (
        "takes effect only together with limit_pay",
        "仅在同时设置指定付款方式 limit_pay 时生效",
    ),
    "item_code": ("each item code is 1 to 128 characters", "每个商品编码为 1 到 128 个字符"),
    "available_merchants.old": (
        "older docs require it (1 to 50 merchant ids); give it unless you know it is optional for you",
        "旧版文档要求此字段（1 到 50 个商户号）；除非确认对你可选，否则请填写",
    ),
    # --- 商家券 (reconciler.spec.rules_busifavor) ---------------------------------------------
    "busifavor.name_bytes": (
        "is more than 24 UTF-8 bytes, the limit of the 2020 docs (today's docs allow 21 characters)",
        "超过 24 个 UTF-8 字节，即 2020 年文档的上限（现行文档允许 21 个字符）",
    ),
    "busifavor.belong_merchant_short": (
        "is shorter than 8 characters, the minimum in the 2020 docs",
        "少于 8 个字符，即 2020 年文档的下限",
    ),
    "busifavor.max_coupons_old": (
        "most sources require it (1 to 1,000,000,000)",
        "多数资料要求此字段（1 到 1,000,000,000）",
    ),
    "enum_case.capitalized": (
        "write it as {value} as the API's enum does",
        "请按接口枚举值写成 {value}",
    ),
    "busifavor.merchant_name_ignored": (
        "WeChat Pay takes the name from the brand or merchant short name; this value may be ignored",
        "微信支付使用品牌名或商户简称；此值可能被忽略",
    ),
    "busifavor.window_too_long": (
        "the validity period is longer than one year, the documented maximum",
        "有效期超过一年，即文档规定的上限",
    ),
    "busifavor.wait_days": (
        "needs available_day_after_receive as well",
        "须同时设置生效后N天内有效 available_day_after_receive",
    ),
    "busifavor.required_kind": (
        "is required when stock_type is {stock_type} (give exactly one of fixed_normal_coupon, discount_coupon, exchange_coupon)",
        "批次类型 stock_type 为 {stock_type} 时必填（fixed_normal_coupon、discount_coupon、exchange_coupon 恰好给出一个）",
    ),
    "busifavor.threshold": (
        "{minimum} is below the discount ({discount}); check the values are in fen",
        "{minimum} 低于优惠金额（{discount}）；请确认金额以分为单位",
    ),
    "busifavor.self_consume": (
        "SELF_CONSUME is not supported yet per the docs",
        "文档注明暂不支持 SELF_CONSUME",
    ),
    # --- service providers (reconciler.spec.rules_partner) ----------------------------------
    "partner.belong_merchant": (
        "{owner!r} is neither the creating merchant {creator!r} nor one of its sub_merchants in "
        "reconciler.yaml{listed}; WeChat Pay refuses a 商家券 for a merchant the creator does not serve",
        "{owner!r} 既不是创建商户 {creator!r}，也不是它在 reconciler.yaml 中的子商户 sub_merchants{listed}；"
        "微信支付拒绝为创建者未服务的商户创建商家券",
    ),
    "partner.available_merchants": (
        "{merchant!r} is not the creating merchant {creator!r}, one of its sub_merchants or one of "
        "its brand_merchants in reconciler.yaml; a 免充值 代金券 of a service provider may only be "
        "used at its authorised sub-merchants",
        "{merchant!r} 不是创建商户 {creator!r}，也不在它于 reconciler.yaml 中的子商户 sub_merchants "
        "或品牌商户 brand_merchants 之列；服务商的免充值代金券只能在其授权的子商户使用",
    ),
    "partner.sub_merchant_creator": (
        "{creator!r} is a sub-merchant of {provider!r} in reconciler.yaml; sub-merchants cannot "
        "create 代金券 themselves: the service provider creates it",
        "{creator!r} 在 reconciler.yaml 中是 {provider!r} 的子商户；子商户不能自行创建代金券，须由服务商创建",
    ),
    # --- the project file (reconciler.config) -------------------------------------------------
    "project.unreadable": (
        "cannot read the project file: {reason}",
        "无法读取项目文件：{reason}",
    ),
    "project.not_a_url": ("{value} is not a URL: {reason}", "{value} 不是 URL：{reason}"),
    "project.not_http": (
        "{value} is not an http(s) URL with a host",
        "{value} 不是带主机名的 http(s) URL",
    ),
    "project.secret_shape": (
        "write where the secret is, {{env: VARIABLE}} or {{file: path}}; the secret itself "
        "never goes in the project file (its value is not shown here)",
        "请写明密钥所在之处：{{env: 变量名}} 或 {{file: 路径}}；密钥本身绝不写入项目文件（此处不显示其值）",
    ),
    "project.env_looks_like_key": (
        "env must name an environment variable; this looks like a key itself "
        "(mixed case and digits, no underscore; its value is not shown here)",
        "env 应为环境变量的名称；这看起来像密钥本身（大小写字母与数字混合、没有下划线；此处不显示其值）",
    ),
    "project.env_name": (
        "env must be the name of an environment variable (letters, digits and _), "
        "not the secret (its value is not shown here)",
        "env 应为环境变量的名称（字母、数字和 _），而不是密钥（此处不显示其值）",
    ),
    "project.secret_file": (
        "file must be a path to the file that holds the secret, not the secret "
        "(its value is not shown here)",
        "file 应为存放密钥的文件路径，而不是密钥（此处不显示其值）",
    ),
    "project.one_source": (
        "give exactly one of env (a variable name) or file (a path)",
        "env（变量名）与 file（路径）须且只能写一个",
    ),
    "project.url_long": (
        "has {n} characters; at most {max}",
        "长度为 {n} 个字符；最多 {max} 个",
    ),
    "project.url_spaces": (
        "must not contain spaces or control characters",
        "不能包含空格或控制字符",
    ),
    "project.url_invalid": ("is not a URL ({reason})", "不是 URL（{reason}）"),
    "project.url_https": (
        "must be an https URL (WeChat Pay refuses http and other schemes)",
        "必须是 https URL（微信支付拒绝 http 及其他协议）",
    ),
    "project.url_host": (
        "has no host; write it as https://host/path",
        "缺少主机名；请写成 https://host/path",
    ),
    "project.url_query": (
        "must have no query string (WeChat Pay refuses `?...`); put it in the path",
        "不能带查询串（微信支付拒绝 `?...`）；请放入路径",
    ),
    "project.url_fragment": ("must have no fragment (`#...`)", "不能带片段（`#...`）"),
    "project.subs_twice": (
        "sub_merchants lists {mchids} more than once",
        "sub_merchants 中 {mchids} 出现了不止一次",
    ),
    "project.subs_self": (
        "sub_merchants lists the merchant {mchid} itself",
        "sub_merchants 中列出了商户 {mchid} 自己",
    ),
    "project.verification": (
        "give wechatpay_public_key (+ wechatpay_public_key_id) or apiv3_key: responses must be verified",
        "请提供 wechatpay_public_key（及 wechatpay_public_key_id）或 apiv3_key：应答必须验签",
    ),
    "project.public_key_pair": (
        "wechatpay_public_key and wechatpay_public_key_id go together",
        "wechatpay_public_key 与 wechatpay_public_key_id 须同时提供",
    ),
    "project.merchant_twice": (
        "merchant {mchids} is listed more than once",
        "商户 {mchids} 被列出了不止一次",
    ),
}
"""Message id -> (English, Chinese). Both take the same named parameters
(tests/test_i18n_diagnostics.py checks)."""
