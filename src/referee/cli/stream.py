"""`referee worker` and `referee produce`: moderate items from a Redis stream, and load one.

Wiring only: settings and flags → ``build_engine`` and an ``ItemStream`` → ``Worker.run``.
SIGTERM or SIGINT finish the batch in hand, acknowledge it and exit 0; a
second signal stops at once (the batch stays pending for another worker).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from referee.build import build_engine
from referee.cli.core import DbOpt, DetectorsOpt, PolicyOpt, _settings, err, fail
from referee.errors import InputError, RefereeError
from referee.ingest import read_items
from referee.model import ContentItem
from referee.obs import Metrics
from referee.online.experiments import ExperimentRunner, load_experiment
from referee.online.shadow import Shadow, attach_shadow
from referee.store import Store
from referee.workers import (
    ItemStream,
    PrometheusMetrics,
    StreamConfig,
    Worker,
    connect,
    produce,
)

RedisOpt = Annotated[str | None, typer.Option(
    "--redis-url", help="Redis URL (default: $REFEREE_REDIS_URL or redis://127.0.0.1:6379/0).")]
StreamOpt = Annotated[str, typer.Option("--stream", help="Stream the items are on.")]


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("produce")(produce_cmd)


def worker(
    stream: StreamOpt = "items",
    group: Annotated[str, typer.Option(help="Consumer group shared by the workers (created if missing).")] =
        "moderators",
    consumer: Annotated[str | None, typer.Option(help="This worker's name in the group (default: host-pid).")] =
        None,
    out_stream: Annotated[str, typer.Option(help="Stream decisions are published to.")] = "decisions",
    dead_stream: Annotated[str, typer.Option(help="Stream poison entries are moved to.")] = "items:dead",
    batch: Annotated[int, typer.Option(min=1, max=4096, help="Most entries in hand (and per engine batch).")] = 64,
    block_ms: Annotated[int, typer.Option(min=1, max=60_000, help="How long a read waits for new entries.")] = 2000,
    claim_idle_ms: Annotated[int, typer.Option(
        min=100, max=86_400_000, help="Claim entries other workers left pending this long.")] = 60_000,
    max_attempts: Annotated[int, typer.Option(min=1, max=1000, help="Deliveries before an entry is dead-lettered.")]
        = 5,
    forget_idle_ms: Annotated[int | None, typer.Option(
        min=0, help="Remove consumers idle this long with nothing pending (dead workers) from the group; "
                    "default 10 x --claim-idle-ms, 0: never.")] = None,
    out_maxlen: Annotated[int, typer.Option(min=0, help="Approximate cap of the output stream; 0: none.")] = 100_000,
    redis_url: RedisOpt = None,
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Serve Prometheus metrics on 127.0.0.1:PORT.")] = None,
    policy: PolicyOpt = None,
    db_url: DbOpt = None,
    detectors: DetectorsOpt = None,
    experiment: Annotated[Path | None, typer.Option(
        "--experiment", help="Decide under this experiment (JSON or YAML): each item by its unit's arm, one "
                             "exposure logged [env REFEREE_EXPERIMENT].")] = None,
) -> None:
    """Moderate items from a Redis stream until SIGTERM/SIGINT; decisions are stored, then published."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(policy, db_url)
    if forget_idle_ms and forget_idle_ms < claim_idle_ms:
        raise fail(f"--forget-idle-ms {forget_idle_ms} is below --claim-idle-ms {claim_idle_ms}: a consumer is "
                   "forgotten only after its entries could be claimed; raise it, or 0 to never forget")
    try:
        config = StreamConfig(
            stream=stream, group=group, consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
            out_stream=out_stream, dead_stream=dead_stream, batch=batch, block_ms=block_ms,
            claim_idle_ms=claim_idle_ms, max_attempts=max_attempts, out_maxlen=out_maxlen,
            forget_idle_ms=forget_idle_ms,
        )
        engine = build_engine(settings.engine_config(detectors=detectors, batch_size=batch))
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    shadow: Shadow | None = None
    runner: ExperimentRunner | None = None
    try:
        shared = Metrics()
        shared.watch(engine)  # the engine's series: per-detector and per-stage latency, decisions
        metrics = PrometheusMetrics(stream, group, shared)
        if metrics_port is not None:
            try:
                shared.serve(metrics_port)
            except OSError as exc:
                raise fail(f"--metrics-port {metrics_port}: cannot listen on 127.0.0.1:{metrics_port} ({exc}); "
                           "choose a free port") from exc
        # Candidates in shadow decide beside the champion, off the hot path (docs/online.md).
        if settings.shadow:
            if not isinstance(engine.sink, Store):
                raise fail("REFEREE_SHADOW needs the worker's decision store (--db-url)")
            shadow = attach_shadow(engine, engine.sink, settings.shadow, sample=settings.shadow_sample,
                                   duty=settings.shadow_duty)
        experiment = experiment or settings.experiment
        if experiment is not None:
            if not isinstance(engine.sink, Store) or engine.config is None:
                raise fail("--experiment needs the worker's decision store (--db-url)")
            # The control arm, when it changes nothing, is the engine built above (docs/online.md).
            runner = ExperimentRunner(load_experiment(experiment), engine.config, engine.sink, reuse=engine,
                                      build=lambda c: build_engine(c, observer=shared))
        client = connect(redis_url or settings.redis_url, block_ms)
        running = Worker(runner or engine, ItemStream(client, config), metrics)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            err.print(f"{signal.Signals(signum).name}: finishing the batch in hand, then exiting", highlight=False)
            running.stop()
            signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        err.print(escape(f"worker {config.consumer}: {config.stream} → {config.out_stream} "
                         f"(group {config.group}, batch {config.batch}); policy {engine.policy.id}@"
                         f"{engine.policy.version}, detectors {', '.join(engine.detector_versions)}"),
                  highlight=False)
        if runner is not None:
            err.print(escape(f"experiment {runner.experiment.name}: arms "
                             + ", ".join(f"{a.name} {a.share:g}" for a in runner.experiment.arms)), highlight=False)
        running.run()
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    finally:
        if runner is not None:
            runner.close()
        if shadow is not None:
            shadow.close()
        engine.close()


def produce_cmd(
    input: Annotated[str, typer.Argument(help="JSONL or CSV file of items (as `referee moderate` reads), or '-'.")],
    stream: StreamOpt = "items",
    redis_url: RedisOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl or csv (default: from the suffix).")] = None,
) -> None:
    """Append the file's items to a Redis stream, one entry each (field 'item'); bad lines are reported."""
    settings = _settings(None, None)
    errors: list[InputError] = []

    def good_items() -> Iterator[ContentItem]:  # streamed: a large file is never held in memory
        for r in read_items(sys.stdin.buffer if input == "-" else input, fmt):
            if isinstance(r, ContentItem):
                yield r
            else:
                errors.append(r)

    try:
        sent = produce(connect(redis_url or settings.redis_url), stream, good_items())
    except RefereeError as exc:
        raise fail(str(exc)) from exc
    for e in errors:
        err.print(f"[yellow]skipped[/yellow] {escape(str(e))}", highlight=False)
    err.print(escape(f"{sent} items appended to {stream}, {len(errors)} rejected"), highlight=False)
    if errors:
        raise typer.Exit(1)
