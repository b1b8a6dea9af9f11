"""Read Currents event files (Avro, JSON Lines, Parquet) into validated, typed frames.

Reading is columnar (polars) and validation is vectorised: a record that breaks a rule is
split off with its reason; the file's other records go on. A file that cannot be read at
all is rejected whole. Nothing here touches the hot store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fastavro
import polars as pl
from polars.exceptions import PanicException, PolarsError

from ix_pipeline.ingest.event_types import EVENT_MEANINGS
from ix_pipeline.ingest.quarantine import Rejected

CURRENTS_SUFFIXES = (".avro", ".jsonl", ".parquet")

# The fields we keep, with their storage type. Unknown extra fields are ignored on purpose:
# Currents adds optional fields over time and a new one must never fail a file.
STRING_FIELDS: tuple[str, ...] = (
    "id", "user_id", "external_user_id", "app_group_id",
    "campaign_id", "campaign_name", "message_variation_id", "message_variation_name",
    "canvas_id", "canvas_name", "canvas_variation_id", "canvas_variation_name",
    "canvas_step_id", "canvas_step_name", "canvas_step_message_variation_id",
    "send_id", "dispatch_id", "link_alias", "link_id", "url", "machine_open",
    "conversion_behavior", "abort_type", "bounce_reason", "action", "feature_flag_id_name",
)  # fmt: skip
INT_FIELDS: tuple[str, ...] = ("time", "conversion_behavior_index")
BOOL_FIELDS: tuple[str, ...] = ("is_suspected_bot_click", "in_control_group")
# FORMATS.md section 1: the fields present on every event (`external_user_id` may be null),
# and those one event type requires.
REQUIRED: tuple[str, ...] = ("id", "user_id", "time", "app_group_id")
REQUIRED_ON: dict[str, tuple[str, ...]] = {"users.canvas.Entry": ("in_control_group",)}

# Bounds that catch unit mistakes (milliseconds) and garbage without rejecting real history.
MIN_TIME = 946_684_800  # 2000-01-01T00:00:00Z
MAX_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z
MAX_ID_CHARS = 512
# Storage ranges of the integer fields: a value outside them would become NULL in the cast,
# silently (a conversion index) or under a misleading reason (time "null"), so it is rejected.
INT_RANGES: dict[str, tuple[int, int]] = {
    "time": (-(2**63), 2**63 - 1),
    "conversion_behavior_index": (-(2**31), 2**31 - 1),
}

EVENT_SCHEMA: dict[str, pl.DataType] = {
    **{f: pl.String() for f in STRING_FIELDS},
    "time": pl.Int64(),
    "conversion_behavior_index": pl.Int32(),
    **{f: pl.Boolean() for f in BOOL_FIELDS},
    "event_type": pl.String(),
    "record_index": pl.Int64(),
}

_EVENT_TYPE_DIR = re.compile(r"^event_type=(.+)$")
_AVRO_NAMESPACE_PREFIX = re.compile(r"^dataexport\.[^.]+\.inner\.")


class UnreadableFile(ValueError):
    """The whole file is rejected (corrupt, wrong format, inconsistent event type)."""


def safe_event_id(value: Any) -> str | None:
    """An event id fit for the quarantine log: a string, valid UTF-8, bounded in length.

    The log is a DuckDB table: a lone surrogate would fail the whole batch's insert, and a
    10 MB id would be stored once more in full (the quarantined record keeps a clipped copy).
    """
    if not isinstance(value, str):
        return None
    if len(value) > MAX_ID_CHARS:
        value = f"{value[:MAX_ID_CHARS]}…[{len(value)} chars]"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class ReadResult:
    source: str
    events: pl.DataFrame  # columns of EVENT_SCHEMA, valid records only
    rejected: list[Rejected] = field(default_factory=list)
    records: int = 0


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Every Currents file under the given files or folders, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix in CURRENTS_SUFFIXES
            )
        elif path.suffix in CURRENTS_SUFFIXES:
            yield path


def event_type_from_path(path: Path) -> str | None:
    for part in reversed(path.parts):
        m = _EVENT_TYPE_DIR.match(part)
        if m:
            return m.group(1)
    return None


def _avro_event_type(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    name = schema.get("name", "")
    full = f"{schema['namespace']}.{name}" if schema.get("namespace") else name
    return _AVRO_NAMESPACE_PREFIX.sub("", full) or None


# What polars' Avro reader decodes, as checked with polars 2.1: it panics or answers "not yet
# implemented" on maps, enums (but at the top level), unions of several types, the null type,
# durations and references to named types, and cannot skip such a field either.
_POLARS_AVRO_PRIMITIVES = frozenset(
    {"boolean", "int", "long", "float", "double", "bytes", "string"}
)


def _polars_decodes(avro_type: Any) -> bool:
    if isinstance(avro_type, str):
        return avro_type in _POLARS_AVRO_PRIMITIVES
    if isinstance(avro_type, list):  # a union
        others = [t for t in avro_type if t != "null"]
        return len(avro_type) == 2 and len(others) == 1 and _polars_decodes(others[0])
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "array":
            return _polars_decodes(avro_type.get("items"))
        if kind == "record":
            return all(_polars_decodes(f.get("type")) for f in avro_type.get("fields", ()))
        # A primitive, or a logical type on one (decimal, uuid, timestamp-millis, ...).
        return isinstance(kind, str) and kind in _POLARS_AVRO_PRIMITIVES
    return False


def _read_avro(path: Path, schema: Any) -> pl.DataFrame:
    """All fields with polars, unless a field Currents added since (one we do not store) has
    a type polars cannot decode: then the fields we store with fastavro, which decodes every
    Avro type and skips the others by schema resolution, about ten times slower."""
    fields = schema.get("fields", []) if isinstance(schema, dict) else []
    if all(_polars_decodes(f.get("type")) for f in fields if f.get("name") not in EVENT_SCHEMA):
        return pl.read_avro(path)
    known = {**schema, "fields": [f for f in fields if f.get("name") in EVENT_SCHEMA]}
    with path.open("rb") as f:
        # Records of a record schema are dicts.
        records = cast(list[dict[str, Any]], list(fastavro.reader(f, reader_schema=known)))
    names = [f["name"] for f in known["fields"]]
    return pl.DataFrame({n: [r[n] for r in records] for n in names}, height=len(records))


def read_currents_file(path: Path) -> ReadResult:
    """Read and validate one file; raises UnreadableFile when nothing of it can be trusted."""
    source = str(path)
    if not _utf8(source):
        # Python keeps its bytes as lone surrogates, which no reader or store accepts.
        raise UnreadableFile("the file name is not UTF-8 (rename the file to have it read)")
    try:
        if path.stat().st_size == 0:
            raise UnreadableFile("the file is empty (Currents never writes empty files)")
        path_type = event_type_from_path(path)
        if path.suffix == ".avro":
            try:
                with path.open("rb") as f:
                    schema = fastavro.reader(f).writer_schema
                declared = _avro_event_type(schema)
                raw = _read_avro(path, schema)
            except UnreadableFile:
                raise
            # polars/fastavro raise many types for corrupt input; polars panics on some
            # (a PanicException is not an Exception).
            except (Exception, PanicException) as exc:
                raise UnreadableFile(f"not a readable Avro container file: {exc}") from exc
            if path_type and declared and declared != path_type:
                raise UnreadableFile(
                    f"the records are {declared!r} but the path says event_type={path_type!r}"
                )
            fixed_type = declared or path_type
            if fixed_type is None:
                raise UnreadableFile(
                    "no event type: neither the Avro schema nor the path names one"
                )
            return _validate(
                source, raw.with_columns(pl.lit(fixed_type).alias("event_type")), None, []
            )
        if path.suffix == ".parquet":
            try:
                raw = pl.read_parquet(path)
            except (Exception, PanicException) as exc:
                raise UnreadableFile(f"not a readable Parquet file: {exc}") from exc
            return _validate(source, raw, path_type, [])
        if path.suffix == ".jsonl":
            raw, lines, rejected = _read_jsonl(path)
            return _validate(source, raw, path_type, rejected, lines)
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc}") from exc
    except (PolarsError, PanicException) as exc:
        # Data that no rule above foresaw and polars cannot handle costs its file, not the run.
        raise UnreadableFile(f"cannot be validated: {exc}") from exc
    raise UnreadableFile(f"unsupported file type {path.suffix!r}")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_jsonl(path: Path) -> tuple[pl.DataFrame, pl.Series, list[Rejected]]:
    """Line by line, so one bad line in the middle costs that line only; returns the records,
    the index of each one's line, and the lines rejected."""
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    rejected: list[Rejected] = []
    source = str(path)
    with path.open("rb") as f:
        for index, line in enumerate(f):
            if index == 0 and line.startswith(b"\xef\xbb\xbf"):
                # A UTF-8 byte-order mark (editors, Windows tools) is not part of the record.
                line = line[3:]
            if not line.strip():
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                rejected.append(Rejected(source, index, f"line {index + 1} is not UTF-8: {exc}"))
                continue
            except json.JSONDecodeError as exc:
                text = line[:2000].decode("utf-8", "replace")
                rejected.append(
                    Rejected(
                        source,
                        index,
                        f"line {index + 1} is not JSON: {exc.msg}",
                        record={"line": text},
                    )
                )
                continue
            if not isinstance(obj, dict):
                rejected.append(Rejected(source, index, f"line {index + 1} is not a JSON object"))
                continue
            problem = _json_type_problem(obj)
            if problem:
                rejected.append(
                    Rejected(
                        source, index, problem, event_id=safe_event_id(obj.get("id")), record=obj
                    )
                )
                continue
            lines.append(index)
            rows.append(obj)
    schema = {k: v for k, v in EVENT_SCHEMA.items() if k != "record_index"}
    frame = pl.DataFrame(
        {k: [row.get(k) for row in rows] for k in schema}, schema=schema, strict=False
    )
    return frame, pl.Series(lines, dtype=pl.Int64()), rejected


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    **{f: (str,) for f in STRING_FIELDS},
    **{f: (int,) for f in INT_FIELDS},
    **{f: (bool,) for f in BOOL_FIELDS},
    "event_type": (str,),
}


