"""Audience expressions of catalog consumers: grammar, parser, references, validation.

A consumer (campaign, Canvas, segment, content card) carries an ``audience`` document in the
catalog (FORMATS.md section 2). Its grammar, as JSON::

    expr  := null                              everyone (no audience filters)
           | {"all": [expr, ...]}              every child matches; [] matches everyone
           | {"any": [expr, ...]}              some child matches;  [] matches nobody
           | {"not": expr}                     the child does not match
           | {"filter": NAME, PARAM: value...} a leaf filter, see ``FILTERS``

Decisions the format leaves open, fixed here:

* ``{"all": []}`` is everyone and ``{"any": []}`` is nobody: the identity elements of "and" and
  "or", so that adding a child to either never needs a special case.
* A composite node holds exactly one of ``all`` / ``any`` / ``not`` and nothing else; a leaf
  holds ``filter`` and only the parameters its filter declares. Unknown keys are errors: a
  misspelt optional parameter (``conversion_behaviour_index``) would otherwise silently widen
  an audience, and FORMATS.md wants errors, never a wrong audience.
* Nesting is limited to ``MAX_DEPTH`` levels. The parser is iterative, so a document nested a
  million levels deep costs one error, not a ``RecursionError``; trees it returns are at most
  ``MAX_DEPTH`` deep, so the dataclasses' own recursive ``==`` and ``repr`` stay safe.
* Time comparisons (``op`` + ``value``) are required where FORMATS.md lists them and optional,
  but only as a pair, on the ``last_*`` summary filters it lists without parameters (absent,
  the filter means "ever happened").
* Leaf parameters keep their JSON values (timestamps stay strings); ``parse_timestamp`` turns
  one into an aware ``datetime`` for evaluators.

Filter families (DOMAIN.md): ``id`` filters read interaction data of one item and exempt it
from expiry while their consumer is active; ``tag`` filters read interaction data but exempt
nothing; ``summary`` filters read per-user summaries, which expiry never touches.
``never_received`` is a summary filter that still names an item: ``references`` reports it with
``by="summary"`` so catalog validation sees it, but it is no exemption.

Pure Python: no I/O, no Dagster, no database.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

__all__ = [
    "ACTIONS",
    "COMPONENT_TYPES",
    "COUNT_OPS",
    "DAYS_OPS",
    "FILTERS",
    "MAX_DEPTH",
    "TIMESTAMP_OPS",
    "TIME_OPS",
    "All",
    "Any",
    "AudienceError",
    "Expr",
    "FilterReference",
    "FilterSpec",
    "ItemInfo",
    "LEGACY_POLICY",
    "Leaf",
    "Not",
    "Target",
    "check_audience",
    "collect_errors",
    "components_of",
    "iter_leaves",
    "parse_audience",
    "parse_timestamp",
    "references",
    "to_document",
    "validate_references",
    "walk",
]

Family = t.Literal["id", "tag", "summary"]
ItemType = t.Literal["campaign", "canvas"]
ComponentType = t.Literal["variant", "canvas_variation", "step", "step_variant"]
ValueKind = t.Literal["time", "count"]
ReferenceKind = t.Literal["id", "tag", "summary"]

MAX_DEPTH: t.Final = 64
ROOT_PATH: t.Final = "audience"
LEGACY_POLICY: t.Final = "interaction data deleted under the pre-2024 retention policy"

ACTIONS: t.Final = ("clicked", "opened", "any")
TIMESTAMP_OPS: t.Final = ("before", "after")
DAYS_OPS: t.Final = ("more_than_days_ago", "less_than_days_ago")
TIME_OPS: t.Final = TIMESTAMP_OPS + DAYS_OPS
COUNT_OPS: t.Final = ("eq", "gt", "lt")
# What an item's components are, as the catalog's item_components table names them, and how
# an error calls them.
COMPONENT_TYPES: t.Final[Mapping[ComponentType, str]] = MappingProxyType(
    {
        "variant": "a message variant",
        "canvas_variation": "a variation",
        "step": "a step",
        "step_variant": "a step's message variant",
    }
)

_COMPOSITE_KEYS: t.Final = ("all", "any", "not")
# Parameters that must hold a non-empty string; IDs and tags are compared verbatim, so an
# empty one can only ever match nothing.
_STRING_PARAMS: t.Final = frozenset(
    {
        "campaign_id",
        "canvas_id",
        "variant_id",
        "step_id",
        "variation_id",
        "flag_id",
        "tag",
        "alias",
        "category",
    }
)


# --------------------------------------------------------------------------------------------
# Errors


class AudienceError(ValueError):
    """A problem with one consumer's audience, located by filter and path."""

    def __init__(self, consumer_id: str, filter_name: str | None, path: str, message: str) -> None:
        self.consumer_id = consumer_id
        self.filter_name = filter_name
        self.path = path
        self.message = message
        where = f"consumer {consumer_id}"
        if filter_name is not None:
            where += f", filter {filter_name}"
        super().__init__(f"{where} at {path}: {message}")

    # Exceptions with a custom __init__ do not unpickle by default; Dagster ships errors
    # between processes.
    def __reduce__(self) -> tuple[t.Any, ...]:
        return (type(self), (self.consumer_id, self.filter_name, self.path, self.message))

    def to_dict(self) -> dict[str, str | None]:
        return {
            "consumer_id": self.consumer_id,
            "filter": self.filter_name,
            "path": self.path,
            "message": self.message,
        }


