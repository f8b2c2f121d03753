"""Bibliographic metadata from the title and copyright pages, as printed."""

from __future__ import annotations

import re

from bookops.schema import BookMetadata

from .folio import content_lines, median_word_height, parse_folio
from .isbn import find_isbns, find_lccn
from .pagetext import Line, PageText

METHOD = "offline"
_MONTHS = r"(january|february|march|april|may|june|july|august|september|october|november|december|" \
          r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?"
_YEAR = r"(1[4-9][0-9]{2}|20[0-9]{2})"
_DATED = re.compile(rf"{_MONTHS}\s+([0-9]{{1,2}},?\s+)?{_YEAR}\b", re.IGNORECASE)
_COPYRIGHT_YEARS = re.compile(r"(?:copyright|©|\(c\))[^\n]*", re.IGNORECASE)
_ANY_YEAR = re.compile(rf"(?<![0-9]){_YEAR}(?![0-9])")
_PUBLISHER = re.compile(r"\b(press|publish(ing|ers?)|verlag|editions?|éditions|books|sons|company|"
                        r"& co\.?|brothers|limited|ltd\.?|inc\.?|university|printers?)\b", re.IGNORECASE)
_EDITED = re.compile(r"^(edited|compiled|revised)\s+(and\s+\w+\s+)?by\b\s*", re.IGNORECASE)
_BY = re.compile(r"(^|\s)by\s*$|^by\s+", re.IGNORECASE)
_NAME_TOKEN = re.compile(
    r"^([A-Z][a-zà-ÿ'’\-]+|[A-Z][A-Z'’\-]+|[A-Z]\.|[A-Z]\.[A-Z]\.|de|van|von|der|da|di|le|la)$"
)
_NOT_NAME = re.compile(r"\b(guide|manual|internals|press|university|copyright|edition|volume|vol|the|of|"
                       r"and|for|with|contents|chapter|book|introduction|preface|printed|published)\b",
                       re.IGNORECASE)
_STOPWORDS = {
    "en": {"the", "and", "of", "to", "in", "is", "that", "for", "with", "this"},
    "fr": {"le", "la", "les", "et", "des", "est", "une", "dans", "pour", "qui"},
    "de": {"der", "die", "und", "das", "ist", "nicht", "mit", "sich", "des", "ein"},
    "la": {"et", "est", "in", "non", "ad", "quod", "cum", "sed", "ut", "qui"},
    "es": {"el", "los", "las", "del", "que", "por", "una", "para", "con", "como"},
    "it": {"il", "di", "che", "della", "per", "non", "una", "sono", "gli", "nel"},
}


def _title_case(s: str) -> str:
    # names printed in capitals ("MICHAEL DOWNES") are given as a reader would write them
    if s.isupper() and len(s) > 3:
        return " ".join(w.capitalize() if len(w) > 2 or "." not in w else w for w in s.split())
    return s


