"""A simulated traffic stream from ../shared/datasets, moderated, QA-reviewed and sampled for
prevalence, with the datasets' gold labels as the reviewers.

    .venv/bin/python scripts/simulate_traffic.py [--per-source 1500] [--sample 600] [--shared ../shared/datasets]

1. Builds a stream: Davidson tweets and YouTube spam comments on ``comment``, SMS spam and
   ConvAbuse (messages to chatbots) on ``message``, ``--per-source`` items from each, seeded.
2. Moderates it with the default engine (lexicon + the champion classifier) into a temporary
   SQLite store.
3. QA: syncs the review desk (the policy's 5 % QA share of automated actions) and answers every
   QA task with the item's gold labels; prints precision of automated actions.
4. Prevalence: designs a stratified labelling sample (``referee.online.quality``), queues it, has
   the "labeller" answer with gold labels, and prints violating items per 10,000 per surface and
   category with 95 % intervals, the recall of automation, and the truth of the stream (every
   item's gold label is known here, which in production it never is).

A category a source does not label counts as not violating for its items. Exits 0 with a message
when the shared datasets are absent.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = (("davidson", "davidson_hate_offensive", "comment"), ("youtube_spam", "youtube_spam_collection", "comment"),
           ("sms_spam", "sms_spam_collection", "message"), ("convabuse", "convabuse", "message"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--per-source", type=int, default=1500)
    parser.add_argument("--sample", type=int, default=600)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if not args.shared.is_dir():
        print(f"skipped: {args.shared} is absent (the shared datasets are not checked out)")
        return 0

    from referee.build import EngineConfig, build_engine
    from referee.eval.datasets import import_dataset
    from referee.model import Action, ContentItem
    from referee.online import quality
    from referee.records.review import ReviewDesk, Verdict

    rng = random.Random(args.seed)
    stream, gold = [], {}
    for fmt, folder, surface in SOURCES:
        rows = [r for r in import_dataset(fmt, args.shared / folder) if r.text.strip()]
        for r in rng.sample(rows, min(args.per_source, len(rows))):
            item_id = f"{fmt}:{r.id}"[:256]
            stream.append(ContentItem(id=item_id, text=r.text[:10_000], surface=surface))
            gold[item_id] = frozenset(c for c, v in r.labels.items() if v == 1 and c != "unsafe")
    rng.shuffle(stream)
    tmp = Path(tempfile.mkdtemp(prefix="referee-sim-"))
    config = EngineConfig(policy=REPO / "policies" / "default.yaml", store_url=f"sqlite:///{tmp}/sim.db")
    t0 = time.perf_counter()
    with build_engine(config) as engine:
        for i in range(0, len(stream), 256):
            engine.moderate_many(stream[i : i + 256])
        store = engine.sink
        policy = engine.policy
        took = time.perf_counter() - t0
        print(f"moderated {len(stream)} items ({', '.join(f'{f} -> {s}' for f, _, s in SOURCES)}) in {took:.1f} s "
              f"into {tmp}/sim.db")
        desk = ReviewDesk(store, policy)  # type: ignore[arg-type]

        def answer(reviewer: str, queues: list[str]) -> int:
            done = 0
            for q in queues:
                while (task := desk.claim(reviewer, q)) is not None:
                    truth = gold[task.item_id]
                    bad = tuple(c for c in sorted(truth) if c in policy.document.categories)
                    verdict = (Verdict(kind="change", action=Action.remove, categories=bad) if bad
                               else Verdict(kind="overturn"))
                    desk.submit(task.task_id, reviewer, verdict)
                    done += 1
            return done

        working = [q for q in desk.config.queues if q not in (desk.config.senior_queue, desk.config.appeals_queue)]
        desk.sync(limit=len(stream) + 10)
        print(f"QA and review: {answer('reviewer-1', working)} verdicts from gold labels")
        rows = [p for p in quality.qa_precision(desk) if p.surface == quality.ALL]
        print("\nprecision of automated actions (random QA share, Wilson 95 %)")
        print(f"{'category':<15}{'reviewed':>9}{'kept':>6}{'precision':>11}   95 % CI")
        for p in rows:
            print(f"{p.category:<15}{p.reviewed:>9}{p.kept:>6}{p.precision:>11.3f}   {p.low:.3f}-{p.high:.3f}")

        units = quality.units_from_log(store.log)
        sample = quality.design_sample(units, size=args.sample, seed=args.seed)
        quality.write_sample(sample, tmp / f"{sample.sample_id}.json")
        queued = quality.send_for_labelling(desk, sample, queue=desk.config.default_queue)
        labelled = answer("labeller-1", [desk.config.default_queue])
        labels = quality.sample_labels(desk, sample)
        print(f"\nlabelling sample {sample.sample_id}: {len(sample.units)} of {len(units)} items in "
              f"{len(sample.strata)} strata (surface x score band), {queued} queued, {labelled} verdicts, "
              f"{len(labels)} labelled")
        categories = [c for c in policy.categories if any(c in g for g in gold.values())]
        prev = quality.estimate_prevalence(sample, labels, categories)
        recall = {(r.surface, r.category): r for r in quality.estimate_recall(sample, labels, categories)}
        by_surface = {u.item_id: u.surface for u in units}
        print("\nviolating items per 10,000 (stratified estimate, 95 % CI), recall of automation, and the truth")
        print(f"{'surface':<9}{'category':<12}{'items':>7}{'per 10k':>9}{'95 % CI':>17}{'truth':>8}"
              f"{'recall':>8}{'95 % CI':>12}{'truth':>7}")
        flagged = {u.item_id: u.flagged for u in units}
        for e in prev:
            members = [i for i in gold if e.surface in (quality.ALL, by_surface.get(i))]
            bad = [i for i in members if e.category in gold[i]]
            truth = len(bad) / len(members) * 10_000
            r = recall[(e.surface, e.category)]
            true_recall = sum(e.category in flagged.get(i, ()) for i in bad) / len(bad) if bad else float("nan")
            p, lo, hi = e.per_10k
            rec = "-" if r.recall is None else f"{r.recall:.2f}"
            rci = "-" if r.low is None or r.high is None else f"{r.low:.2f}-{r.high:.2f}"
            print(f"{e.surface:<9}{e.category:<12}{e.population:>7}{p:>9.1f}{f'{lo:.1f}-{hi:.1f}':>17}{truth:>8.1f}"
                  f"{rec:>8}{rci:>12}{true_recall:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
