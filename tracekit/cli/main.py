"""Entry point: a click group whose sub-commands are imported lazily.

Lazy loading keeps `tracekit collect` importable on machines without duckdb/polars (the GPU machine)
and keeps `--help` fast. Each sub-command lives in its own module under tracekit/cli/.
"""

from __future__ import annotations

import importlib
import sys

import click

from tracekit import __version__
from tracekit.errors import TracekitError

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "ingest": "tracekit.cli.store_cmds:ingest",
    "tables": "tracekit.cli.store_cmds:tables",
    "query": "tracekit.cli.store_cmds:query",
    "export": "tracekit.cli.store_cmds:export",
    "collect": "tracekit.cli.collect_cmd:collect",
    "attribute": "tracekit.cli.attribute_cmd:attribute",
    "diff": "tracekit.cli.diff_cmd:diff",
    "prune": "tracekit.cli.prune_cmd:prune",
    "train": "tracekit.cli.train_cmd:train",
    "demo": "tracekit.cli.demo_cmd:demo",
    "report": "tracekit.cli.report_cmd:report",
}


class LazyGroup(click.Group):
    """A group that imports a sub-command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)


def _available(name: str) -> bool:
    module_name = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tracekit")
def cli() -> None:
    """tracekit: exact, SQL-queryable traces of Mamba-1/2 runs.

    \b
    Pipeline:  collect -> ingest -> attribute -> diff -> prune
    Start with `tracekit demo` (CPU, offline) or `tracekit ingest TRACE.json.gz`.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; expected failures become one line on stderr and a nonzero exit."""
    try:
        cli.main(args=argv, prog_name="tracekit", standalone_mode=False)
    except TracekitError as exc:
        click.echo(f"tracekit: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("tracekit: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("tracekit: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
