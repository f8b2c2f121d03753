from __future__ import annotations

from bookops.understand import extract_metadata

from ._build import page, row


def test_title_page_and_copyright() -> None:
    title = page(
        1,
        row(300, (330, "THE ART OF"), h=44),
        row(360, (330, "SMALL BOATS"), h=44),
        row(460, (360, "A Practical Handbook"), h=24),
        row(560, (420, "by")),
        row(600, (380, "JANE Q. SMITH")),
        row(700, (400, "edited by")),
        row(730, (400, "John Doe")),
        row(1300, (420, "Harbour Press")),
    )
    copyright_page = page(2, row(900, (190, "Copyright © 1987, 1991 Jane Q. Smith")),
                          row(930, (190, "ISBN 0-306-40615-2")), row(960, (190, "All rights reserved.")))
    meta = extract_metadata([title, copyright_page])
    assert meta.title == "The Art Of Small Boats"
    assert meta.subtitle == "A Practical Handbook"
    assert meta.authors == ["Jane Q. Smith"]
    assert meta.editors == ["John Doe"]
    assert meta.publisher == "Harbour Press"
    assert meta.year == "1991"
    assert meta.isbn == "0306406152"
