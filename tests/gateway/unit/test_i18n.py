"""Accept-Language negotiation and the Chinese problem details (issue 11: the cn market)."""

from __future__ import annotations

import pytest

from atelier_gateway.entrypoints.http.i18n import ZH_DETAILS, localized_detail, preferred_language
from atelier_gateway.entrypoints.http.problems import DOMAIN_TABLE, REMOTE_TABLE


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-CN", "zh"),
        ("zh", "zh"),
        ("ZH-hans-CN,zh;q=0.9", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("en;q=0.5,zh-CN;q=0.8", "zh"),
        ("zh-CN;q=0.4,en;q=0.6", "en"),
        ("fr-FR", "en"),
        ("zh;q=0", "en"),
        ("zh;q=abc,en", "en"),
        ("*", "en"),
        ("en,zh", "en"),
        ("", "en"),
    ],
)
def test_the_highest_q_of_ours_wins(header: str, language: str) -> None:
    assert preferred_language(header) == language


def test_every_code_the_gateway_answers_with_has_chinese_words() -> None:
    codes = {spec.code for _, spec in DOMAIN_TABLE} | {spec.code for _, _, spec in REMOTE_TABLE}
    assert codes - ZH_DETAILS.keys() == set()


def test_a_field_is_named_and_english_is_left_as_it_was() -> None:
    assert (
        localized_detail("validation_error", "prompt", "too long", "zh") == "请求参数无效：prompt。"
    )
    assert localized_detail("validation_error", "prompt", "too long", "en") == "too long"
    assert localized_detail("no_such_code", None, "as is", "zh") == "as is"
