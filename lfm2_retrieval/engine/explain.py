"""Why a chunk matched: for each query token, the document token that won its MaxSim, with both
character spans and the similarity. Late interaction can show this where a dense model cannot.

The document side uses the vectors the index stored (decompressed: exactly what search scored);
their characters come from tokenizing the chunk's text again the way encoding did (BOS, prefix,
skiplist removed), which gives the same tokens in the same order. Query expansion tokens match
too: they are reported without a query span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TokenMatch:
    query_token: str  # the query's text of this token ("" for an expansion token)
    query_span: tuple[int, int] | None  # characters of the query (None: an expansion token)
    document_span: tuple[int, int]  # characters of the chunk's text
    score: float  # cosine of the two token vectors: this token's share of the MaxSim score

    def as_dict(self) -> dict:
        return {"query_token": self.query_token, "query_span": self.query_span,
                "document_span": self.document_span, "score": round(self.score, 4)}


def _token_spans(tokenizer, text: str, max_length: int,
                 prefix_id: int | None) -> tuple[list[tuple[int, int] | None], np.ndarray]:
    """Character span of every position the encoder gives a vector (None: BOS, prefix, specials)."""
    budget = max_length - 1 if prefix_id is not None else max_length
    encoding = tokenizer._truncating_tokenizer(budget).encode(text.strip(), add_special_tokens=True)
    lead = len(text) - len(text.lstrip())
    spans = [None if s == e else (s + lead, e + lead) for s, e in encoding.offsets]
    ids = list(encoding.ids)
    if prefix_id is not None:
        spans.insert(1, None)
        ids.insert(1, prefix_id)
    return spans, np.asarray(ids, dtype=np.int64)


def explain(encoder, query: str, query_vectors: np.ndarray, text: str, doc_vectors: np.ndarray) -> list[TokenMatch]:
    """Each query token's best document token, best matches first."""
    tok = encoder.tokenizer
    doc_spans, doc_ids = _token_spans(tok, text, tok.config.document_length, tok.document_prefix_id)
    kept = [span for span, keep in zip(doc_spans, tok.document_keep_mask(doc_ids)) if keep]
    if len(kept) != len(doc_vectors):  # not the text these vectors came from: say nothing rather than mislead
        return []
    query_spans, _ = _token_spans(tok, query, tok.config.query_length, tok.query_prefix_id)
    similarities = query_vectors @ doc_vectors.T
    best = similarities.argmax(axis=1)
    matches = []
    for i, j in enumerate(best):
        if kept[j] is None:
            continue  # the document's BOS or prefix won: nothing to show in its text
        span = query_spans[i] if i < len(query_spans) else None
        matches.append(TokenMatch(query[span[0]:span[1]] if span else "", span, kept[j], float(similarities[i, j])))
    return sorted(matches, key=lambda m: -m.score)
