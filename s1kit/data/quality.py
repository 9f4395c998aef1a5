"""Quality filtering by named rules, each a drop reason (s1's rules are the defaults).

    kept, log = quality_filter(rows, rules_from_config({"disable": ["bold_digits"]}))

A :class:`Rule` fires when its predicate returns a truthy value; a string or list it returns is
kept on the drop as evidence (for the regex rules, the matched text). Rules run in order and the
first that fires names the drop reason, so ``missing_fields`` runs first: the others read fields.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from s1kit.data.rows import DropLog, Row, validate_row

Predicate = Callable[[Mapping[str, Any]], Any]

# A teacher call that stopped for these reasons did not produce a usable trace.
FAILED_FINISH_REASONS = frozenset({"length", "error", "content_filter"})


@dataclass(frozen=True)
class Rule:
    """A named drop rule; ``applies_to``/``exempt`` are regexes over ``source`` (case-insensitive)."""

    name: str
    predicate: Predicate
    description: str
    applies_to: str | None = None  # None: every source
    exempt: str | None = None  # sources matching this are never dropped by the rule

    def applies(self, source: str) -> bool:
        if self.applies_to is not None and not _source_matches(self.applies_to, source):
            return False
        return self.exempt is None or not _source_matches(self.exempt, source)

    def check(self, row: Mapping[str, Any]) -> Any:
        """The predicate's evidence when the rule fires on ``row``, else None."""
        if not self.applies(str(row.get("source", ""))):
            return None
        evidence = self.predicate(row)
        return evidence if evidence else None


@functools.lru_cache(maxsize=4096)
def _source_matches(pattern: str, source: str) -> bool:
    # A pool has a few dozen sources: cache the answer instead of searching once per row and rule.
    return re.search(pattern, source, re.IGNORECASE) is not None


def regex_predicate(pattern: str, fields: Sequence[str] = ("question",), flags: int = 0) -> Predicate:
    """A predicate returning the first match of ``pattern`` in any of ``fields`` (or None)."""
    compiled = re.compile(pattern, flags)

    def predicate(row: Mapping[str, Any]) -> str | None:
        for f in fields:
            value = row.get(f)
            match = compiled.search(value) if isinstance(value, str) else None
            if match:
                return match.group(0)
        return None

    return predicate


def _teacher_incorrect(row: Mapping[str, Any]) -> str | None:
    return "teacher_correct=false" if row.get("teacher_correct") is False else None


def _missing_fields(row: Mapping[str, Any]) -> list[str]:
    return validate_row(row)


def _has_teacher_output(row: Mapping[str, Any]) -> bool:
    return "thinking" in row or "attempt" in row


def _empty_teacher_output(row: Mapping[str, Any]) -> list[str]:
    if not _has_teacher_output(row):
        return []
    return [f for f in ("thinking", "attempt") if not (isinstance(row.get(f), str) and row[f].strip())]


def _failed_teacher_output(row: Mapping[str, Any]) -> str | None:
    if not _has_teacher_output(row):
        return None
    meta = row.get("metadata") or {}
    if meta.get("teacher_error"):
        return f"teacher_error: {meta['teacher_error']}"
    if meta.get("finish_reason") in FAILED_FINISH_REASONS:
        return f"finish_reason: {meta['finish_reason']}"
    return None


# Image links: markdown images, <img> tags, image file names. An image URL (AoPS, mathpix) always
# ends in such a name, so it needs no pattern of its own (a URL branch with \S+ doubled the cost).
IMAGE_PATTERN = r"!\[|<img\b|\.(?:png|jpe?g|gif|svg|webp)\b"
# Olympiad dumps number sub-problems "p1. ... p2. ..."; the question is then several problems.
# The look-behind sits after the leading "p" so the regex engine can skip to candidate "p"s.
P_NUMBERING_PATTERN = r"[pP](?<!\S[pP])\d+\.(?!\S)"
# Bolded numbering like "**1.**" or "**Problem 3**": scraped forum formatting.
BOLD_DIGITS_PATTERN = r"\*\*[^*\n]{0,40}?\d[^*\n]{0,40}?\*\*"


