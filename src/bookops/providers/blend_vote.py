"""Offline blending of several OCR readings of one page: outlier check and weighted word voting.

Every reading is aligned word by word against a base reading (the one with the most confidence
summed over its words) with difflib; at each base word, and in each gap between base words, the
candidates are voted on, weighted by word confidence, and a weakly backed candidate never
overrules the base. Words the readings put in different orders (two-column pages, captions) are
kept once, in the base's order; a longer passage read differently, or the same characters cut into
words at other places, is taken from one reading or the other as a whole. The base reading's line
breaks are kept.
"""

from __future__ import annotations

import difflib
import statistics
from collections import Counter
from collections.abc import Sequence
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
# A reading overrules the base reading's word (or adds words it lacks) only with at least this much
# weight behind it. Where both engines are unsure (leader dots, tables, specks) trading one
# low-confidence guess for another only adds edits: measured on two tesseract readings of the dev
# corpus (bench/blend_offline.py), 0 made the vote worse than the better reading, 0.5 better.
MIN_OVERRULE = 0.5
# A run of at least this many words that one reading has here and the other elsewhere, this
# similar (difflib ratio), is one block read in two orders, not a misreading.
MOVE_MIN_WORDS = 3
# An unequal replacement up to this many words a side is a split or merge ("can not" / "cannot");
# a longer one is text one reading has and the other lacks, voted on word by word.
SPLIT_MAX_WORDS = 3
MOVE_RATIO = 0.6
# Spans this similar once their spaces are gone are one text cut into words differently.
SPLIT_SAME = 0.8


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
    # the reading that confidently reads the most: a mean alone favours one that skipped the hard
    # part of the page (a ToC's leader lines), and its line structure is then all the vote keeps
    base = max(readings, key=_mass)
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
        ops = difflib.SequenceMatcher(None, bwords, owords, autojunk=False).get_opcodes()
        moved = _moved_blocks(ops, bwords, owords)
        # words left unmatched on each side, outside moved blocks: candidates for a reordering
        spare_base = Counter(bwords[k] for n, op in enumerate(ops) if op[0] != "equal" and n not in moved
                             for k in range(op[1], op[2]))
        spare_other = Counter(owords[k] for n, op in enumerate(ops) if op[0] != "equal" and n not in moved
                              for k in range(op[3], op[4]))
        for n, (tag, i1, i2, j1, j2) in enumerate(ops):
            if n in moved:  # the same words read in another order: keep the base's, once
                for k in range(i1, i2):
                    agreed[k] = False
                continue
            if tag == "equal":
                for k in range(i2 - i1):
                    slots[i1 + k].add(bwords[i1 + k], oweights[j1 + k])
                continue
            for k in range(i1, i2):
                agreed[k] = False
            if tag == "replace" and i2 - i1 == j2 - j1 and not _split_elsewhere(bwords[i1:i2], owords[j1:j2]):
                for k in range(i2 - i1):  # a word-for-word misreading
                    slots[i1 + k].add(owords[j1 + k], oweights[j1 + k])
            elif tag == "replace" and max(i2 - i1, j2 - j1) <= SPLIT_MAX_WORDS:
                # split or merged words: the other's span competes with the base span as a whole
                text = " ".join(owords[j1:j2])
                slots[i1].add(text, _mean(oweights[j1:j2]), span=i2 - i1)
            else:
                # a word one side has elsewhere, unmatched, was read in another order: it is
                # neither new here nor missing there
                keep = [k for k in range(j1, j2) if not _take(spare_base, owords[k])]
                gone = [k for k in range(i1, i2) if not _take(spare_other, bwords[k])]
                if tag == "replace":
                    # a longer passage read differently: one reading's version or the other's,
                    # as a whole (voting word by word would keep both, or half of each)
                    other_w = _mean([oweights[k] for k in keep]) if keep else 0.0
                    base_w = _mean([bweights[k] for k in gone]) if gone else 0.0
                    if other_w <= base_w or other_w < MIN_OVERRULE:
                        continue
                    near = bweights[i1] if i1 < len(bweights) else 0.0
                    if keep:
                        text = " ".join(owords[k] for k in keep)
                        gaps[i1][text] = gaps[i1].get(text, 0.0) + near + other_w
                    for k in gone:
                        slots[k].add("", bweights[k] + other_w)
                    continue
                if keep:  # words only the other reading has here
                    text = " ".join(owords[k] for k in keep)
                    gaps[i1][text] = gaps[i1].get(text, 0.0) + _mean([oweights[k] for k in keep])
                for k in gone:  # words only the base has
                    slots[k].add("", _mean(oweights) if oweights else DEFAULT_WEIGHT)
    return VoteResult(_assemble(btoks, bweights, slots, gaps), _agreement(agreed), base.source)


