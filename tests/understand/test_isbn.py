from __future__ import annotations

from bookops.understand import find_isbns, find_lccn, isbn10_valid, isbn13_valid, normalize_isbn


def test_isbn_checksums() -> None:
    assert isbn10_valid("0306406152")
    assert not isbn10_valid("0306406153")
    assert isbn10_valid("080442957X")
    assert isbn13_valid("9780306406157")
    assert not isbn13_valid("9780306406158")


def test_find_isbns_in_copyright_text() -> None:
    text = "Printed in 1999.\nISBN 0-306-40615-2 (paper)\nISBN-13: 978-0-306-40615-7\nTel. 0123456789"
    assert find_isbns(text) == ["0306406152", "9780306406157"]
    assert normalize_isbn("978 0 306 40615 7") == "9780306406157"


def test_lccn() -> None:
    assert find_lccn("Library of Congress Catalog Card Number: 58-12345") == "58-12345"
    assert find_lccn("nothing here") is None
