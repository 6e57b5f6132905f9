"""Accuracy of `main.beneficiary_review` against ground-truth verdicts (e.g. the synthetic generator's).

    verdict_accuracy(conn, truth) -> {
        "n_truth": ..., "n_matched": ..., "n_missing": ..., "n_extra": ...,
        "verdict_accuracy" (alias "accuracy"): share of truth rows whose predicted verdict equals the true one
                            (a truth row without a prediction counts as wrong),
        "exact_match": share with the same verdict AND the same set of reasons,
        "confusion": {true_verdict: {predicted_verdict: n}},
        "per_reason": {reason: {"tp", "fp", "fn", "precision", "recall", "f1", "support"}},
            (remove reasons also "remove_tp", "remove_fp", "remove_fn", "remove_precision",
             "remove_recall": the reason together with the verdict remove)
        "removals": {                      (issue 14: the errors that cut off or keep paying someone)
            "removals": rows predicted remove,
            "wrongful_removals": rows predicted remove whose true verdict is not remove (a living,
                                 eligible person cut off), "wrongful_share": of the removals,
            "wrongful_by_reason": {reason the prediction gave: n} (a row counts once per reason),
            "true_removals_missed": rows whose true verdict is remove, predicted otherwise,
            "missed_by_reason": {true remove reason: n},
            "deceased_precision", "identity_unresolved_precision": the flags' precision (any verdict),
        }
    }

`truth` columns: program, source, record_id, verdict, reasons. `reasons` may be a list/array or a
string separated by `,`, `;`, `|` or spaces (empty / None = no reason).
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from satudata_pipeline.programs.verdicts import REASON_CODES, REMOVE_REASONS, REVIEW_TABLE


def _as_reason_set(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, float) and pd.isna(value):
        return frozenset()
    if isinstance(value, str):
        text = value.strip().strip("[]{}")
        return frozenset(
            p.strip().strip("'\"") for p in re.split(r"[,;|\s]+", text) if p.strip().strip("'\"")
        )
    try:
        return frozenset(str(v) for v in value if v is not None and str(v) != "")  # type: ignore[attr-defined]
    except TypeError:
        return frozenset({str(value)})


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def verdict_accuracy(conn: duckdb.DuckDBPyConnection, truth_verdicts: pd.DataFrame) -> dict:
    missing = {"program", "source", "record_id", "verdict", "reasons"} - set(truth_verdicts.columns)
    if missing:
        raise ValueError(f"truth_verdicts lacks column(s): {', '.join(sorted(missing))}")
    truth = truth_verdicts[["program", "source", "record_id", "verdict", "reasons"]].copy()
    for col in ("program", "source", "record_id", "verdict"):
        truth[col] = truth[col].astype(str).str.strip()
    truth["verdict"] = truth["verdict"].str.lower()
    truth["reasons"] = truth["reasons"].map(_as_reason_set)
    truth = truth.drop_duplicates(["program", "source", "record_id"], keep="last")

    pred = conn.execute(
        f"SELECT program, source, CAST(record_id AS VARCHAR) AS record_id, verdict, reasons FROM {REVIEW_TABLE}"
    ).df()
    pred["reasons"] = pred["reasons"].map(_as_reason_set)
    pred = pred.drop_duplicates(["program", "source", "record_id"], keep="first")

    merged = truth.merge(
        pred, on=["program", "source", "record_id"], how="left", suffixes=("_true", "_pred")
    )
    n_truth = len(merged)
    has_pred = merged["verdict_pred"].notna()
    n_matched = int(has_pred.sum())
    keys_truth = set(zip(truth.program, truth.source, truth.record_id))
    n_extra = sum(1 for k in zip(pred.program, pred.source, pred.record_id) if k not in keys_truth)

    correct = (merged["verdict_true"] == merged["verdict_pred"]) & has_pred
    pred_reasons = merged["reasons_pred"].map(
        lambda v: v if isinstance(v, frozenset) else frozenset()
    )
    exact = correct & (merged["reasons_true"] == pred_reasons)

    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(merged["verdict_true"], merged["verdict_pred"].fillna("<missing>")):
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1

    reasons = sorted(
        set(REASON_CODES)
        | {r for s in merged["reasons_true"] for r in s}
        | {r for s in pred_reasons for r in s}
    )
    per_reason = {}
    for reason in reasons:
        t = merged["reasons_true"].map(lambda s, r=reason: r in s)
        p = pred_reasons.map(lambda s, r=reason: r in s)
        tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = (
            (2 * precision * recall / (precision + recall))
            if precision and recall
            else (0.0 if tp == 0 and (fp or fn) else None)
        )
        per_reason[reason] = {
            "tp": tp, "fp": fp, "fn": fn, "support": tp + fn,
            "precision": precision, "recall": recall, "f1": f1,
        }  # fmt: skip
        if reason in REMOVE_REASONS:
            # the reason AND the verdict remove: a possible death is listed as deceased but only
            # reviewed, which counts for the reason, not as a removal
            t_rm = t & (merged["verdict_true"] == "remove")
            p_rm = p & (merged["verdict_pred"] == "remove")
            rtp, rfp, rfn = (
                int((t_rm & p_rm).sum()),
                int((~t_rm & p_rm).sum()),
                int((t_rm & ~p_rm).sum()),
            )
            per_reason[reason].update(
                {
                    "remove_tp": rtp,
                    "remove_fp": rfp,
                    "remove_fn": rfn,
                    "remove_precision": _ratio(rtp, rtp + rfp),
                    "remove_recall": _ratio(rtp, rtp + rfn),
                }
            )

    pred_remove = merged["verdict_pred"] == "remove"
    true_remove = merged["verdict_true"] == "remove"
    wrongful = pred_remove & ~true_remove
    missed = true_remove & ~pred_remove
    removals = {
        "removals": int(pred_remove.sum()),
        "wrongful_removals": int(wrongful.sum()),
        "wrongful_share": _ratio(int(wrongful.sum()), int(pred_remove.sum())),
        "wrongful_by_reason": _count_reasons(pred_reasons[wrongful], REMOVE_REASONS),
        "true_removals_missed": int(missed.sum()),
        "missed_by_reason": _count_reasons(merged["reasons_true"][missed], REMOVE_REASONS),
        "deceased_precision": per_reason.get("deceased", {}).get("precision"),
        "identity_unresolved_precision": per_reason.get("identity_unresolved", {}).get("precision"),
    }

    return {
        "n_truth": n_truth,
        "n_matched": n_matched,
        "n_missing": n_truth - n_matched,
        "n_extra": n_extra,
        "verdict_accuracy": _ratio(int(correct.sum()), n_truth),
        "accuracy": _ratio(int(correct.sum()), n_truth),  # alias of verdict_accuracy
        "exact_match": _ratio(int(exact.sum()), n_truth),
        "confusion": confusion,
        "per_reason": per_reason,
        "removals": removals,
    }


def _count_reasons(sets: pd.Series, only: tuple[str, ...]) -> dict[str, int]:
    out = {r: 0 for r in only}
    for s in sets:
        for r in s:
            if r in out:
                out[r] += 1
    return {r: n for r, n in out.items() if n}
