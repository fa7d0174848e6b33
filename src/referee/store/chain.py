"""The rules of an item's chain that both decision logs check before they write."""

from __future__ import annotations

from referee.errors import StoreError
from referee.model import Decision


def check_supersedes(old_id: str, old: Decision | None, new: Decision) -> Decision:
    """``new`` as the record that supersedes ``old`` (shared by the SQL and memory logs)."""
    if old is None:
        raise StoreError(f"no decision {old_id!r} to supersede")
    if new.supersedes != old_id:
        new = new.model_copy(update={"supersedes": old_id})
    if new.item_id != old.item_id or new.content_hash != old.content_hash:
        raise StoreError(
            f"decision {new.decision_id} is about item {new.item_id!r} (content {new.content_hash[:12]}), "
            f"but {old_id} is about item {old.item_id!r} (content {old.content_hash[:12]}); a record "
            "supersedes a decision about the same item and content"
        )
    return new


def check_parent(decision: Decision, parent: Decision | None) -> None:
    check_parent_item(decision, None if parent is None else parent.item_id)


def check_parent_item(decision: Decision, parent_item: str | None) -> None:
    """``decision`` supersedes a stored decision (of item ``parent_item``) of its own item."""
    if parent_item is None:
        raise StoreError(f"decision {decision.decision_id} supersedes {decision.supersedes!r}, "
                         "which is not in the log")
    if parent_item != decision.item_id:
        raise StoreError(f"decision {decision.decision_id} is about item {decision.item_id!r} but supersedes "
                         f"{decision.supersedes}, which is about item {parent_item!r}")
