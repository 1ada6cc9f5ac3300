"""The attribute table (reports/attribute_table.py) at 80 columns: kernel names readable, the roofline kept."""

from __future__ import annotations

from tracekit.reports.attribute_table import render

from tests.reports.conftest import M1, M2_130M, recording_console


def test_attribute_by_kernel_keeps_names_readable(h100_db):
    doc = h100_db.attribute(M1, by="kernel")
    c = recording_console(80)
    render(doc, "kernel", console=c)
    text = c.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    names = [line.split()[0] for line in text.splitlines()[3:] if "µs" in line]
    assert "elementwise_kernel<…>" in " ".join(names)  # the at::native:: kernels by their own name
    assert not any(n.startswith("at::native") for n in names)


def test_attribute_by_layer_keeps_roofline_at_80(h100_db):
    doc = h100_db.attribute(M2_130M, by="layer")
    c = recording_console(80)
    render(doc, "layer", console=c)
    text = c.export_text()
    lines = text.splitlines()
    header = next(line for line in lines if "component" in line and "time" in line)
    assert header.split()[-1] == "roof" and max(len(line) for line in lines) <= 80
    assert "µs" in text  # sub-ms times in µs, not 0.085
