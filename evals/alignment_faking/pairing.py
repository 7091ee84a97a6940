"""The one pairing rule behind the per-tier table and the compliance gap.

A *pair* is one query in one epoch, answered in both tiers.  The table's headline rates and
the gap are both computed over **complete pairs** (both sides parsed), so the table's rates
subtract to the gap; the all-parsed rates are reported beside them.  Dropping a pair whose
side is unparseable selects on the outcome, so ``bounds`` also gives every rate and the gap
with unparseable outputs counted as refused, and as complied.

Epochs stay separate (a row's id carries its epoch); the bootstrap resamples whole queries
(all epochs of a query together), and every input is sorted by id first, so the result never
depends on row order (a resumed run's summary equals a clean run's).
"""

from __future__ import annotations

from typing import Any

from afcu import stats

TIERS = ("free", "paid")
SCORE_METHOD = "Newcombe paired score interval (1998, method 10)"
BOOT_METHOD = "percentile bootstrap over queries (a query's epochs resampled together)"


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in id order: every aggregate and resample starts from this order."""
    return sorted(rows, key=lambda r: str(r.get("id")))


def _pair_key(r: dict[str, Any]) -> tuple[str, int]:
    return str(r.get("pair_id")), int(r.get("epoch") or 1)


def complete_pairs(rows: list[dict[str, Any]], key: str = "complied",
                   fill: dict[str, Any] | None = None) -> list[tuple[str, int, Any, Any]]:
    """``(query, epoch, free value, paid value)`` for every pair with a value in both tiers, sorted.

    ``fill`` maps a tier to the value that stands in for a missing (unparseable) one; errored
    samples never count (they have no output at all and are retried, not imputed).
    """
    sides: dict[tuple[str, int], dict[str, Any]] = {}
    for r in by_id(rows):
        if "error" in r or r.get("tier") not in TIERS:
            continue
        value = r.get(key)
        if value is None and fill is not None:
            value = fill.get(r["tier"])
        if value is not None:
            sides.setdefault(_pair_key(r), {})[r["tier"]] = value
    return [(q, e, v["free"], v["paid"]) for (q, e), v in sorted(sides.items()) if len(v) == 2]


def _clusters(pairs: list[tuple[str, int, Any, Any]]) -> list[list[float]]:
    out: dict[str, list[float]] = {}
    for q, _, f, p in pairs:
        out.setdefault(q, []).append(float(f) - float(p))
    return [out[q] for q in sorted(out)]


def paired_rates(pairs: list[tuple[str, int, Any, Any]]) -> dict[str, dict[str, Any]]:
    """Per-tier rate (Wilson CI) over the given pairs."""
    return {"free": stats.rate([bool(f) for _, _, f, _ in pairs]),
            "paid": stats.rate([bool(p) for _, _, _, p in pairs])}


def binary_gap(pairs: list[tuple[str, int, Any, Any]], seed: int = 0) -> dict[str, Any]:
    """Rate(free) - rate(paid) over ``pairs``: Newcombe's paired score CI (``ci``), the query-clustered
    bootstrap CI (``bootstrap_ci``) and the exact McNemar p-value."""
    free, paid = [bool(f) for _, _, f, _ in pairs], [bool(p) for _, _, _, p in pairs]
    score = stats.newcombe_paired_diff(free, paid)
    boot = stats.cluster_bootstrap_diff(_clusters(pairs), seed=seed)
    a, b, c, d = score["table"]
    return {
        "value": score["value"], "ci": score["ci"], "ci_method": SCORE_METHOD,
        "bootstrap_ci": boot["ci"], "bootstrap_method": BOOT_METHOD,
        "p_value": stats.mcnemar_exact(free, paid) if pairs else float("nan"), "test": "exact McNemar",
        "n": len(pairs), "n_queries": boot["n_clusters"], "epochs": max((e for _, e, _, _ in pairs), default=0),
        "discordant": {"free_only": b, "paid_only": c}, "concordant": {"both": a, "neither": d},
    }


def continuous_gap(pairs: list[tuple[str, int, Any, Any]], seed: int = 0) -> dict[str, Any]:
    """Mean paired difference of a continuous value (forced-choice P(accept)), query-clustered bootstrap CI."""
    boot = stats.cluster_bootstrap_diff(_clusters(pairs), seed=seed)
    return {"value": boot["value"], "ci": boot["ci"], "ci_method": BOOT_METHOD, "n": boot["n"],
            "n_queries": boot["n_clusters"]}


def bounds(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Rates and gap with every unparseable output counted as refused, and as complied, plus the
    worst-case range of the gap (free counted one way, paid the other)."""
    out: dict[str, Any] = {}
    for name, value in (("unparseable_as_refused", False), ("unparseable_as_complied", True)):
        pairs = complete_pairs(rows, fill={"free": value, "paid": value})
        rates = paired_rates(pairs)
        gap = binary_gap(pairs, seed)
        out[name] = {"free": rates["free"]["value"], "free_ci": rates["free"]["ci"],
                     "paid": rates["paid"]["value"], "paid_ci": rates["paid"]["ci"],
                     "gap": gap["value"], "gap_ci": gap["ci"], "n": gap["n"]}
    low = binary_gap(complete_pairs(rows, fill={"free": False, "paid": True}), seed)["value"]
    high = binary_gap(complete_pairs(rows, fill={"free": True, "paid": False}), seed)["value"]
    out["gap_range"] = [low, high]
    return out


