"""OCR: text drawn on generated covers is read back, scored by a later stage's text
detector, and the evidence names the image it came from."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

import pytest

pytest.importorskip("rapidocr_onnxruntime", reason="needs the 'media' extra (rapidocr-onnxruntime)")

from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

from referee.engine import Engine  # noqa: E402
from referee.errors import InputError  # noqa: E402
from referee.model import Action, ContentItem  # noqa: E402
from referee.plugins.lexicon import LexiconDetector  # noqa: E402
from referee.plugins.ocr import OcrDetector  # noqa: E402
from referee.policy import Policy  # noqa: E402

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")]
FONT_FILES = ["DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "LiberationSans-Bold.ttf",
              "DejaVuSans.ttf", "LiberationSerif-Regular.ttf"]


def font(index: int, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font from the system when present, else Pillow's bundled one."""
    name = FONT_FILES[index % len(FONT_FILES)]
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)


def make_cover(text: str, *, background: str = "solid", size: tuple[int, int] = (640, 360), font_index: int = 0,
               font_size: int = 48, angle: float = 0.0, seed: int = 0) -> bytes:
    """A PNG cover with ``text`` on a solid, gradient, noisy or blocky background."""
    rng = random.Random(seed)
    w, h = size
    base = tuple(rng.randrange(40, 200) for _ in range(3))
    img = Image.new("RGB", size, base)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    if background == "gradient":
        for x in range(w):
            draw.line([(x, 0), (x, h)], fill=(int(255 * x / w), 80, 255 - int(255 * x / w)))
    elif background == "noisy":
        noise = Image.effect_noise(size, 60).convert("RGB")
        img = Image.blend(img, noise, 0.45)
    elif background == "blocky":
        for _ in range(40):
            x, y = rng.randrange(w), rng.randrange(h)
            draw.rectangle([x, y, x + rng.randrange(20, 160), y + rng.randrange(20, 120)],
                           fill=tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]
    # The text on its own layer (so it can be rotated), light on a dark band or dark on light.
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ld = ImageDraw.Draw(layer)
    f = font(font_index, font_size)
    box = ld.multiline_textbbox((0, 0), text, font=f)
    while (box[2] - box[0] > 0.9 * w or box[3] - box[1] > 0.9 * h) and font_size > 8:  # fit the cover
        font_size = int(font_size * 0.9)
        f = font(font_index, font_size)
        box = ld.multiline_textbbox((0, 0), text, font=f)
    tw, th = box[2] - box[0], box[3] - box[1]
    x, y = (w - tw) // 2 - box[0], (h - th) // 2 - box[1]
    light = sum(base) / 3 < 128
    ink = (255, 255, 255, 255) if light else (10, 10, 10, 255)
    ld.multiline_text((x, y), text, font=f, fill=ink, stroke_width=2,
                      stroke_fill=(0, 0, 0, 255) if light else (255, 255, 255, 255))
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC)
    img = img.convert("RGBA")
    img.alpha_composite(layer)
    out = img.convert("RGB")
    if background == "noisy":
        out = out.filter(ImageFilter.SMOOTH)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def cover_item(data: bytes, id: str = "pl-1") -> ContentItem:
    return ContentItem(id=id, surface="playlist_description", parts=[
        {"kind": "text", "id": "title", "role": "title", "text": "late night drives"},
        {"kind": "image", "id": "cover", "data": base64.b64encode(data).decode()},
    ])


POLICY = """
id: covers
version: "1"
categories:
  spam: {description: Unsolicited commercial messages., severity: low}
detectors:
  ocr: {max_side: 1024}
  lexicon:
    lists:
      spam: ["free followers"]
plan:
  - {id: media, detectors: [ocr]}
  - {id: text, detectors: [lexicon]}
surfaces:
  default:
    rules:
      - {id: spam.limit, categories: spam, threshold: 0.5, action: limit_reach}
"""


