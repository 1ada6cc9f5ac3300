"""The six Mamba block components and the data-file rules that map kernels/ops onto them.

Rules live in a TOML file (analyzers/rules/components.toml, shipped as package data) so that users can
predict and extend attribution without touching code: see docs/attribute.md, "Rules".
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from tracekit.errors import UsageError

COMPONENTS: tuple[str, ...] = ("rmsnorm", "gated_mlp", "conv", "ssm", "final_linear", "other")

_RULE_KEYS = {"component", "kernel", "op", "within", "fallback", "requires_config", "note"}


@dataclasses.dataclass(frozen=True)
class Rule:
    """One rule: all given conditions must hold (regex search); the first matching rule wins."""

    component: str
    kernel: re.Pattern[str] | None = None
    op: re.Pattern[str] | None = None
    within: re.Pattern[str] | None = None
    fallback: bool = False  # tried after the GEMM-shape stage instead of before it
    requires_config: bool = False  # only when a Mamba config is known or inferred
    source: str = ""  # "file:index", shown as the attribution reason

    def matches(self, kernel: str | None, op: str | None, chain: Sequence[str], have_config: bool) -> bool:
        if self.requires_config and not have_config:
            return False
        if self.kernel is not None and (kernel is None or not self.kernel.search(kernel)):
            return False
        if self.op is not None and (op is None or not self.op.search(op)):
            return False
        return self.within is None or any(self.within.search(n) for n in chain)


def _compile(pattern: object, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise UsageError(f"{where}: expected a regex string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{where}: bad regex {pattern!r}: {exc}") from None


def parse_rules(text: str, source: str) -> tuple[list[Rule], bool]:
    """Parse one rules file; returns (rules, replace_builtin)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    unknown_top = set(data) - {"rule", "replace"}
    if unknown_top:
        raise UsageError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown_top))}")
    rules: list[Rule] = []
    for i, raw in enumerate(data.get("rule", [])):
        where = f"{source}: rule {i + 1}"
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: expected a table")
        bad = set(raw) - _RULE_KEYS
        if bad:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        comp = raw.get("component")
        if comp not in COMPONENTS:
            raise UsageError(f"{where}: component must be one of {', '.join(COMPONENTS)}, not {comp!r}")
        if not any(k in raw for k in ("kernel", "op", "within")):
            raise UsageError(f"{where}: needs at least one of kernel, op, within")
        rules.append(
            Rule(
                component=comp,
                kernel=_compile(raw["kernel"], where) if "kernel" in raw else None,
                op=_compile(raw["op"], where) if "op" in raw else None,
                within=_compile(raw["within"], where) if "within" in raw else None,
                fallback=bool(raw.get("fallback", False)),
                requires_config=bool(raw.get("requires_config", False)),
                source=f"{Path(source).name}#{i + 1}",
            )
        )
    return rules, bool(data.get("replace", False))


def builtin_rules_text() -> str:
    return resources.files("tracekit.analyzers.rules").joinpath("components.toml").read_text()


def load_rules(extra: str | Path | None = None) -> list[Rule]:
    """Built-in rules, with a user file's rules tried first (or alone, when it says `replace = true`)."""
    rules, _ = parse_rules(builtin_rules_text(), "components.toml")
    if extra is None:
        return rules
    path = Path(extra)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--rules {path}: cannot read: {exc.strerror or exc}") from None
    user, replace = parse_rules(text, str(path))
    return user if replace else user + rules


def first_match(
    rules: Sequence[Rule],
    kernel: str | None,
    op: str | None,
    chain: Sequence[str],
    have_config: bool,
    *,
    fallback: bool,
) -> Rule | None:
    """The first rule of the given stage (plain or fallback) that matches."""
    for rule in rules:
        if rule.fallback == fallback and rule.matches(kernel, op, chain, have_config):
            return rule
    return None
