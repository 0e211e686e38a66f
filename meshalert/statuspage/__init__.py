"""The read-only status page of ``meshalert run``: alerts by state with their evidence,
recent history and each service's four signals over the last hour.

``model`` and ``render`` are pure, ``collect`` reads the stores through their ports and
``server`` is the thin HTTP adapter.
"""
