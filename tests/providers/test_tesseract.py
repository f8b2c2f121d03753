"""Tesseract on real page images: text quality against the corpus reference, boxes, errors."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytesseract
import pytest
from PIL import Image, ImageDraw, ImageFont

from bookops.errors import PermanentError, TransientError
from bookops.providers.pdf import extract_page
from bookops.providers.tesseract import (
    _as_number,
    _map_tesseract_error,
    _merge_column,
    build_text,
    ocr_careful,
    ocr_image,
    ocr_images,
    ocr_margin_lines,
)
from bookops.schema import Word
from bookops.understand import PageText, parse_toc
from bookops.understand.folio import with_margin_lines
from bookops.understand.labels import read_page_label
from tests.conftest import CORPUS, SAMPLE_PDF

MAINT = CORPUS / "dev" / "maint-guide"


def _scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("corpus_score", CORPUS / "score.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _word_image(tmp_path: Path, dpi: int) -> tuple[Path, tuple[int, int, int, int]]:
    """A small page with one known word at a known place; returns the file and the word's box."""
    scale = dpi / 150
    img = Image.new("L", (round(600 * scale), round(200 * scale)), 255)
    font = ImageFont.load_default(size=round(28 * scale))
    draw = ImageDraw.Draw(img)
    xy = (round(220 * scale), round(80 * scale))
    draw.text(xy, "Maintainer", font=font, fill=0)
    box = draw.textbbox(xy, "Maintainer", font=font)
    path = tmp_path / f"word{dpi}.png"
    img.save(path, dpi=(dpi, dpi))
    return path, (round(box[0]), round(box[1]), round(box[2]), round(box[3]))


@pytest.mark.skipif(not (MAINT / "book.pdf").exists(), reason="benchmark corpus not present")
def test_corpus_page_is_read_with_low_cer(tmp_path: Path) -> None:
    info = extract_page(str(MAINT / "book.pdf"), 8, str(tmp_path / "0009"), 300)
    assert info["dpi"] == 150  # the dev corpus is 150 dpi, read as it is by default

    out = ocr_image(info["path"], "eng", info["dpi"])

    reference = (MAINT / "pages" / "0009.txt").read_text(encoding="utf-8")
    cer = _scorer().score_cer([reference], [out["text"]])["cer"]
    assert cer < 0.05
    assert 0.0 < out["confidence"] <= 1.0
    assert (out["image_width"], out["image_height"]) == (info["width"], info["height"])
    assert out["scale"] == 1.0 and out["dpi"] == 150
    assert out["engine_version"].startswith("5.")
    assert len(out["words"]) > 300
    for w in out["words"]:
        assert 0 <= w["left"] and w["left"] + w["width"] <= info["width"]
        assert 0 <= w["top"] and w["top"] + w["height"] <= info["height"]
        assert 0 <= w["conf"] <= 100
    # the text is the words, line by line
    assert out["text"].split() == [w["text"] for w in out["words"]]
    assert "\n\n" in out["text"]


@pytest.mark.parametrize("dpi", [150, 300])
def test_word_boxes_are_in_the_stored_image_pixels(tmp_path: Path, dpi: int) -> None:
    path, (x0, y0, x1, y1) = _word_image(tmp_path, dpi)

    out = ocr_image(str(path), "eng", None, upscale=True)  # resolution read from the file

    assert (out["dpi"], out["scale"]) == ((225, 1.5) if dpi == 150 else (300, 1.0))
    [word] = [w for w in out["words"] if "Maintainer" in w["text"]]
    tol = 4 * dpi / 150
    assert abs(word["left"] - x0) <= tol and abs(word["top"] - y0) <= tol
    assert abs(word["left"] + word["width"] - x1) <= tol
    assert abs(word["top"] + word["height"] - y1) <= tol


def test_pages_read_together_equal_pages_read_alone(tmp_path: Path) -> None:
    pages = [str(extract_page(str(SAMPLE_PDF), i, str(tmp_path / f"{i:04d}"), 300)["path"]) for i in (2, 5)]
    word, _ = _word_image(tmp_path, 300)  # another resolution: read in a tesseract call of its own
    paths = [pages[0], str(word), pages[1]]
    alone = [ocr_image(p, "eng", None) for p in paths]
    together = ocr_images(paths, "eng", [None, None, None])
    assert together == alone
    assert [r["dpi"] for r in together] == [alone[0]["dpi"], 300, alone[2]["dpi"]]
    assert all(r["words"] for r in together) and together[0]["text"] != together[2]["text"]
    with pytest.raises(PermanentError):  # one unreadable page fails the call (the batcher then
        ocr_images([pages[0], str(tmp_path / "missing.png")], "eng")  # reads them one by one)


def test_build_text_breaks_lines_and_blocks() -> None:
    def w(text: str, block: int, par: int, line: int) -> dict[str, object]:
        return {"text": text, "block": block, "par": par, "line": line}

    words = [w("Chapter", 1, 1, 1), w("One", 1, 1, 1), w("It", 2, 1, 1), w("was", 2, 1, 1),
             w("dark.", 2, 1, 2), w("Then", 2, 2, 1), w("17", 3, 1, 1)]
    assert build_text(words) == "Chapter One\n\nIt was\ndark.\nThen\n\n17"
    assert build_text([]) == ""


