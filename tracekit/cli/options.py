"""Click options shared by the commands, each declared once: --format, --arch/--preset/--config, --db, --verbose.

Choice lists come from the library (`LazyChoice` imports the module that owns them on first use, so
`tracekit --help` does not import torch). Imports only click and stdlib-only tracekit modules: `tracekit
collect` uses this module on GPU machines without duckdb/polars.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import click

from tracekit.errors import UsageError
from tracekit.model_config import ARCHS

FORMATS = ("table", "json", "csv")

F = Callable[..., Any]


class FormatChoice(click.Choice):
    """`table|json|csv`; with `text_alias`, `text` (the prune commands' old name of `table`) is accepted unlisted."""

    def __init__(self, text_alias: bool = False, extra: Sequence[str] = ()):
        super().__init__(FORMATS + tuple(extra))
        self.text_alias = text_alias

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if self.text_alias and value == "text":
            return "table"
        return super().convert(value, param, ctx)


class LazyChoice(click.Choice):
    """A click.Choice whose values are a library constant ("module:NAME"), imported when first needed."""

    def __init__(self, target: str, *, extra: Sequence[str] = (), exclude: Sequence[str] = ()):
        self._target, self._extra, self._exclude = target, tuple(extra), tuple(exclude)
        self._loaded: tuple[str, ...] | None = None
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            module, name = self._target.split(":")
            values = getattr(importlib.import_module(module), name)
            self._loaded = (*self._extra, *(v for v in values if v not in self._exclude))
        return self._loaded

    @choices.setter
    def choices(self, _value: Sequence[str]) -> None:  # click.Choice.__init__ assigns (); the target decides
        pass


def format_option(
    default: str = "table",
    *,
    help: str | None = None,
    text_alias: bool = False,
    no_csv: str | None = None,
    extra: Sequence[str] = (),
) -> Callable[[F], F]:
    """--format table|json|csv (into the parameter `fmt`); `extra`: more formats of this command (diff: markdown).

    `text_alias`: also accept the old `text` (prune and train), not shown in --help. `no_csv`: the reason a
    command has no rows to write as CSV; `--format csv` is then refused with one line (exit 2) before any work.
    """

    def refuse_csv(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if value == "csv" and no_csv:
            raise UsageError(f"--format csv: {no_csv}; use --format json")
        return value

    return click.option(
        "--format",
        "fmt",
        type=FormatChoice(text_alias, extra),
        default=default,
        show_default=True,
        help=help or (f"No csv: {no_csv}." if no_csv else None),
        callback=refuse_csv,
    )


db_option = click.option(
    "--db",
    "db_path",
    default=None,
    metavar="PATH",
    help="DuckDB file (default: $TRACEKIT_DB or ./tracekit.duckdb).",
)

verbose_option = click.option(
    "--verbose",
    is_flag=True,
    help="Let torch, the profiler and transformers print to the terminal as they run. By default their output "
    "goes to collect.log in the run folder and tracekit sums it up in a note.",
)

PRESET_HELP = "Shape preset: tiny, 130m, 370m, 790m/780m, 1.4b/1.3b, 2.8b/2.7b."
CONFIG_HELP = "Override a ModelConfig field, e.g. --config d_state=64 (repeatable)."


def model_options(
    default_preset: str | None = None,
    required_arch: bool = False,
    *,
    arch_list: str | None = None,
    arch_help: str | None = None,
    preset_help: str | None = None,
    config_help: str = CONFIG_HELP,
) -> Callable[[F], F]:
    """--arch / --preset / --config KEY=VALUE (into `arch`, `preset_name`, `overrides`).

    `arch_list`: --arch is a comma list with this default (collect sweeps several archs), checked by the
    library; otherwise one of ARCHS. Turn the three into a config with `config_from_flags`.
    """
    if arch_list is not None:
        arch = click.option("--arch", default=arch_list, help=arch_help)
    else:
        arch = click.option("--arch", type=click.Choice(ARCHS), required=required_arch, help=arch_help)
    preset_opt = click.option(
        "--preset",
        "preset_name",
        default=default_preset,
        show_default=default_preset is not None,
        help=preset_help or PRESET_HELP,
    )
    config = click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE", help=config_help)

    def decorate(f: F) -> F:
        return arch(preset_opt(config(f)))

    return decorate
