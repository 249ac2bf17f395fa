"""RetryConfig: API.md's defaults and bounds, each broken rule reported on its own field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hookline.domain.retry_config import (
    DEFAULT_RETRY_CONFIG,
    MAX_RETRY_DURATION_LIMIT_S,
    JitterMode,
    RetryConfig,
)


def _error_locs(**fields: Any) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as caught:
        RetryConfig(**fields)
    return [error["loc"] for error in caught.value.errors()]


def test_defaults_are_exactly_api_md() -> None:
    assert RetryConfig().model_dump(mode="json") == {
        "max_retries": 10,
        "base_delay": 120.0,
        "max_delay": 7200.0,
        "multiplier": 2.0,
        "jitter": "proportional",
        "jitter_ratio": 0.5,
        "max_retry_duration": 36000.0,
        "respect_retry_after": True,
        "disable_on_status": [404, 410],
    }
    assert RetryConfig() == DEFAULT_RETRY_CONFIG
    assert DEFAULT_RETRY_CONFIG.jitter is JitterMode.PROPORTIONAL
    assert MAX_RETRY_DURATION_LIMIT_S == 604800


def test_jitter_mode_values_are_public() -> None:
    assert [mode.value for mode in JitterMode] == ["none", "full", "equal", "proportional"]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"max_retries": 11}, ("max_retries",)),
        ({"max_retries": -1}, ("max_retries",)),
        ({"base_delay": 0.5}, ("base_delay",)),
        ({"max_delay": 119.9}, ("max_delay",)),
        ({"base_delay": 300, "max_delay": 200}, ("max_delay",)),
        ({"multiplier": 11}, ("multiplier",)),
        ({"multiplier": 0.9}, ("multiplier",)),
        ({"jitter": "random"}, ("jitter",)),
        ({"jitter_ratio": 1.5}, ("jitter_ratio",)),
        ({"jitter_ratio": -0.1}, ("jitter_ratio",)),
        ({"max_retry_duration": 604800.5}, ("max_retry_duration",)),
        ({"max_retry_duration": 119}, ("max_retry_duration",)),
        ({"base_delay": 10, "max_retry_duration": 9.5}, ("max_retry_duration",)),
        ({"disable_on_status": [404, 399]}, ("disable_on_status", 1)),
        ({"disable_on_status": [600]}, ("disable_on_status", 0)),
        ({"disable_on_status": "404"}, ("disable_on_status",)),
        ({"respect_retry_after": "maybe"}, ("respect_retry_after",)),
        ({"respect_retry_after": 1}, ("respect_retry_after",)),
        ({"respect_retry_after": "true"}, ("respect_retry_after",)),
        ({"colour": "red"}, ("colour",)),
        ({"base_delay": float("inf")}, ("base_delay",)),
        ({"max_delay": float("nan")}, ("max_delay",)),
        ({"max_retry_duration": float("inf")}, ("max_retry_duration",)),
    ],
)
def test_each_rule_is_reported_on_its_own_field(
    fields: dict[str, Any], loc: tuple[int | str, ...]
) -> None:
    assert _error_locs(**fields) == [loc]


def test_cross_field_rules_name_base_delay_in_the_message() -> None:
    with pytest.raises(ValidationError) as caught:
        RetryConfig(base_delay=300, max_delay=200, max_retry_duration=250)
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [("max_delay",), ("max_retry_duration",)]
    assert all("base_delay (300)" in error["msg"] for error in errors)


def test_a_bad_base_delay_is_reported_once_not_again_on_the_fields_compared_to_it() -> None:
    assert _error_locs(base_delay=0, max_delay=0.5) == [("base_delay",), ("max_delay",)]
    # max_delay alone (>= 1) is fine when base_delay itself is invalid: nothing to compare with.
    assert _error_locs(base_delay=0, max_delay=5) == [("base_delay",)]


@pytest.mark.parametrize(
    "fields",
    [
        {"max_retries": 0},
        {"max_retries": 10},
        {"base_delay": 1, "max_delay": 1, "max_retry_duration": 1},
        {"multiplier": 1},
        {"multiplier": 10},
        {"jitter_ratio": 0},
        {"jitter_ratio": 1},
        {"max_retry_duration": 604800},
        {"base_delay": 120, "max_retry_duration": 120},
        {"disable_on_status": []},
        {"disable_on_status": [400, 599]},
    ],
)
def test_values_on_the_bounds_are_accepted(fields: dict[str, Any]) -> None:
    config = RetryConfig(**fields)
    for name, value in fields.items():
        assert getattr(config, name) == (tuple(value) if isinstance(value, list) else value)


def test_disable_on_status_is_deduplicated_and_sorted() -> None:
    config = RetryConfig(disable_on_status=[503, 410, 404, 410, 503])
    assert config.disable_on_status == (404, 410, 503)
    assert config.model_dump(mode="json")["disable_on_status"] == [404, 410, 503]


def test_config_is_frozen_and_hashable() -> None:
    config = RetryConfig(max_retries=3)
    with pytest.raises(ValidationError):
        config.max_retries = 4  # type: ignore[misc]
    assert hash(config) == hash(RetryConfig(max_retries=3))


def test_json_round_trip() -> None:
    config = RetryConfig(jitter="equal", disable_on_status=[500, 410], multiplier=3.5)
    assert RetryConfig.model_validate_json(config.model_dump_json()) == config


def test_every_field_is_described_for_the_openapi_docs() -> None:
    properties = RetryConfig.model_json_schema()["properties"]
    assert set(properties) == set(RetryConfig.model_fields)
    assert all(prop.get("description") for prop in properties.values())
    assert RetryConfig.model_json_schema()["additionalProperties"] is False
    assert properties["disable_on_status"]["type"] == "array"


@pytest.mark.parametrize(
    ("fields", "max_delay", "max_retry_duration"),
    [
        ({"base_delay": 8000}, 8000.0, 36000.0),  # issue 8: was stored, then unreadable
        ({"base_delay": "9000"}, 9000.0, 36000.0),  # lax input resolves the same way
        ({"base_delay": 50000}, 50000.0, 50000.0),
        ({"base_delay": 8000, "max_retry_duration": 8000}, 8000.0, 8000.0),
        ({"base_delay": 7200}, 7200.0, 36000.0),  # on the default: nothing to raise
    ],
)
def test_omitted_bounds_below_base_delay_are_raised_to_it(
    fields: dict[str, Any], max_delay: float, max_retry_duration: float
) -> None:
    # Given a config that leaves out max_delay / max_retry_duration
    config = RetryConfig.model_validate(fields)
    # Then they are never below base_delay...
    assert (config.max_delay, config.max_retry_duration) == (max_delay, max_retry_duration)
    # ...so what is stored can always be read back
    assert RetryConfig.model_validate(config.model_dump(mode="json")) == config


def test_given_bounds_below_base_delay_are_still_refused() -> None:
    assert _error_locs(base_delay=8000, max_delay=7200) == [("max_delay",)]
    assert _error_locs(base_delay=8000, max_retry_duration=7200) == [("max_retry_duration",)]


def test_base_delay_cannot_exceed_the_longest_window() -> None:
    assert _error_locs(base_delay=MAX_RETRY_DURATION_LIMIT_S + 1) == [("base_delay",)]
    config = RetryConfig(base_delay=MAX_RETRY_DURATION_LIMIT_S)
    assert config.max_retry_duration == MAX_RETRY_DURATION_LIMIT_S


@given(
    base_delay=st.floats(min_value=1, max_value=MAX_RETRY_DURATION_LIMIT_S),
    given_fields=st.sets(st.sampled_from(["max_delay", "max_retry_duration"])),
    other=st.floats(min_value=1, max_value=MAX_RETRY_DURATION_LIMIT_S),
)
def test_every_accepted_config_reads_back(
    base_delay: float, given_fields: set[str], other: float
) -> None:
    fields: dict[str, Any] = {"base_delay": base_delay, **dict.fromkeys(given_fields, other)}
    try:
        config = RetryConfig.model_validate(fields)
    except ValidationError:
        # refused only for a given value below base_delay
        assert given_fields
        assert other < base_delay
        return
    assert config.max_delay >= config.base_delay
    assert config.max_retry_duration >= config.base_delay
    assert RetryConfig.model_validate(config.model_dump(mode="json")) == config
