from __future__ import annotations

from bookops.schema import ContentType, PageLabel
from bookops.understand import fix_label_sequence, read_page_label
from bookops.understand.roman import roman_value, to_roman

from ._build import body, page, row


def test_folio_at_foot_centred() -> None:
    p = page(9, *body(300, 30), row(1440, (630, "17")))
    assert read_page_label(p).printed_page == "17"


def test_folio_in_head_corner_with_running_head() -> None:
    p = page(12, row(160, (190, "Chapter Two: The Road"), (1050, "34")), *body(230, 30))
    lab = read_page_label(p)
    assert lab.printed_page == "34"
    assert lab.running_header == "Chapter Two: The Road"


def test_roman_folio_kept_lowercase() -> None:
    p = page(4, row(160, (190, "xiv"), (900, "Preface")), *body(230, 30))
    assert read_page_label(p).printed_page == "xiv"


def test_n_of_m_folio_reads_n() -> None:
    p = page(20, row(90, (120, "Debian New Maintainers Guide"), (1130, "14 / 57")), *body(180, 30))
    assert read_page_label(p).printed_page == "14"


def test_in_text_page_reference_is_not_a_folio() -> None:
    p = page(7, *body(160, 30), row(160 + 26 * 30, (190, "as explained before, see page 42")))
    assert read_page_label(p).printed_page is None


def test_section_number_in_heading_is_not_a_folio() -> None:
    heading = row(280, (190, "1.2"), (240, "Getting started"), h=26)
    p = page(8, heading, *body(340, 30))
    assert read_page_label(p).printed_page is None
    p2 = page(8, row(280, (190, "2 Empty argument")), *body(320, 30))
    assert read_page_label(p2).printed_page is None


def test_blank_page() -> None:
    lab = read_page_label(page(2))
    assert lab.printed_page is None
    assert lab.content_type == ContentType.blank


def _book(folios: list[str | None]) -> list:
    pages = []
    for i, f in enumerate(folios, 1):
        rows = body(300, 30)
        if f is not None:
            rows.append(row(1440, (630, f)))
        pages.append(page(i, *rows))
    return pages


def test_sequence_repairs_one_misread() -> None:
    folios: list[str | None] = [str(n) for n in range(10, 16)]
    folios[3] = "l3"  # OCR read "13" as "l3": not a number on its own
    pages = _book(folios)
    labels = [read_page_label(p) for p in pages]
    assert labels[3].printed_page is None
    fixed = fix_label_sequence(labels, pages)
    assert [lab.printed_page for lab in fixed] == [str(n) for n in range(10, 16)]
    assert fixed[3].sequence_fixed and not fixed[2].sequence_fixed


def test_sequence_replaces_wrong_digit_and_keeps_nulls() -> None:
    labels = [PageLabel(printed_page=p) for p in ["5", "6", "17", "8", None, "10", "11"]]
    pages = _book([lab.printed_page for lab in labels])
    fixed = fix_label_sequence(labels, pages)
    assert [lab.printed_page for lab in fixed] == ["5", "6", "7", "8", None, "10", "11"]
    assert fixed[2].sequence_fixed
    assert fixed[4].printed_page is None and not fixed[4].sequence_fixed


def test_sequence_drops_noise_number() -> None:
    labels = [PageLabel(printed_page=p) for p in ["iii", "iv", "v", "250", "vii", "viii"]]
    fixed = fix_label_sequence(labels, _book([None] * 6))
    assert [lab.printed_page for lab in fixed] == ["iii", "iv", "v", None, "vii", "viii"]


def test_sequence_keeps_gaps_of_missing_plates() -> None:
    labels = [PageLabel(printed_page=p) for p in ["3", "4", "6", "7", "8"]]
    fixed = fix_label_sequence(labels, _book([lab.printed_page for lab in labels]))
    assert [lab.printed_page for lab in fixed] == ["3", "4", "6", "7", "8"]


def test_roman_helpers() -> None:
    assert roman_value("xiv") == 14 and roman_value("XIV") == 14
    assert roman_value("iiii") is None and roman_value("Vv") is None
    assert to_roman(28) == "xxviii"