def test_unreadable_inputs_are_permanent_errors(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        ocr_image(str(tmp_path / "missing.png"), "eng", 300)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(PermanentError):
        ocr_image(str(junk), "eng", 300)
    path, _ = _word_image(tmp_path, 300)
    with pytest.raises(PermanentError, match="language"):
        ocr_image(str(path), "no_such_language", 300)


def test_a_killed_tesseract_is_transient(tmp_path: Path) -> None:
    path, _ = _word_image(tmp_path, 300)
    with pytest.raises(TransientError):
        ocr_image(str(path), "eng", 300, timeout_s=0.001)
    assert isinstance(_map_tesseract_error(pytesseract.TesseractError(-9, "")), TransientError)
    assert isinstance(_map_tesseract_error(pytesseract.TesseractError(1, "bad image")), PermanentError)


# ---------------------------------------------------------------------------------- targeted passes

SBCL = CORPUS / "dev" / "sbcl-internals"


def _page(pdf: Path, index: int, tmp_path: Path) -> dict[str, object]:
    return extract_page(str(pdf), index - 1, str(tmp_path / f"{index:04d}"), 300)


def _page_text(fields: dict[str, object], num: int) -> PageText:
    words = [Word.model_validate(w) for w in fields["words"]]  # type: ignore[attr-defined]
    return PageText(page_num=num, text=str(fields.get("text", "")), words=words,
                    width=int(fields["image_width"]), height=int(fields["image_height"]))  # type: ignore[call-overload]


@pytest.mark.skipif(not (SBCL / "book.pdf").exists(), reason="benchmark corpus not present")
def test_margin_pass_finds_the_folios_page_ocr_lost(tmp_path: Path) -> None:
    # sbcl p5: a lone "1" in the head corner, dropped by full-page OCR as noise
    info = _page(SBCL / "book.pdf", 5, tmp_path)
    page = _page_text(ocr_image(str(info["path"]), "eng", 150), 5)
    assert read_page_label(page).printed_page is None

    margin = ocr_margin_lines(str(info["path"]), "eng", 150)

    [(top, bottom), *_] = margin["bands"]
    assert bottom < 0.1 * int(info["height"])  # type: ignore[call-overload]
    merged = with_margin_lines(page, [Word.model_validate(w) for w in margin["words"]],
                               [tuple(b) for b in margin["bands"]])
    assert read_page_label(merged).printed_page == "1"
    # maint-guide p13: "7 / 57" above a rule, garbled by full-page OCR
    info = _page(MAINT / "book.pdf", 13, tmp_path)
    texts = [w["text"] for w in ocr_margin_lines(str(info["path"]), "eng", 150)["words"]]
    assert "7/57" in texts or texts[-3:] == ["7", "/", "57"]


@pytest.mark.skipif(not (MAINT / "book.pdf").exists(), reason="benchmark corpus not present")
def test_careful_read_keeps_the_page_number_column_of_a_toc_page(tmp_path: Path) -> None:
    import json

    gt = json.loads((MAINT / "groundtruth.json").read_text(encoding="utf-8"))
    info = _page(MAINT / "book.pdf", 5, tmp_path)
    first = next(i for i, e in enumerate(gt["toc_entries"]) if e["title"].startswith("5 Other files"))

    out = ocr_careful(str(info["path"]), "eng", 150)

    got = parse_toc([_page_text(out, 5)])
    want = gt["toc_entries"][first:first + len(got)]
    assert (out["image_width"], out["image_height"]) == (info["width"], info["height"])
    assert abs(out["angle"]) <= 2
    # the page's 37 entries, every one with its number (a few titles differ by a character)
    assert len(got) == 37
    assert [e.printed_page for e in got] == [e["printed_page"] for e in want]
    close = [difflib.SequenceMatcher(None, g.title, w["title"]).ratio() >= 0.9
             for g, w in zip(got, want, strict=True)]
    assert sum(close) >= 0.9 * len(got)


def test_number_column_words_fix_and_fill_the_page_reading() -> None:
    def w(text: str, left: int, top: int, conf: float = 95, line: int = 1) -> dict[str, object]:
        return {"text": text, "conf": conf, "left": left, "top": top, "width": 10 * len(text),
                "height": 16, "block": 1, "par": 1, "line": line}

    page = [w("1.1", 100, 100), w("Intro", 140, 100), w("il", 1000, 100, 40),
            w("1.2", 100, 130, line=2), w("Next", 140, 130, line=2),
            w("1.3", 100, 160, line=3), w("Last", 140, 160, line=3), w("14", 1000, 160, 96, line=3)]
    column = [w("11", 1000, 100, 90), w("12", 1000, 130, 90), w("16", 1000, 160, 60), w("ab", 1000, 190)]

    merged = _merge_column(page, column)

    assert build_text(merged) == "1.1 Intro 11\n1.2 Next 12\n1.3 Last 14"
    assert _as_number("il", True) == "11" and _as_number("il", False) is None
    assert _as_number("xiv.", False) == "xiv" and _as_number("Intro", True) is None
