"""The readers' side of the targeted OCR passes: which pages get them, and how their words merge."""

from __future__ import annotations

from bookops.schema import Word
from bookops.understand import read_page_label
from bookops.understand.folio import with_margin_lines
from bookops.understand.labels import wants_margin_pass
from bookops.understand.toc_find import MAX_CANDIDATES, toc_candidates

from ._build import body, page, row


def test_margin_pass_wanted_without_a_sure_folio() -> None:
    sure = page(9, row(160, (190, "Running head"), (1000, "17")), *body(230, 30))
    missing = page(9, *body(230, 30))
    unsure = page(9, row(160, (190, "Running head"), (1000, "17")), *body(230, 30))
    for w in unsure.words:
        if w.text == "17":
            w.conf = 60
    assert not wants_margin_pass(sure)
    assert wants_margin_pass(missing)
    assert wants_margin_pass(unsure)


def test_margin_words_replace_the_page_words_of_their_rows() -> None:
    # the page OCR garbled the head line ("7157") and missed the foot; the re-read has both
    pg = page(13, row(80, (120, "Debian Guide"), (1100, "7157")), *body(230, 30))
    pg.words[2].conf = 5
    head = [Word(text="Debian", conf=96, left=120, top=81, width=60, height=16),
            Word(text="Guide", conf=96, left=190, top=81, width=50, height=16),
            Word(text="7/57", conf=90, left=1100, top=80, width=40, height=16)]
    foot = [Word(text="7", conf=93, left=630, top=1500, width=10, height=16)]
    merged = with_margin_lines(pg, head + foot, [(78, 98), (1498, 1518)])

    assert [w.text for w in merged.words if w.top < 100] == ["Debian", "Guide", "7/57"]
    assert merged.text == pg.text  # the stored text stays the page OCR's
    assert read_page_label(merged).printed_page == "7"
    # words of the re-read outside its bands are not taken
    assert with_margin_lines(pg, foot, [(78, 98)]).words == [w for w in pg.words if w.top > 100]


def _toc_like(num: int, heading: bool) -> object:
    rows = [row(200, (190, "Contents"), h=30)] if heading else []
    rows += [row(260 + 30 * i, (190, f"{i + 1} Chapter {i + 1}"), (1000, str(3 + 4 * i))) for i in range(10)]
    return page(num, *rows)


def test_toc_candidates_take_heading_pages_their_next_page_and_entry_pages() -> None:
    title = page(1, row(400, (300, "A Book Title"), h=40))
    prose = [page(i, *body(230, 30)) for i in range(2, 12)]
    pages = [title, prose[0], _toc_like(3, True), prose[1].model_copy(update={"page_num": 4}),
             _toc_like(5, False), *prose[4:]]
    assert toc_candidates(pages) == [3, 4, 5]  # type: ignore[arg-type]
    # prose only: nothing to re-read
    assert toc_candidates([title, *prose]) == []
    # never more than a handful at first
    many = [_toc_like(i, False) for i in range(1, 20)]
    assert len(toc_candidates(many)) == MAX_CANDIDATES  # type: ignore[arg-type]
