"""The ``referee`` command: wiring only. Each sub-command group lives in its own module."""

from __future__ import annotations

import typer

from referee.cli import data as _data
from referee.cli import db as _db
from referee.cli import eval as _eval
from referee.cli import cascade as _cascade
from referee.cli import compliance as _compliance
from referee.cli import loop as _loop
from referee.cli import model as _model
from referee.cli import online as _online
from referee.cli import core as _core
from referee.cli import rescan as _rescan
from referee.cli import review as _review
from referee.cli import stream as _stream
from referee.serve import cli as _serve

app = typer.Typer(
    name="referee",
    help="Content safety: detectors, policy-as-code, explainable decisions, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_core.register(app)
_serve.register(app)
_model.register(app)
_eval.register(app)
_cascade.register(_eval.eval_app)
_data.register(app)
_db.register(app)
_review.register(app)
_compliance.register(app)
_stream.register(app)
_rescan.register(app)
_loop.register(app)
_online.register(app)
