"""One package per backend: everything that knows one store lives in it.

``sqlite/`` (the embedded store and state), ``influxdb1/``, ``influxdb2/``, ``dynamodb/``
(state) and ``memory/`` (state). Each has ``url.py`` (its config value and URL parser, pure)
and, as it applies, ``reader.py``, ``writer.py``, ``state.py``, ``schema.py`` and its one
HTTP client. :mod:`meshalert.backends.urls` maps URL schemes to the parsers;
:mod:`meshalert.wiring` alone opens the adapters. A new backend is a new package here, its
schemes in ``urls.py`` and its openers in ``wiring.py``.
"""
