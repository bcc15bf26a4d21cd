"""Scores that mean the same across queries: `relevance`, an estimate of the probability that a
hit is relevant, from its legs' raw scores.

A hybrid hit's `score` is fused from scores min-max normalised within the query: the top hit
always has 1.0, however poor the match ("recipe for chocolate cake" against a router manual
included), so no threshold on it means anything. The raw legs do carry evidence that holds
across queries: the mean over query tokens of each token's best cosine (MaxSim divided by the
query's vector count) and BM25's score. A logistic model over them,

    relevance = sigmoid(w . features + b)

fitted per mode on dev tasks' relevance labels (eval/calibrate.py; never on evaluation tasks),
turns them into a probability. The fit is stored beside the model (`calibration.json` in its
folder): MaxSim's scale is the model's own. A model without one gives no `relevance`.

Features (a leg a hit is missing from, in hybrid, takes the lowest score its leg returned for
the query: the hit scored at most that there):
    maxsim  MaxSim / query vectors, in [-1, 1]
    bm25    log(1 + BM25)
    rank    log of the hit's rank in its ranking (1 for the first): most queries have one or
            two relevant chunks, so the same evidence means more at the top than at rank 9
    margin  how the hit stands against the query's first: MaxSim per query vector minus the
            first's (semantic), BM25 over the first's (lexical), the fused score (hybrid: 1.0
            for the first). Alone it is what made the old scores meaningless across queries;
            beside the absolute evidence it separates a clear winner from a crowd.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "calibration.json"
FEATURES = {"semantic": ("maxsim", "rank", "margin"), "lexical": ("bm25", "rank", "margin"),
            "hybrid": ("maxsim", "bm25", "rank", "margin")}


def margins(mode: str, first: np.ndarray | int = 0, maxsim: np.ndarray | None = None, bm25: np.ndarray | None = None,
            fused: np.ndarray | None = None) -> np.ndarray:
    """Each hit's margin (see above) against its query's first hit, `first` the index of that
    hit (0 for one query's ranking; an array when rows of many queries are scored at once)."""
    if mode == "semantic":
        return maxsim - maxsim[first]
    if mode == "lexical":
        return bm25 / np.maximum(bm25[first], 1e-9)
    return fused  # hybrid: the fused score, 1.0 for the first


def features(mode: str, rank: np.ndarray, margin: np.ndarray, maxsim: np.ndarray | None = None,
             bm25: np.ndarray | None = None) -> np.ndarray:
    """[hits, features] in FEATURES[mode]'s order from the legs' raw scores (maxsim already
    divided by the query's vector count), the hits' ranks (from 1) and margins."""
    columns = {"maxsim": maxsim, "bm25": None if bm25 is None else np.log1p(np.maximum(bm25, 0.0)),
               "rank": np.log(np.maximum(np.asarray(rank, np.float64), 1.0)), "margin": margin}
    return np.stack([np.asarray(columns[name], np.float64) for name in FEATURES[mode]], axis=1)


@dataclass(frozen=True)
class Calibration:
    """Per mode, the logistic model's weights (FEATURES[mode]'s order) and bias."""

    weights: dict[str, tuple[tuple[float, ...], float]]
    fitted_on: str = ""  # what it was fitted on, for the model card

    def relevance(self, mode: str, rank: np.ndarray, margin: np.ndarray, maxsim: np.ndarray | None = None,
                  bm25: np.ndarray | None = None) -> np.ndarray | None:
        """P(relevant) of each hit, or None when this mode has no fit."""
        if mode not in self.weights:
            return None
        w, b = self.weights[mode]
        z = features(mode, rank, margin, maxsim, bm25) @ np.asarray(w) + b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    @classmethod
    def load(cls, model_dir: str | Path | None) -> "Calibration | None":
        path = Path(model_dir) / FILE if model_dir is not None else None
        if path is None or not path.is_file():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        # A mode fitted on other features than this code computes (an older file) is left out.
        weights = {mode: (tuple(fit["weights"]), float(fit["bias"])) for mode, fit in raw["modes"].items()
                   if tuple(fit.get("features", ())) == FEATURES.get(mode)}
        return cls(weights, raw.get("fitted_on", ""))

    def save(self, model_dir: str | Path) -> None:
        body = {"fitted_on": self.fitted_on, "modes": {
            mode: {"features": list(FEATURES[mode]), "weights": list(w), "bias": b}
            for mode, (w, b) in self.weights.items()}}
        (Path(model_dir) / FILE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def fit_logistic(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, l2: float = 1e-3,
                 steps: int = 50) -> tuple[tuple[float, ...], float]:
    """Weighted logistic regression by Newton's method (a handful of features: no library
    needed), with a small L2 penalty on the weights so that separable data has a finite answer."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    design = np.hstack([x, np.ones((len(x), 1))])
    theta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2 * float(sw.sum()))
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -50, 50)))
        gradient = design.T @ (sw * (p - y)) + penalty * theta
        hessian = (design * (sw * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
        theta -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return tuple(float(v) for v in theta[:-1]), float(theta[-1])


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[float, float, list[tuple[float, float, int]]]:
    """(Brier score, expected calibration error, [(mean predicted, fraction relevant, count)] per
    equal-width bin) of probabilities `p` against labels `y`."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    brier = float(np.mean((p - y) ** 2))
    edges = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = edges == b
        if inside.any():
            mean_p, rate, n = float(p[inside].mean()), float(y[inside].mean()), int(inside.sum())
            table.append((mean_p, rate, n))
            ece += n / len(p) * abs(mean_p - rate)
    return brier, ece if not math.isnan(ece) else 0.0, table

