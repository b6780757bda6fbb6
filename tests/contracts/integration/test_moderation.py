"""One contract for every ``Moderation`` adapter: the same questions, the same kind of answers.

Each adapter has a driver module in ``tests/contracts/moderation/`` (its name is the parameter
below) that builds the adapter against a local server speaking its vendor's protocol (or, for
``local``, the packaged word lists and model)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from atelier_ports.errors import ProviderUnavailable
from atelier_tasks.application.ports.moderation import ModerationDecision, Verdict
from tests.contracts.moderation import ModerationDriver

ADAPTERS = ["local", "tencent", "aws"]


@pytest.fixture(params=ADAPTERS)
def driver(request: pytest.FixtureRequest) -> Iterator[ModerationDriver]:
    module = importlib.import_module(f"tests.contracts.moderation.{request.param}")
    with module.open_driver() as d:
        yield d


def assert_well_formed(d: ModerationDriver, decision: ModerationDecision) -> None:
    assert decision.provider == d.moderation.name
    for label in decision.labels:
        assert label.name
        assert 0.0 <= label.confidence <= 1.0
    if d.has_request_ids:
        assert decision.request_id


def test_allowed_text_is_allowed(driver: ModerationDriver) -> None:
    decision = driver.moderation.check_text(driver.allowed_text())
    assert decision.verdict is Verdict.ALLOWED
    assert not decision.rejected
    assert_well_formed(driver, decision)


def test_rejected_text_is_rejected_with_its_labels(driver: ModerationDriver) -> None:
    decision = driver.moderation.check_text(driver.rejected_text())
    assert decision.verdict is Verdict.REJECTED
    assert decision.rejected
    assert decision.labels, "a rejection names what it found"
    assert max(label.confidence for label in decision.labels) >= driver.threshold
    assert_well_formed(driver, decision)


def test_allowed_image_is_allowed(driver: ModerationDriver) -> None:
    decision = driver.moderation.check_image(driver.allowed_image())
    assert decision.verdict is Verdict.ALLOWED
    assert all(label.confidence < driver.threshold for label in decision.labels)
    assert_well_formed(driver, decision)


def test_rejected_image_is_rejected_with_its_labels(driver: ModerationDriver) -> None:
    decision = driver.moderation.check_image(driver.rejected_image())
    assert decision.verdict is Verdict.REJECTED
    assert decision.labels
    assert max(label.confidence for label in decision.labels) >= driver.threshold
    assert_well_formed(driver, decision)


def test_a_provider_that_cannot_answer_raises_unavailable_and_never_allows(
    driver: ModerationDriver,
) -> None:
    if not driver.can_go_down:
        pytest.skip(f"{driver.moderation.name} runs in-process: nothing to take down")
    driver.go_down()
    with pytest.raises(ProviderUnavailable):
        driver.moderation.check_text(driver.rejected_text())
    with pytest.raises(ProviderUnavailable):
        driver.moderation.check_image(driver.rejected_image())
    driver.come_back()
    assert driver.moderation.check_text(driver.rejected_text()).rejected
    assert driver.moderation.check_image(driver.rejected_image()).rejected