def _json_type_problem(obj: dict[str, Any]) -> str | None:
    for name, types in _JSON_TYPES.items():
        value = obj.get(name)
        if value is None:
            continue
        # bool is an int in Python; a JSON true is never a valid `time`.
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            return f"field {name} is not {_TYPE_WORD[types[0]]} (found {_json_word(value)})"
        bounds = INT_RANGES.get(name)
        if bounds and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
            return f"field {name} is out of range ({value_range_word(name)} expected)"
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # JSON allows an escaped lone surrogate ("\ud800"); no store can hold it.
                return f"field {name} is not valid Unicode (a lone surrogate escape)"
    return None


def value_range_word(name: str) -> str:
    low, high = INT_RANGES[name]
    return "UNIX seconds" if name == "time" else f"an integer between {low} and {high}"


def _json_word(value: Any) -> str:
    """JSON's own names for a value's type, as the writer of the file knows them."""
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)  # fmt: skip


_TYPE_WORD = {str: "a string", int: "an integer", bool: "a boolean"}


def _column_type_reasons(raw: pl.DataFrame) -> tuple[list[pl.Expr], set[str]]:
    """A wrong column type (an Avro or Parquet schema that disagrees with Currents) rejects
    every record that has a value in that column, naming the field; returns the reasons and
    the names of the wrong columns (never cast: a list or a string cannot become a boolean)."""
    reasons: list[pl.Expr] = []
    wrong: set[str] = set()
    for name, target in EVENT_SCHEMA.items():
        if name == "record_index" or name not in raw.columns:
            continue
        dtype = raw.schema[name]
        if dtype == pl.Null:
            continue
        if isinstance(target, pl.String):
            ok = dtype == pl.String
        elif isinstance(target, pl.Boolean):
            ok = dtype == pl.Boolean
        else:
            ok = dtype.is_integer()
        if not ok:
            wrong.add(name)
            word = (
                "a string"
                if isinstance(target, pl.String)
                else "a boolean"
                if isinstance(target, pl.Boolean)
                else "an integer"
            )
            reasons.append(
                pl.when(pl.col(name).is_not_null()).then(
                    pl.lit(f"field {name} is not {word} (found {dtype})")
                )
            )
    return reasons, wrong


