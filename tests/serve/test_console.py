"""The reviewer console over HTTP (TestClient): login, CSRF, granted queues, the item view
(evidence highlighted, images blurred, policy text, history), verdicts, metrics; POST /v1/appeals."""

from __future__ import annotations

import base64
import re
import struct
import zlib

from fastapi.testclient import TestClient

from referee import ids
from referee.model import (
    Action,
    ContentItem,
    Decision,
    Evidence,
    ImagePart,
    Reason,
    Signal,
    TextPart,
)
from referee.policy import Policy
from referee.records.review import ReviewDesk
from referee.records.reviewers import add_reviewer
from referee.store import DecisionStore
from tests.serve.conftest import DEFAULT_POLICY, bearer


def png(width: int = 240, height: int = 160) -> bytes:
    """A small red/blue PNG, written by hand (no imaging library needed)."""
    rows = b"".join(b"\x00" + b"".join(bytes((200, 30, 30) if (x // 20 + y // 20) % 2 else (30, 30, 200))
                                         for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


TEXT = "these vermin should leave"


def held_item(store: DecisionStore, n: int = 1, author: str = "author-7") -> tuple[ContentItem, Decision]:
    """A held comment with a cover image; the hate evidence points at 'vermin' (6..12) in the body."""
    it = ContentItem(id=f"post-{n}", surface="comment", author_id=author, context={"followers": 12_000},
                     parts=(TextPart(id="body", text=f"{TEXT} {n}"),
                            ImagePart(id="cover", data=base64.b64encode(png()), mime="image/png")))
    key = ids.input_key(it.id, it.content_hash, None, "default", "1", "p" * 64, {"hashtag": "h1"}, "")
    d = Decision(
        decision_id=ids.decision_id(key, None), input_key=key, item_id=it.id, content_hash=it.content_hash,
        surface=it.surface, action=Action.hold_for_review, categories=("hate",), review_required=True,
        reasons=(Reason(rule_id="comment.hate.review", kind="threshold", category="hate",
                        action=Action.hold_for_review, threshold=0.5, message="hate above 0.5"),),
        signals=(Signal(detector="hashtag", detector_version="h1", category="hate", score=0.62,
                        evidence=(Evidence(part_id="body", start=6, end=12, entry="vermin"),)),),
        policy_id="default", policy_version="1", policy_sha256="p" * 64)
    return it, store.log.append([(it, d)])[0]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def sign_in(client: TestClient, reviewer: str, password: str) -> str:
    page = client.get("/console/login")
    r = client.post("/console/login", data={"csrf": csrf_of(page.text), "reviewer": reviewer, "password": password},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/console/").text)


def test_console_login_queues_item_view_and_verdict(client: TestClient, store: DecisionStore) -> None:
    add_reviewer(store, "alice", "correct horse", ["general"])
    it, held = held_item(store)
    assert client.get("/console/", follow_redirects=False).headers["location"] == "/console/login"
    page = client.get("/console/login")
    wrong = client.post("/console/login", data={"csrf": csrf_of(page.text), "reviewer": "alice", "password": "nope"})
    assert wrong.status_code == 401 and "wrong password" in wrong.text
    no_csrf = client.post("/console/login", data={"reviewer": "alice", "password": "correct horse"})
    assert no_csrf.status_code == 403
    csrf = sign_in(client, "alice", "correct horse")
    queues = client.get("/console/")
    assert 'data-queue="general"' in queues.text and 'data-queue="appeals"' not in queues.text  # granted only
    assert re.search(r'data-queue="general">.*?<td class="open">1</td>', queues.text, re.S)
    assert client.post("/console/queues/appeals/next", data={"csrf": csrf}).status_code == 403
    assert client.post("/console/queues/general/next", data={"csrf": "forged"}).status_code == 403
    r = client.post("/console/queues/general/next", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/tasks/tsk_")
    task_url = r.headers["location"]
    view = client.get(task_url)
    assert view.status_code == 200
    assert '<mark class="evidence" title="hate 0.62 (hashtag)">vermin</mark>' in view.text
    assert 'class="media blurred"' in view.text  # wellness: blurred and grey by default
    assert "Attacks, dehumanisation" in view.text  # the policy text of the flagged category
    assert "comment.hate.review" in view.text and "hold_for_review" in view.text
    media = client.get(task_url + "/media/cover")
    assert media.status_code == 200 and media.content.startswith(b"\x89PNG") and media.headers["cache-control"] == "no-store"
    done = client.post(task_url + "/verdict", data={"csrf": csrf, "verdict": "uphold", "notes": "clear slur"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/?empty=general"
    head = store.log.head(it.id)
    assert head is not None and head.source == "review" and head.supersedes == held.decision_id
    assert head.action is Action.remove
    desk = ReviewDesk(store, Policy.from_file(DEFAULT_POLICY))
    (v,) = desk.verdicts()
    assert (v.reviewer_id, v.notes, v.verdict) == ("alice", "clear slur", "uphold")
    metrics = client.get("/console/metrics")
    assert metrics.status_code == 200 and "Agreement" in metrics.text and "1 verdicts in the last 24 h" in metrics.text


def test_a_task_is_only_visible_to_its_reviewer_and_blur_is_a_setting(client: TestClient, store: DecisionStore) -> None:
    add_reviewer(store, "alice", "correct horse", ["general"])
    add_reviewer(store, "bob", "battery staple", ["*"])
    held_item(store)
    csrf = sign_in(client, "alice", "correct horse")
    task_url = client.post("/console/queues/general/next", data={"csrf": csrf}, follow_redirects=False).headers["location"]
    client.post("/console/settings/blur", data={"csrf": csrf, "back": task_url})
    assert 'class="media "' in client.get(task_url).text  # alice turned blurring off for herself
    client.post("/console/logout", data={"csrf": csrf})
    assert client.get(task_url, follow_redirects=False).status_code == 303  # signed out
    sign_in(client, "bob", "battery staple")
    assert client.get(task_url).status_code == 403  # alice holds it
    assert client.get(task_url + "/media/cover").status_code == 403


def test_post_appeal(client: TestClient, store: DecisionStore, keys: dict[str, str]) -> None:
    it, held = held_item(store)
    body = {"decision_id": held.decision_id, "reason": "It quotes the attacker to condemn him."}
    assert client.post("/v1/appeals", json=body).status_code == 401
    r = client.post("/v1/appeals", json=body, headers=bearer(keys["moderate"]))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open" and r.json()["item_id"] == it.id and r.json()["appeal_id"].startswith("apl_")
    missing = client.post("/v1/appeals", json={"decision_id": "dec_nope", "reason": "x"}, headers=bearer(keys["moderate"]))
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "decision_id"
    assert client.post("/v1/appeals", json={"decision_id": "x"}, headers=bearer(keys["moderate"])).status_code == 422
    desk = ReviewDesk(store, Policy.from_file(DEFAULT_POLICY))
    assert [t.kind for t in desk.tasks("appeals")] == ["appeal"]


def test_change_and_escalate_from_the_console(client: TestClient, store: DecisionStore) -> None:
    add_reviewer(store, "alice", "correct horse", ["general"])
    add_reviewer(store, "sam", "senior staff", ["general"], senior=True)
    a, _ = held_item(store, n=1)
    b, _ = held_item(store, n=2)
    csrf = sign_in(client, "alice", "correct horse")
    first = client.post("/console/queues/general/next", data={"csrf": csrf}, follow_redirects=False).headers["location"]
    second = client.post(first + "/verdict", data={"csrf": csrf, "verdict": "change", "action": "limit_reach",
                                                   "categories": "harassment"}, follow_redirects=False)
    assert second.status_code == 303 and second.headers["location"].startswith("/console/tasks/")
    bad = client.post(second.headers["location"] + "/verdict", data={"csrf": csrf, "verdict": "change",
                                                                     "categories": "nonsense"})
    assert bad.status_code == 422 and "not in the policy" in bad.text
    client.post(second.headers["location"] + "/verdict", data={"csrf": csrf, "verdict": "escalate"})
    heads = store.log.heads([a.id, b.id])
    changed = [h for h in heads.values() if h.source == "review"]
    assert len(changed) == 1 and changed[0].action is Action.limit_reach and changed[0].categories == ("harassment",)
    client.post("/console/logout", data={"csrf": csrf})
    csrf = sign_in(client, "sam", "senior staff")
    assert 'data-queue="senior"' in client.get("/console/").text  # senior reviewers see the senior queue
    r = client.post("/console/queues/senior/next", data={"csrf": csrf}, follow_redirects=False)
    assert r.headers["location"].startswith("/console/tasks/")


def test_every_page_behind_the_login_asks_for_a_session_and_every_form_for_its_csrf_token(
        client: TestClient, store: DecisionStore) -> None:
    add_reviewer(store, "alice", "correct horse", ["general"])
    held_item(store)
    for path in ("/console/", "/console/metrics", "/console/tasks/tsk_x", "/console/tasks/tsk_x/media/cover"):
        r = client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/console/login"), path
    for path in ("/console/queues/general/next", "/console/settings/blur", "/console/tasks/tsk_x/verdict",
                 "/console/tasks/tsk_x/release"):
        r = client.post(path, data={"csrf": "forged"}, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/console/login"), path
    csrf = sign_in(client, "alice", "correct horse")
    for path in ("/console/queues/general/next", "/console/settings/blur"):
        refused = client.post(path, data={"csrf": "forged"}, follow_redirects=False)
        assert refused.status_code == 403 and "CSRF token is missing or wrong" in refused.text, path
    assert client.post("/console/settings/blur", data={}).status_code == 403
    task_url = client.post("/console/queues/general/next", data={"csrf": csrf}, follow_redirects=False).headers["location"]
    assert 'class="media blurred"' in client.get(task_url).text  # the refused blur toggles changed nothing
    for action in ("/verdict", "/release"):
        refused = client.post(task_url + action, data={"csrf": "forged", "verdict": "uphold"}, follow_redirects=False)
        assert refused.status_code == 403 and "CSRF token is missing or wrong" in refused.text, action
    unknown = client.post("/console/tasks/tsk_none/verdict", data={"csrf": "forged"}, follow_redirects=False)
    assert unknown.status_code == 404  # the task is looked up before the form's token is checked
    assert client.get(task_url).status_code == 200  # still held by alice: the refused posts did nothing
