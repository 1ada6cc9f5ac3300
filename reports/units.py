"""The one place text for people formats magnitudes: durations (ns/µs/ms/s by size), signed deltas, ratios,
percentages, counts, and the one spelling of a missing value.

Machine formats (JSON, CSV) keep exact integers; these strings are for people only (terminal tables, the
report page, the claims' measured values). Standard library only, so any layer may use it.
"""

from __future__ import annotations

MISSING = "–"  # a value that is not there (not measured, not applicable), everywhere people read


def duration(ns: int | float | None) -> str:
    """`980 ns`, `5.12 µs`, `45.3 µs`, `1.23 ms`, `2.50 s`: the unit picked per magnitude, 3 significant digits."""
    if ns is None:
        return MISSING
    a = abs(ns)
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if a >= scale * 0.9995:  # rounds to ≥ 1 of this unit
            return _three(ns / scale) + " " + unit
    return f"{ns:.0f} ns"


def _three(v: float) -> str:
    a = abs(v)
    if a < 9.995:
        return f"{v:.2f}"
    if a < 99.95:
        return f"{v:.1f}"
    return f"{v:.0f}"


def ms_band(median_ms: float, p10_ms: float, p90_ms: float) -> str:
    """`5.00 µs (4.00–7.10)`: a median with its p10–p90 band, all in the median's unit."""
    ns = median_ms * 1e6
    scale, unit = next(
        ((sc, u) for sc, u in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")) if abs(ns) >= sc * 0.9995), (1, "ns")
    )
    f = (lambda v: _three(v * 1e6 / scale)) if scale > 1 else (lambda v: f"{v * 1e6:.0f}")
    return f"{f(median_ms)} {unit} ({f(p10_ms)}–{f(p90_ms)})"


def signed_duration(ns: int | float | None) -> str:
    """A delta: `+1.234 ms`, `−980 ns`, `0 ns`."""
    if ns is None:
        return MISSING
    if ns == 0:
        return "0 ns"
    return ("+" if ns > 0 else "−") + duration(abs(ns))


def ms_value(ms: float | None) -> str:
    """A time given in ms (manifest timings), in the unit its magnitude asks for."""
    return MISSING if ms is None else duration(ms * 1e6)


def si(v: float | int | None, signed: bool = False) -> str:
    """1.23G, 456k, −7.8M: counts and bytes with an SI prefix."""
    if v is None:
        return MISSING
    sign = ("+" if v > 0 else "−" if v < 0 else "") if signed else ("−" if v < 0 else "")
    a = abs(v)
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{sign}{a / scale:.3g}{prefix}"
    return f"{sign}{a:.3g}"


def ratio(x: float | None) -> str:
    """`1.34×`: B/A, a speedup."""
    return MISSING if x is None else f"{x:.2f}×"


def pct(x: float | None) -> str:
    """`12.3%`: a fraction (0.123) as a percentage."""
    return MISSING if x is None else f"{100 * x:.1f}%"


def middle_ellipsis(text: str, width: int) -> str:
    """`at::native::vectorized_elementwise_kernel<…>` -> `at::native::vecto…wise_kernel<…>`: both ends kept."""
    if width <= 1 or len(text) <= width:
        return text if len(text) <= max(width, 1) else text[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


def command_lines(words: list[str], width: int, indent: str = "  ") -> list[str]:
    """A shell command laid out for a terminal `width` wide without breaking a word: one line if it fits,
    else lines joined by ` \\` continuations, each new line starting at an option (`--x VALUE` kept
    together). Copy-pasting the lines runs the same command."""
    one = " ".join(words)
    if len(one) <= width:
        return [one]
    groups: list[str] = []
    for w in words:
        if groups and not w.startswith("-") and groups[-1].split()[-1].startswith("--") and " " not in groups[-1]:
            groups[-1] += " " + w  # an option and its value stay together
        elif groups and not w.startswith("-") and not groups[-1].startswith("-"):
            groups[-1] += " " + w  # the program and its sub-command words
        else:
            groups.append(w)
    lines = [groups[0]]
    for g in groups[1:]:
        if len(lines[-1]) + 1 + len(g) + 2 <= width:
            lines[-1] += " " + g
        else:
            lines.append(indent + g)
    return [line + " \\" for line in lines[:-1]] + [lines[-1]]