# --------------------------------------------------------------------------------------------
# Filter registry


@dataclass(frozen=True)
class Target:
    """Where a filter's parameters name an item (and optionally one of its components)."""

    item_type: ItemType
    item_param: str
    component_param: str | None = None
    # The one type of component ``component_param`` names: events carry a step ID, a Canvas
    # variation ID and a message variation ID in separate fields.
    component_type: ComponentType | None = None


@dataclass(frozen=True)
class FilterSpec:
    """What a leaf filter accepts and what it means for the lifecycle."""

    name: str
    family: Family
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    # Several targets mean "exactly one of these parameter sets" (never_received).
    targets: tuple[Target, ...] = ()
    # Allowed values of enumerated parameters; ``op`` is derived from ``value_kind``.
    enums: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    value_kind: ValueKind | None = None
    # Optional parameters that make sense only together (op + value on last_* summaries).
    paired: tuple[str, ...] = ()

    @property
    def params(self) -> tuple[str, ...]:
        return self.required + self.optional

    @property
    def item_type(self) -> ItemType | None:
        return self.targets[0].item_type if len(self.targets) == 1 else None

    @property
    def item_param(self) -> str | None:
        return self.targets[0].item_param if len(self.targets) == 1 else None

    @property
    def component_param(self) -> str | None:
        return self.targets[0].component_param if len(self.targets) == 1 else None

    @property
    def exempts(self) -> bool:
        return self.family == "id"

    @property
    def reads_interaction_data(self) -> bool:
        return self.family in ("id", "tag")

    def allowed_values(self, param: str) -> tuple[str, ...] | None:
        if param == "op":
            if self.value_kind == "time":
                return TIME_OPS
            if self.value_kind == "count":
                return COUNT_OPS
        return self.enums.get(param)

    def target_of(self, params: Mapping[str, t.Any]) -> Target | None:
        """The target whose item parameter is present in ``params``."""
        for target in self.targets:
            if target.item_param in params:
                return target
        return None


def _spec(
    name: str,
    family: Family,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    *,
    target: Target | None = None,
    value_kind: ValueKind | None = None,
) -> FilterSpec:
    enums = {"action": ACTIONS} if "action" in required + optional else {}
    paired = ("op", "value") if value_kind and "op" in optional else ()
    return FilterSpec(
        name=name,
        family=family,
        required=required,
        optional=optional,
        targets=(target,) if target else (),
        enums=MappingProxyType(enums),
        value_kind=value_kind,
        paired=paired,
    )


_CMP = Target("campaign", "campaign_id")
_CNV = Target("canvas", "canvas_id")
_CNV_STEP = Target("canvas", "canvas_id", "step_id", "step")
_TIME = ("op", "value")

