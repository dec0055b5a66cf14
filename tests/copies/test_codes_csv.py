"""The mapping table upload: taken whole, or refused with every problem named by its line."""

from __future__ import annotations

import pytest

from copies.codes_csv import MappingErrors, parse

HEADER = "sender_scheme,sender_code,description_pattern,nicip_code,nicip_meaning,snomed_code,snomed_meaning\n"


def problems(text: str) -> list[str]:
    with pytest.raises(MappingErrors) as caught:
        parse(text.encode())
    return caught.value.problems


def test_a_good_table_is_read_row_by_row():
    rows = parse(
        (HEADER + "RAA,CTHD1,,XCTHE,CT Head,7000001002,CT of head\n,,MR*KNEE*,XMRKN,MR Knee,7000002009,\n").encode()
    )
    assert [(r.line, r.sender_code, r.description_pattern, r.nicip_code) for r in rows] == [
        (2, "CTHD1", "", "XCTHE"),
        (3, "", "MR*KNEE*", "XMRKN"),
    ]


def test_an_unknown_column_is_refused_on_line_1():
    assert problems("sender_code,nicip_code,snomed_code,colour\nA,XCTHE,7000001002,red\n") == [
        "line 1: unknown column 'colour'"
    ]


def test_a_duplicate_key_names_both_lines():
    text = HEADER + "RAA,CTHD1,,XCTHE,,7000001002,\nraa,CTHD1,,XCTHF,,7000002009,\n"
    assert problems(text) == ["line 3: the same sender key as line 2"]


def test_malformed_codes_are_named_with_their_lines():
    text = HEADER + "RAA,CTHD1,,xcthe,,7000001002,\nRAA,CTHD2,,XCTHE,,7000001003,\nRAA,CTHD3,,XCTHE,,12AB,\n"
    assert problems(text) == [
        "line 2: nicip_code 'xcthe' is not a NICIP code",
        "line 3: snomed_code '7000001003' fails the SNOMED CT check digit",
        "line 4: snomed_code '12AB' is not a SNOMED CT identifier (6 to 18 digits)",
    ]


def test_a_row_needs_a_code_or_a_pattern_but_not_both():
    text = HEADER + "RAA,CTHD1,CT*,XCTHE,,7000001002,\n,,,XCTHE,,7000001002,\n"
    assert problems(text) == [
        "line 2: give a sender_code or a description_pattern (one of the two)",
        "line 3: give a sender_code or a description_pattern (one of the two)",
    ]


def test_an_empty_file_and_a_header_alone_are_refused():
    assert problems("") == ["The file is empty: the first line must name the columns."]
    assert problems(HEADER) == ["The file has a header but no rows."]
