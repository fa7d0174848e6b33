"""Where ``DecisionStore`` and ``SCOPES`` were imported from before the store was split by role."""

from referee.store.apikeys import SCOPES
from referee.store.sql.store import Store as DecisionStore

__all__ = ["SCOPES", "DecisionStore"]
