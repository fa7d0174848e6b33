"""The detector registry the commands build detectors and engines from.

By default, the installed detectors (entry-point group ``referee.detectors``). An
embedding application or a test hands its own registry to the command as its
context object, ``app(obj=registry)`` or ``CliRunner().invoke(app, args,
obj=registry)``, and the commands that build detectors in this process
(``moderate``, ``policy lint`` and ``policy test``, ``eval run``, ``eval suite``,
``eval cascade``) use it: nothing is registered into the process behind their backs.
"""

from __future__ import annotations

import typer

from referee.detectors.base import Detector, detector_registry
from referee.errors import ConfigError
from referee.registry import Registry


def registry_of(ctx: typer.Context) -> Registry[type[Detector]]:
    """The registry the command was invoked with, else a new one of the installed detectors."""
    if ctx.obj is None:
        return detector_registry()
    if not isinstance(ctx.obj, Registry):
        raise ConfigError(f"the command's context object must be a detector Registry, got {type(ctx.obj).__name__}; "
                          "invoke the app with obj=detector_registry({...})")
    return ctx.obj


__all__ = ["registry_of"]
