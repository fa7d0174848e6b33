"""Named model versions in a folder, with a ``champion`` alias.

A policy says ``model: champion`` rather than a path, so promoting a new model
is one small JSON write (``champion.json``) that can be reviewed and reverted,
and every model version stays on disk for comparison. The folder is
``models/`` unless ``REFEREE_MODELS`` names another; callers pass the root in
explicitly (``default_root`` reads the environment once, at the edge).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from referee.classifier import artifact
from referee.errors import ModelError

ALIAS_FILE = "{alias}.json"
ENV = "REFEREE_MODELS"


def default_root() -> Path:
    return Path(os.environ.get(ENV) or "models")


class Entry(BaseModel):
    name: str
    path: Path
    built: bool
    aliases: list[str]
    card: artifact.ModelCard


class ModelRegistry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / artifact.CARD).is_file())

    def aliases(self) -> dict[str, str]:
        out = {}
        if self.root.is_dir():
            for p in sorted(self.root.glob("*.json")):
                try:
                    out[p.stem] = json.loads(p.read_text(encoding="utf-8"))["name"]
                except (ValueError, KeyError, TypeError):
                    continue
        return out

    def entries(self) -> list[Entry]:
        aliases = self.aliases()
        out = []
        for name in self.names():
            path = self.root / name
            out.append(Entry(name=name, path=path, built=artifact.is_built(path),
                             aliases=[a for a, n in aliases.items() if n == name], card=artifact.read_card(path)))
        return out

    def resolve(self, ref: str) -> Path:
        """A path for an alias (``champion``), a version name, or a directory path."""
        alias = self.root / ALIAS_FILE.format(alias=ref)
        if alias.is_file():
            try:
                ref = json.loads(alias.read_text(encoding="utf-8"))["name"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"{alias}: broken alias file (fix: `referee model promote NAME`)") from exc
        if (self.root / ref / artifact.CARD).is_file():
            return self.root / ref
        direct = Path(ref)
        if (direct / artifact.CARD).is_file():
            return direct
        known = ", ".join(self.names() + list(self.aliases())) or "(none)"
        raise ModelError(
            f"model {ref!r} not found in registry {self.root} (set {ENV} to use another folder). "
            f"Available: {known} (fix: train one with `referee train`, or `make model` for the default)"
        )

    def promote(self, name: str, alias: str = "champion") -> Path:
        """Point ``alias`` at version ``name`` (which must exist)."""
        if not (self.root / name / artifact.CARD).is_file():
            raise ModelError(f"cannot promote {name!r}: no model directory {self.root / name} with a card. "
                             f"Available: {', '.join(self.names()) or '(none)'}")
        path = self.root / ALIAS_FILE.format(alias=alias)
        previous = self.aliases().get(alias)
        payload = {"name": name, "previous": previous,
                   "promoted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return path
