"""``ExponentialBackoffEngine``: when the next retry of a failed delivery happens, if at all.

Retry ``n`` (the ``n + 1``-th attempt) waits ``base_delay * multiplier ** (n - 1)`` seconds,
capped at ``max_delay``, spread by the config's jitter, lengthened by a ``Retry-After`` when the
config respects it, and fitted into the retry window: no attempt starts later than
``max_retry_duration`` after the first one, and a retry that would overshoot lands exactly at the
window's end. ``next_retry_delay`` is the one decision the delivery service asks for;
``hookline.domain.schedule`` draws the same timeline from the same methods.
"""

from __future__ import annotations

import math
import random

from hookline.domain.outcome import AttemptError, is_retryable_error, is_retryable_status
from hookline.domain.retry_config import JitterMode, RetryConfig


class ExponentialBackoffEngine:
    """Delays for one ``RetryConfig``; randomness comes only from the ``rng`` it is given."""

    def __init__(self, config: RetryConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng

    def calculate_delay(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (≥ 1) without jitter, at most ``max_delay``."""
        if retry_number < 1:
            raise ValueError(f"retry_number starts at 1, got {retry_number}")
        config = self.config
        exponent = retry_number - 1
        if config.multiplier > 1:
            # The exponent from which the cap applies, found in log space so that no
            # retry_number can overflow the power (an int compares with a float exactly).
            cap_exponent = math.log(config.max_delay / config.base_delay) / math.log(
                config.multiplier
            )
            if exponent >= cap_exponent:
                return config.max_delay
        return min(config.base_delay * config.multiplier**exponent, config.max_delay)

    def jitter_bounds(self, delay: float) -> tuple[float, float]:
        """The interval the jittered ``delay`` is drawn from; always inside ``[0, max_delay]``."""
        if not delay >= 0:  # also refuses NaN
            raise ValueError(f"a delay is a non-negative number of seconds, got {delay}")
        config = self.config
        delay = min(delay, config.max_delay)
        if config.jitter is JitterMode.NONE:
            return delay, delay
        if config.jitter is JitterMode.FULL:
            return 0.0, delay
        if config.jitter is JitterMode.EQUAL:
            return delay / 2, delay
        return delay, min(delay * (1 + config.jitter_ratio), config.max_delay)

    def apply_jitter(self, delay: float) -> float:
        """``delay`` spread uniformly over ``jitter_bounds(delay)`` with this engine's ``rng``."""
        low, high = self.jitter_bounds(delay)
        # uniform() may round a hair past its end points; keep the promise exactly.
        return min(max(self._rng.uniform(low, high), low), high)

    def is_retryable(
        self, status_code: int | None = None, error: AttemptError | None = None
    ) -> bool:
        """Whether an answer is worth retrying (the seed rule).

        5xx, 408 and 429 are, and so are timeout, connect, tls and invalid_response errors; other
        statuses and blocked_address, redirect, invalid_url are not. A status decides when given,
        else the error; ``ValueError`` when both are ``None``. This is the rule alone, blind to
        the endpoint's ``disable_on_status``: ``hookline.domain.outcome.classify`` makes the
        full decision.
        """
        if status_code is not None:
            return is_retryable_status(status_code)
        if error is not None:
            return is_retryable_error(error)
        raise ValueError("is_retryable needs a status code or an error")

    def is_exhausted(self, *, retry_number: int, elapsed_s: float) -> bool:
        """Whether retry ``retry_number`` must not happen: past ``max_retries`` or the window."""
        return retry_number > self.config.max_retries or elapsed_s >= self.config.max_retry_duration

    def fit_to_window(self, delay: float, *, elapsed_s: float) -> float:
        """``delay`` shortened so the retry starts no later than the window's end.

        Exact in floating point: ``elapsed_s + result <= max_retry_duration`` always holds.
        """
        window_s = self.config.max_retry_duration
        remaining_s = window_s - elapsed_s
        # The subtraction can round up by an ulp; step down until the sum stays in the window.
        while elapsed_s + remaining_s > window_s:
            remaining_s = math.nextafter(remaining_s, 0.0)
        return min(delay, remaining_s)

    def next_retry_delay(
        self, *, retry_number: int, elapsed_s: float, retry_after_s: float | None = None
    ) -> float | None:
        """Seconds from now until retry ``retry_number``, or ``None`` when retrying is over.

        ``elapsed_s`` runs from the start of the first attempt to now; a small negative value
        (clocks of two machines) counts as 0. ``retry_after_s`` is what the endpoint asked for
        (see ``parse_retry_after``); it wins when the config respects it and it is longer, still
        capped at ``max_delay``. The result is within ``[0, max_delay]`` and
        ``elapsed_s + result <= max_retry_duration``.
        """
        if retry_number < 1:
            raise ValueError(f"retry_number starts at 1, got {retry_number}")
        if math.isnan(elapsed_s):
            raise ValueError("elapsed_s is NaN")
        elapsed_s = max(elapsed_s, 0.0)
        if self.is_exhausted(retry_number=retry_number, elapsed_s=elapsed_s):
            return None
        delay = self.apply_jitter(self.calculate_delay(retry_number))
        if self.config.respect_retry_after and retry_after_s is not None and retry_after_s > delay:
            delay = min(retry_after_s, self.config.max_delay)
        return self.fit_to_window(delay, elapsed_s=elapsed_s)
