from __future__ import annotations

from bookops.schema import PageLabel
from bookops.understand import find_toc, parse_toc, resolve_scan_pages

from ._build import body, page, row

LEADER = ". . . . . . . . . . . . . . . . . . . ."


def _toc_page() -> object:
    return page(
        3,
        row(200, (190, "Contents"), h=30),
        row(280, (190, "Preface"), (600, LEADER), (1000, "vii")),
        row(320, (190, "1 Getting started"), (1000, "1")),
        row(350, (220, "1.1 Social dynamics"), (600, LEADER), (1000, "1")),
        row(380, (220, "1.2 A section whose long title wraps onto")),
        row(406, (250, "a second line"), (600, LEADER), (1000, "3")),
        row(436, (250, "1.2.1 Deeper"), (600, LEADER), (1000, "4")),
        row(476, (190, "2 Next steps"), (1000, "6")),
        row(506, (220, "2.1 More"), (600, LEADER), (1000, "9")),
        row(1440, (630, "v")),
    )


def test_parse_toc_entries_levels_and_wraps() -> None:
    entries = parse_toc([_toc_page()])  # type: ignore[list-item]
    got = [(e.title, e.level, e.number, e.printed_page) for e in entries]
    assert got == [
        ("Preface", 1, None, "vii"),
        ("1 Getting started", 1, "1", "1"),
        ("1.1 Social dynamics", 2, "1.1", "1"),
        ("1.2 A section whose long title wraps onto a second line", 2, "1.2", "3"),
        ("1.2.1 Deeper", 3, "1.2.1", "4"),
        ("2 Next steps", 1, "2", "6"),
        ("2.1 More", 2, "2.1", "9"),
    ]


def test_resolve_scan_pages() -> None:
    entries = parse_toc([_toc_page()])  # type: ignore[list-item]
    labels = [PageLabel(printed_page=p) for p in [None, None, "v", "vi", "vii", None, "2", "3", "4", "5"]]
    resolved = {e.title: e.scan_page for e in resolve_scan_pages(entries, labels)}
    assert resolved["Preface"] == 5
    assert resolved["1.2 A section whose long title wraps onto a second line"] == 8
    assert resolved["1 Getting started"] == 6  # the opening prints no folio: found from the offset


def test_find_toc_follows_continuation_and_stops() -> None:
    title = page(1, row(400, (300, "A Book Title"), h=40))
    toc = _toc_page()
    cont = page(4, row(160, (190, "iv"), (1000, "Contents")),
                *[row(230 + 30 * i, (190, f"{3 + i} Chapter number {3 + i}"), (1000, str(10 + 3 * i)))
                  for i in range(12)])
    preface = page(5, row(200, (190, "Preface"), h=30), *body(280, 30))
    pages, conf = find_toc([title, page(2), toc, cont, preface])  # type: ignore[list-item]
    assert pages == [3, 4]
    assert conf > 0.5


def test_find_toc_none_in_plain_book() -> None:
    pages = [page(i, row(160, (190, "Running head"), (1000, str(i))), *body(230, 30)) for i in range(1, 15)]
    assert find_toc(pages) == ([], 0.9)


def test_find_toc_ignores_index() -> None:
    idx = page(90, row(200, (190, "Index"), h=30),
               *[row(260 + 26 * i, (190, f"term{i}, {i + 3}, {i + 40}")) for i in range(30)])
    assert find_toc([idx])[0] == []


def test_prose_page_is_told_from_a_toc_page_that_lost_its_numbers() -> None:
    from bookops.understand.toc_find import looks_like_prose

    prose = page(7, *body(200, 20))
    assert looks_like_prose(prose)
    # the same page count of short title lines, numbers lost by the OCR: still a ToC candidate
    titles = page(5, *[row(200 + 26 * i, (190, f"Chapter {i} title")) for i in range(20)])
    assert not looks_like_prose(titles)
    # long lines that end in page numbers are entries with long titles, not prose
    long_entries = page(6, *[row(200 + 26 * i, (190, "a rather long chapter title that runs on"),
                                 (1100, str(10 + i))) for i in range(20)])
    assert not looks_like_prose(long_entries)
    # too few lines to judge
    assert not looks_like_prose(page(8, *body(200, 5)))