_SPECS: tuple[FilterSpec, ...] = (
    # By ID: exempt their target while the consumer is active.
    _spec("received_campaign", "id", ("campaign_id",), target=_CMP),
    _spec(
        "received_campaign_variant",
        "id",
        ("campaign_id", "variant_id"),
        target=Target("campaign", "campaign_id", "variant_id", "variant"),
    ),
    _spec("clicked_opened_campaign", "id", ("campaign_id", "action"), target=_CMP),
    _spec("clicked_alias_in_campaign", "id", ("campaign_id", "alias"), target=_CMP),
    _spec(
        "converted_from_campaign",
        "id",
        ("campaign_id",),
        ("conversion_behavior_index",),
        target=_CMP,
    ),
    _spec("in_campaign_control_group", "id", ("campaign_id",), target=_CMP),
    _spec("last_received_campaign", "id", ("campaign_id", *_TIME), target=_CMP, value_kind="time"),
    _spec("received_canvas_step", "id", ("canvas_id", "step_id"), target=_CNV_STEP),
    _spec("clicked_opened_step", "id", ("canvas_id", "step_id", "action"), target=_CNV_STEP),
    _spec(
        "clicked_alias_in_canvas_step", "id", ("canvas_id", "step_id", "alias"), target=_CNV_STEP
    ),
    _spec(
        "converted_from_canvas",
        "id",
        ("canvas_id",),
        ("conversion_behavior_index",),
        target=_CNV,
    ),
    _spec("in_canvas_control_group", "id", ("canvas_id",), target=_CNV),
    _spec(
        "entered_canvas_variation",
        "id",
        ("canvas_id", "variation_id"),
        target=Target("canvas", "canvas_id", "variation_id", "canvas_variation"),
    ),
    _spec(
        "last_received_canvas_step",
        "id",
        ("canvas_id", "step_id", *_TIME),
        target=_CNV_STEP,
        value_kind="time",
    ),
    # By tag: read interaction data, exempt nothing.
    _spec("received_with_tag", "tag", ("tag",)),
    _spec("clicked_opened_with_tag", "tag", ("tag", "action")),
    _spec("last_received_with_tag", "tag", ("tag", *_TIME), value_kind="time"),
    # Per-user summaries: not interaction data.
    _spec("clicked_alias_in_any", "summary", ("alias",)),
    _spec("hard_bounced", "summary"),
    _spec("marked_spam", "summary"),
    _spec("invalid_phone_number", "summary"),
    FilterSpec(
        name="never_received",
        family="summary",
        optional=("campaign_id", "canvas_id", "step_id"),
        targets=(_CMP, _CNV_STEP),
    ),
    _spec("feature_flag", "summary", ("flag_id",)),
    *(
        _spec(name, "summary", (), _TIME, value_kind="time")
        for name in (
            "last_engaged",
            "last_enrolled_any_control_group",
            "last_in_app_impression",
            "last_received_any",
            "last_received_email",
            "last_received_push",
            "last_received_sms",
            "last_received_webhook",
            "last_received_whatsapp",
        )
    ),
    _spec("last_sms_inbound_keyword_category", "summary", ("category", *_TIME), value_kind="time"),
    _spec("last_viewed_news_feed", "summary", (), _TIME, value_kind="time"),
    _spec("news_feed_view_count", "summary", _TIME, value_kind="count"),
)

FILTERS: t.Final[Mapping[str, FilterSpec]] = MappingProxyType({s.name: s for s in _SPECS})


# --------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True)
class All:
    """Every child matches; no children matches everyone."""

    children: tuple[Expr, ...]
    path: str = field(default=ROOT_PATH, compare=False)


@dataclass(frozen=True)
class Any:
    """At least one child matches; no children matches nobody."""

    children: tuple[Expr, ...]
    path: str = field(default=ROOT_PATH, compare=False)


@dataclass(frozen=True)
class Not:
    child: Expr
    path: str = field(default=ROOT_PATH, compare=False)


