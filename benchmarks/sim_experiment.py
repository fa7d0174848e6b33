"""An experiment and a shadow candidate on a simulated traffic stream built from the shared datasets.

Traffic: tweets of ``davidson_hate_offensive`` (class 0 hate is *violating*; offensive and
neither are not) and comments of ``youtube_spam_collection`` (spam is violating), drawn with a
seed, posted as comments by authors whose activity is Zipf-distributed (a few prolific ones).

- **Experiment** ``spam-threshold``: control is the default policy; ``strict`` lowers
  ``comment.spam`` and ``comment.harassment`` to 0.5 (the arm's derived policy). Half the authors each.
- **Shadow**: candidate ``hate-0.7`` (``comment.hate.remove`` at 0.7) observes the control arm's decisions.
- **People, simulated from the labels**: one reviewer works the queue in order, upholding a held
  item when it is violating, else overturning it, each verdict an exponential time after the last
  (mean 10 minutes: the latency is the backlog's); authors appeal a
  restriction of a benign item with p = 0.5 (of a violating one, 0.05), decided by the label; users
  send a notice about an allowed violating item with p = 0.3 (a benign one, 0.01).

Prints the experiment report and the shadow report, and writes the experiment's HTML page.
Nothing here is a speed figure; the engine is the real one (lexicon and, when the default model is
built, the classifier).

    .venv/bin/python benchmarks/sim_experiment.py [--items 3000] [--seed 7] [--out reports/online]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from referee.build import EngineConfig, build_engine
from referee.engine.experiment import Arm, Experiment, derive_policy
from referee.model import Action, ContentItem
from referee.online.experiments import ExperimentRunner, experiment_report
from referee.online.html import write_experiment_html
from referee.online.shadow import Candidate, Shadow, shadow_store
from referee.online.shadow_report import shadow_report
from referee.policy import Policy
from referee.records.appeals import file_appeal
from referee.records.notices import file_notice
from referee.records.review import ReviewConflict, ReviewDesk, ReviewError, Verdict
from referee.store import Store

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REFEREE_SHARED", REPO.parent / "shared")) / "datasets"


def stream(n: int, rng: random.Random) -> tuple[list[ContentItem], dict[str, bool]]:
    """``n`` items (60 % tweets, 40 % YouTube comments) and whether each is violating."""
    tweets = []
    with (SHARED / "davidson_hate_offensive" / "labeled_data.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            tweets.append((row["tweet"], row["class"] == "0"))
    comments = []
    for path in sorted((SHARED / "youtube_spam_collection").glob("Youtube0*.csv")):
        with path.open(encoding="utf-8") as f:
            comments.extend((row["CONTENT"], row["CLASS"] == "1") for row in csv.DictReader(f))
    authors = [f"author-{k}" for k in range(max(10, n // 5))]
    weights = [1 / (k + 1) ** 1.1 for k in range(len(authors))]
    items, truth = [], {}
    for k in range(n):
        text, bad = rng.choice(tweets) if rng.random() < 0.6 else rng.choice(comments)
        item = ContentItem(id=f"sim-{k}", text=text[:4000] or "(empty)", surface="comment",
                           author_id=rng.choices(authors, weights)[0], country=rng.choice(["DE", "FR", "US", "GB"]))
        items.append(item)
        truth[item.id] = bad
    return items, truth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "online")
    args = parser.parse_args()
    if not (SHARED / "davidson_hate_offensive").is_dir() or not (SHARED / "youtube_spam_collection").is_dir():
        sys.exit(f"needs {SHARED}/davidson_hate_offensive and youtube_spam_collection (the shared datasets folder "
                 "beside the repo, or REFEREE_SHARED)")
    rng = random.Random(args.seed)
    items, truth = stream(args.items, rng)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("default.yaml", "default.tests.yaml"):
            shutil.copy(REPO / "policies" / name, work / name)
        shutil.copytree(REPO / "policies" / "lexicons", work / "lexicons")
        base = EngineConfig(policy=work / "default.yaml", store_url=f"sqlite:///{work}/sim.db")
        exp = Experiment(name="spam-threshold", salt="sim-1", arms=[
            Arm(name="control", share=0.5),
            Arm(name="strict", share=0.5, thresholds={"comment.spam": 0.5, "comment.harassment": 0.5})])
        candidate_policy = work / "default.hate-0.7.yaml"
        document = yaml.safe_load((work / "default.yaml").read_text(encoding="utf-8"))
        candidate_policy.write_text(yaml.safe_dump(derive_policy(document, Arm(
            name="hate-0.7", share=1.0, thresholds={"comment.hate.remove": 0.7})), sort_keys=False))
        store = Store(base.store_url or "")
        started = time.perf_counter()
        shadow = Shadow([Candidate(name="hate-0.7", config=base.model_copy(update={"policy": candidate_policy}))],
                        shadow_store(store), duty=1.0)
        with ExperimentRunner(exp, base, store, build=build_engine) as runner:
            detectors = sorted(d.name for d in next(iter(runner.engines.values())).detectors)
            decided = []
            for start in range(0, len(items), 64):
                batch = items[start:start + 64]
                out = runner.moderate_many(batch)
                # The candidate shadows the control arm: its champion is the default policy.
                control = [(i, d) for i, d in zip(batch, out, strict=True) if exp.assign_item(i)[1] == "control"]
                shadow.observe([i for i, _ in control], [d for _, d in control])
                decided.extend(out)
        shadow.flush(600)
        shadow.close()
        moderated_s = time.perf_counter() - started

        now = [time.time()]
        desk = ReviewDesk(store, Policy.from_file(base.policy), clock=lambda: now[0])
        desk.sync()
        reviewed = 0
        while (task := desk.claim("sim-reviewer", desk.config.default_queue)) is not None:
            now[0] += rng.expovariate(1 / 600)
            verdict = "uphold" if truth[task.item_id] else "overturn"
            try:
                desk.submit(task.task_id, "sim-reviewer", Verdict(kind=verdict))  # type: ignore[arg-type]
                reviewed += 1
            except ReviewConflict:
                pass
        appeals = notices = 0
        for d in decided:
            bad = truth[d.item_id]
            if d.action is not Action.allow and d.action is not Action.hold_for_review:
                if rng.random() < (0.05 if bad else 0.5):
                    try:
                        file_appeal(desk, d.decision_id, "this was not a violation")
                        appeals += 1
                    except ReviewError:
                        pass
            elif d.action is Action.allow and rng.random() < (0.3 if bad else 0.01):
                now[0] += 1
                file_notice(desk, "users say this breaks the rules", item_id=d.item_id)
                notices += 1
        while (task := desk.claim("sim-senior", desk.config.appeals_queue)) is not None:
            verdict = "uphold" if truth[task.item_id] else "overturn"
            try:
                desk.submit(task.task_id, "sim-senior", Verdict(kind=verdict))  # type: ignore[arg-type]
            except (ReviewConflict, ReviewError):
                pass

        report = experiment_report(store, exp.name)
        sreport = shadow_report(store, "hate-0.7", sample=8)
        store.close()
    args.out.mkdir(parents=True, exist_ok=True)
    write_experiment_html(report, args.out / "experiment.html")
    (args.out / "experiment.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    (args.out / "shadow.json").write_text(sreport.model_dump_json(indent=2), encoding="utf-8")
    violating = sum(truth.values())
    print(f"stream: {len(items)} items ({violating} violating), {len({i.author_id for i in items})} authors; "
          f"detectors: {', '.join(detectors)}; moderated with shadow in {moderated_s:.1f} s")
    print(f"simulated people: {reviewed} review verdicts, {appeals} appeals, {notices} notices")
    print()
    print(report.text())
    print()
    print(sreport.text())
    print(f"\nwrote {args.out / 'experiment.html'}, experiment.json, shadow.json")


if __name__ == "__main__":
    main()
