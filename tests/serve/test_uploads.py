"""``POST /v1/moderate/upload``: multipart items with image and audio files.

The engine here has the hashtag detector (text) and two small media detectors that
really decode what they read (Pillow for images, the ``wave`` module for audio), so a
corrupt file fails the way a real detector fails on it.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image
from schemathesis import GenerationMode

from referee.detectors.base import Detector
from referee.detectors.media import decode_rgb, part_bytes
from referee.engine import Engine
from referee.errors import InputError
from referee.model import AudioPart, ContentItem, Evidence, ImagePart, Signal
from referee.policy import Policy
from referee.serve import create_app
from referee.serve.uploads import sniff
from referee.settings import Settings
from referee.store import DecisionStore
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector, bearer
from tests.serve.test_openapi_conformance import CHECKS


class ImageSize(Detector):
    """Decodes each image and says how big it is (spam 0.01, region = the whole image)."""

    name = "image_size"
    version = "1"
    reads = frozenset({"image"})

    @property
    def categories(self) -> tuple[str, ...]:
        return ("spam",)

    def detect(self, item: ContentItem) -> list[Signal]:
        (part,) = item.parts
        assert isinstance(part, ImagePart)
        _, (w, h) = decode_rgb(part_bytes(part), f"part {part.id}")
        return [Signal(detector=self.name, detector_version=self.version, category="spam", score=0.01,
                       evidence=(Evidence(part_id=part.id, region=(0, 0, w, h)),))]


class WavLength(Detector):
    """Reads each audio part as WAV and says how long it is (spam 0.01, the whole time range)."""

    name = "wav_length"
    version = "1"
    reads = frozenset({"audio"})

    @property
    def categories(self) -> tuple[str, ...]:
        return ("spam",)

    def detect(self, item: ContentItem) -> list[Signal]:
        (part,) = item.parts
        assert isinstance(part, AudioPart)
        try:
            with wave.open(io.BytesIO(part_bytes(part))) as w:
                seconds = w.getnframes() / w.getframerate()
        except (wave.Error, EOFError) as exc:
            raise InputError(f"not a readable WAV file ({exc})", f"part {part.id}") from exc
        return [Signal(detector=self.name, detector_version=self.version, category="spam", score=0.01,
                       evidence=(Evidence(part_id=part.id, start_s=0.0, end_s=seconds),))]


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x01" * int(seconds * rate))
    return out.getvalue()


@pytest.fixture
def media_app(settings: Settings, store: DecisionStore) -> Iterator[FastAPI]:
    with Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector(), ImageSize(), WavLength()], sink=store) as e:
        yield create_app(settings, engine=e, store=store)


@pytest.fixture
def client(media_app: FastAPI, keys: dict[str, str]) -> TestClient:
    c = TestClient(media_app)
    c.headers.update(bearer(keys["moderate"]))
    return c


def item(*media: tuple[str, str], text: str = "late night drives") -> str:
    parts: list[dict[str, Any]] = [{"kind": "text", "id": "title", "role": "title", "text": text}]
    parts += [{"kind": kind, "id": name, "file": name} for kind, name in media]
    return json.dumps({"id": "pl-1", "surface": "playlist_description", "parts": parts})


def post(client: TestClient, fields: dict[str, str], files: dict[str, Any]) -> Any:
    """Always multipart: text fields go as parts without a file name."""
    return client.post("/v1/moderate/upload", files={**{k: (None, v) for k, v in fields.items()}, **files})


def test_an_item_with_an_image_and_audio_is_moderated_as_one_decision(client: TestClient) -> None:
    r = post(client, {"item": item(("image", "cover"), ("audio", "ep"))},
             {"cover": ("cover.png", png((64, 48)), "image/png"), "ep": ("ep.wav", wav(0.5), "audio/wav")})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["item_id"] == "pl-1" and d["failures"] == [] and d["action"] == "allow"
    evidence = {s["detector"]: s["evidence"][0] for s in d["signals"] if s["detector"] != "hashtag"}
    assert evidence["image_size"]["region"] == [0, 0, 64, 48]
    assert evidence["wav_length"]["end_s"] == pytest.approx(0.5)
    # The same bytes sent inline give the same content: the upload is identified by its bytes.
    again = post(client, {"item": item(("image", "cover"), ("audio", "ep"))},
                 {"cover": ("x.bin", png((64, 48)), "application/octet-stream"), "ep": ("y", wav(0.5), None)})
    assert again.json()["content_hash"] == d["content_hash"]


def test_a_corrupt_image_is_that_detectors_failure_and_the_other_parts_are_still_moderated(
        client: TestClient) -> None:
    broken = png()[:40]  # a PNG's signature and header, then nothing
    r = post(client, {"item": item(("image", "cover"), ("audio", "ep"), text="#hate")},
             {"cover": ("cover.png", broken, "image/png"), "ep": ("ep.wav", wav(), "audio/wav")})
    assert r.status_code == 200, r.text
    d = r.json()
    (failure,) = d["failures"]
    assert failure["detector"] == "image_size" and "cover" in failure["message"]
    assert "hate" in d["categories"] and d["action"] == "remove"  # the title was still read
    assert any(s["detector"] == "wav_length" for s in d["signals"])  # and the audio
    # A corrupt file on a harmless item is never a silent allow: the rule's on_error holds it.
    calm = post(client, {"item": item(("image", "cover"))}, {"cover": ("c.png", broken, "image/png")}).json()
    assert calm["action"] == "hold_for_review" and calm["provisional"] is True
    assert any(r["kind"] == "on_error" for r in calm["reasons"])


def test_corrupt_audio_is_reported_the_same_way(client: TestClient) -> None:
    r = post(client, {"item": item(("audio", "ep"))}, {"ep": ("ep.wav", b"RIFF\x10\x00\x00\x00WAVEjunk", "audio/wav")})
    d = r.json()
    assert r.status_code == 200 and d["failures"][0]["detector"] == "wav_length" and "ep" in d["failures"][0]["message"]
    assert d["action"] != "allow"


@pytest.mark.parametrize(("files", "field", "says"), [
    ({"cover": ("c.png", b"hello, I am text", "image/png")}, "cover", "not a PNG, JPEG, WebP or GIF image"),
    ({"cover": ("c.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg")}, "cover", "holds MP3 audio"),
    ({"cover": ("c.png", png(), "audio/mpeg")}, "cover", "declared as 'audio/mpeg' but holds PNG image"),
])
def test_a_file_that_is_not_what_its_part_reads_is_415_naming_the_field(
        client: TestClient, files: dict[str, Any], field: str, says: str) -> None:
    r = post(client, {"item": item(("image", "cover"))}, files)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["field"] == field and says in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "unsupported_media_type"


def test_a_body_that_is_not_multipart_is_415(client: TestClient) -> None:
    r = client.post("/v1/moderate/upload", json={"id": "x", "text": "hi"})
    assert r.status_code == 415 and r.json()["error"]["field"] == "Content-Type"


def test_size_limits_per_file_and_in_all_are_413_naming_the_file(
        client: TestClient, media_app: FastAPI) -> None:
    state = media_app.state.referee
    state.settings = state.settings.model_copy(update={"max_upload_bytes": 2_000, "max_upload_total_bytes": 12_000})
    big = png((400, 400)) + b"\x00" * 3_000
    r = post(client, {"item": item(("image", "cover"))}, {"cover": ("c.png", big, "image/png")})
    assert r.status_code == 413 and r.json()["error"]["field"] == "cover", r.text
    assert "over 2000 bytes" in r.json()["error"]["message"]
    small = {f"f{k}": (f"{k}.wav", wav(0.1), "audio/wav") for k in range(10)}  # each 1.6 KB, 16 KB in all
    r = post(client, {"item": item(*[("audio", name) for name in small])}, small)
    assert r.status_code == 413 and "in all" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(("fields", "files", "status", "field"), [
    ({}, {"cover": ("c.png", png(), "image/png")}, 422, "item"),
    ({"item": "{not json"}, {}, 400, "item"),
    ({"item": item(("image", "cover"))}, {}, 422, "item.parts[1].file"),
    ({"item": item(("image", "cover"))}, {"cover": ("c.png", png(), None), "extra": ("e.png", png(), None)},
     422, "extra"),
    ({"item": json.dumps({"id": "a", "parts": [{"kind": "image", "id": "c", "file": "c", "path": "/etc/x"}]})},
     {"c": ("c.png", png(), None)}, 422, "item.parts[0].file"),
    ({"item": json.dumps({"id": "a", "parts": [{"kind": "text", "id": "t", "file": "c"}]})},
     {"c": ("c.png", png(), None)}, 422, "item.parts[0].file"),
    ({"item": json.dumps({"id": "", "text": "hi"})}, {}, 422, "item.id"),
    ({"item": json.dumps({"id": "a", "parts": [{"kind": "image", "id": "c", "path": "/etc/hostname"}]})},
     {}, 422, "item.parts[0].path"),
])
def test_a_malformed_form_is_refused_naming_the_field(
        client: TestClient, fields: dict[str, str], files: dict[str, Any], status: int, field: str) -> None:
    r = post(client, fields, files)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field, r.json()


def test_an_item_with_only_text_works_and_the_key_needs_the_moderate_scope(
        media_app: FastAPI, keys: dict[str, str]) -> None:
    c = TestClient(media_app)
    form = {"item": json.dumps({"id": "t1", "text": "#spam"})}
    assert c.post("/v1/moderate/upload", files={"item": (None, form["item"])}).status_code == 401
    assert c.post("/v1/moderate/upload", files={"item": (None, form["item"])},
                  headers=bearer(keys["read"])).status_code == 403
    r = c.post("/v1/moderate/upload", files={"item": (None, form["item"])}, headers=bearer(keys["moderate"]))
    assert r.status_code == 200 and r.json()["categories"] == ["spam"]


@pytest.mark.parametrize(("head", "fmt"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"), (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"), (b"GIF89a\x01\x00", "GIF"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "WAV"), (b"ID3\x04\x00", "MP3"),
    (b"\xff\xfb\x90\x64\x00", "MP3"), (b"OggS\x00\x02", "OGG"), (b"fLaC\x00\x00\x00\x22", "FLAC"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00", "M4A"), (b"\x00\x00\x00\x20ftypqt  \x00\x00", None),
    (b"RIFF\x00\x00\x00\x00AVI LIST", None), (b"%PDF-1.7", None), (b"", None),
])
def test_formats_are_sniffed_from_their_first_bytes(head: bytes, fmt: str | None) -> None:
    assert sniff(head) == fmt


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_the_upload_answers_match_the_document(media_app: FastAPI, keys: dict[str, str],
                                               mode: GenerationMode) -> None:
    """The conformance suite's checks (tests/serve/test_openapi_conformance.py) on this operation."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", media_app)
    (operation,) = [r.ok() for r in schema.get_all_operations() if r.ok().label == "POST /v1/moderate/upload"]
    statuses: set[int] = set()

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=bearer(keys["admin"]), checks=CHECKS)
        statuses.add(response.status_code)

    check()
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses, sorted(statuses)