@dataclass(frozen=True)
class Leaf:
    filter: str
    # Read-only view of the JSON parameters, without the ``filter`` key.
    params: Mapping[str, t.Any] = field(hash=False)
    path: str = ROOT_PATH

    @property
    def spec(self) -> FilterSpec:
        return FILTERS[self.filter]


Expr = All | Any | Not | Leaf


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node, pre-order in document order; iterative so any depth is safe."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, All | Any):
            stack.extend(reversed(node.children))
        elif isinstance(node, Not):
            stack.append(node.child)


def iter_leaves(expr: Expr) -> Iterator[Leaf]:
    return (node for node in walk(expr) if isinstance(node, Leaf))


def to_document(expr: Expr) -> dict[str, t.Any]:
    """The JSON document of an expression; ``parse_audience`` of it gives ``expr`` back."""
    if isinstance(expr, Leaf):
        return {"filter": expr.filter, **expr.params}
    if isinstance(expr, Not):
        return {"not": to_document(expr.child)}
    key = "all" if isinstance(expr, All) else "any"
    return {key: [to_document(child) for child in expr.children]}


# --------------------------------------------------------------------------------------------
# Parsing


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 timestamp with a zone (``Z`` or an offset) as an aware datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed


def _show(value: t.Any) -> str:
    # Messages end up in logs and UI: keep a huge bad value from flooding them.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: t.Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _is_number(value: t.Any) -> bool:
    # bool is an int subclass, but true/false as a count of days is a mistake, not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_params(spec: FilterSpec, params: Mapping[str, t.Any]) -> list[str]:
    """Every problem with one leaf's parameters, as messages."""
    problems: list[str] = []
    allowed = set(spec.params)
    for key in params:
        if key not in allowed:
            takes = ", ".join(spec.params) if spec.params else "no parameters"
            problems.append(f"unknown parameter {key!r} ({spec.name} takes {takes})")
    for key in spec.required:
        if key not in params:
            problems.append(f"missing parameter {key}")
    if spec.paired:
        present = [key for key in spec.paired if key in params]
        if present and len(present) != len(spec.paired):
            for key in spec.paired:
                if key not in params:
                    problems.append(
                        f"missing parameter {key} (" + " and ".join(spec.paired) + " go together)"
                    )
    if len(spec.targets) > 1:
        problems.extend(_check_alternatives(spec, params))

    for key, value in params.items():
        if key not in allowed:
            continue
        if key in _STRING_PARAMS:
            if not isinstance(value, str) or not value.strip():
                problems.append(f"parameter {key} must be a non-empty string, got {_show(value)}")
        elif key == "conversion_behavior_index":
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                problems.append(
                    f"parameter {key} must be a non-negative integer, got {_show(value)}"
                )
        elif key == "value":
            problem = _check_value(spec, params.get("op"), value)
            if problem:
                problems.append(problem)
        else:
            choices = spec.allowed_values(key)
            if choices is not None and (not isinstance(value, str) or value not in choices):
                problems.append(
                    f"parameter {key} must be one of {', '.join(choices)}, got {_show(value)}"
                )
    return problems


def _check_alternatives(spec: FilterSpec, params: Mapping[str, t.Any]) -> list[str]:
    groups = [
        (target.item_param,) + ((target.component_param,) if target.component_param else ())
        for target in spec.targets
    ]
    wording = " or ".join(" + ".join(group) for group in groups)
    touched = [group for group in groups if any(key in params for key in group)]
    if not touched:
        return [f"missing parameter: {spec.name} takes {wording}"]
    if len(touched) > 1:
        return [f"{spec.name} takes either {wording}, not parameters of both"]
    return [f"missing parameter {key}" for key in touched[0] if key not in params]


def _check_value(spec: FilterSpec, op: t.Any, value: t.Any) -> str | None:
    if spec.value_kind == "count":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return None
        return f"parameter value must be a non-negative integer count, got {_show(value)}"
    if op in TIMESTAMP_OPS:
        if isinstance(value, str):
            try:
                parse_timestamp(value)
                return None
            except ValueError:
                pass
        return (
            f"parameter value must be an ISO-8601 timestamp with a time zone "
            f"(e.g. 2025-01-31T10:00:00Z) for op {op}, got {_show(value)}"
        )
    if op in DAYS_OPS:
        if _is_number(value) and math.isfinite(value) and value >= 0:
            return None
        return f"parameter value must be a non-negative number of days for op {op}, got " + (
            _show(value)
        )
    # With a bad or missing op the value cannot be judged; the op error says enough.
    return None


