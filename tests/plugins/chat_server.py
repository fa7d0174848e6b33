"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

A real ``http.server`` speaking ``POST /v1/chat/completions`` (JSON in, JSON out,
``response_format``, ``logprobs``/``top_logprobs``, ``usage``). What it answers
is a script: a function of the request body returning a ``Reply`` (content,
status, delay, logprobs, headers). ``judge`` is a toy "model" that reads the
data block of the policy adapter's prompt and scores it by keywords, so tests
can check what the detector sent and how it read the answer.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEGIN, END = "BEGIN_CONTENT", "END_CONTENT"


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    #: First tokens with their top alternatives: [(token, logprob, {alt: logprob})].
    logprobs: list[tuple[str, float, dict[str, float]]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None  # a body sent as is (non-JSON answers)


Script = Callable[[dict[str, Any]], Reply]


class ChatServer:
    """``with ChatServer(script) as server: server.url`` (the base URL, ending in /v1)."""

    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                with outer._lock:
                    outer.requests.append(body)
                reply = outer.script(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw is not None or reply.status != 200:
                    text = reply.raw if reply.raw is not None else json.dumps({"error": {"message": "scripted"}})
                    return self._send(reply.status, text, reply.headers)
                self._send(200, json.dumps(completion(body, reply)), reply.headers)

            def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt_chars = sum(len(json.dumps(m.get("content"))) for m in body.get("messages", []))
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": reply.content}}
    if body.get("logprobs") and reply.logprobs is not None:
        n = int(body.get("top_logprobs") or 0)
        choice["logprobs"] = {"content": [
            {"token": tok, "logprob": lp, "bytes": list(tok.encode()),
             "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                              for t, v in sorted(top.items(), key=lambda kv: -kv[1])[:n]]}
            for tok, lp, top in reply.logprobs]}
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or "scripted", "choices": [choice],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": max(1, len(reply.content) // 4),
                      "total_tokens": prompt_chars // 4 + max(1, len(reply.content) // 4)}}


# -- toy models ---------------------------------------------------------------------------

#: Keywords the toy judge treats as violations of each category.
KEYWORDS = {
    "violence": ("kill", "stab", "shoot"),
    "hate": ("vermin", "subhuman", "parasites"),
    "harassment": ("idiot", "loser", "worthless"),
    "spam": ("free followers", "click here"),
}


def user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"] if body["messages"][-1]["role"] == "user" else ""
    for m in body["messages"]:
        if m["role"] == "user":
            content = m["content"]
            break
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if c.get("type") == "text")
    return str(content)


def data_block(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON document between the delimiter lines of the policy adapter's user message."""
    text = user_text(body)
    m = re.search(rf"^{BEGIN}\n(.*)\n{END}$", text, re.S | re.M)
    assert m, f"no data block in {text[:200]!r}"
    doc: dict[str, Any] = json.loads(m.group(1))
    return doc


def asked_categories(body: dict[str, Any]) -> list[str]:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        items = fmt["json_schema"]["schema"]["properties"]["verdicts"]["items"]
        return list(items["properties"]["category"]["enum"])
    system = body["messages"][0]["content"]
    return re.findall(r"^## (\w+) \(severity", system, re.M)


def judge(body: dict[str, Any], delay_s: float = 0.0) -> Reply:
    """A toy policy model: keyword verdicts on the data block's text, answered as the schema asks."""
    doc = data_block(body)
    text = " ".join(p.get("text", "") for p in doc["parts"]).lower()
    verdicts = []
    for cat in asked_categories(body):
        hits = [k for k in KEYWORDS.get(cat, ()) if k in text]
        part = next((p["id"] for p in doc["parts"] if any(k in p.get("text", "").lower() for k in hits)),
                    doc["parts"][0]["id"] if doc["parts"] else "text")
        verdicts.append({"category": cat, "violates": bool(hits), "confidence": 0.9 if hits else 0.8,
                         "rationale": f"mentions {hits[0]!r}" if hits else "nothing in this category",
                         "parts": [part] if hits else []})
    return Reply(json.dumps({"verdicts": verdicts}), delay_s=delay_s)


def lp(p: float) -> float:
    return math.log(p)


def llama_guard(body: dict[str, Any]) -> Reply:
    """A toy Llama Guard: 'unsafe\\nS1' for violent words, 'unsafe\\nS10' for hateful ones, else 'safe'."""
    text = user_text(body).lower()
    codes = [code for code, cat in (("S1", "violence"), ("S10", "hate")) if any(k in text for k in KEYWORDS[cat])]
    if codes:
        return Reply("unsafe\n" + ",".join(codes),
                     logprobs=[("unsafe", lp(0.93), {"unsafe": lp(0.93), "safe": lp(0.06)})])
    return Reply("safe", logprobs=[("safe", lp(0.97), {"safe": lp(0.97), "unsafe": lp(0.02)})])


def shieldgemma(body: dict[str, Any]) -> Reply:
    """A toy ShieldGemma: Yes when the human question has a keyword of the principle's category."""
    text = user_text(body)
    question = re.search(r"Human Question: (.*)\n<end_of_turn>", text, re.S)
    principle = re.search(r'\* "No ([^"]+)"', text)
    assert question and principle, text[:300]
    cat = principle.group(1).lower().replace(" ", "_")
    yes = any(k in question.group(1).lower() for k in KEYWORDS.get(cat, ()))
    p = 0.88 if yes else 0.07
    return Reply("Yes" if yes else "No", logprobs=[("Yes" if yes else "No", lp(p if yes else 1 - p),
                                                    {"Yes": lp(p), "No": lp(1 - p)})])
