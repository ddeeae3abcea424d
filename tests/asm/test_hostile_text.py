"""The assembler on hostile text: ASCII numbers only, AsmSyntaxError for the rest, an answer at any size."""

from __future__ import annotations

from typing import Callable

import pytest

from bench.asm_linear import HOSTILE
from openat.asm import AsmSyntaxError, assemble

LONG = "1" * 5000  # past Python's 4,300-digit limit on int() of a decimal string


@pytest.mark.parametrize(
    "text, column, problem",
    [
        (f"r1 = {LONG}", 6, "immediate 111111111111...1111 (5000 characters) does not fit"),
        (f"r1 = -{LONG}", 6, "does not fit"),
        (f"r1 = {LONG} ll", 6, "(5000 characters) does not fit (-9223372036854775808..18446744073709551615)"),
        (f"r{LONG} = 5", 1, "no register r1111"),
        (f"r1 = r{LONG}", 6, "no register"),
        (f"r0 = *(u{LONG} *)(r1 + 0)", 9, "access size"),
        (f"r0 = *(u8 *)(r1 + {LONG})", 19, "offset +111111111111...1111 (5000 characters) does not fit in 16 bits"),
        (f"*(u8 *)(r1 - {LONG}) = 1", 14, "offset -111111111111...1111 (5000 characters) does not fit in 16 bits"),
        (f"goto +{LONG}", 6, "jump offset"),
        (f"call {LONG}", 6, "helper id"),
        (f"call pc+{LONG}", 9, "call offset"),
        (f"call kfunc {LONG}", 12, "BTF id"),
        (f"if r1 == {LONG} goto +0", 10, "immediate"),
        (f"ld_pseudo r1, {LONG}, 0", 15, "pseudo source"),
        (f"r0 = *(u8 *)skb[{LONG}]", 17, "offset"),
        ("r0 = 0x" + "f" * 5000, 6, "does not fit"),
        ("r0 = 18446744073709551616 ll", 6, "does not fit"),
        ("r1 = 0" + "1" * 30, 6, "octal"),
    ],
    ids=lambda value: value[:24] if isinstance(value, str) else None,
)
def test_over_long_numbers_are_syntax_errors_with_a_column(text: str, column: int, problem: str) -> None:
    with pytest.raises(AsmSyntaxError) as info:
        assemble(text)
    assert problem in str(info.value)
    assert (info.value.line, info.value.column) == (1, column), str(info.value)
    assert len(str(info.value)) < 200  # one readable line, not the operand echoed


def test_long_hex_with_leading_zeros_still_fits() -> None:
    assert assemble("r0 = 0x" + "0" * 5000 + "1") == assemble("r0 = 1")
    assert assemble("r0 = 18446744073709551615 ll") == assemble("r0 = -1 ll")


@pytest.mark.parametrize(
    "text, column, code_point",
    [
        ("r\uff11 = 5", 2, "U+FF11"),  # fullwidth digit one: not r1
        ("r1 = \u0665", 6, "U+0665"),  # Arabic-Indic five
        ("r1 = 1\u00b2", 7, "U+00B2"),  # superscript two (str.isdigit() says yes)
        ("r0\u00a0= 1", 3, "U+00A0"),  # no-break space
        ("exit\u200b", 5, "U+200B"),  # zero-width space
        ("l\u00e9: exit", 2, "U+00E9"),  # a label is ASCII too
        (".\x1b[31m", 2, "U+001B"),  # never echoed raw to a terminal
        ("r1 = 1 /* \u00e9 */ \u0660", 16, "U+0660"),
    ],
)
def test_non_ascii_outside_comments_is_a_syntax_error(text: str, column: int, code_point: str) -> None:
    with pytest.raises(AsmSyntaxError) as info:
        assemble(text)
    assert f"character {code_point} is not allowed" in str(info.value)
    assert info.value.column == column
    assert str(info.value).isascii()


def test_anything_goes_inside_comments() -> None:
    assert assemble("exit # r\uff11 \x1b \u200b") == assemble("exit")
    assert assemble("/* \u0665 */ exit // \u00a0") == assemble("exit")


@pytest.mark.parametrize("space", [" ", "\t", " \t ", ""])
def test_whitespace_around_the_sign_of_call_pc_is_the_same_on_both_sides(space: str) -> None:
    assert assemble(f"call pc{space}+{space}0x5") == assemble("call pc+5")
    assert assemble(f"call pc{space}-{space}0x5") == assemble("call pc-5")
    with pytest.raises(AsmSyntaxError, match="octal"):
        assemble(f"call pc{space}-{space}05")
    with pytest.raises(AsmSyntaxError, match="octal"):
        assemble(f"call pc{space}+{space}05")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("r0 = 1 # see /* over there", "r0 = 1"),  # a /* after # is comment text
        ("r0 = 1 // see /* over there", "r0 = 1"),
        ("/* # */ r0 = 1", "r0 = 1"),  # a # inside /* */ is comment text
        ("/* // */ r0 = 1 /**/", "r0 = 1"),
        ("r0 /* a */ = /* b */ 1", "r0 = 1"),
    ],
)
def test_comments_are_read_left_to_right(text: str, expected: str) -> None:
    assert assemble(text) == assemble(expected)


def test_columns_count_through_block_comments() -> None:
    with pytest.raises(AsmSyntaxError) as info:
        assemble("/* c */ r0 = r11")
    assert info.value.column == 14


# --------------------------------------------------------------------------- hostile sizes
# How the time grows with these inputs is measured by bench/asm_linear.py (a
# timing ratio has no place in a unit test); here, their outcome at a size
# where quadratic work would already take minutes.

@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_of_any_size_gets_an_answer(name: str) -> None:
    text = HOSTILE[name](50_000)
    try:
        code = assemble(text)
    except AsmSyntaxError as error:
        assert error.line >= 1 and error.column >= 1, name
    else:
        assert len(code) % 8 == 0, name  # whole instructions (none where all is comment)