def _split_elsewhere(bspan: list[str], ospan: list[str]) -> bool:
    """The same characters cut into words at other places ("debian/patches/install. patch" against
    "debian/ patches/install.patch"): pairing word with word would keep half of each."""
    if len(bspan) < 2:
        return False
    joined = difflib.SequenceMatcher(None, "".join(bspan), "".join(ospan), autojunk=False).ratio()
    worst = min(difflib.SequenceMatcher(None, b, o, autojunk=False).ratio()
                for b, o in zip(bspan, ospan, strict=True))
    return joined >= SPLIT_SAME and worst < SPLIT_SAME / 2


def _take(spare: Counter[str], word: str) -> bool:
    """Use up one unmatched occurrence of ``word``; False when there is none left."""
    if spare[word] > 0:
        spare[word] -= 1
        return True
    return False


def _moved_blocks(ops: Sequence[tuple[str, int, int, int, int]], bwords: list[str],
                  owords: list[str]) -> set[int]:
    """Opcodes that are one side of a block the two readings put in different places.

    Tesseract's page segmentation (and a vision model) may read side-by-side blocks, captions or
    marginal notes in another order. The alignment then sees the block deleted in one place and
    inserted in another, and voting on each half on its own drops it, doubles it or moves it
    word by word. Such a pair is left out of the vote: the base reading's order stands.
    """
    def words(n: int, side: str) -> list[str]:
        _tag, i1, i2, j1, j2 = ops[n]
        return owords[j1:j2] if side == "o" else bwords[i1:i2]

    gained = [n for n, op in enumerate(ops) if op[0] != "equal" and op[4] - op[3] >= MOVE_MIN_WORDS]
    lost = [n for n, op in enumerate(ops) if op[0] != "equal" and op[2] - op[1] >= MOVE_MIN_WORDS]
    moved: set[int] = set()
    for g in gained:
        for lo in lost:
            if g == lo:
                continue
            sm = difflib.SequenceMatcher(None, words(g, "o"), words(lo, "b"), autojunk=False)
            if sm.quick_ratio() >= MOVE_RATIO and sm.ratio() >= MOVE_RATIO:
                moved.update((g, lo))
    return moved


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
            if weight > near and weight >= MIN_OVERRULE:
                lines.setdefault(line, []).append(text)
        if i == len(btoks):
            break
        slot = slots[i]
        text, weight = max(slot.cands.items(), key=lambda kv: (kv[1], kv[0] == btoks[i][0]))
        if weight < MIN_OVERRULE:  # no candidate is backed well enough to replace the base word
            text = btoks[i][0]
        if text:
            lines.setdefault(line, []).append(text)
        i += slot.span.get(text, 1) if text != btoks[i][0] else 1
    return "\n".join(" ".join(lines.get(li, [])) for li in range(nlines)).strip("\n")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else DEFAULT_WEIGHT


def _mass(r: Reading) -> float:
    """Summed word weights: about how many words the reading expects to have right."""
    n = len(r.tokens())
    return sum(r.weights(n))


def _agreement(agreed: list[bool]) -> float:
    return round(sum(agreed) / len(agreed), 4) if agreed else 1.0
