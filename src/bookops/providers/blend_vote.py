"""Offline blending of several OCR readings of one page: outlier check and weighted word voting.

Every reading is aligned word by word against a base reading (the most confident one) with
difflib; at each base word, and in each gap between base words, the candidates are voted on,
weighted by word confidence. The base reading's line breaks are kept.
"""

from __future__ import annotations

import difflib
import statistics
from dataclasses import dataclass, field

__all__ = ["DEFAULT_WEIGHT", "Reading", "VoteResult", "drop_outliers", "vote"]

# Weight of a word from a source that reports no confidence (vision models). Tesseract words
# above it win, uncertain ones below it lose: the split the two engines' strengths suggest.
DEFAULT_WEIGHT = 0.75
# A source this much longer than the median of the others is dropped (invented leader dots,
# repeated lines); the slack keeps near-empty pages from tripping it over a folio.
OUTLIER_RATIO = 1.5
OUTLIER_SLACK_CHARS = 20
# ...unless the engine itself is sure of what it read: tesseract does not invent confident text
# (its garbage from pictures and specks comes with low confidence), while a vision model that
# skipped half the page would otherwise get the full reading thrown out.
TRUSTED_CONFIDENCE = 0.8


@dataclass
class Reading:
    """One source's reading of a page; ``confs`` (0..1) per whitespace token when known."""

    source: str
    text: str
    confidence: float | None = None
    confs: list[float] | None = None

    def tokens(self) -> list[tuple[str, int]]:
        """(word, line index) in reading order."""
        out: list[tuple[str, int]] = []
        for li, line in enumerate(self.text.split("\n")):
            out.extend((w, li) for w in line.split())
        return out

    def weights(self, n: int) -> list[float]:
        if self.confs is not None and len(self.confs) == n:
            return [_unit(c) for c in self.confs]
        base = _unit(self.confidence) if self.confidence is not None else DEFAULT_WEIGHT
        return [base] * n

    @property
    def size(self) -> int:
        return len(" ".join(self.text.split()))


def _unit(c: float) -> float:
    # tesseract word confidences are 0..100, page means 0..1
    return max(0.0, min(1.0, c / 100.0 if c > 1.0 else c))


def drop_outliers(readings: list[Reading]) -> tuple[list[Reading], list[Reading]]:
    """(kept, dropped): a source far longer than the median of the others is dropped, unless it
    reports a high mean confidence of its own."""
    if len(readings) < 2:
        return list(readings), []
    kept: list[Reading] = []
    dropped: list[Reading] = []
    for r in readings:
        others = statistics.median(o.size for o in readings if o is not r)
        trusted = r.confidence is not None and _unit(r.confidence) >= TRUSTED_CONFIDENCE
        if r.size > OUTLIER_RATIO * others + OUTLIER_SLACK_CHARS and not trusted:
            dropped.append(r)
        else:
            kept.append(r)
    if not kept:  # cannot happen with a ratio > 1, but never return nothing
        kept, dropped = [min(readings, key=lambda r: r.size)], [r for r in readings if r is not kept[0]]
    return kept, dropped


@dataclass
class VoteResult:
    text: str
    agreement: float  # share of base words every source agreed on
    base: str


@dataclass
class _Slot:
    """Candidates for one base word: text -> (weight, how many base words it spans)."""

    cands: dict[str, float] = field(default_factory=dict)
    span: dict[str, int] = field(default_factory=dict)

    def add(self, text: str, weight: float, span: int = 1) -> None:
        self.cands[text] = self.cands.get(text, 0.0) + weight
        self.span[text] = max(self.span.get(text, 1), span)


def vote(readings: list[Reading]) -> VoteResult:
    """Blend readings by confidence-weighted voting over a word alignment with the base."""
    if not readings:
        return VoteResult("", 0.0, "")
    base = max(readings, key=_mean_weight)
    btoks = base.tokens()
    bwords = [w for w, _ in btoks]
    bweights = base.weights(len(btoks))
    if len(readings) == 1:
        return VoteResult(base.text, 1.0, base.source)
    slots = [_Slot() for _ in btoks]
    for i, w in enumerate(bwords):
        slots[i].add(w, bweights[i])
    # gap g sits before base word g; gap len(base) is after the last word
    gaps: list[dict[str, float]] = [{} for _ in range(len(btoks) + 1)]
    agreed = [True] * len(btoks)
    for other in readings:
        if other is base:
            continue
        owords = [w for w, _ in other.tokens()]
        oweights = other.weights(len(owords))
        sm = difflib.SequenceMatcher(None, bwords, owords, autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                for k in range(i2 - i1):
                    slots[i1 + k].add(bwords[i1 + k], oweights[j1 + k])
                continue
            for k in range(i1, i2):
                agreed[k] = False
            if tag == "insert":
                text = " ".join(owords[j1:j2])
                gaps[i1][text] = gaps[i1].get(text, 0.0) + _mean(oweights[j1:j2])
            elif tag == "delete":
                for k in range(i1, i2):
                    slots[k].add("", _mean(oweights) if oweights else DEFAULT_WEIGHT)
            elif i2 - i1 == j2 - j1:  # same number of words: a word-for-word misreading
                for k in range(i2 - i1):
                    slots[i1 + k].add(owords[j1 + k], oweights[j1 + k])
            else:  # split or merged words: the other's span competes with the base span as a whole
                text = " ".join(owords[j1:j2])
                slots[i1].add(text, _mean(oweights[j1:j2]), span=i2 - i1)
    return VoteResult(_assemble(btoks, bweights, slots, gaps), _agreement(agreed), base.source)


def _assemble(btoks: list[tuple[str, int]], bweights: list[float], slots: list[_Slot],
              gaps: list[dict[str, float]]) -> str:
    lines: dict[int, list[str]] = {}
    nlines = (btoks[-1][1] + 1) if btoks else 1
    i = 0
    while i <= len(btoks):
        line = btoks[i][1] if i < len(btoks) else (btoks[-1][1] if btoks else 0)
        gap = gaps[i]
        if gap:
            text, weight = max(gap.items(), key=lambda kv: kv[1])
            # "nothing here" is backed by the base word beside the gap
            near = bweights[i] if i < len(bweights) else (bweights[-1] if bweights else 0.0)
            if weight > near:
                lines.setdefault(line, []).append(text)
        if i == len(btoks):
            break
        slot = slots[i]
        text = max(slot.cands.items(), key=lambda kv: (kv[1], kv[0] == btoks[i][0]))[0]
        if text:
            lines.setdefault(line, []).append(text)
        i += slot.span.get(text, 1) if text != btoks[i][0] else 1
    return "\n".join(" ".join(lines.get(li, [])) for li in range(nlines)).strip("\n")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else DEFAULT_WEIGHT


def _mean_weight(r: Reading) -> float:
    n = len(r.tokens())
    return _mean(r.weights(n)) if n else 0.0


def _agreement(agreed: list[bool]) -> float:
    return round(sum(agreed) / len(agreed), 4) if agreed else 1.0
