"""pytest plugin for ``python -m benchmarks.mutation`` only (``-p benchmarks.mutation_pytest``).

A mutant must be killed by a test's assertions, never by the machine: mutmut runs each mutant's
tests under tracing on a busy machine, where Hypothesis' deadline and "input generation is
slow" health checks fail at random. Fixed examples (``derandomize``) and no example database
make every run judge a mutant the same way.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mutation",
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
settings.load_profile("mutation")