@dataclass
class _Pending:
    """A composite node whose children are still being parsed."""

    kind: str
    path: str
    slots: list[Expr | None]
    parent: _Pending | None
    index: int


class _Collector:
    def __init__(self, consumer_id: str, stop_at_first: bool) -> None:
        self.consumer_id = consumer_id
        self.stop_at_first = stop_at_first
        self.errors: list[AudienceError] = []
        self.leaves: list[Leaf] = []  # every filter that parsed, in document order

    def add(self, filter_name: str | None, path: str, message: str) -> None:
        error = AudienceError(self.consumer_id, filter_name, path, message)
        if self.stop_at_first:
            raise error
        self.errors.append(error)


def _parse_leaf(node: Mapping[str, t.Any], path: str, out: _Collector) -> Leaf | None:
    name = node["filter"]
    if not isinstance(name, str) or not name:
        out.add(None, path, f"filter name must be a non-empty string, got {_show(name)}")
        return None
    spec = FILTERS.get(name)
    if spec is None:
        out.add(name, path, f"unknown filter {name!r}")
        return None
    params = {key: value for key, value in node.items() if key != "filter"}
    problems = _check_params(spec, params)
    for problem in problems:
        out.add(name, path, problem)
    if problems:
        return None
    return Leaf(name, MappingProxyType(params), path)


def _run(doc: t.Any, out: _Collector) -> Expr | None:
    if doc is None:
        return All(())
    root = _Pending("root", ROOT_PATH, [None], None, 0)
    pending: list[_Pending] = []
    failed: set[int] = set()  # ids of pendings with a child that failed to parse
    # Explicit stack instead of recursion: depth of the input must not matter.
    stack: list[tuple[t.Any, str, int, _Pending, int]] = [(doc, ROOT_PATH, 1, root, 0)]

    def fail(parent: _Pending) -> None:
        failed.add(id(parent))

    while stack:
        node, path, depth, parent, index = stack.pop()
        if depth > MAX_DEPTH:
            out.add(None, path, f"expression nested deeper than {MAX_DEPTH} levels")
            fail(parent)
            continue
        if not isinstance(node, Mapping):
            out.add(
                None,
                path,
                'expected an object: {"all": [...]}, {"any": [...]}, {"not": ...} or '
                f'{{"filter": ...}}, got {_type_name(node)}',
            )
            fail(parent)
            continue
        kinds = [key for key in (*_COMPOSITE_KEYS, "filter") if key in node]
        if len(kinds) != 1:
            filter_name = node.get("filter") if isinstance(node.get("filter"), str) else None
            if kinds:
                message = "ambiguous node with keys " + " and ".join(map(repr, kinds))
            else:
                keys = ", ".join(repr(key) for key in node) or "none"
                message = f"unknown node shape (keys: {keys}); expected all, any, not or filter"
            out.add(filter_name, path, message)
            fail(parent)
            continue
        kind = kinds[0]
        if kind == "filter":
            leaf = _parse_leaf(node, path, out)
            if leaf is None:
                fail(parent)
            else:
                parent.slots[index] = leaf
                out.leaves.append(leaf)
            continue
        extra = [key for key in node if key != kind]
        if extra:
            out.add(
                None,
                path,
                f"unexpected key {', '.join(map(repr, extra))} next to {kind!r}",
            )
            fail(parent)
            continue
        body = node[kind]
        if kind == "not":
            this = _Pending(kind, path, [None], parent, index)
            pending.append(this)
            stack.append((body, f"{path}.not", depth + 1, this, 0))
            continue
        if not isinstance(body, list | tuple):
            out.add(
                None,
                path,
                f"{kind!r} must hold a list of expressions, got {_type_name(body)}",
            )
            fail(parent)
            continue
        this = _Pending(kind, path, [None] * len(body), parent, index)
        pending.append(this)
        for child_index in reversed(range(len(body))):
            stack.append(
                (body[child_index], f"{path}.{kind}[{child_index}]", depth + 1, this, child_index)
            )

    # Children were created after their parents, so assembling in reverse creation order
    # always finds a node's children complete.
    for this in reversed(pending):
        assert this.parent is not None
        if id(this) in failed:
            fail(this.parent)
            continue
        children = t.cast(list[Expr], this.slots)
        built: Expr
        if this.kind == "not":
            built = Not(children[0], this.path)
        elif this.kind == "all":
            built = All(tuple(children), this.path)
        else:
            built = Any(tuple(children), this.path)
        this.parent.slots[this.index] = built
    if id(root) in failed:
        return None
    return root.slots[0]


