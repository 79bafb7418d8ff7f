"""Validation: a Great Expectations suite run on every snapshot before it is used for training.

Each example becomes one row of a pandas dataframe with derived columns (roles, prompt, response,
tokens, tags, content hash, leaks_into_eval, card-number flags). An expectation suite built in
code runs on it in an ephemeral, offline Great Expectations context. Critical expectations block
the snapshot unless a lead overrides; warnings (personal data) are reported and never block.
Every report entry names the failing example ids, so a lead can act on it.

great_expectations, pandas and transformers are imported inside the functions that need them:
they take seconds to import and `goldsmith --help` must stay fast.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from curation.errors import InvalidInput
from curation.examples.personal_data import EMAIL_REGEX, PHONE_REGEX, card_number
from curation.store import Store
from schemas import (
    DEFAULT_MAX_TOKENS,
    TAG_KEYS,
    ExpectationResult,
    FailingExample,
    Message,
    Taxonomy,
    ValidationReport,
    content_hash,
    estimate_tokens,
    normalise_text,
    similarity_text,
)

# Kept here rather than imported from curation.datasets.snapshots, so snapshots may import validation.
SPLIT_FILES = {"train": "train.jsonl", "eval": "eval.jsonl"}
REPORT_FILE = "validation.json"
MAX_EXAMPLES = 20  # failing examples named per expectation; the count is always complete
ROLES_REGEX = r"^(?:system,)?(?:user,assistant,)*user,assistant$"  # non-capturing: pandas warns about groups
_LOCK = threading.Lock()  # GE keeps a process-wide current context; fast tokenizers are not re-entrant


@dataclass(frozen=True)
class ValidationOptions:
    """What a snapshot is validated against.

    Attributes:
        taxonomy: allowed tag values; a tag the taxonomy leaves free (empty list) is not checked.
        max_tokens: the target model's context limit, per example.
        tokenizer: a local folder or a cached model id for transformers' AutoTokenizer (loaded
            offline); None counts tokens with a conservative estimate, ceil(characters / 3).
        require_tags: when True an example without category, response_type or knowledge_area fails.
        near_duplicate_pairs: `f(train_texts, eval_texts) -> {(train_index, eval_index), ...}`;
            None compares texts as exact duplicates do (schemas.normalise_text: case, spacing
            and punctuation folded).
    """

    taxonomy: Taxonomy | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    tokenizer: str | None = None
    require_tags: bool = False
    near_duplicate_pairs: Callable[[list[str], list[str]], set[tuple[int, int]]] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be a whole number of at least 1, got {self.max_tokens!r}")
        if self.taxonomy is not None and not isinstance(self.taxonomy, Taxonomy):
            raise InvalidInput(f"taxonomy must be a Taxonomy or None, got {type(self.taxonomy).__name__}")
        if self.near_duplicate_pairs is not None and not callable(self.near_duplicate_pairs):
            raise InvalidInput("near_duplicate_pairs must be a function (train_texts, eval_texts) -> set of index pairs")


def exact_normalised_pairs(train_texts: list[str], eval_texts: list[str]) -> set[tuple[int, int]]:
    """The default leak finder: (train index, eval index) pairs whose normalised texts are equal."""
    by_text: dict[str, list[int]] = {}
    for j, text in enumerate(eval_texts):
        by_text.setdefault(normalise_text(text), []).append(j)
    return {(i, j) for i, text in enumerate(train_texts) for j in by_text.get(normalise_text(text), [])}


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be text, got {value!r}")
    return value


def _row(record: Any, split: str, n: int) -> dict[str, Any]:
    """One example as a dataframe row; InvalidInput when the record cannot even be identified."""
    where = f"{split} example {n}"
    if not isinstance(record, dict):
        raise InvalidInput(f"{where} is {type(record).__name__}, not an object with id, messages and tags")
    example_id = record.get("id")
    if isinstance(example_id, bool) or not isinstance(example_id, int):
        raise InvalidInput(f"{where} has id {example_id!r}; every example needs an integer id")
    where = f"{split} example id {example_id}"
    messages = record.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InvalidInput(f"{where}: messages must be a list of {{role, content}} objects, got {messages!r:.80}")
    turns = [  # built unchecked: the suite reports a bad role or an empty turn, it does not refuse them
        Message.model_construct(
            role=_text(m.get("role"), f"{where} message {k} role"),  # type: ignore[arg-type]
            content=_text(m.get("content"), f"{where} message {k} content"),
        )
        for k, m in enumerate(messages, 1)
    ]
    tags = record.get("tags") or {}
    if not isinstance(tags, dict):
        raise InvalidInput(f"{where}: tags must be an object with category, response_type, knowledge_area, got {tags!r:.80}")
    row: dict[str, Any] = {
        "id": example_id,
        "split": split,
        "turns": turns,
        "n_messages": len(turns),
        "roles": ",".join(m.role for m in turns),
        # stripped, so a blank turn counts as empty, as the store's own check does
        "prompt": next((m.content.strip() for m in turns if m.role == "user"), None),
        "response": next((m.content.strip() for m in reversed(turns) if m.role == "assistant"), None),
        "content_hash": content_hash(turns),
        "text": "\n".join(m.content for m in turns),
        "similarity_text": similarity_text(turns),
    }
    for key in TAG_KEYS:
        row[key] = _text(tags.get(key), f"{where} tag {key}").strip() or None
    return row


@lru_cache(maxsize=4)
def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidInput(
            f"could not load the tokenizer {name!r} offline ({reason}); give a local folder holding "
            "tokenizer.json/tokenizer_config.json or a model id already in the Hugging Face cache"
        ) from None


def _count_tokens(rows: list[dict[str, Any]], tokenizer: str | None) -> str:
    """Fill row["tokens"]; return how they were counted, for the report."""
    if tokenizer is None:
        for row in rows:
            row["tokens"] = estimate_tokens([m.content for m in row["turns"]])
        return "an estimate of one token per 3 characters (no tokenizer given)"
    tok = _load_tokenizer(str(tokenizer))
    templated, joined = [], []
    for row in rows:
        if getattr(tok, "chat_template", None):
            try:
                chat = [{"role": m.role, "content": m.content} for m in row["turns"]]
                templated.append((row, tok.apply_chat_template(chat, tokenize=False)))
                continue
            except Exception:  # a template may refuse malformed turns; roles_well_formed reports those
                pass
        joined.append((row, row["text"]))
    for batch, special in ((templated, False), (joined, True)):
        if batch:
            ids = tok([text for _, text in batch], add_special_tokens=special, verbose=False)["input_ids"]
            for (row, _), row_ids in zip(batch, ids, strict=True):
                row["tokens"] = len(row_ids)
    how = "its chat template" if getattr(tok, "chat_template", None) else "texts joined, it has no chat template"
    return f"the {tokenizer} tokenizer ({how})"


def _mark_leaks(train: list[dict], eval_rows: list[dict], finder: Callable | None) -> None:
    """Set row["leaks_into_eval"] and row["leak_partners"] (ids in the other split) on every row."""
    for row in train + eval_rows:
        row["leaks_into_eval"], row["leak_partners"] = False, []
    pairs = (finder or exact_normalised_pairs)([r["similarity_text"] for r in train], [r["similarity_text"] for r in eval_rows])
    for pair in sorted(pairs or ()):
        i, j = pair
        if not (0 <= i < len(train) and 0 <= j < len(eval_rows)):
            raise InvalidInput(
                f"near_duplicate_pairs returned {pair!r}, outside {len(train)} train and {len(eval_rows)} eval texts"
            )
        for row, other in ((train[i], eval_rows[j]), (eval_rows[j], train[i])):
            row["leaks_into_eval"] = True
            row["leak_partners"].append(other["id"])


# What each expectation means and how to fix a failure, in words a lead reads in the report.
DESCRIPTIONS = {
    "messages_not_empty": "Every example needs a conversation; write one or archive the listed examples, then cut a snapshot.",
    "turn_present": "Every example needs a {field} ({turn}); write it or archive the listed examples, then cut a new snapshot.",
    "turn_not_empty": "A {field} ({turn}) must not be blank; write it or archive the listed examples, then cut a new snapshot.",
    "roles_well_formed": "Turns must be an optional system prompt, then user and assistant alternating, ending with the "
    "assistant; fix the role order of the listed examples (value: their roles).",
    "tokens_within_limit": "Each example must fit the target model's {max_tokens} tokens (counted with {method}); shorten or "
    "split the listed examples (value: their token count), or raise max_tokens if the model allows.",
    "tag_in_taxonomy": "{key} must be one of the taxonomy's values ({allowed}); retag the listed examples or add the value "
    "to the taxonomy.",
    "tag_present": "Every example needs a {key} tag (tags are required); tag the listed examples.",
    "content_unique": "No two examples may hold the same conversation (same roles and texts); archive all but one of each "
    "group sharing a content hash (value).",
    "no_leak_into_eval": "No train example may duplicate or nearly duplicate an eval example, or evaluation measures memory; "
    "archive one of each pair, or pass each pair (value: the ids it matches in the other split) as a group to "
    "create_snapshot so the split keeps them together.",
    "email": "A {field} should not contain an email address (personal data); replace it with a placeholder like [email].",
    "phone": "A {field} should not contain a personal phone number (toll-free lines are allowed); replace it with [phone].",
    "card": "A {field} should not contain a payment card number (13-19 digits passing the Luhn check); replace it with "
    "[card number].",
}


def _specs(options: ValidationOptions, token_method: str) -> list[dict[str, Any]]:
    """The suite: name, severity, column, GE expectation (ExpectColumn + kind) and kwargs, description, report value."""
    specs: list[dict[str, Any]] = []

    def add(name: str, column: str, kind: str, text: str, value: Callable | None = None, severity: str = "critical", **kw: Any):
        value = value or (lambda row: row[column])
        specs.append(dict(name=name, severity=severity, column=column, kind=kind, kwargs=kw, description=text, value=value))

    d = DESCRIPTIONS
    add("messages_not_empty", "n_messages", "ValuesToBeBetween", d["messages_not_empty"], min_value=1)
    for field, turn in (("prompt", "first user turn"), ("response", "last assistant turn")):
        add(f"{field}_present", field, "ValuesToNotBeNull", d["turn_present"].format(field=field, turn=turn))
        text = d["turn_not_empty"].format(field=field, turn=turn)
        add(f"{field}_not_empty", field, "ValueLengthsToBeBetween", text, min_value=1)
    add("roles_well_formed", "roles", "ValuesToMatchRegex", d["roles_well_formed"], regex=ROLES_REGEX)
    text = d["tokens_within_limit"].format(max_tokens=options.max_tokens, method=token_method)
    add("tokens_within_limit", "tokens", "ValuesToBeBetween", text, max_value=options.max_tokens)
    taxonomy = options.taxonomy or Taxonomy()
    for key, allowed in zip(TAG_KEYS, (taxonomy.categories, taxonomy.response_types, taxonomy.knowledge_areas), strict=True):
        if allowed:
            text = d["tag_in_taxonomy"].format(key=key, allowed=", ".join(allowed))
            add(f"{key}_in_taxonomy", key, "ValuesToBeInSet", text, value_set=list(allowed))
        if options.require_tags:
            add(f"{key}_present", key, "ValuesToNotBeNull", d["tag_present"].format(key=key))
    add("content_unique", "content_hash", "ValuesToBeUnique", d["content_unique"])
    partners = lambda row: row["leak_partners"]  # noqa: E731
    add("no_leak_into_eval", "leaks_into_eval", "ValuesToBeInSet", d["no_leak_into_eval"], partners, value_set=[False])
    for f in ("prompt", "response"):
        email, phone = (lambda row, f=f: _match(EMAIL_REGEX, row[f])), (lambda row, f=f: _match(PHONE_REGEX, row[f]))
        add(f"no_email_in_{f}", f, "ValuesToNotMatchRegex", d["email"].format(field=f), email, "warning", regex=EMAIL_REGEX)
        add(
            f"no_phone_number_in_{f}", f, "ValuesToNotMatchRegex", d["phone"].format(field=f), phone, "warning", regex=PHONE_REGEX
        )
        card = lambda row, f=f: card_number(row[f])  # noqa: E731
        add(
            f"no_card_number_in_{f}",
            f"{f}_card_number",
            "ValuesToBeInSet",
            d["card"].format(field=f),
            card,
            "warning",
            value_set=[False],
        )
    return specs


def _match(regex: str, text: str | None) -> str | None:
    found = re.search(regex, text or "")
    return found.group() if found else None


def _run_suite(rows: list[dict[str, Any]], specs: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Validate the rows with Great Expectations; return results by expectation name and GE's version."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # offline, always
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.data_context.context_factory import set_context
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig

    columns = ["id", "split", "n_messages", "roles", "prompt", "response", "tokens", *TAG_KEYS, "content_hash", "leaks_into_eval"]
    data = {c: [row[c] for row in rows] for c in columns}
    for field in ("prompt", "response"):
        data[f"{field}_card_number"] = [card_number(row[field]) is not None for row in rows]
    frame = pd.DataFrame(data)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    try:
        asset = context.data_sources.add_pandas("goldsmith").add_dataframe_asset("snapshot")
        batch = asset.add_batch_definition_whole_dataframe("all_examples").get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name="goldsmith_snapshot")
        for spec in specs:
            expectation = getattr(gx.expectations, "ExpectColumn" + spec["kind"])
            suite.add_expectation(expectation(column=spec["column"], meta={"name": spec["name"]}, **spec["kwargs"]))
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    finally:
        set_context(None)  # drop the process-wide reference to this context and its dataframe
    # results come back grouped by column, not in suite order: pair them by the name in meta
    return {each.expectation_config.meta["name"]: each for each in result.results}, gx.__version__


def _error(each: Any) -> str | None:
    info = each.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    messages = [str(i.get("exception_message")) for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    return "; ".join(messages)[:300] if messages else None


def _jsonable(value: Any) -> Any:
    return value[:200] + "..." if isinstance(value, str) and len(value) > 200 else value


def validate_records(train: list[dict], eval: list[dict], options: ValidationOptions) -> ValidationReport:
    """Run the expectation suite on a snapshot's train and eval records.

    Args:
        train: the train records (snapshot lines: id, source_id, messages, tags).
        eval: the eval records.
        options: what to validate against.

    Returns:
        The report: success (no critical expectation failed), the names of the failed critical
        expectations and warnings, one result per expectation (naming up to 20 failing examples
        by id and split), counts, Great Expectations' version and the options.

    Raises:
        InvalidInput: a record is not an object, lacks an integer id, or holds non-text messages or
            tags; or the tokenizer cannot be loaded offline.
    """
    train_rows = [_row(r, "train", n) for n, r in enumerate(train, 1)]
    eval_rows = [_row(r, "eval", n) for n, r in enumerate(eval, 1)]
    rows = train_rows + eval_rows
    _mark_leaks(train_rows, eval_rows, options.near_duplicate_pairs)
    with _LOCK:
        token_method = _count_tokens(rows, options.tokenizer)
        specs = _specs(options, token_method)
        results, version = _run_suite(rows, specs)
    entries = [_result(spec, results.get(spec["name"]), rows) for spec in specs]
    failed = [e for e in entries if not e.success]
    return ValidationReport(
        success=not any(e.severity == "critical" for e in failed),
        critical_failures=[e.name for e in failed if e.severity == "critical"],
        warnings=[e.name for e in failed if e.severity == "warning"],
        expectations=entries,
        counts={"train": len(train_rows), "eval": len(eval_rows)},
        great_expectations_version=version,
        options={
            "taxonomy": options.taxonomy.model_dump(mode="json") if options.taxonomy else None,
            "max_tokens": options.max_tokens,
            "tokenizer": options.tokenizer,
            "require_tags": options.require_tags,
            "near_duplicate_pairs": _name(options.near_duplicate_pairs or exact_normalised_pairs),
        },
    )


def _result(spec: dict[str, Any], each: Any, rows: list[dict[str, Any]]) -> ExpectationResult:
    """One expectation's outcome as the report shows it (a check that could not run says so)."""
    error = _error(each) if each is not None else "Great Expectations returned no result"
    unexpected = [] if error else (each.result.get("unexpected_index_list") or [])
    return ExpectationResult(
        name=spec["name"],
        severity=spec["severity"],
        success=error is None and bool(each.success),
        column=spec["column"],
        unexpected_count=int(each.result.get("unexpected_count") or 0) if not error else 0,
        unexpected_examples=[
            FailingExample(id=rows[i]["id"], split=rows[i]["split"], value=_jsonable(spec["value"](rows[i])))
            for i in unexpected[:MAX_EXAMPLES]
        ],
        description=spec["description"]
        if not error
        else f"This check could not run ({error}); it is a Goldsmith bug, report it with the snapshot.",
    )


