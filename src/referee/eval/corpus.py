"""The default model's training corpus, built from ``shared/datasets``.

Conversion and splitting use ``referee.eval.datasets`` (the same converters the
evaluation uses); this module only decides *which* sources a shipped model
may learn from and adds training-specific label choices on top, all written
down here and on the model card:

* Only sources whose licence allows a shipped model: no NC (ToxicChat,
  TweetEval hate), no GPL (ETHOS, GermEval), and not the sets the datasets
  README reserves for evaluation (HateCheck, Jigsaw templates, ToxiGen).
  StrongREJECT rows are used only where MIT (``custom`` and AdvBench-sourced).
* Weak negatives: benign-by-construction rows (Davidson "neither", spam-corpus
  ham, out-of-policy prompts such as privacy or legal-advice questions) are
  labelled 0 for every category. Without them a category whose positives are
  all prompts would never see a negative tweet, and masked training would
  leave its score on tweets unconstrained.
* Davidson "offensive" is taken as harassment=1 (abusive language aimed at
  someone); that is broader than the policy's "directed at an identifiable
  person", so harassment behaves like an abusive-language score.
* AdvBench has no categories; keywords assign violence / illegal_goods /
  self_harm / hate, and rows matching none stay unknown everywhere.
* Reddit C-SSRS is split into posts, each carrying its user's label (weak),
  grouped by user so no user is in two splits; Indicator users stay unknown.
  Users of the test split are also written as whole documents
  (``test_long.jsonl``) to test windowing on long text.
* CoCoNot's contrast set is forced into test (false-positive check); the
  policy's own examples and counter-examples are forced into train.

Splits: ``split_rows`` with a recorded seed, stratified by label pattern,
near-duplicates kept together; the ids of every split are written to
``splits.json`` beside the data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from referee.errors import InputError

CATEGORIES = ["hate", "harassment", "sexual", "sexual_minors", "violence", "self_harm", "spam", "illegal_goods"]
ZERO = {c: 0 for c in CATEGORIES}

#: Do-Not-Answer harms outside the policy: their questions are benign here.
DNA_OUT_OF_POLICY = (
    "Ask for personal information", "Biometric Data", "Educational Information", "Financial Information",
    "Medical Information", "Personal Identification Information", "Personal Life Information",
    "Classified Information", "Confidential Operations", "Financial and Budgetary Information",
    "Internal Communications", "Internal Policies and Procedures", "Legal Information",
    "Sensitive Technological Details", "Copyright Infringement", "Disinformation", "Malinformation",
    "Financial Advice", "Legal Advice", "Medical Advice", "Unreliable Experts", "False News",
    "Misinterpretation or Wrong Context", "Propaganda", "Rumors", "places personal emotional reliance",
    "Advice of coping strategies", "Consult advice on psychotic disorders",
)

_KEYWORDS = {
    "self_harm": r"suicid|self[- ]harm|kill (?:your|them)sel|eating disorder|anorexi|bulimi|cutting",
    "violence": r"\bkill|murder|assault|attack|violen|bomb|terror|shoot|massacre|poison|torture|hurt|harm (?:people|someone|others)|"
                r"weapon|\bgun|explosive",
    "illegal_goods": r"drug|weapon|\bgun|firearm|bomb|explosive|steal|theft|hack|counterfeit|fraud|launder|smuggl|"
                     r"illegal|malware|virus|ransomware|credit card|pirat|cocaine|heroin|meth",
    "hate": r"racis|hate speech|discriminat|minorit|ethnic|religio|immigrant|jew|muslim|black people|gay",
}


def _advbench_labels(text: str) -> dict[str, int]:
    low = text.lower()
    return {cat: 1 for cat, pat in _KEYWORDS.items() if re.search(pat, low)}


def _mappings(card_dropped: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    no_harm = {k: 0 for k in ("hate", "harassment", "violence", "self_harm", "sexual_minors")}
    weak_tweet = {"spam": 0, "sexual_minors": 0, "self_harm": 0}
    return {
        "davidson": {
            "hate_speech": {"hate": 1, **weak_tweet},
            "offensive_language": {"hate": 0, "harassment": 1, **weak_tweet},
            "neither": dict(ZERO),
        },
        "youtube_spam": {"CLASS=1": {"spam": 1, **no_harm}, "CLASS=0": dict(ZERO)},
        "sms_spam": {"spam": {"spam": 1, **no_harm}, "ham": dict(ZERO)},
        "ailuminate": {
            **{f"hazard:{h}": dict(ZERO) for h in ("prv", "ipv", "spc_ele", "spc_fin", "spc_hlt", "spc_lgl")},
            "hazard:dfm": {k: v for k, v in ZERO.items() if k != "harassment"},
        },
        "do_not_answer": {k: dict(ZERO) for k in (card_dropped or {})
                          if any(k.removeprefix("harm:").startswith(p) for p in DNA_OUT_OF_POLICY)},
    }


def _rows(fmt: str, source: Path, mapping: dict[str, Any] | None = None) -> tuple[list[Any], Any]:
    from referee.eval.datasets import import_with_card

    return import_with_card(fmt, source, mapping)


#: The sources of the default mix, in order. ``MIX_V1`` is the mix the first default
#: model learned from; ``MIX_V2`` adds real comments (Toxic Spans, EDOS, ConvAbuse)
#: and the music-domain benign set written for this project.
MIX_V1 = ("davidson", "youtube_spam", "sms_spam", "ailuminate", "do_not_answer", "strongreject", "advbench",
          "coconot", "reddit_cssrs", "policy")
MIX_V2 = MIX_V1 + ("toxic_spans", "edos", "convabuse", "benign_music")
#: v2 without Toxic Spans (all-toxic comments, no negatives of their own): measured against v2.
MIX_V2_NO_SPANS = tuple(s for s in MIX_V2 if s != "toxic_spans")
#: v3 adds Do-Not-Answer's human-labelled model answers (long benign text about harmful
#: topics, and the few harmful answers) and the identity sentences of ``eval/identity.py``.
MIX_V3 = MIX_V1 + ("dna_responses", "identity")
MIX_V3_REAL = MIX_V2_NO_SPANS + ("dna_responses", "identity")
#: v1 plus the identity sentences only: what the identity data does on its own.
MIX_V1_IDENTITY = MIX_V1 + ("identity",)
#: Every source a mix may name (the universe the leave-one-source-out table draws from).
ALL_SOURCES = tuple(dict.fromkeys(MIX_V2 + MIX_V3))
MIXES = {"v1": MIX_V1, "v2": MIX_V2, "v2-no-spans": MIX_V2_NO_SPANS, "v3": MIX_V3, "v3-real": MIX_V3_REAL,
         "v1-identity": MIX_V1_IDENTITY,
         "all": ALL_SOURCES}
#: The mix the shipped default model learned from. v2 and v2-no-spans were measured against it
#: (leave-one-source-out table, false-positive tests) and not adopted: see docs/classifier.md.
DEFAULT_MIX = "v1"

#: Benign music-platform comments that share words with harmful ones (written for referee,
#: CC0): training negatives. The evaluation set in tests/data is a different list.
BENIGN_MUSIC = Path(__file__).parent / "data" / "benign_music.txt"


def collect(shared: str | Path, policy_path: str | Path | None = None,
            sources: tuple[str, ...] = MIX_V1) -> tuple[list[Any], dict[str, Any], list[Any]]:
    """Every training row of the chosen sources, tagged ``meta.source``, before splitting.

    Returns ``(rows, provenance by source, C-SSRS users)``; the users are kept for the
    whole-document (windowing) test file."""
    from referee.eval.datasets import Row

    shared = Path(shared)
    if not shared.is_dir():
        raise InputError(f"{shared} is not a folder; pass the shared datasets folder (e.g. ../shared/datasets)")
    unknown = [s for s in sources if s not in ALL_SOURCES]
    if unknown:
        raise InputError(f"unknown training source {unknown[0]!r}. Available: {', '.join(ALL_SOURCES)}")
    maps = _mappings()
    rows: list[Any] = []
    provenance: dict[str, Any] = {}
    users: list[Any] = []

    def add(fmt: str, folder: str, new: list[Any], card: Any, note: str = "") -> None:
        tagged = [r.model_copy(update={"meta": {**r.meta, "source": fmt}}) for r in new]
        rows.extend(tagged)
        provenance[fmt] = {"folder": folder, "licence": card.licence, "files": card.source_files, "rows": len(tagged),
                           **({"note": note} if note else {})}

    for fmt, folder in (("davidson", "davidson_hate_offensive"), ("youtube_spam", "youtube_spam_collection"),
                        ("sms_spam", "sms_spam_collection")):
        if fmt in sources:
            r, c = _rows(fmt, shared / folder, maps[fmt])
            add(fmt, folder, r, c)

    if "ailuminate" in sources:
        r, c = _rows("ailuminate", shared / "ailuminate_demo", maps["ailuminate"])
        add("ailuminate", "ailuminate_demo", [x for x in r if x.meta.get("language") == "en"], c,
            "en_US only; prv/ipv/spc_*/dfm prompts used as negatives")

    if "do_not_answer" in sources:
        _, probe = _rows("do_not_answer", shared / "do_not_answer")
        r, c = _rows("do_not_answer", shared / "do_not_answer", _mappings(probe.dropped_unmapped)["do_not_answer"])
        add("do_not_answer", "do_not_answer", r, c, "out-of-policy harms (privacy, advice, misinformation) as negatives")

    if "strongreject" in sources:
        r, c = _rows("strongreject", shared / "strongreject")
        add("strongreject", "strongreject", [x for x in r if x.meta.get("source") in ("custom", "AdvBench")], c,
            "MIT rows only (source custom or AdvBench)")

    if "advbench" in sources:
        r, c = _rows("advbench", shared / "advbench")
        adv = [x.model_copy(update={"labels": _advbench_labels(x.text)}) for x in r]
        add("advbench", "advbench", [x for x in adv if x.labels], c, "categories by keyword; rows matching none dropped")

    if "coconot" in sources:
        r, c = _rows("coconot", shared / "coconot")
        coco = [x.with_split("test") if x.meta.get("file") == "contrast" else x for x in r
                if x.meta.get("file") != "eval"]
        add("coconot", "coconot", coco, c, "pref prompts as benign training negatives; contrast set forced into test")

    if "reddit_cssrs" in sources:
        users, c = _rows("reddit_cssrs", shared / "reddit_cssrs_suicide")
        # v2: mental-health posts are real long Reddit text that is neither hate nor harassment
        # (weak negatives that balance the all-toxic Toxic Spans comments).
        weak = {"spam": 0, "sexual_minors": 0, **({"hate": 0, "harassment": 0} if "toxic_spans" in sources else {})}
        posts = []
        for u in users:
            for j, post in enumerate(p.strip() for p in u.text.split("\n\n")):
                if len(post) >= 20:
                    labels = {**u.labels, **weak} if u.labels else {}
                    posts.append(Row(id=f"{u.id}-p{j}", text=post, labels=labels,
                                     meta={"user": u.meta["user"], "group_key": u.meta["user"],
                                           "cssrs": u.meta["cssrs"]}))
        add("reddit_cssrs", "reddit_cssrs_suicide", posts, c, "posts with their user's label (weak); split by user"
            + ("; hate=0 and harassment=0 (weak)" if "toxic_spans" in sources else ""))

    if "toxic_spans" in sources:
        weak = {"spam": 0, "sexual_minors": 0, "self_harm": 0}
        r, c = _rows("toxic_spans", shared / "toxic_spans", {"toxic": {**weak, "unsafe": 1}})
        add("toxic_spans", "toxic_spans", r, c,
            "all toxic; majority span subtype -> harassment (insult) / violence (threat) / hate (identity attack); "
            "other categories unknown")

    if "edos" in sources:
        zero = {"spam": 0, "sexual_minors": 0}
        r, c = _rows("edos", shared / "edos_sexism", {"sexist:sexist": {"hate": 1, "unsafe": 1, **zero},
                                                      "sexist:not sexist": {"hate": 0, **zero}})
        add("edos", "edos_sexism", r, c, "sexist -> hate=1 (category 1 also violence=1); not sexist -> hate=0 only; "
            "official splits")

    if "convabuse" in sources:
        r, c = _rows("convabuse", shared / "convabuse")
        add("convabuse", "convabuse", r, c, "majority abuse -> harassment=1 (types -> hate); majority not abusive -> "
            "all 0; ambiguous dropped; the 118 rows SOURCE.md lists excluded; official splits")

    if "dna_responses" in sources:
        r, c = _rows("do_not_answer_responses", shared / "do_not_answer")
        add("dna_responses", "do_not_answer", r, c, "harmless answers benign for every category; a harmful answer "
            "takes its question's category; grouped with their question")

    if "identity" in sources:
        from referee.eval.identity import identity_rows

        ident = identity_rows()
        # Forced into train, like the policy's examples: template sentences are easy, and in
        # dev they would pull the operating thresholds down for real text.
        rows.extend(Row(id=d["id"], text=d["text"], labels=d["labels"], groups=(d["group"],), split="train",
                        meta={"source": "identity", "group_key": d["group_key"]}) for d in ident)
        provenance["identity"] = {"file": "src/referee/eval/identity.py", "licence": "CC0 (written for referee)",
                                  "rows": len(ident), "note": "benign and hateful sentences naming the same groups; "
                                  "forced into train"}

    if "benign_music" in sources:
        lines = [ln.strip() for ln in BENIGN_MUSIC.read_text(encoding="utf-8").splitlines()]
        texts = [ln for ln in lines if ln and not ln.startswith("#")]
        rows.extend(Row(id=f"music-benign-{i}", text=t, labels=dict(ZERO), split="train",
                        meta={"source": "benign_music"}) for i, t in enumerate(texts))
        provenance["benign_music"] = {"file": "src/referee/eval/data/benign_music.txt", "licence": "CC0 (written for "
                                      "referee)", "rows": len(texts), "note": "benign look-alikes, forced into train"}

    if policy_path and "policy" in sources:
        from referee.policy import load_policy

        pol = load_policy(policy_path)
        pol_rows = []
        # The policy is the taxonomy: a category a team adds trains on its own examples
        # (the shared datasets label only the default categories).
        zero = {c: 0 for c in (*CATEGORIES, *pol.categories)}
        for name, cat in pol.document.categories.items():
            for i, text in enumerate(cat.examples):
                pol_rows.append(Row(id=f"policy-{name}-ex{i}", text=text, labels={name: 1}, split="train"))
            for i, text in enumerate(cat.counter_examples):
                pol_rows.append(Row(id=f"policy-{name}-cx{i}", text=text, labels=dict(zero), split="train"))
        rows.extend(r.model_copy(update={"meta": {"source": "policy"}}) for r in pol_rows)
        provenance["policy"] = {"file": str(policy_path), "rows": len(pol_rows)}
    return rows, provenance, users


def build(shared: str | Path, out_dir: str | Path, policy_path: str | Path | None = None, seed: int = 13,
          ratios: tuple[float, float, float] = (0.7, 0.15, 0.15), sources: tuple[str, ...] | None = None,
          ) -> dict[str, Any]:
    """Write train/dev/test JSONL (+ ``test_long.jsonl``, ``splits.json``) and return provenance."""
    from referee.eval.datasets import split_rows

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, sources_info, users = collect(shared, policy_path, sources or MIXES[DEFAULT_MIX])
    # Keep only rows that label at least one of our categories (the defaults and the policy's).
    wanted = set(CATEGORIES)
    if policy_path:
        from referee.policy import load_policy

        wanted |= set(load_policy(policy_path).categories)
    rows = [x for x in rows if any(k in wanted for k in x.labels)]
    rows = split_rows(rows, seed=seed, ratios=ratios)
    by_split: dict[str, list[Any]] = {"train": [], "dev": [], "test": []}
    for x in rows:
        by_split[x.split or "train"].append(x)
    files = {}
    for split, items in by_split.items():
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for r in items:
                obj = {k: v for k, v in r.to_json().items() if k != "unsafe"}
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        files[split] = {"rows": len(items), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "by_source": dict(Counter(r.meta.get("source") for r in items))}
    # Whole-user documents for the test users: long-form windowing check.
    test_users = {r.meta["user"] for r in by_split["test"] if r.meta.get("source") == "reddit_cssrs"}
    with (out / "test_long.jsonl").open("w", encoding="utf-8") as fh:
        for u in users:
            if u.meta["user"] in test_users and "self_harm" in u.labels:
                fh.write(json.dumps({"id": u.id, "text": u.text, "self_harm": u.labels["self_harm"]}) + "\n")
    (out / "splits.json").write_text(json.dumps(
        {"seed": seed, "ratios": ratios, "method": "referee.eval.datasets.split_rows (stratified, dedup_key/group_key units)",
         "ids": {s: [r.id for r in items] for s, items in by_split.items()}}) + "\n", encoding="utf-8")
    caveats = [
        "sexual, sexual_minors, violence and illegal_goods positives are almost all prompts/requests "
        "(AILuminate, StrongREJECT, AdvBench, Do-Not-Answer), not user posts",
        "sexual_minors: only AILuminate's cse prompts (100 en) plus one policy example",
        "harassment is Davidson's 'offensive' class: closer to abusive/profane language than targeted harassment",
        "hate is Davidson's hate class (lexicon-sampled tweets, documented dialect bias) plus AILuminate hte prompts",
        "self_harm is mostly Reddit C-SSRS posts with their user's label (weak, per-user labels)",
        "benign look-alike prompts are few (CoCoNot pref): expect false positives on 'kill a process'-style text",
    ]
    return {"corpus": {"seed": seed, "caveats": caveats, "ratios": list(ratios), "sources": sources_info, "files": files,
                       "excluded": "ethos, germeval (GPL); toxicchat, tweeteval (NC/unclear); hatecheck, jigsaw "
                                   "templates, toxigen (evaluation only); strongreject non-MIT rows"}}
