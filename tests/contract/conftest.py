from __future__ import annotations

import pytest

from tests.contract.backends import BACKENDS, Backend

_MARKS = {"influxdb1": [pytest.mark.influxd], "influxdb2": [pytest.mark.influxd2]}


@pytest.fixture(params=[pytest.param(name, marks=_MARKS.get(name, [])) for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param](request)