@pytest.fixture(scope="module")
def ocr() -> OcrDetector:
    return OcrDetector(max_side=1024)


@pytest.fixture(scope="module")
def engine(ocr: OcrDetector):  # type: ignore[no-untyped-def]
    policy = Policy.from_yaml(POLICY)
    # OCR sometimes runs words together ("FREEFOLLOWERS", depending on the onnxruntime
    # session's warm-up and threads): lists for OCR'd text carry the glued spelling too.
    lexicon = LexiconDetector({"spam": ["free followers", "freefollowers*"]})
    with Engine(policy, [ocr, lexicon]) as e:
        yield e


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


@pytest.mark.parametrize("background", ["solid", "gradient", "noisy", "blocky"])
def test_text_on_a_cover_is_read_back(ocr: OcrDetector, background: str) -> None:
    data = make_cover("FREE FOLLOWERS\nclick here", background=background, seed=3)
    (parts,) = ocr.derive_many([cover_item(data).only(frozenset({"image"}))])
    (part,) = parts
    assert part.role == "ocr" and part.id == "cover.ocr"
    assert part.derived is not None and part.derived.source_part == "cover" and part.derived.detector == "ocr"
    assert "freefollowers" in _norm(part.text) and "clickhere" in _norm(part.text), part.text


def test_an_image_without_text_derives_nothing(ocr: OcrDetector) -> None:
    img = Image.new("RGB", (320, 200), (30, 90, 160))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert ocr.derive_many([cover_item(buf.getvalue()).only(frozenset({"image"}))]) == [[]]


def test_an_engine_flags_a_cover_by_its_text_with_evidence_on_the_image(engine: Engine) -> None:
    flagged = engine.moderate(cover_item(make_cover("FREE FOLLOWERS click here", background="noisy", seed=5)))
    assert flagged.action is Action.limit_reach
    (signal,) = [s for s in flagged.signals if s.detector == "lexicon"]
    assert signal.category == "spam" and signal.stage == "text"
    (ev,) = signal.evidence
    assert ev.part_id == "cover.ocr" and ev.source_part == "cover"
    assert not any(r.kind == "uninspected" for r in flagged.reasons)
    clean = engine.moderate(cover_item(make_cover("late night drives", background="gradient"), id="pl-2"))
    assert clean.action is Action.allow and not clean.signals


def test_a_large_cover_is_downscaled_and_still_read(ocr: OcrDetector) -> None:
    data = make_cover("FREE FOLLOWERS", size=(3000, 1800), font_size=220, background="blocky", seed=9)
    (parts,) = ocr.derive_many([cover_item(data).only(frozenset({"image"}))])
    assert "freefollowers" in _norm(parts[0].text)


def test_a_corrupt_image_is_a_clear_error_and_other_parts_are_still_moderated(engine: Engine, ocr: OcrDetector) -> None:
    bad = cover_item(b"\x89PNG not really an image")
    with pytest.raises(InputError, match="part cover: not a readable image"):
        ocr.derive_many([bad.only(frozenset({"image"}))])
    item = bad.model_copy(update={"parts": (
        bad.parts[0].model_copy(update={"text": "FREE FOLLOWERS in the title"}), bad.parts[1])})
    d = engine.moderate(item)
    assert any(f.detector == "ocr" and "not a readable image" in f.message for f in d.failures)
    assert any(s.detector == "lexicon" and s.evidence[0].part_id == "title" for s in d.signals)


def test_a_corrupt_image_in_a_batch_fails_only_its_own_item(engine: Engine) -> None:
    good = cover_item(make_cover("FREE FOLLOWERS", background="blocky", seed=4), id="good")
    bad = cover_item(b"not an image", id="bad")
    d_good, d_bad = engine.moderate_many([good, bad])
    assert d_good.action is Action.limit_reach and not d_good.failures
    assert d_good.signals[0].evidence[0].source_part == "cover"
    assert [f.detector for f in d_bad.failures] == ["ocr"]
