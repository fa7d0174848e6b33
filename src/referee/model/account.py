"""An author's account restriction as the engine sees it: data, not a store lookup.

The records layer (``referee.records.accounts``) decides when an account action
applies and hands the engine only this value, so deciding stays pure: the same
item, restriction and policy give the same decision, in any process.
"""

from __future__ import annotations

from datetime import datetime

from referee.model.base import Frozen
from referee.model.decision import Action


class AccountRestriction(Frozen):
    """The account action in force for an author, and what their items get while it lasts."""

    author_id: str
    record_id: str
    account_action: str
    item_action: Action
    until: datetime | None = None

    @property
    def rule_id(self) -> str:
        """The reason's ``rule_id``: names the account-action record, so a decision says which one applied."""
        return f"account:{self.record_id}"