def default_rules() -> list[Rule]:
    """s1's quality rules, in the order they are checked."""
    return [
        Rule("missing_fields", _missing_fields, "a required field is missing, empty or of the wrong type"),
        Rule("asymptote", regex_predicate(r"\[asy\]", flags=re.IGNORECASE),
             "the question contains an Asymptote figure ([asy]); AIME keeps them, the figure is in the text",
             exempt=r"aime"),
        Rule("image_link", regex_predicate(IMAGE_PATTERN, flags=re.IGNORECASE),
             "the question links an image the model cannot see"),
        Rule("p_numbering", regex_predicate(P_NUMBERING_PATTERN),
             "the question uses 'p1.'-style numbering (several problems scraped as one)"),
        Rule("bold_digits", regex_predicate(BOLD_DIGITS_PATTERN),
             "the question has bold tokens with digits (**1.**): forum formatting"),
        Rule("empty_teacher_output", _empty_teacher_output,
             "the teacher's thinking or attempt is missing or empty"),
        Rule("failed_teacher_output", _failed_teacher_output,
             "the teacher call failed (metadata.teacher_error, or finish_reason length/error/content_filter)"),
    ]


_USER_RULE_KEYS = {"name", "pattern", "fields", "description", "applies_to", "exempt", "ignore_case"}
_CONFIG_KEYS = {"disable", "rules", "require_teacher_correct"}


def rules_from_config(config: Mapping[str, Any] | None = None) -> list[Rule]:
    """Default rules minus ``config["disable"]`` plus regex rules from ``config["rules"]``.

    ``require_teacher_correct: true`` adds the rule ``teacher_incorrect`` (rows whose
    ``teacher_correct`` is False). A user rule is ``{"name", "pattern", "fields" (default ["question"]), "description",
    "applies_to", "exempt", "ignore_case" (default false)}``; it fires when the pattern matches.
    """
    config = dict(config or {})
    _reject_unknown(config, _CONFIG_KEYS, "quality config")
    rules = default_rules()
    names = {r.name for r in rules}
    disable = set(config.get("disable", []))
    if unknown := disable - names:
        raise ValueError(f"quality config: cannot disable unknown rules {sorted(unknown)}; known: {sorted(names)}")
    rules = [r for r in rules if r.name not in disable]
    if config.get("require_teacher_correct", False):  # s1 kept wrong traces; a correctness filter is opt-in
        rules.append(Rule("teacher_incorrect", _teacher_incorrect,
                          "the teacher's final answer disagrees with the reference answer (teacher_correct false)"))
    for spec in config.get("rules", []):
        rule = _user_rule(spec)
        if rule.name in {r.name for r in rules}:
            raise ValueError(f"quality config: rule name {rule.name!r} is already used")
        rules.append(rule)
    return rules


def _user_rule(spec: Mapping[str, Any]) -> Rule:
    _reject_unknown(spec, _USER_RULE_KEYS, f"quality rule {spec.get('name', '?')!r}")
    for key in ("name", "pattern"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ValueError(f"quality rule {spec.get('name', '?')!r}: {key!r} must be a non-empty string")
    fields = spec.get("fields", ["question"])
    if isinstance(fields, str) or not fields:
        raise ValueError(f"quality rule {spec['name']!r}: 'fields' must be a non-empty list of field names")
    flags = re.IGNORECASE if spec.get("ignore_case", False) else 0
    try:
        predicate = regex_predicate(spec["pattern"], tuple(fields), flags)
    except re.error as err:
        raise ValueError(f"quality rule {spec['name']!r}: bad pattern {spec['pattern']!r}: {err}") from err
    for key in ("applies_to", "exempt"):
        _check_source_regex(spec["name"], key, spec.get(key))
    return Rule(spec["name"], predicate, spec.get("description", f"matches /{spec['pattern']}/"),
                applies_to=spec.get("applies_to"), exempt=spec.get("exempt"))


def _check_source_regex(name: str, key: str, pattern: Any) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except (re.error, TypeError) as err:
        raise ValueError(f"quality rule {name!r}: bad {key!r} regex {pattern!r}: {err}") from err


def _reject_unknown(mapping: Mapping[str, Any], allowed: set[str], what: str) -> None:
    if unknown := set(mapping) - allowed:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def quality_filter(rows: Iterable[Row], rules: Sequence[Rule] | None = None) -> tuple[list[Row], DropLog]:
    """Keep rows no rule fires on; each drop's reason is the first rule that fired."""
    rules = default_rules() if rules is None else list(rules)
    kept: list[Row] = []
    log = DropLog("quality")
    for row in rows:
        fired = _first_firing(rules, row)
        if fired is None:
            kept.append(row)
        else:
            log.add(row, fired[0], evidence=fired[1])
    return kept, log


def _first_firing(rules: Sequence[Rule], row: Mapping[str, Any]) -> tuple[str, Any] | None:
    for rule in rules:
        evidence = rule.check(row)
        if evidence is not None:
            return rule.name, evidence
    return None
