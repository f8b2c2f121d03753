"""Image clean-up for the targeted OCR passes (folio strips, ToC pages); pure Pillow, no numpy.

The full-page OCR reads the page as it is (cheapest, and honest text). These helpers serve the few
places where precision matters more than time: a lone folio in a corner that tesseract's layout
analysis drops as noise, and the right-hand page-number column of a ToC.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageMath, ImageOps

__all__ = ["ink_mask", "ink_rows", "remove_leader_dots", "skew_angle"]

# Darker than the local background by this much (0..255) is ink. Print is 80+ below the paper on
# grey scans; noise, mottling and show-through stay well under it.
INK_DELTA = 40


def ink_mask(img: Image.Image, delta: int = INK_DELTA) -> Image.Image:
    """255 where a pixel is ink, 0 elsewhere, judged against the local paper tone.

    A global threshold (tesseract's Otsu) fails on a strip that is mostly paper with an illumination
    gradient: it turns the mottling into glyphs. The paper tone is estimated at 1/4 scale (the
    brightest pixel around, then smoothed), which removes gradients, binding shadows and mottling.
    """
    gray = img.convert("L")
    w, h = gray.size
    small = gray.resize((max(1, w // 4), max(1, h // 4)), Image.Resampling.BOX)
    paper = small.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.BoxBlur(4))
    paper = paper.resize((w, h), Image.Resampling.BILINEAR)
    # paper - gray in 8 bits (clipped at 0), then a lookup: half the time of the same sum in ImageMath
    return ImageChops.subtract(paper, gray).point([255 if v > delta else 0 for v in range(256)])


def ink_rows(mask: Image.Image, *, min_height: int = 4, rule_share: float = 0.3,
             join_gap: int = 2) -> list[tuple[int, int]]:
    """Bands of rows holding ink, top to bottom, as (top, bottom) with bottom exclusive.

    A row is ink when at least two pixels of it are (one is a speck); a row inked across more than
    ``rule_share`` of the width is a printed rule, which separates rather than belongs to a text line.
    Bands closer than ``join_gap`` rows are joined (the i-dot above its stem); bands thinner than
    ``min_height`` are specks.
    """
    w, h = mask.size
    counts = [v * w / 255 for v in mask.resize((1, h), Image.Resampling.BOX).tobytes()]
    bands: list[tuple[int, int]] = []
    start: int | None = None
    for y, c in enumerate([*counts, 0.0]):
        inked = 2 <= c <= rule_share * w
        if inked and start is None:
            start = y
        elif not inked and start is not None:
            if bands and start - bands[-1][1] <= join_gap:
                bands[-1] = (bands[-1][0], y)
            else:
                bands.append((start, y))
            start = None
    return [b for b in bands if b[1] - b[0] >= min_height]


def skew_angle(img: Image.Image, max_deg: float = 2.0, step: float = 0.1) -> float:
    """Rotation (degrees, PIL sense) that makes text rows horizontal: the sharpest row profile.

    Tesseract follows a skewed row, but on a 1 degree tilt a right-column page number drifts a line
    height away from its title and a lone digit is then read out of context ("5" -> "cr").
    """
    small = ImageOps.invert(img.convert("L"))
    scale = 600 / max(small.size)
    small = small.resize((max(1, round(small.width * scale)), max(1, round(small.height * scale))))

    def sharpness(k: int) -> float:
        rot = small.rotate(k * step, resample=Image.Resampling.BILINEAR)
        prof = list(rot.resize((1, rot.height), Image.Resampling.BOX).tobytes())
        return float(sum((b - a) ** 2 for a, b in zip(prof, prof[1:], strict=False)))

    # coarse steps first, then every step around the best: the row profile's sharpness rises
    # smoothly towards the true angle, and 17 rotations cost less than half of the 41 of a full scan
    limit, coarse = round(max_deg / step), 5
    steps = range(-limit, limit + 1)
    scores = {k: sharpness(k) for k in steps if k % coarse == 0}
    top = max(scores, key=lambda k: (scores[k], -k))
    for k in range(max(-limit, top - coarse + 1), min(limit, top + coarse - 1) + 1):
        if k not in scores:
            scores[k] = sharpness(k)
    best = max(scores, key=lambda k: (scores[k], -k))
    return best * step


_Blob = tuple[float, float, int, int, int, int]  # cx, cy, x0, y0, x1, y1


def _isolated_specks(img: Image.Image, unit: float) -> list[_Blob]:
    """Small ink blobs with no other ink around them."""
    small, ring = max(1, round(2 * unit)), max(2, round(4 * unit))
    ink = ink_mask(img)
    b_small, b_ring = ink.filter(ImageFilter.BoxBlur(small)), ink.filter(ImageFilter.BoxBlur(ring))
    n_small, n_ring = (2 * small + 1) ** 2, (2 * ring + 1) ** 2
    iso = ImageMath.lambda_eval(
        lambda a: ((a["r"] * n_ring - a["s"] * n_small) < 200) * (a["s"] > 0) * (a["ink"] > 0) * 255,
        r=b_ring, s=b_small, ink=ink,
    ).convert("L")
    w = iso.width
    cell = max(2, round(4 * unit))
    cells: dict[tuple[int, int], list[tuple[int, int]]] = {}
    data = iso.tobytes()
    i = data.find(b"\xff")
    while i >= 0:  # bytes.find skips the (vast) background in C
        x, y = i % w, i // w
        cells.setdefault((x // cell, y // cell), []).append((x, y))
        i = data.find(b"\xff", i + 1)
    seen: set[tuple[int, int]] = set()
    blobs: list[_Blob] = []
    for c in cells:
        if c in seen:
            continue
        stack, members = [c], []
        seen.add(c)
        while stack:
            cc = stack.pop()
            members.extend(cells[cc])
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    n = (cc[0] + dx, cc[1] + dy)
                    if n in cells and n not in seen:
                        seen.add(n)
                        stack.append(n)
        xs, ys = [m[0] for m in members], [m[1] for m in members]
        blobs.append(((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, min(xs), min(ys), max(xs), max(ys)))
    return blobs


def remove_leader_dots(img: Image.Image, dpi: float) -> Image.Image:
    """Paint out runs of four or more evenly spaced isolated dots (ToC leaders).

    On degraded scans tesseract's line recogniser turns a title followed by a long leader into
    garbage ("README.Debian ......" -> "Beh GREPND SLI"); without the dots it reads the title, and the
    page number stays a separate word on the same row. Single dots (decimal points, periods, i-dots)
    touch other ink or stand alone, and are kept.
    """
    gray = img.convert("L")
    unit = dpi / 150
    blobs = sorted(_isolated_specks(gray, unit), key=lambda b: (b[1], b[0]))
    rows: list[list[_Blob]] = []
    for b in blobs:
        for r in rows[-3:]:
            if abs(r[-1][1] - b[1]) <= 3 * unit:
                r.append(b)
                break
        else:
            rows.append([b])
    mask = Image.new("L", gray.size, 0)
    draw = ImageDraw.Draw(mask)
    pad = max(1, round(2 * unit))

    def flush(run: list[_Blob]) -> None:
        if len(run) >= 4:
            for b in run:
                draw.rectangle((b[2] - pad, b[3] - pad, b[4] + pad, b[5] + pad), fill=255)

    for r in rows:
        r.sort(key=lambda b: b[0])
        run = [r[0]]
        for b in r[1:]:
            gap = b[0] - run[-1][0]
            even = len(run) < 2 or abs(gap - (run[-1][0] - run[-2][0])) <= 4 * unit
            if 4 * unit <= gap <= 25 * unit and even:
                run.append(b)
            else:
                flush(run)
                run = [b]
        flush(run)
    return Image.composite(Image.new("L", gray.size, 255), gray, mask)
