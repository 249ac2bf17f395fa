"""The console's webhook form read into the API's models, and the retry timeline's geometry."""

from __future__ import annotations

from hypothesis import given
from starlette.datastructures import FormData

from hookline.api.console.retry_timeline import (
    MIN_BAR_WIDTH,
    PLOT_LEFT,
    PLOT_RIGHT,
    retry_timeline,
)
from hookline.api.console.webhook_form import (
    RETRY_FIELD_NAMES,
    WebhookFormValues,
    check_new_webhook,
    check_retry_config,
    retry_payload,
)
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, RetryConfig
from hookline.domain.schedule import plan_schedule
from hookline.storage.models import Endpoint
from tests.unit.domain.strategies import retry_configs


def values(**fields: str) -> WebhookFormValues:
    return WebhookFormValues.from_form(FormData({"url": "https://example.com/h", **fields}))


def test_lists_split_on_commas_and_new_lines_and_headers_on_colons() -> None:
    checked = check_new_webhook(
        values(
            event_types=" order.created,\r\n\ninvoice.* , order.created",
            headers="X-Team:  billing \n\nAuthorization: Bearer a:b:c\n",
        )
    )

    assert checked.errors == {}
    assert checked.model.event_types == ["order.created", "invoice.*"]  # deduplicated by the API
    assert checked.model.headers == {"X-Team": "billing", "Authorization": "Bearer a:b:c"}


def test_header_lines_that_are_not_name_value_are_named_by_line() -> None:
    checked = check_new_webhook(values(headers="X-A: 1\njust text\n: empty name\nx-a: 2"))

    assert checked.model is None
    assert checked.errors["headers"] == [
        "Line 2: write each header as Name: value.",
        "Line 3: write each header as Name: value.",
        "Line 4: x-a is given twice (names are compared ignoring case).",
    ]


def test_retry_fields_become_the_json_a_request_would_carry() -> None:
    typed = {
        "max_retries": " 3 ",
        "base_delay": "2.5",
        "jitter": "none",
        "respect_retry_after": "no",
        "disable_on_status": "404 410,451",
    }
    assert retry_payload(typed) == {
        "max_retries": 3,
        "base_delay": 2.5,
        "jitter": "none",
        "respect_retry_after": False,
        "disable_on_status": [404, 410, 451],
    }
    assert retry_payload({"disable_on_status": "None"}) == {"disable_on_status": []}
    assert retry_payload(dict.fromkeys(RETRY_FIELD_NAMES, " ")) is None
    # text that is no number goes to the model as it is, which names the problem
    assert retry_payload({"multiplier": "two"}) == {"multiplier": "two"}
    config, errors = check_retry_config({"multiplier": "two", "max_retries": "1.5"})
    assert config is None
    assert errors == {
        "max_retries": ["Input should be a valid integer"],
        "multiplier": ["Input should be a valid number"],
    }


def test_all_retry_fields_empty_is_the_defaults_and_infinity_is_refused() -> None:
    assert check_retry_config({}) == (DEFAULT_RETRY_CONFIG, {})
    config, errors = check_retry_config({"base_delay": "inf", "jitter_ratio": "nan"})
    assert config is None
    assert set(errors) == {"base_delay", "jitter_ratio"}


def test_a_stored_config_fills_the_form_and_reads_back_the_same() -> None:
    config = RetryConfig(max_retries=3, base_delay=1.5, jitter="full", disable_on_status=())

    stored = Endpoint(
        url="https://example.com/h",
        description="",
        event_types=["a.b"],
        headers={"Cookie": "id=1"},
        trace_propagation=None,
        retry_config=config.model_dump(mode="json"),
    )

    shown = WebhookFormValues.from_endpoint(stored)

    assert shown.headers == "Cookie: ********"
    assert shown.retry["disable_on_status"] == "none"
    assert shown.retry["base_delay"] == "1.5"
    assert shown.retry["max_delay"] == "7200"
    assert check_retry_config(shown.retry) == (config, {})


@given(retry_configs())
def test_every_bar_lies_in_the_plot_in_retry_order(config: RetryConfig) -> None:
    timeline = retry_timeline(plan_schedule(config))

    assert len(timeline.rows) == timeline.schedule.total_retries
    for row in timeline.rows:
        assert row.x >= PLOT_LEFT
        assert row.x + row.width <= PLOT_RIGHT + 0.1
        assert row.width >= MIN_BAR_WIDTH
        assert row.maybe == (row.retry.latest_at_s is None)
    starts = [row.x for row in timeline.rows]
    assert starts == sorted(starts)
    ys = [row.y for row in timeline.rows]
    assert ys == sorted(set(ys))
    assert 1 <= timeline.fewest_attempts <= timeline.most_attempts
    if timeline.window_x is not None:
        assert PLOT_LEFT <= timeline.window_x <= PLOT_RIGHT


def test_a_config_without_retries_draws_no_bar() -> None:
    timeline = retry_timeline(plan_schedule(RetryConfig(max_retries=0)))

    assert timeline.rows == []
    assert timeline.last_retry is None
    assert timeline.window_x is None
    assert timeline.most_attempts == 1