def _name(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', type(function).__name__)}"


def report_json(report: ValidationReport) -> str:
    """validation.json's text: the report, keys sorted, two-space indents."""
    return json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n"


def options_for(store: Store, *, max_tokens: int = DEFAULT_MAX_TOKENS, tokenizer: str | None = None) -> ValidationOptions:
    """The options a snapshot of this store is validated with: its taxonomy, and near-duplicates (MinHash) as leaks."""
    from curation.examples.taxonomy import get_taxonomy
    from curation.similarity.dedup import cross_split_pairs

    return ValidationOptions(
        taxonomy=get_taxonomy(store)[0], max_tokens=max_tokens, tokenizer=tokenizer, near_duplicate_pairs=cross_split_pairs
    )


def read_split(folder: Path, split: str) -> list[dict]:
    """The records of folder/<split>.jsonl; InvalidInput names the file and line of any problem."""
    path = folder / SPLIT_FILES[split]
    if not path.is_file():
        raise InvalidInput(f"{folder} has no {path.name}; a snapshot folder holds train.jsonl and eval.jsonl")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read {path} as UTF-8 text ({error}); restore the snapshot file") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"{path.name} line {n} is not valid JSON ({error.msg}); restore the snapshot file") from None
        if not isinstance(record, dict):
            raise InvalidInput(f"{path.name} line {n} is not a JSON object; each line is one example with id, messages, tags")
        records.append(record)
    return records


def validate_snapshot(folder: Path, options: ValidationOptions) -> ValidationReport:
    """Validate a snapshot folder and write the report to folder/validation.json.

    Args:
        folder: a snapshot folder holding train.jsonl and eval.jsonl.
        options: what to validate against.

    Returns:
        The report, as `validate_records` returns it.

    Raises:
        InvalidInput: the folder is missing, lacks a split file, or holds a malformed line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; give the path of a snapshot folder (it holds train.jsonl and eval.jsonl)")
    report = validate_records(read_split(folder, "train"), read_split(folder, "eval"), options)
    blob = report_json(report)
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=".validation-", delete=False) as handle:
            tmp = Path(handle.name)
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)  # temporary files are private (0600); the report is for the whole team
        os.replace(tmp, folder / REPORT_FILE)  # readers see the old report or the new one, never half of one
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return report
