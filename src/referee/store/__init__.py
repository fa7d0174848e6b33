"""The decision store: append-only decisions, items, signals, API keys."""

from referee.store.repo import SCOPES, DecisionStore

__all__ = ["SCOPES", "DecisionStore"]
