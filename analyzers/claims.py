"""Paper vs measured: the PerfMamba paper's checkable claims (`rules/paper_claims.toml`) evaluated against the
frames of a report. Each claim gets a verdict — holds / does not hold / not measured here — with the
measured value and, when it cannot be compared, the reason."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
from tracekit.analyzers.scaling import BLOCK_COMPONENTS, bottlenecks
from tracekit.reports.units import MISSING, pct, ratio

from tracekit.errors import UsageError

HOLDS = "holds"
FAILS = "does not hold"
UNMEASURED = "not measured here"
CHECKS = ("share", "largest", "exponent", "prune", "accuracy")


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    where: str
    check: str
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    id: str
    claim: str
    where: str
    verdict: str
    measured: str
    reason: str = ""


@dataclasses.dataclass
class Measured:
    """What the claims are checked against (frames from analyzers.scaling / analyzers.pruning)."""

    components: pl.DataFrame
    exponents: pl.DataFrame
    compare: pl.DataFrame
    accuracy: pl.DataFrame


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """The claims file (default: the packaged paper_claims.toml); UsageError when malformed."""
    try:
        if path is None:
            text = resources.files("tracekit.analyzers.rules").joinpath("paper_claims.toml").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"claims file {path or 'paper_claims.toml'}: {exc}") from None
    out = []
    for i, c in enumerate(doc.get("claim", [])):
        missing = [k for k in ("id", "claim", "where", "check") if k not in c]
        if missing or c["check"] not in CHECKS:
            raise UsageError(f"claims file: claim #{i + 1} lacks {missing} or has an unknown check {c.get('check')!r}")
        params = {k: v for k, v in c.items() if k not in ("id", "claim", "where", "check")}
        out.append(Claim(c["id"], c["claim"], c["where"], c["check"], params))
    return out


def evaluate(claims: list[Claim], m: Measured) -> list[ClaimResult]:
    """One result per claim, in order."""
    fns = {"share": _share, "largest": _largest, "exponent": _exponent, "prune": _prune, "accuracy": _accuracy}
    out = []
    for c in claims:
        verdict, measured, reason = fns[c.check](c.params, m)
        out.append(ClaimResult(c.id, c.claim, c.where, verdict, measured, reason))
    return out


def results_frame(results: list[ClaimResult]) -> pl.DataFrame:
    return pl.DataFrame(
        [dataclasses.asdict(r) for r in results],
        schema={k: pl.Utf8 for k in ("id", "claim", "where", "verdict", "measured", "reason")},
    )


# ---- checks: (verdict, measured, reason) ---------------------------------------------------------------
def _series(df: pl.DataFrame, p: dict[str, Any]) -> pl.DataFrame:
    if not df.height:
        return df
    out = df.filter(pl.col("mode") == p["mode"])
    if p.get("arch", "*") != "*":
        out = out.filter(pl.col("arch") == p["arch"])
    return out


def _what(p: dict[str, Any]) -> str:
    return p["mode"] if p.get("arch", "*") == "*" else f"{p['arch']} {p['mode']}"


def _cpu_note(df: pl.DataFrame) -> str:
    if df.height and "time_source" in df.columns and "cpu_self" in df["time_source"].to_list():
        return " (CPU self time of a CPU run: not the paper's GPU setting)"
    return ""


def _cpu_note_t(m: Measured, p: dict[str, Any]) -> str:
    return " (CPU run)" if _cpu_note(_series(m.components, p)) else ""


def _share(p: dict[str, Any], m: Measured) -> tuple[str, str, str]:
    df = _series(m.components, p)
    if not df.height:
        return UNMEASURED, MISSING, f"no attributed {_what(p)} traces in these runs"
    tot = df.group_by(["run", "arch", "graphs", "seqlen"]).agg(pl.col("time_ms").sum().alias("_t"))
    comp = df.filter(pl.col("component") == p["component"]).join(tot, on=["run", "arch", "graphs", "seqlen"])
    shares = (comp["time_ms"] / comp["_t"]).to_list()
    if not shares:
        return UNMEASURED, MISSING, f"no {p['component']} time in the {_what(p)} traces"
    lo, hi = min(shares), max(shares)
    lens = sorted(set(comp["seqlen"].to_list()))
    measured = f"{p['component']} share {100 * lo:.0f}–{100 * hi:.0f}% over L = {lens[0]}…{lens[-1]}" + _cpu_note(df)
    ok = lo > p["min"]
    return (HOLDS if ok else FAILS), measured, ""


def _largest(p: dict[str, Any], m: Measured) -> tuple[str, str, str]:
    metric = p.get("metric", "time_ms")
    df = _series(m.components, p)
    if not df.height:
        return (
            UNMEASURED,
            MISSING,
            f"no attributed {_what(p)} traces in these runs (manifest timings have no components)",
        )
    top = bottlenecks(df, metric)
    if not top.height:
        return UNMEASURED, MISSING, f"no {metric} per component in the {_what(p)} traces"
    hits = top.filter(pl.col("component") == p["component"]).height
    others = top.filter(pl.col("component") != p["component"])
    counts = others.group_by("component").agg(pl.len().alias("n")).sort(["n", "component"], descending=[True, False])
    desc = ", ".join(f"{c} at {n}" for c, n in counts.iter_rows())
    what = "FLOPs" if metric == "flops" else "time"
    measured = f"{p['component']} largest by {what} at {hits}/{top.height} points" + (f"; {desc}" if desc else "")
    measured += _cpu_note(df) if metric == "time_ms" else ""
    return (HOLDS if hits == top.height else FAILS), measured, ""


def _exponent(p: dict[str, Any], m: Measured) -> tuple[str, str, str]:
    df = _series(m.exponents, p)
    df = df.filter(pl.col("component") == p["component"]) if df.height else df
    if not df.height:
        return UNMEASURED, MISSING, f"no {p['component']} series over ≥ 2 lengths for {_what(p)}"
    if df["points"].max() < 3:
        return UNMEASURED, MISSING, f"{_what(p)} measured at fewer than 3 lengths: no meaningful exponent"
    df = df.filter(pl.col("points") >= 3)
    parts, ok = [], True
    for r in df.iter_rows(named=True):
        use_tail = r["tail_exponent"] is not None
        e = r["tail_exponent"] if use_tail else r["exponent"]
        r2 = r["tail_r2"] if use_tail else r["r2"]
        lo = r["tail_from"] if use_tail else r["fit_from"]
        g = " graphs" if r["graphs"] else ""
        parts.append(f"{r['arch']}{g} ∝ L^{e:.2f} (L {lo}…{r['fit_to']}, R² {r2:.2f})" + _cpu_note_t(m, p))
        ok = ok and abs(e - p["expected"]) <= p["tol"]
    return (HOLDS if ok else FAILS), "; ".join(parts), ""


def _prune(p: dict[str, Any], m: Measured) -> tuple[str, str, str]:
    df = m.compare
    if not df.height:
        return UNMEASURED, MISSING, "no prune-compare results among the inputs"
    rows = df.filter((pl.col("variant") == "physical") & (pl.col("mode") == p["mode"]) & (pl.col("status") == "ok"))
    exact = rows.filter((pl.col("seqlen") == p["seqlen"]) & ((pl.col("ratio") - p["ratio"]).abs() < 1e-9))

    def fmt(v: float | None) -> str:
        if v is None:
            return "not recorded"
        return ratio(v) if p["metric"] == "speedup" else pct(v)

    if not exact.height:
        near = rows.sort([(pl.col("seqlen") - p["seqlen"]).abs(), (pl.col("ratio") - p["ratio"]).abs()])
        if near.height:
            r = near.row(0, named=True)
            g = " graphs" if r["graphs"] else ""
            return (
                UNMEASURED,
                f"nearest: r = {r['ratio']}, L = {r['seqlen']}{g}: {fmt(r[p['metric']])}",
                f"no physical {p['mode']} row at r = {p['ratio']}, L = {p['seqlen']}",
            )
        return UNMEASURED, MISSING, f"no physical {p['mode']} rows in the compare results"
    vals = exact[p["metric"]].to_list()
    measured = ", ".join(fmt(v) for v in vals)
    if any(v is None for v in vals):
        return (
            UNMEASURED,
            measured,
            f"{p['metric']} not recorded in the compare rows (e.g. no CUDA memory stats on CPU)",
        )
    ok = all(abs(v - p["expected"]) <= p["tol"] for v in vals)
    return (HOLDS if ok else FAILS), measured, ""


def _accuracy(p: dict[str, Any], m: Measured) -> tuple[str, str, str]:
    df = m.accuracy
    if not df.height:
        return UNMEASURED, MISSING, "no prune accuracy results among the inputs"
    acc = df.filter((pl.col("metric") == "acc") & (pl.col("method") == p["method"]))
    if not acc.height:
        return UNMEASURED, MISSING, f"no accuracy curve for method {p['method']!r} (perplexity-only results)"
    parts, ok = [], True
    for (source,), g in acc.group_by(["source"], maintain_order=True):
        g = g.filter(pl.col("ratio") <= p["max_ratio"] + 1e-9)
        drop = max(g["baseline"] - g["value"])
        parts.append(f"{source}: −{100 * drop:.1f} pt")
        ok = ok and drop <= p["max_drop"]
    measured = f"worst loss at r ≤ {p['max_ratio']}: " + "; ".join(parts)
    reason = "measured on small trained models (MQAR), not Mamba-2-130M on PIQA/ARC/HellaSwag/OBQA"
    return (HOLDS if ok else FAILS), measured, reason


__all__ = ["BLOCK_COMPONENTS", "Claim", "ClaimResult", "Measured", "evaluate", "load_claims", "results_frame"]