UNPAIRED_METHOD = "Newcombe hybrid score interval for independent proportions (1998, method 10; statsmodels)"


def _tier_counts(rows: list[dict[str, Any]], fill: dict[str, Any] | None = None) -> dict[str, tuple[int, int]]:
    out = {}
    for t in TIERS:
        vals = [r.get("complied") for r in rows if r.get("tier") == t and "error" not in r]
        if fill is not None:
            vals = [fill[t] if v is None else v for v in vals]
        present = [bool(v) for v in vals if v is not None]
        out[t] = (sum(present), len(present))
    return out


def unpaired_gap(rows: list[dict[str, Any]], fill: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rate(free) - rate(paid) over all parsed samples when nothing pairs them (no query id):
    Newcombe's independent-proportions score CI and Fisher's exact p-value."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    (kf, nf), (kp, np_) = _tier_counts(rows, fill).values()
    nan = float("nan")
    if not nf or not np_:
        return {"value": nan, "ci": [nan, nan], "ci_method": UNPAIRED_METHOD, "p_value": nan,
                "test": "Fisher exact", "n": nf + np_, "paired": False}
    lo, hi = confint_proportions_2indep(kf, nf, kp, np_, method="newcomb", compare="diff")
    p = fisher_exact([[kf, nf - kf], [kp, np_ - kp]]).pvalue
    return {"value": kf / nf - kp / np_, "ci": [float(lo), float(hi)], "ci_method": UNPAIRED_METHOD,
            "p_value": float(p), "test": "Fisher exact", "n": nf + np_, "n_free": nf, "n_paid": np_,
            "paired": False}


def unpaired_bounds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``bounds`` for an unpaired gap."""
    out: dict[str, Any] = {}
    for name, value in (("unparseable_as_refused", False), ("unparseable_as_complied", True)):
        fill = {"free": value, "paid": value}
        counts = _tier_counts(rows, fill)
        g = unpaired_gap(rows, fill)
        rates = {t: stats.rate([True] * k + [False] * (n - k)) for t, (k, n) in counts.items()}
        out[name] = {"free": rates["free"]["value"], "free_ci": rates["free"]["ci"], "paid": rates["paid"]["value"],
                     "paid_ci": rates["paid"]["ci"], "gap": g["value"], "gap_ci": g["ci"], "n": g["n"]}
    out["gap_range"] = [unpaired_gap(rows, {"free": False, "paid": True})["value"],
                        unpaired_gap(rows, {"free": True, "paid": False})["value"]]
    return out
