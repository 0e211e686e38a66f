"""How sure a sampled ratio is: a one-sided lower confidence bound from the lines received.

Linkerd's statsd telemeter keeps each counter increment with probability ``sampleRate``,
independently for every counter. Of a window's ``F`` failures and ``R`` requests the sidecar
receives ``k ~ Poisson(pF)`` failure lines and ``n ~ Poisson(pR)`` request lines, and given
``k + n`` the failure lines are ``Binomial(k + n, q)`` with ``q = F / (F + R)`` -- whatever
the sample rate. So the Wilson score interval of ``q`` from ``k`` of ``k + n`` lines, mapped
through ``r = q / (1 - q)``, bounds the ratio ``F / R`` from the lines alone. At 95 %:
2 failure lines over 20 request lines (a "10 %") bound the ratio at 3.2 %, so it does not
page at a 5 % threshold; 4 of 20 bound it at 8.4 %, 30 of 300 at 7.3 %. Few lines in total
are the volume guard's business (``min_samples``): 1 of 3 still bounds at 6 %.

Unsampled sources (sampleRate 1, or exact counts) give lines equal to events: the bound
then only discounts small numbers, as it should.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

DEFAULT_CONFIDENCE = 0.95


@lru_cache(maxsize=64)
def z_score(confidence: float) -> float:
    """The one-sided normal quantile for ``confidence`` (0.95 -> 1.645)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(confidence)


def wilson_lower(successes: float, trials: float, confidence: float) -> float:
    """Wilson score lower bound of a binomial proportion (0 when there are no trials)."""
    if trials <= 0:
        return 0.0
    p = min(max(successes / trials, 0.0), 1.0)
    z = z_score(confidence)
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, (centre - spread) / (1 + z2 / trials))


def ratio_lower_bound(event_lines: float, base_lines: float, confidence: float) -> float:
    """Lower bound of ``events / base`` from independently sampled line counts.

    ``event_lines`` and ``base_lines`` are the lines received for the numerator (failures,
    retries) and the denominator (requests); see the module docstring for why this holds
    at any sample rate.
    """
    q = wilson_lower(event_lines, event_lines + base_lines, confidence)
    return q / (1 - q) if q < 1 else math.inf
