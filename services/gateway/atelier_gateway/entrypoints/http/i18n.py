"""Words for people in the languages the gateway speaks: English, and Chinese for the cn market.

A problem's ``title`` and ``code`` stay English and stable (clients branch on ``code``); only the
``detail`` — the sentence a person reads — follows the request's ``Accept-Language``. A code
without a Chinese sentence keeps its English detail.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "zh"]

# One sentence per problem code; "{field}" names the offending input where one is known.
ZH_DETAILS: dict[str, str] = {
    "validation_error": "请求参数无效，请检查后重试。",
    "validation_error:field": "请求参数无效：{field}。",
    "unauthenticated": "请先登录。",
    "invalid_credentials": "邮箱或密码错误。",
    "email_taken": "该邮箱已注册。",
    "forbidden": "没有权限执行此操作。",
    "not_found": "未找到请求的内容。",
    "conflict": "请求与当前状态冲突，请刷新后重试。",
    "failed_precondition": "当前状态下无法执行此操作。",
    "idempotency_key_reused": "该幂等键已用于另一个请求。",
    "idempotency_key_in_flight": "相同的请求正在处理中，请稍后再试。",
    "insufficient_credits": "积分不足，请充值或开通会员。",
    "daily_limit_reached": "今日生成次数已达上限，请明天再试。",
    "rate_limited": "请求过于频繁，请稍后再试。",
    "invalid_code": "验证码错误或已过期。",
    "code_locked": "验证码错误次数过多，请重新获取验证码。",
    "phone_taken": "该手机号已绑定其他账号。",
    "sms_unavailable": "短信服务暂时不可用，请稍后再试，验证码未发送。",
    "invalid_signature": "签名验证失败。",
    "content_rejected": "内容未通过审核，未扣除积分。",
    "not_finished": "任务尚未完成。",
    "payload_too_large": "请求内容过大。",
    "method_not_allowed": "不支持该请求方法。",
    "unavailable": "服务暂时不可用，请稍后再试，本次请求未执行。",
    "timeout": "服务响应超时，请稍后再试，本次请求未执行。",
    "internal": "服务器内部错误，本次请求未执行。",
}


def preferred_language(accept_language: str) -> Language:
    """The best of ours for an ``Accept-Language`` header (RFC 9110 §12.5.4): the highest
    q-value wins, earlier entries win ties; ``zh`` and any ``zh-*`` tag mean Chinese."""
    best: Language = "en"
    best_q = 0.0
    for entry in accept_language.split(",")[:32]:
        tag, _, rest = entry.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        param = rest.strip()
        if param.startswith("q="):
            try:
                q = float(param[2:])
            except ValueError:
                continue
        if not 0.0 < q <= 1.0:
            continue
        lang: Language | None = None
        if tag == "zh" or tag.startswith("zh-"):
            lang = "zh"
        elif tag == "en" or tag.startswith("en-") or tag == "*":
            lang = "en"
        if lang is not None and q > best_q:
            best, best_q = lang, q
    return best


def localized_detail(code: str, field: str | None, detail: str, language: Language) -> str:
    """The problem's ``detail`` in ``language``; the English ``detail`` when we lack the words."""
    if language == "en":
        return detail
    if field and code == "validation_error":
        return ZH_DETAILS["validation_error:field"].format(field=field)
    return ZH_DETAILS.get(code, detail)