def _clean(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip(" ,;:-–—")


def _is_name(s: str) -> bool:
    tokens = s.replace(",", " ").split()
    if not 2 <= len(tokens) <= 5 or _NOT_NAME.search(s):
        return False
    return all(_NAME_TOKEN.match(t) for t in tokens) and sum(len(t) > 2 for t in tokens) >= 1


def _split_names(s: str) -> list[str]:
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+|\s*&\s*|;\s*", _clean(s))
    return [_title_case(_clean(p)) for p in parts if _clean(p)]


def _names_in(s: str) -> list[str]:
    names = _split_names(s)
    return names if names and all(_is_name(n) for n in names) else []


def _title_page(pages: list[PageText]) -> tuple[PageText, list[Line]] | None:
    """The first early page set in type nearly as big as the biggest: the title page.

    Chapter and preface headings can be as big as the title, but they come after it.
    """
    found: list[tuple[float, PageText, list[Line]]] = []
    for page in pages[:8]:
        lines = [ln for ln in content_lines(page) if not (len(ln.words) == 1 and parse_folio(ln.text))]
        lettered = [ln.height for ln in lines if sum(c.isalpha() for c in ln.text) >= 3]
        if not lettered or len(lines) > 30:
            continue
        found.append((max(lettered), page, lines))
    if not found:
        return None
    biggest = max(f[0] for f in found)
    _, page, lines = next(f for f in found if f[0] >= 0.75 * biggest)
    return page, lines


def extract_metadata(pages: list[PageText]) -> BookMetadata:
    """Title, subtitle, authors, editors, publisher, year, ISBN, LCCN and language of the front matter."""
    meta = BookMetadata(method=METHOD)
    found = _title_page(pages)
    if found is not None:
        page, lines = found
        meta.source_pages.append(page.page_num)
        _read_title_page(meta, page, lines)
    front = "\n".join(p.text for p in pages)
    if not meta.authors:
        for p in pages[:8]:
            for ln in content_lines(p)[:12]:
                m = re.match(r"^(?:written\s+)?by\s+(.+)$", ln.text.strip(), re.IGNORECASE)
                if m and _names_in(m.group(1)):
                    meta.authors = _names_in(m.group(1))
                    break
            if meta.authors:
                break
    meta.year = _year(pages)
    isbns = find_isbns(front)
    meta.isbn = next((i for i in isbns if len(i) == 13), isbns[0] if isbns else None)
    meta.lccn = find_lccn(front)
    meta.language = guess_language(front)
    return meta


def _read_title_page(meta: BookMetadata, page: PageText, lines: list[Line]) -> None:
    body_h = median_word_height(page.words)
    tallest = max(ln.height for ln in lines)
    title_idx = [
        i for i, ln in enumerate(lines) if ln.height >= 0.8 * tallest and any(c.isalpha() for c in ln.text)
    ]
    if not title_idx:
        return
    first = title_idx[0]
    idx = [first]
    # a title set on two lines keeps its size and follows closely
    for i in range(first + 1, min(first + 3, len(lines))):
        if i in title_idx and lines[i].top - lines[idx[-1]].bottom < 2.5 * tallest:
            idx.append(i)
        else:
            break
    title = _clean(" ".join(lines[i].text for i in idx))
    if ":" in title:
        title, _, sub = title.partition(":")
        meta.subtitle = _clean(sub) or None
    meta.title = _title_case(_clean(title))
    rest = lines[idx[-1] + 1:]
    expect: str | None = None
    for ln in rest:
        text = _clean(ln.text)
        if not text:
            continue
        if _EDITED.match(text):
            names = _names_in(_EDITED.sub("", text))
            if names:
                meta.editors.extend(names)
                expect = None
            else:
                expect = "editors"
            continue
        if expect is None and _BY.search(text) and not _BY.match(text):
            # "A Collection of Challenges by" / name on the next line
            lead = _clean(_BY.sub("", text))
            if lead and meta.subtitle is None and not meta.authors and ln.height > 0.9 * body_h:
                meta.subtitle = lead
            expect = "authors"
            continue
        names = _names_in(re.sub(r"^by\s+", "", text, flags=re.IGNORECASE))
        if names:
            target = meta.editors if expect == "editors" else meta.authors
            target.extend(n for n in names if n not in target)
            expect = None
            continue
        if _PUBLISHER.search(text) and meta.publisher is None and not _DATED.search(text):
            meta.publisher = text
            continue
        if (meta.subtitle is None and not meta.authors and not meta.editors and ln.height > 1.15 * body_h
                and not _ANY_YEAR.search(text)):
            meta.subtitle = text
        expect = None


def _year(pages: list[PageText]) -> str | None:
    """Publication year: a dated line ("July 2008") first, then the latest copyright year, then any
    year on the first pages."""
    for p in pages[:10]:
        m = _DATED.search(p.text)
        if m:
            return m.group(3)
    years: list[str] = []
    for p in pages[:10]:
        for line in _COPYRIGHT_YEARS.findall(p.text):
            years.extend(m.group(1) for m in _ANY_YEAR.finditer(line))
    if years:
        return max(years)
    for p in pages[:4]:
        m = _ANY_YEAR.search(p.text)
        if m:
            return m.group(1)
    return None


def guess_language(text: str) -> str | None:
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    if len(words) < 20:
        return None
    counts = {lang: sum(1 for w in words if w in sw) for lang, sw in _STOPWORDS.items()}
    lang, n = max(counts.items(), key=lambda kv: kv[1])
    return lang if n >= 5 else None
