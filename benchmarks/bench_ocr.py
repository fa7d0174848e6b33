"""OCR on generated covers with known text: how often the phrase is read back, and how fast.

Covers vary font, font size, background (solid, gradient, noisy, blocky), rotation and
image size (640x360 up to 1920x1080, which the detector downscales). A phrase counts as
read when its letters and digits appear, in order and without spaces, in the OCR text
(normalised: lower case, alphanumerics only), which is how the lexicon matches it.
Prints ``ocr_phrase_recall=`` and ``ocr_ms_per_image=`` (median), plus recall by condition.

    .venv/bin/python benchmarks/bench_ocr.py [--n 48] [--max-side 1280] [--threads 2]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from referee.model import ContentItem  # noqa: E402
from referee.plugins.ocr import OcrDetector  # noqa: E402
from tests.plugins.test_ocr import make_cover  # noqa: E402

PHRASES = ["FREE FOLLOWERS click here", "buy cheap pills now", "DM me for promo", "late night drives",
           "Summer Hits 2026", "win a free iphone", "telegram crypto signals", "chill beats to study"]
BACKGROUNDS = ["solid", "gradient", "noisy", "blocky"]
ANGLES = [0.0, 0.0, 5.0, -10.0, 15.0]
SIZES = [(640, 360), (640, 640), (1280, 720), (1920, 1080)]
FONT_SIZES = [28, 40, 56, 72]


def norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--max-side", type=int, default=1280)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    ocr = OcrDetector(max_side=args.max_side, threads=args.threads)
    hits: dict[str, list[bool]] = defaultdict(list)
    times: list[float] = []
    ocr.derive_many([ContentItem(id="warm", parts=[{"kind": "image", "id": "c", "data": base64.b64encode(
        make_cover("warm up")).decode()}])])
    for i in range(args.n):
        # Co-prime strides, so every background meets every angle, font and size.
        background, angle, font_index = BACKGROUNDS[i % 4], ANGLES[(i * 3) % 5], (i * 5) % 6
        phrase = PHRASES[i % len(PHRASES)]
        size = SIZES[(i * 7 // 3) % len(SIZES)]
        font_size = int(FONT_SIZES[(i // 3) % len(FONT_SIZES)] * size[1] / 360)
        data = make_cover(phrase, background=background, size=size, font_index=font_index,
                          font_size=font_size, angle=angle, seed=i)
        item = ContentItem(id=f"c{i}", parts=[{"kind": "image", "id": "cover", "data": base64.b64encode(data).decode()}])
        began = time.perf_counter()
        (parts,) = ocr.derive_many([item])
        times.append(time.perf_counter() - began)
        text = parts[0].text if parts else ""
        ok = norm(phrase) in norm(text)
        for key in ("all", f"bg={background}", f"angle={angle:g}", f"size={size[0]}x{size[1]}", f"font={font_index}"):
            hits[key].append(ok)
        if not ok:
            print(f"# miss c{i} {background} angle={angle:g} {size} font={font_index}: {phrase!r} -> {text!r}")
    for key in sorted(hits):
        if key != "all":
            print(f"# recall {key}: {sum(hits[key])}/{len(hits[key])}")
    print(f"images={args.n}")
    print(f"ocr_phrase_recall={sum(hits['all']) / len(hits['all']):.3f}")
    print(f"ocr_ms_per_image={statistics.median(times) * 1000:.0f}")
    print(f"ocr_ms_per_image_p90={sorted(times)[int(0.9 * (len(times) - 1))] * 1000:.0f}")


if __name__ == "__main__":
    main()
