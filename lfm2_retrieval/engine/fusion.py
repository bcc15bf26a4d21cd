"""Fusing a semantic and a lexical ranking into one.

- Reciprocal rank fusion (Cormack et al., 2009): score(d) = sum over rankings of
  1 / (k + rank(d)), rank from 1, k = 60. Needs no score calibration, so it is the default.
- Interpolation: alpha * s_sem + (1 - alpha) * s_lex, where each list's scores are min-max
  normalised to [0, 1] first (MaxSim sums and BM25 scores live on unrelated scales); a
  document missing from one list gets 0 there. alpha = 1 is semantic only, 0 lexical only.

The default (DEFAULT_FUSION, DEFAULT_ALPHA) was chosen on dev tasks only, with
eval/tune_fusion.py; README "Search modes" gives the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidRequestError

Ranking = Sequence[tuple[str, float]]  # (id, score), best first
RRF_K = 60
MODES = ("semantic", "lexical", "hybrid")
FUSIONS = ("rrf", "interpolation")
FUSION_DEPTH = 50  # documents taken from each side before fusing (at least k)
DEFAULT_FUSION = "interpolation"
DEFAULT_ALPHA = 0.35


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
    if high == low:
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
