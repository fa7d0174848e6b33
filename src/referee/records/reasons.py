"""DSA statements of reasons (Art. 17, 24(5)) built from the decision log, validated, exported.

A statement is made for a decision record that imposes a restriction (an action the
policy's ``dsa.actions`` lists) in an EU/EEA country (or the policy's ``dsa.countries``),
unless the record it supersedes imposed the same restriction already (a re-decision that
changes nothing is not a new restriction). The mapping (categories to STATEMENT_CATEGORY_*
and KEYWORD_*, grounds, explanations, actions to restriction fields) is the policy's
``dsa:`` section.

No personal data: a statement carries no author, no item id, no text. The puid is the
policy's prefix and the decision id (a hash). ``decision_facts`` is written from the
decision's structured reasons (rule, category, score, threshold), never from the content.

Every statement is validated against the JSON Schema in ``schemas/`` (written from the
Transparency Database's public API documentation) plus the date rules the schema cannot
say; an invalid one is reported with its field and reason and never exported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from sqlalchemy import bindparam, select

from referee.errors import ConfigError
from referee.model import Decision, Record
from referee.model.base import Frozen
from referee.policy import Policy
from referee.policy.schema import Dsa, DsaCategory, DsaRestriction
from referee.records.accounts import AccountAction as AccountRecord
from referee.records.accounts import record_from_row as _account_record
from referee.store.sql.account_tables import account_actions, notices
from referee.store.sql.database import Database
from referee.store.sql.tables import items

#: The API's batch limit (the multiple-statements endpoint takes at most 100).
BATCH = 100
#: The 27 member states (the Transparency Database's EUROPEAN_UNION_COUNTRY_CODES; docs/compliance.md).
EU = ("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
      "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE")
EEA = (*EU, "IS", "LI", "NO")
#: Item context key naming the notice an item was reported by: article_16, trusted_flagger, other.
NOTICE_KEY = "dsa_notice"
_SOURCES = {"article_16": "SOURCE_ARTICLE_16", "trusted_flagger": "SOURCE_TRUSTED_FLAGGER",
            "other": "SOURCE_TYPE_OTHER_NOTIFICATION"}
_END_DATES = ("end_date_visibility_restriction", "end_date_monetary_restriction", "end_date_service_restriction",
              "end_date_account_restriction")

#: The fields that differ between statements of one mapping, each with a valid stand-in.
_VARYING = {"puid": "x", "content_date": "2026-01-01", "application_date": "2026-01-01",
            "end_date_visibility_restriction": "2026-01-01", "end_date_monetary_restriction": "2026-01-01",
            "end_date_service_restriction": "2026-01-01", "end_date_account_restriction": "2026-01-01",
            "decision_facts": "x", "content_language": "EN"}

_ITEMS = select(items.c.item_id, items.c.content_hash, items.c.language, items.c.created_at, items.c.first_seen_at,
                items.c.context).where(items.c.item_id.in_(bindparam("ids", expanding=True)))


def load_schema() -> dict[str, Any]:
    text = (files("referee.records") / "schemas" / "statement_of_reasons.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


class Statement(Frozen):
    """One statement of reasons as the API takes it (``body``), and the record it is about."""

    puid: str
    decision_id: str
    seq: int
    body: dict[str, Any]


class StatementError(Frozen):
    """Why a statement is invalid: the field (a JSON path) and the reason."""

    puid: str
    decision_id: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"statement {self.puid} (decision {self.decision_id}): {self.field}: {self.reason}"


class StatementValidator:
    """The JSON Schema plus the date rules; ``errors(body)`` lists (field, reason), empty when valid."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.schema = schema or load_schema()
        self._validator = jsonschema.Draft202012Validator(self.schema)
        self._fields = {name: jsonschema.Draft202012Validator(self.schema["properties"][name])
                        for name in _VARYING if name in self.schema.get("properties", {})}
        self._shapes: dict[str, bool] = {}

    def errors(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """The problems of ``body`` (empty when valid).

        Statements made by one mapping differ in a few free fields (puid, dates, facts,
        language); the rest (the *shape*) repeats. A shape is validated once against the
        whole schema, with valid stand-ins for the free fields (which no required-when rule
        looks at), and each free field against its own sub-schema: the same verdict as
        validating the whole statement, at a tenth of the cost (``bench_compliance``). Any
        problem is reported by validating the statement itself, so the messages are its own."""
        shape = {k: (_VARYING[k] if k in _VARYING else v) for k, v in body.items()}
        key = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        ok = self._shapes.get(key)
        if ok is None:
            ok = self._validator.is_valid(shape)
            if len(self._shapes) >= 4096:
                self._shapes.clear()
            self._shapes[key] = ok
        if ok and all(v.is_valid(body[k]) for k, v in self._fields.items() if k in body):
            return self._dates(body)
        return self.full_errors(body)

    def full_errors(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """Validate the whole statement against the whole schema (no shape cache)."""
        found: list[tuple[str, str]] = []
        for err in sorted(self._validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            found.append(_explain(err))
        return found + self._dates(body)

    @staticmethod
    def _dates(body: dict[str, Any]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        app = _date(body.get("application_date"))
        content = _date(body.get("content_date"))
        if content is not None and content < date(2000, 1, 1):
            found.append(("content_date", f"must be on or after 2000-01-01, got {body['content_date']}"))
        if app is not None and app < date(2020, 1, 1):
            found.append(("application_date", f"must be on or after 2020-01-01, got {body['application_date']}"))
        for name in _END_DATES:
            end = _date(body.get(name))
            if end is not None and app is not None and end < app:
                found.append((name, f"must be on or after the application_date {body['application_date']}, "
                                    f"got {body[name]}"))
        return found


def _explain(err: jsonschema.ValidationError) -> tuple[str, str]:
    path = ".".join(str(p) for p in err.absolute_path) or "(statement)"
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return missing, "is required" + (f" ({_why_required(err)})" if err.absolute_path == [] else "")
    if err.validator == "anyOf" and not err.absolute_path:
        return "decision_visibility", ("one of decision_visibility, decision_monetary, decision_provision, "
                                       "decision_account is required")
    if err.validator == "additionalProperties":
        return path, err.message.replace("Additional properties are not allowed", "unknown field(s)")
    if err.validator == "enum":
        return path, f"{err.instance!r} is not an allowed value"
    return path, err.message


def _why_required(err: jsonschema.ValidationError) -> str:
    return "the statement's decision_ground or 'other' choice needs it" if err.schema_path and \
        "allOf" in err.schema_path else "mandatory field"


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ItemMeta:
    """What a statement may say about the item: its language, its date and how it was reported."""

    language: str | None
    created: datetime | None
    notice: str | None = None
    #: The category a notice alleged (a policy category; None: the notifier did not say).
    notice_category: str | None = None


class StatementBuilder:
    """Decision (+ item metadata) -> statement body, by the policy's ``dsa:`` mapping."""

    def __init__(self, policy: Policy) -> None:
        dsa = policy.document.dsa
        if dsa is None:
            raise ConfigError(f"policy {policy.id!r} has no 'dsa:' section: add one mapping its categories and "
                              "actions to statements of reasons (docs/compliance.md)")
        self.dsa: Dsa = dsa
        self.policy_id = policy.id
        self.countries = tuple(dsa.countries) if dsa.countries else EEA

    def puid(self, decision_id: str) -> str:
        return f"{self.dsa.puid_prefix}-{decision_id}"

    def restriction(self, decision: Decision) -> DsaRestriction | None:
        return self.dsa.actions.get(decision.action)

    def needs_statement(self, decision: Decision, previous: Decision | None) -> bool:
        if (decision.country or "").upper() not in self.countries or self.restriction(decision) is None:
            return False
        if previous is None:
            return True
        return (previous.action, previous.strike) != (decision.action, decision.strike)

    def build(self, decision: Decision, meta: ItemMeta | None) -> dict[str, Any]:
        restriction = self.restriction(decision)
        if restriction is None:
            raise ValueError(f"decision {decision.decision_id}: action {decision.action.value!r} is not a restriction")
        applied = decision.created_at.astimezone(timezone.utc).date()
        body: dict[str, Any] = {}
        self._restrict(body, restriction, applied)
        if decision.strike and self.dsa.strike is not None:
            self._restrict(body, self.dsa.strike, applied)
        categories = decision.categories
        if not categories and meta is not None and meta.notice_category:
            categories = (meta.notice_category,)  # a verdict on a notice about an item nothing flagged
        mapped = [self._category(c) for c in categories] or [self._category(None)]
        primary = self._grounds(body, mapped)
        body["category"] = primary.category
        if not categories and meta is not None and meta.notice is not None:
            # Art. 16 notice that alleged no type of illegal content, and nothing else named one.
            body["category"] = "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE"
        self._specify(body, mapped)
        body["content_type"] = list(self.dsa.content_types.get(decision.surface, ("CONTENT_TYPE_TEXT",)))
        body["territorial_scope"] = [decision.country.upper()] if decision.country else list(self.countries)
        if meta is not None and meta.language:
            lang = meta.language.split("-")[0].upper()
            if len(lang) == 2:
                body["content_language"] = lang
        created = meta.created if meta is not None and meta.created is not None else decision.created_at
        body["content_date"] = _utc(created).date().isoformat()
        body["application_date"] = applied.isoformat()
        body["decision_facts"] = facts(decision, meta.notice if meta is not None else None)[:5000]
        body["source_type"] = _SOURCES.get(meta.notice or "", "SOURCE_VOLUNTARY") if meta else "SOURCE_VOLUNTARY"
        body["automated_detection"] = "Yes" if decision.automated_detection else "No"
        body["automated_decision"] = _automated(decision)
        body["puid"] = self.puid(decision.decision_id)
        return body

    def build_account(self, record: AccountRecord, struck: Sequence[Decision]) -> dict[str, Any] | None:
        """The statement for an account action (Art. 17 covers suspending or terminating an account),
        or None when the policy's ``dsa.account_actions`` does not map it or no strike was in the EU/EEA."""
        restriction = self.dsa.account_actions.get(record.action or "")
        places = sorted({d.country.upper() for d in struck if d.country and d.country.upper() in self.countries})
        if restriction is None or record.kind == "lift" or not places:
            return None
        applied = _utc(record.created_at).date()
        body: dict[str, Any] = {}
        self._restrict(body, restriction, applied)
        if record.expires_at is not None and "decision_account" in body:
            body["end_date_account_restriction"] = _utc(record.expires_at).date().isoformat()
        counted = Counter(c for d in struck for c in d.categories)
        mapped = [self._category(c) for c, _ in counted.most_common()] or [self._category(None)]
        body["category"] = self._grounds(body, mapped).category
        self._specify(body, mapped)
        body["content_type"] = sorted({t for d in struck for t in self.dsa.content_types.get(
            d.surface, ("CONTENT_TYPE_TEXT",))})
        body["territorial_scope"] = places
        body["content_date"] = max(_utc(d.created_at) for d in struck).date().isoformat()
        body["application_date"] = applied.isoformat()
        verb = "lowered to" if record.kind == "lower" else "imposed:"
        body["decision_facts"] = (
            f"Account action {verb} '{record.action}' under policy {self.policy_id}: {len(struck)} decision(s) "
            f"with a strike ({record.points:g} strike points) reached the policy's threshold for it. "
            + " ".join(f"Decision {d.decision_id}: '{d.action.value}' for {', '.join(d.categories) or 'a rule'}."
                       for d in struck))[:5000]
        body["source_type"] = "SOURCE_VOLUNTARY"
        body["automated_detection"] = "Yes" if any(d.automated_detection for d in struck) else "No"
        # referee computes the action from the strikes by rule: fully automated when every strike was.
        body["automated_decision"] = ("AUTOMATED_DECISION_FULLY" if all(not d.human and d.automated_decision
                                                                       for d in struck)
                                      else "AUTOMATED_DECISION_PARTIALLY")
        body["puid"] = self.puid(record.action_id)
        return body

    def _grounds(self, body: dict[str, Any], mapped: list[DsaCategory]) -> DsaCategory:
        primary = mapped[0]
        if primary.ground == "illegal":
            body["decision_ground"] = "DECISION_GROUND_ILLEGAL_CONTENT"
            if primary.legal_ground:
                body["illegal_content_legal_ground"] = primary.legal_ground
            body["illegal_content_explanation"] = primary.explanation
        else:
            body["decision_ground"] = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
            if primary.terms_ground:
                body["incompatible_content_ground"] = primary.terms_ground
            body["incompatible_content_explanation"] = primary.explanation
            if any(m.ground == "illegal" for m in mapped[1:]):
                body["incompatible_content_illegal"] = "Yes"
        url = primary.reference_url or self.dsa.reference_url
        if url:
            body["decision_ground_reference_url"] = url
        return primary

    @staticmethod
    def _specify(body: dict[str, Any], mapped: list[DsaCategory]) -> None:
        primary = body["category"]
        more = sorted({m.category for m in mapped} - {primary}) if len(mapped) > 1 else []
        if more:
            body["category_addition"] = more
        keywords = sorted({k for m in mapped for k in m.keywords})
        if keywords:
            body["category_specification"] = keywords

    def _category(self, name: str | None) -> DsaCategory:
        spec = self.dsa.categories.get(name or "") or self.dsa.default_category
        if spec is None:
            raise ConfigError(f"dsa.categories has no entry for category {name!r} and there is no "
                              "dsa.default_category: add one of them to the policy")
        return spec

    @staticmethod
    def _restrict(body: dict[str, Any], r: DsaRestriction, applied: date) -> None:
        end = (applied + timedelta(days=r.duration_days)).isoformat() if r.duration_days else None
        if r.visibility:
            body["decision_visibility"] = sorted(set(body.get("decision_visibility", ())) | set(r.visibility))
            if r.visibility_other:
                body["decision_visibility_other"] = r.visibility_other
            if end:
                body["end_date_visibility_restriction"] = end
        for key, value, end_key in (("decision_monetary", r.monetary, "end_date_monetary_restriction"),
                                    ("decision_provision", r.provision, "end_date_service_restriction"),
                                    ("decision_account", r.account, "end_date_account_restriction")):
            if value:
                body[key] = value
                if end:
                    body[end_key] = end


def _automated(d: Decision) -> str:
    if not d.human and d.automated_decision:
        return "AUTOMATED_DECISION_FULLY"
    if d.automated_detection:
        return "AUTOMATED_DECISION_PARTIALLY"
    return "AUTOMATED_DECISION_NOT_AUTOMATED"


_NOTICE_FACTS = {"article_16": "The content was reported by a notice under Article 16 DSA.",
                 "trusted_flagger": "The content was reported by a trusted flagger (Article 22 DSA).",
                 "other": "The content was reported by a notification other than an Article 16 notice."}


def facts(d: Decision, notice: str | None = None) -> str:
    """The facts and circumstances, from the decision's structured reasons only (no user content)."""
    who = "A human reviewer" if d.human else "referee's automated moderation"
    lines = [f"{who} decided '{d.action.value}' under policy {d.policy_id} version {d.policy_version}."]
    if notice in _NOTICE_FACTS:
        lines.append(_NOTICE_FACTS[notice])
    for r in d.reasons:
        if r.kind == "threshold":
            best = max((s.score for s in r.signals), default=None)
            scored = f" scored {best:.2f}" if best is not None else ""
            at = f" at or above the threshold {r.threshold:g}" if r.threshold is not None else ""
            lines.append(f"Rule {r.rule_id}: category {r.category}{scored}{at}.")
        elif r.kind == "on_error":
            lines.append(f"Rule {r.rule_id}: a detector it depends on failed; the rule's on_error action applied.")
        elif r.kind == "account":
            lines.append("The author's account was under an account action for repeated violations; the "
                         f"policy's action for such accounts' content applied ({r.action.value}).")
        else:
            lines.append(f"Rule {r.rule_id}: parts no configured detector reads were held ({len(r.parts)}).")
    if d.human and d.supersedes:
        lines.append(f"This decision replaces the earlier decision {d.supersedes} after review.")
    return " ".join(lines)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# -- the log -> statements ---------------------------------------------------------
@dataclass
class ExportResult:
    written: int = 0
    batches: int = 0
    considered: int = 0
    invalid: list[StatementError] = field(default_factory=list)


class Statements:
    """Statements of reasons for the records of one SQL store's log, in seq order."""

    def __init__(self, db: Database, log: Any, policy: Policy, validator: StatementValidator | None = None) -> None:
        self._db = db
        self._log = log
        self.builder = StatementBuilder(policy)
        self.validator = validator or StatementValidator()

    def iter(self, since: datetime | None = None, after_seq: int = 0,
             page: int = 1000) -> Iterator[Statement | StatementError]:
        """Each statement (valid) or its first problems (StatementError): the decision log's in seq
        order, then the account actions' (their ``seq`` is 0: they are not log records)."""
        buffer: list[Record] = []
        for record in self._log.records(after_seq=after_seq):
            if since is not None and _utc(record.decision.created_at) < _utc(since):
                continue
            buffer.append(record)
            if len(buffer) >= page:
                yield from self._page(buffer)
                buffer = []
        if buffer:
            yield from self._page(buffer)
        yield from self.account_statements(since)

    def account_statements(self, since: datetime | None = None) -> Iterator[Statement | StatementError]:
        """Statements for the account actions (``account_actions``) the policy's ``dsa.account_actions`` maps."""
        if not self.builder.dsa.account_actions:
            return
        q = select(account_actions).order_by(account_actions.c.seq)
        with self._db.read() as conn:
            records = [_account_record(r) for r in conn.execute(q)]
        for rec in records:
            if since is not None and _utc(rec.created_at) < _utc(since):
                continue
            struck = list(self._log.get_many(list(rec.decision_ids)).values())
            yield from self._checked(self.builder.puid(rec.action_id), rec.action_id, 0,
                                     partial(self.builder.build_account, rec, struck))

    def _page(self, records: Sequence[Record]) -> Iterator[Statement | StatementError]:
        wanted = [r for r in records if self.builder.restriction(r.decision) is not None]
        if not wanted:
            return
        parents = self._log.get_many([r.decision.supersedes for r in wanted if r.decision.supersedes])
        metas = self._metas(wanted)
        reported = self._notices(sorted({r.decision.item_id for r in wanted}))
        for record in wanted:
            d = record.decision
            if not self.builder.needs_statement(d, parents.get(d.supersedes) if d.supersedes else None):
                continue
            puid = self.builder.puid(d.decision_id)
            meta = metas.get((d.item_id, d.content_hash))
            notice = _notice_before(reported.get(d.item_id, ()), _utc(d.created_at).timestamp())
            if notice is not None:
                meta = ItemMeta(language=meta.language if meta else None, created=meta.created if meta else None,
                                notice=notice[1], notice_category=notice[2])
            yield from self._checked(puid, d.decision_id, record.seq, partial(self.builder.build, d, meta))

    def _checked(self, puid: str, decision_id: str, seq: int, build: Callable[[], dict[str, Any] | None]
                 ) -> Iterator[Statement | StatementError]:
        """The statement ``build`` makes, or every reason it cannot be sent: a decision and an account
        action are held to the same mapping and schema. ``build`` returning None means no statement is due."""
        try:
            body = build()
        except ConfigError as exc:
            yield StatementError(puid=puid, decision_id=decision_id, field="category", reason=str(exc))
            return
        if body is None:
            return
        problems = self.validator.errors(body)
        if problems:
            for name, reason in problems:
                yield StatementError(puid=puid, decision_id=decision_id, field=name, reason=reason)
            return
        yield Statement(puid=puid, decision_id=decision_id, seq=seq, body=body)

    def _notices(self, item_ids: list[str]) -> dict[str, list[tuple[float, str, str | None]]]:
        """Item -> its notices (received at, 'trusted_flagger' or 'article_16', alleged category)."""
        out: dict[str, list[tuple[float, str, str | None]]] = {}
        with self._db.read() as conn:
            for i in range(0, len(item_ids), 500):
                q = select(notices.c.item_id, notices.c.received_at, notices.c.trusted_flagger,
                           notices.c.category).where(notices.c.item_id.in_(item_ids[i:i + 500]))
                for r in conn.execute(q):
                    out.setdefault(r.item_id, []).append(
                        (r.received_at, "trusted_flagger" if r.trusted_flagger else "article_16", r.category))
        return out

    def _metas(self, records: Sequence[Record]) -> dict[tuple[str, str], ItemMeta]:
        ids = sorted({r.decision.item_id for r in records})
        with self._db.read() as conn:
            rows = conn.execute(_ITEMS, {"ids": ids}).all()
        out: dict[tuple[str, str], ItemMeta] = {}
        for r in rows:
            context = r.context if isinstance(r.context, dict) else json.loads(r.context or "{}")
            notice = context.get(NOTICE_KEY)
            out[(r.item_id, r.content_hash)] = ItemMeta(language=r.language, created=r.created_at or r.first_seen_at,
                                                       notice=notice if isinstance(notice, str) else None)
        return out


def _notice_before(found: Sequence[tuple[float, str, str | None]], at: float) -> tuple[float, str, str | None] | None:
    """The notice a decision made at ``at`` answers: one received before it, a trusted flagger's first."""
    before = [n for n in found if n[0] <= at]
    if not before:
        return None
    return min(before, key=lambda n: (n[1] != "trusted_flagger", n[0]))


def batches(statements: Iterable[Statement], size: int = BATCH) -> Iterator[list[Statement]]:
    if not 1 <= size <= BATCH:
        raise ValueError(f"a batch holds 1 to {BATCH} statements (the API's limit), got {size}")
    batch: list[Statement] = []
    for s in statements:
        batch.append(s)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def export(source: Statements, out: Path, since: datetime | None = None, size: int = BATCH) -> ExportResult:
    """Write the valid statements as JSON lines, one ``{"statements": [...]}`` batch (at most 100)
    per line, each line a body for the API's multiple-statements endpoint. Invalid ones are
    returned in ``invalid`` and not written."""
    result = ExportResult()

    def valid() -> Iterator[Statement]:
        for s in source.iter(since=since):
            if isinstance(s, StatementError):
                result.invalid.append(s)
            else:
                yield s

    with out.open("w", encoding="utf-8") as f:
        for batch in batches(valid(), size):
            f.write(json.dumps({"statements": [s.body for s in batch]}, separators=(",", ":"),
                               ensure_ascii=False) + "\n")
            result.written += len(batch)
            result.batches += 1
    return result


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """The statement bodies of an export file, in order."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield from json.loads(line)["statements"]


__all__ = ["BATCH", "EEA", "EU", "NOTICE_KEY", "ExportResult", "ItemMeta", "Statement", "StatementBuilder",
           "StatementError", "StatementValidator", "Statements", "batches", "export", "facts", "load_schema",
           "read_export"]

