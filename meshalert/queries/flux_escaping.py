"""Flux string literals for values that come from configuration or from the store.

Flux strings (https://docs.influxdata.com/flux/v0/spec/lexical-elements/#string-literals)
treat ``\\`` and ``"`` as special, and ``${`` opens an interpolation that would evaluate
whatever follows as code. Every value placed in a query goes through :func:`flux_string`,
so a service name like ``a" or true or "`` or ``${secret}`` stays data.

Parameterized queries (``params.name``) would avoid escaping, but only InfluxDB Cloud
supports them; InfluxDB OSS 2.x does not, so escaping into the text is what works on
every InfluxDB 2 server.
"""

from __future__ import annotations

# "$" is always written as the byte escape \x24: "\${" is the documented escape of an
# interpolation opener, but Flux's lexer (flux-lsp 0.8.40, the same Rust parser InfluxDB
# runs) also fails on "$" followed by an escaped quote or backslash ("$\"" is rejected as
# an invalid escape), and \x24 sidesteps every such case.
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "$": "\\x24",
}


def _escape_char(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch < " " or ch == "\x7f":
        # Raw control characters parse, but they would make evidence text unreadable;
        # ``\xHH`` is one UTF-8 byte for these code points, so it decodes to the same value.
        return f"\\x{ord(ch):02x}"
    return ch


def flux_string(value: str) -> str:
    """``value`` as a Flux string literal (with quotes) whose value is exactly ``value``.

    Raises ValueError for text that has no UTF-8 form (lone surrogates): no query could
    carry it.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"cannot put {value!r} in a Flux query: {exc.reason}") from None
    return '"' + "".join(_escape_char(ch) for ch in value) + '"'