def _validate(
    source: str,
    raw: pl.DataFrame,
    path_type: str | None,
    rejected: list[Rejected],
    record_index: pl.Series | None = None,
) -> ReadResult:
    """`path_type` (from `event_type=` in the path) stands in for records without their own.
    `record_index` numbers the records in their file (by default, their position in `raw`);
    it is never taken from `raw`, where a field of that name is just an unknown field."""
    n_records = raw.height + len(rejected)
    checks_path: pl.Expr | None = None
    # Dictionary-encoded strings (pandas' category, Parquet writers' dictionaries, Avro
    # enums) are strings to Currents; the rules below check plain ones.
    encoded = [n for n, d in raw.schema.items() if isinstance(d, (pl.Categorical, pl.Enum))]
    if encoded:
        raw = raw.with_columns(pl.col(encoded).cast(pl.String()))
    if record_index is None:
        record_index = pl.int_range(raw.height, dtype=pl.Int64(), eager=True)
    if "event_type" not in raw.columns:
        if path_type is None:
            raise UnreadableFile(
                "no event type: records carry no event_type and the path names none"
            )
        raw = raw.with_columns(pl.lit(path_type, pl.String()).alias("event_type"))
    elif path_type is not None and raw.schema["event_type"] == pl.String:
        raw = raw.with_columns(pl.col("event_type").fill_null(path_type))
        # A record that names another type than its folder: one of the two is wrong, and
        # storing it would put the event under a meaning nobody can vouch for.
        checks_path = pl.when(pl.col("event_type") != path_type).then(
            pl.lit("event_type ")
            + pl.col("event_type")
            + pl.lit(f" disagrees with the path's event_type={path_type}")
        )
    # Reasons in priority order; the first that applies is the one recorded.
    checks: list[pl.Expr] = []
    for name in REQUIRED:
        if name not in raw.columns:
            checks.append(pl.lit(f"required field {name} is missing"))
    type_reasons, wrong = _column_type_reasons(raw)
    raw_reason = raw.select(pl.coalesce(type_reasons).alias("r"))["r"] if type_reasons else None
    present = set(raw.columns) - wrong
    typed = raw.select(
        [
            pl.lit(record_index).alias(n)
            if n == "record_index"
            else (pl.col(n).cast(t, strict=False) if n in present else pl.lit(None, t)).alias(n)
            for n, t in EVENT_SCHEMA.items()
        ]
    )
    # An integer the storage type cannot hold becomes NULL in the cast: say so instead.
    range_reasons = [
        pl.when(pl.col(f"_range_{n}")).then(
            pl.lit(f"field {n} is out of range ({value_range_word(n)} expected)")
        )
        for n in INT_RANGES
        if n in present
    ]
    typed = typed.with_columns(
        (raw[n].is_not_null() & typed[n].is_null()).alias(f"_range_{n}")
        for n in INT_RANGES
        if n in present
    )
    if checks_path is not None:
        checks.insert(0, checks_path)
    checks[0:0] = range_reasons
    if raw_reason is not None:
        typed = typed.with_columns(raw_reason.alias("_type_reason"))
        checks.insert(0, pl.col("_type_reason"))
    for name in ("id", "user_id"):
        c = pl.col(name)
        checks.append(
            pl.when(c.is_null() | (c.str.len_chars() == 0)).then(
                pl.lit(f"required field {name} is empty")
            )
        )
        checks.append(
            pl.when(c.str.len_chars() > MAX_ID_CHARS).then(
                pl.lit(f"field {name} is longer than {MAX_ID_CHARS} characters")
            )
        )
    t = pl.col("time")
    checks.append(pl.when(t.is_null()).then(pl.lit("required field time is null")))
    checks.append(
        pl.when((t < MIN_TIME) | (t >= MAX_TIME)).then(
            pl.lit("field time is out of range (UNIX seconds between 2000 and 2100 expected)")
        )
    )
    app = pl.col("app_group_id")
    checks.append(
        pl.when(app.is_null() | (app.str.len_chars() == 0)).then(
            pl.lit("required field app_group_id is empty")
        )
    )
    for event_type, names in REQUIRED_ON.items():
        for name in names:
            checks.append(
                pl.when((pl.col("event_type") == event_type) & pl.col(name).is_null()).then(
                    pl.lit(f"required field {name} is missing or null on {event_type}")
                )
            )
    # A null event type is unknown too (`is_in` alone yields null, which flags nothing).
    known = pl.col("event_type").is_not_null() & pl.col("event_type").is_in(list(EVENT_MEANINGS))
    checks.append(
        pl.when(~known).then(
            pl.lit("unknown event type ") + pl.col("event_type").fill_null("(none)")
        )
    )
    flagged = typed.with_columns(pl.coalesce(checks).alias("_reason")).drop(
        [c for c in typed.columns if c.startswith("_range_") or c == "_type_reason"]
    )
    if flagged["_reason"].null_count() == flagged.height:
        # The usual case: no copy of the file's rows just to drop none of them.
        return ReadResult(source=source, events=flagged.drop("_reason"), rejected=rejected,
                          records=n_records)  # fmt: skip
    # By position: `flagged` has `raw`'s rows in `raw`'s order, and a join on a column could
    # meet one of the same name in the data.
    is_bad = flagged["_reason"].is_not_null()
    bad = flagged.filter(is_bad).select("record_index", "_reason")
    for (idx, reason_text), rec in zip(
        bad.iter_rows(), raw.filter(is_bad).iter_rows(named=True), strict=True
    ):
        rejected.append(
            Rejected(
                source, int(idx), reason_text, event_id=safe_event_id(rec.get("id")), record=rec
            )
        )
    good = flagged.filter(pl.col("_reason").is_null()).drop("_reason")
    return ReadResult(source=source, events=good, rejected=rejected, records=n_records)
