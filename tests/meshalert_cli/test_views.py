"""Terminal tables of the CLI (meshalert_cli.views.table), rendered with rich."""

from __future__ import annotations

from meshalert_cli.views import table


def test_columns_line_up_two_spaces_apart_without_trailing_blanks() -> None:
    text = table([["FIRING", "production/checkout", "900 ms"], ["OK", "a", "-"]], ["S", "SVC", "V"])
    assert text.split("\n") == [
        "S       SVC                  V",
        "FIRING  production/checkout  900 ms",
        "OK      a                    -",
    ]


def test_wide_characters_are_measured_in_terminal_columns() -> None:
    lines = table([["日本語", "1"], ["ab", "2"]], ["SVC", "N"]).split("\n")
    # "日本語" takes six columns: the second column starts at column 8 on every line.
    assert lines == ["SVC     N", "日本語  1", "ab      2"]


def test_cells_are_escaped_and_never_read_as_markup_nor_cut() -> None:
    long = "x" * 500
    text = table([["[bold]svc[/bold]", "\x1b[31mred\n"], [long, ""]], ["A", "B"])
    assert "[bold]svc[/bold]" in text
    assert "\x1b" not in text
    assert "\\x1b[31mred\\n" in text
    assert long in text
    assert len(text.split("\n")) == 3


def test_no_rows_is_the_header_alone() -> None:
    assert table([], ["AT", "CLASS"]) == "AT  CLASS"