def parse_audience(doc: t.Any, *, consumer_id: str) -> Expr:
    """Parse a consumer's ``audience`` document; raise ``AudienceError`` at the first problem.

    ``None`` (no audience) is ``All(())``, which matches everyone.
    """
    expr = _run(doc, _Collector(consumer_id, stop_at_first=True))
    assert expr is not None  # the collector raised otherwise
    return expr


def collect_errors(doc: t.Any, *, consumer_id: str) -> list[AudienceError]:
    """Every problem in a consumer's ``audience`` document, in document order; [] if valid."""
    return check_audience(doc, consumer_id=consumer_id)[0]


def check_audience(doc: t.Any, *, consumer_id: str) -> tuple[list[AudienceError], tuple[Leaf, ...]]:
    """Every problem in the document (as ``collect_errors``) and every filter in it that
    parsed, in document order. A consumer broken in one place still names items by ID in the
    others, and those names exempt the items (rule 3) as if the rest were well formed."""
    out = _Collector(consumer_id, stop_at_first=False)
    _run(doc, out)
    return out.errors, tuple(out.leaves)


# --------------------------------------------------------------------------------------------
# References to catalog items


@dataclass(frozen=True)
class FilterReference:
    """One leaf's reference to catalog items.

    ``by="id"`` exempts ``item_id`` while the consumer is active; ``by="tag"`` reads the data
    of every item with ``tag`` but exempts nothing; ``by="summary"`` (never_received) names an
    item without reading its interaction data, so it exempts nothing either.
    """

    filter: str
    path: str
    by: ReferenceKind
    item_type: ItemType | None
    item_id: str | None
    component_id: str | None
    tag: str | None

    @property
    def exempts(self) -> bool:
        return self.by == "id"


def references(expr: Expr) -> list[FilterReference]:
    """Every reference the expression makes to items, in document order.

    Polarity does not matter: ``not received_campaign X`` still reads X's interaction data.
    """
    found: list[FilterReference] = []
    for leaf in iter_leaves(expr):
        spec = FILTERS.get(leaf.filter)
        if spec is None:
            continue
        if spec.family == "tag":
            tag = leaf.params.get("tag")
            found.append(FilterReference(leaf.filter, leaf.path, "tag", None, None, None, tag))
            continue
        target = spec.target_of(leaf.params)
        if target is None:
            continue
        component = leaf.params.get(target.component_param) if target.component_param else None
        found.append(
            FilterReference(
                filter=leaf.filter,
                path=leaf.path,
                by="id" if spec.family == "id" else "summary",
                item_type=target.item_type,
                item_id=leaf.params.get(target.item_param),
                component_id=component,
                tag=None,
            )
        )
    return found


