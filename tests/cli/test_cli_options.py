"""Shared CLI options (tracekit/cli/options.py): one --format choice set everywhere, model options declared once."""

from __future__ import annotations

import click
import pytest

from tracekit.cli.main import COMMANDS, cli, main
from tracekit.cli.options import FORMATS, FormatChoice, LazyChoice

# commands whose --format was `text|json` before issue #10: `text` stays accepted (hidden) as `table`
TEXT_ALIAS = {"prune score", "prune apply", "prune eval", "prune compare", "train"}
# commands with no rows to write: --format csv is refused with one line (exit 2) before any work
NO_CSV = {"prune score", "prune apply", "train"}


def commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    out: dict[str, click.Command] = {}
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                out[f"{name} {sub.name}"] = sub
        else:
            out[name] = cmd
    return out


def format_param(cmd: click.Command) -> click.Option | None:
    return next((p for p in cmd.params if isinstance(p, click.Option) and "--format" in p.opts), None)


def test_every_format_option_is_table_json_csv():
    with_format = {name: format_param(cmd) for name, cmd in commands().items() if format_param(cmd)}
    assert set(with_format) == {
        "ingest",
        "tables",
        "query",
        "attribute",
        "diff",
        "prune score",
        "prune apply",
        "prune eval",
        "prune compare",
        "train",
    }
    for name, param in with_format.items():
        assert isinstance(param.type, FormatChoice), name
        extra = ("markdown",) if name == "diff" else ()
        assert tuple(param.type.choices) == FORMATS + extra and FORMATS == ("table", "json", "csv"), name
        assert param.default == "table", name
        for fmt in FORMATS:
            assert param.type.convert(fmt, param, None) == fmt, (name, fmt)
        if name in TEXT_ALIAS:
            assert param.type.convert("text", param, None) == "table", name
        else:
            with pytest.raises(click.BadParameter):
                param.type.convert("text", param, None)
        with pytest.raises(click.BadParameter):
            param.type.convert("yaml", param, None)


def test_text_alias_is_hidden_from_help(capsys):
    for argv in (["prune", "eval", "--help"], ["train", "--help"], ["query", "--help"]):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code in (0, None)
        out = capsys.readouterr().out
        assert "[table|json|csv]" in out and "text" not in out.split("--format", 1)[1].split("\n")[0], argv


@pytest.mark.parametrize(
    "argv",
    [
        ["prune", "score", "--arch", "mamba1", "--method", "magnitude", "--out", "{tmp}/s.pt"],
        ["prune", "apply", "--scores", "{tmp}/missing.pt", "--ratio", "0.5", "--variant", "masked", "--out", "{tmp}/m"],
        ["train", "--arch", "mamba1", "--task", "mqar", "--steps", "1", "--out", "{tmp}/m"],
    ],
    ids=["score", "apply", "train"],
)
def test_csv_refused_in_one_line_before_work(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([a.format(tmp=tmp_path) for a in argv] + ["--format", "csv"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tracekit: error: --format csv:"), err
    assert not list(tmp_path.iterdir())  # nothing written


def test_model_options_declared_the_same_way():
    """--arch/--preset/--config in every command that builds a model config, into the same parameter names."""
    names = ["collect", "attribute", "prune score", "prune eval", "prune compare", "train"]
    cmds = commands()
    for name in names:
        params = {p.name: p for p in cmds[name].params}
        assert {"arch", "preset_name", "overrides"} <= set(params), name
        assert params["overrides"].multiple and params["overrides"].metavar == "KEY=VALUE", name
    assert cmds["train"].params[0].required
    assert {p.name: p.default for p in cmds["prune compare"].params}["preset_name"] == "tiny"
    assert {p.name: p.default for p in cmds["collect"].params}["arch"] == "mamba1,mamba2"


def test_choice_lists_come_from_the_library():
    from tracekit.collectors.backends import BACKENDS

    from tracekit.prune.apply import VARIANTS
    from tracekit.prune.scoring import METHODS

    cmds = commands()
    choice = {
        (name, p.name): tuple(p.type.choices)
        for name, cmd in cmds.items()
        for p in cmd.params
        if isinstance(p.type, LazyChoice)
    }
    assert choice[("prune score", "method")] == METHODS
    assert choice[("prune apply", "variant")] == tuple(v for v in VARIANTS if v != "dense")
    assert choice[("prune compare", "backend")] == ("auto", *BACKENDS)


def test_top_level_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from tracekit.cli.main import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
    code += "assert 'torch' not in sys.modules, 'torch imported by --help'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_eval_csv_has_the_table_columns(capsys):
    main(["prune", "eval", "--arch", "mamba1", "--tasks", "mqar", "--n", "8", "--format", "csv"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "task,metric,value,n" and lines[1].startswith("mqar,acc,") and len(lines) == 2
