"""The share chart (reports/attribute_plot.py): title and times on the figure, and `attribute --plot` says
where it wrote."""

from __future__ import annotations

from tests.reports.conftest import M1, M2_130M


def test_plot_has_title_and_times(h100_db, tmp_path):
    from tracekit.reports import attribute_plot

    texts: list[str] = []
    import matplotlib.axes

    orig = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *a, **k):
        texts.append(s)
        return orig(self, x, y, s, *a, **k)

    doc = h100_db.attribute(M2_130M)
    try:
        matplotlib.axes.Axes.text = spy
        out = attribute_plot.plot_shares([doc], tmp_path / "p.png", title="my run")
    finally:
        matplotlib.axes.Axes.text = orig
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert any("ms" in t and "%" in t for t in texts)


def test_plot_cli_prints_wrote(tmp_path):
    from click.testing import CliRunner

    from tracekit.cli.main import cli

    png = tmp_path / "s.png"
    r = CliRunner().invoke(
        cli, ["attribute", "--trace", str(M1), "--db", str(tmp_path / "c.duckdb"), "--plot", str(png)]
    )
    assert r.exit_code == 0, r.output
    assert f"wrote {png}" in r.output and png.stat().st_size > 0