def components_of(
    doc: Mapping[str, t.Any],
) -> Iterator[tuple[ComponentType, str, t.Any, bool]]:
    """(component_type, id, name, is_control) of what an ID filter may name in a campaign or
    Canvas document: the one enumeration behind the catalog's item_components table and
    ``ItemInfo``, so that validating against either gives the same answer."""
    messages = doc.get("messages")
    for mv_id, message in (messages if isinstance(messages, Mapping) else {}).items():
        message = message if isinstance(message, Mapping) else {}
        yield "variant", str(mv_id), message.get("name"), message.get("type") == "control"
    for variant in doc.get("variants") or ():
        if isinstance(variant, Mapping) and isinstance(variant.get("id"), str):
            is_control = variant.get("type") == "control"
            yield "canvas_variation", variant["id"], variant.get("name"), is_control
    for step in doc.get("steps") or ():
        if not (isinstance(step, Mapping) and isinstance(step.get("id"), str)):
            continue
        yield "step", step["id"], step.get("name"), False
        step_messages = step.get("messages")
        for mv_id, message in (step_messages if isinstance(step_messages, Mapping) else {}).items():
            message = message if isinstance(message, Mapping) else {}
            yield "step_variant", str(mv_id), message.get("name"), message.get("type") == "control"


@dataclass(frozen=True)
class ItemInfo:
    """What reference validation needs to know about one catalog item."""

    item_type: ItemType
    legacy_deleted: bool = False
    # Component IDs by component type (``COMPONENT_TYPES``): a filter's component parameter
    # names one type only.
    components: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    @classmethod
    def from_components(
        cls,
        item_type: ItemType,
        components: Iterable[tuple[str, str]],
        *,
        legacy_deleted: bool = False,
    ) -> ItemInfo:
        """From (component_type, component_id) pairs, as the item_components table holds."""
        grouped: dict[str, set[str]] = {}
        for component_type, component_id in components:
            grouped.setdefault(component_type, set()).add(component_id)
        return cls(
            item_type=item_type,
            legacy_deleted=legacy_deleted,
            components=MappingProxyType({k: frozenset(v) for k, v in grouped.items()}),
        )

    @classmethod
    def from_document(cls, doc: Mapping[str, t.Any]) -> ItemInfo:
        """From a catalog document of a campaign or Canvas (FORMATS.md section 2)."""
        item_type = doc.get("type")
        if item_type not in ("campaign", "canvas"):
            raise ValueError(f"catalog document {doc.get('id')!r} is not a campaign or canvas")
        return cls.from_components(
            t.cast(ItemType, item_type),
            ((kind, component_id) for kind, component_id, _, _ in components_of(doc)),
            legacy_deleted=doc.get("interaction_data_deleted_at") is not None,
        )


def validate_references(
    expr: Expr, *, consumer_id: str, known_items: Mapping[str, ItemInfo]
) -> list[AudienceError]:
    """Errors for references the catalog cannot satisfy, in document order.

    A filter naming an unknown, mistyped or legacy-deleted item would silently select nobody;
    FORMATS.md and DOMAIN.md rule 9 want an error instead.
    """
    errors: list[AudienceError] = []
    for ref in references(expr):
        if ref.item_id is None or ref.item_type is None:
            continue

        def error(message: str, ref: FilterReference = ref) -> None:
            errors.append(AudienceError(consumer_id, ref.filter, ref.path, message))

        info = known_items.get(ref.item_id)
        if info is None:
            error(f"{ref.item_type} ID {ref.item_id} is not in the catalog")
            continue
        if info.item_type != ref.item_type:
            error(
                f"{ref.item_id} is a {info.item_type}, but {ref.filter} takes a {ref.item_type} ID"
            )
            continue
        if info.legacy_deleted:
            error(f"{ref.item_type} {ref.item_id}: {LEGACY_POLICY}; it can never match")
        if ref.component_id is None:
            continue
        target = next(
            target
            for target in FILTERS[ref.filter].targets
            if target.item_type == ref.item_type and target.component_type
        )
        assert target.component_type is not None
        if ref.component_id in info.components.get(target.component_type, ()):
            continue
        item = f"{ref.item_type} {ref.item_id}"
        named = f"{target.component_param} {ref.component_id}"
        # An ID of another component type is still an error: it would select nobody.
        other = next(
            (k for k in COMPONENT_TYPES if ref.component_id in info.components.get(k, ())), None
        )
        if other is None:
            error(f"{named} is not part of {item}")
        else:
            wanted, found = COMPONENT_TYPES[target.component_type], COMPONENT_TYPES[other]
            error(f"{named} is not {wanted} of {item}: it is {found}")
    return errors
