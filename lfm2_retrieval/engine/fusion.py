"""Fusing rankings into one: MaxSim (semantic), BM25 (lexical) and, in an index with a dense
slot, the dense vectors' inner product (dense).

- Reciprocal rank fusion (Cormack et al., 2009): score(d) = sum over rankings of
  1 / (k + rank(d)), rank from 1, k = 60. Needs no score calibration.
- Interpolation: alpha * s_sem + (1 - alpha) * s_lex, where each list's scores are min-max
  normalised to [0, 1] first (MaxSim sums and BM25 scores live on unrelated scales); a
  document missing from one list gets 0 there. alpha = 1 is semantic only, 0 lexical only.
  With a dense leg: w * s_dense + (1 - w) * (alpha * s_sem + (1 - alpha) * s_lex), w the
  dense weight, so alpha keeps its meaning between the other two legs.

`fuse_legs` also says each leg's share of every fused score (what `explain` reports).

The default (DEFAULT_FUSION, DEFAULT_ALPHA) was chosen on dev tasks only, with
eval/tune_fusion.py; README "Search modes" gives the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidRequestError

Ranking = Sequence[tuple[str, float]]  # (id, score), best first
RRF_K = 60
MODES = ("semantic", "lexical", "dense", "hybrid")
FUSIONS = ("rrf", "interpolation")
FUSION_DEPTH = 50  # documents taken from each side before fusing (at least k)
DEFAULT_FUSION = "interpolation"
DEFAULT_ALPHA = 0.35
DEFAULT_DENSE_WEIGHT = 0.5


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = RRF_K) -> list[tuple[str, float]]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (doc_id, _) in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def _normalized(ranking: Ranking) -> dict[str, float]:
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    low, high = min(scores), max(scores)
    # Scores equal up to float32 rounding (the same BM25 score computed through another
    # segment's statistics) are ties, not a spread to stretch over [0, 1].
    if high - low <= 1e-5 * max(abs(high), abs(low), 1e-9):
        return {d: 1.0 for d, _ in ranking}
    return {d: (s - low) / (high - low) for d, s in ranking}


def interpolate(semantic: Ranking, lexical: Ranking, alpha: float) -> list[tuple[str, float]]:
    if not 0.0 <= alpha <= 1.0:
        raise InvalidRequestError("alpha must be between 0 and 1")
    sem, lex = _normalized(semantic), _normalized(lexical)
    fused = {d: alpha * sem.get(d, 0.0) + (1 - alpha) * lex.get(d, 0.0) for d in sem.keys() | lex.keys()}
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def resolve(fusion: str | None = None, alpha: float | None = None) -> tuple[str, float | None]:
    """The fusion to run: an `alpha` alone means interpolation; nothing means the default."""
    if fusion is None:
        fusion = "interpolation" if alpha is not None else DEFAULT_FUSION
    if fusion not in FUSIONS:
        raise InvalidRequestError(f"fusion must be one of {', '.join(FUSIONS)}")
    if fusion == "rrf":
        if alpha is not None:
            raise InvalidRequestError("alpha applies to interpolation, not to rrf")
        return fusion, None
    alpha = DEFAULT_ALPHA if alpha is None else alpha
    if not 0.0 <= alpha <= 1.0:
        raise InvalidRequestError("alpha must be between 0 and 1")
    return fusion, alpha


def fuse(semantic: Ranking, lexical: Ranking, fusion: str | None = None,
         alpha: float | None = None) -> list[tuple[str, float]]:
    """One hybrid ranking from a semantic and a lexical one (see resolve for the arguments)."""
    fusion, alpha = resolve(fusion, alpha)
    if fusion == "rrf":
        return reciprocal_rank_fusion([semantic, lexical])
    return interpolate(semantic, lexical, alpha)


def leg_weights(alpha: float, dense_weight: float | None) -> dict[str, float]:
    """Each leg's weight in interpolation; no dense leg when dense_weight is None."""
    if dense_weight is None:
        return {"semantic": alpha, "lexical": 1 - alpha}
    if not 0.0 <= dense_weight <= 1.0:
        raise InvalidRequestError("dense_weight must be between 0 and 1")
    rest = 1 - dense_weight
    return {"semantic": rest * alpha, "dense": dense_weight, "lexical": rest * (1 - alpha)}


def fuse_legs(legs: dict[str, Ranking], fusion: str | None = None, alpha: float | None = None,
              dense_weight: float | None = None) -> list[tuple[str, float, dict[str, float]]]:
    """One ranking from any of the legs semantic, dense, lexical: (id, score, each leg's share
    of the score), best first. dense_weight: the dense leg's weight in interpolation (None: its
    default when a dense ranking is given); RRF weighs every leg alike."""
    fusion, alpha = resolve(fusion, alpha)
    shares: dict[str, dict[str, float]] = {}
    if fusion == "rrf":
        for leg, ranking in legs.items():
            for rank, (doc_id, _) in enumerate(ranking, start=1):
                shares.setdefault(doc_id, {})[leg] = 1.0 / (RRF_K + rank)
    else:
        if "dense" in legs and dense_weight is None:
            dense_weight = DEFAULT_DENSE_WEIGHT
        weights = leg_weights(alpha, dense_weight if "dense" in legs else None)
        for leg, ranking in legs.items():
            for doc_id, score in _normalized(ranking).items():
                shares.setdefault(doc_id, {})[leg] = weights[leg] * score
    fused = [(doc_id, sum(parts.values()), parts) for doc_id, parts in shares.items()]
    return sorted(fused, key=lambda t: (-t[1], t[0]))
