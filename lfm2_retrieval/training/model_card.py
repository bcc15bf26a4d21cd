"""The model card (README.md) of a trained model folder: architecture, data and licenses,
the training command, and measured quality and speed."""

from __future__ import annotations

import json
from pathlib import Path

from .data import DATA_LICENSES

SOURCE_DATASETS = {
    "qa/en": ["TyDi QA", "SQuAD 2.0"], "qa/es": ["SQuAD-es"], "qa/it": ["SQuAD-it"],
    "qa/ja": ["JaQuAD", "JSQuAD (JGLUE)"], "qa/ko": ["TyDi QA"], "qa/zh": ["DRCD", "CMRC 2018"],
    "qa/ar": ["ARCD", "TyDi QA"], "qa/fr": ["PIAF"], "scifact": ["BEIR SciFact"],
}


def write_model_card(model_dir: Path, run_dir: Path, command: str, metrics_markdown: str = "",
                     speed: str = "", limitations: str = "") -> Path:
    config = json.loads((run_dir / "config.json").read_text())
    counts = json.loads((run_dir / "data.json").read_text())
    datasets = sorted({d for source in counts for d in SOURCE_DATASETS.get(source, ["NTREX-128"] if
                                                                              source.startswith("ntrex") else [])})
    backbone = json.loads((model_dir / "config.json").read_text())
    params = None
    try:
        from lfm2_retrieval import ColBERTEncoder

        enc = ColBERTEncoder.from_pretrained(model_dir)
        params = sum(p.numel() for p in enc.backbone.parameters()) + sum(p.numel() for p in enc.dense.parameters())
    except Exception:  # noqa: BLE001 - the card is still useful without the count
        pass
    lines = [
        "---", "library_name: PyLate", "pipeline_tag: sentence-similarity", "tags: [ColBERT, PyLate, lfm2]",
        "license: other", "---", "", "# lfm2-search default model", "",
        "A small multilingual late-interaction (ColBERT) retriever on the LFM2 hybrid backbone, trained from "
        "scratch on 2 CPU cores by this project. It is the model `lfm2-search` uses when none is named.", "",
        "## Architecture", "",
        f"- LFM2 backbone, {'bidirectional' if backbone.get('is_causal') is False or config['bidirectional'] else 'causal'}: "
        f"{len(config['layer_types'])} layers ({', '.join(config['layer_types'])}), hidden size "
        f"{config['hidden_size']}, feed-forward {config['intermediate_size']}, {config['num_attention_heads']} query "
        f"/ {config['num_key_value_heads']} key-value heads, vocabulary {backbone.get('vocab_size')} "
        "(byte-level BPE trained on the training text, with `[Q] ` and `[D] ` as single tokens).",
        f"- Projection to {config['embedding_dim']} dimensions per token; MaxSim scoring; queries "
        f"{config['query_length']} tokens (with expansion), documents {config['document_length']} tokens.",
        f"- Parameters: {params:,}." if params else "",
        "", "## Training", "",
        f"Contrastive loss with in-batch negatives (temperature {config['temperature']}), {config['steps']} steps of "
        f"{config['batch_size']} pairs, AdamW at {config['learning_rate']} with warm-up and cosine decay, seed "
        f"{config['seed']}. One command retrains it:", "", "```bash", command, "```", "",
        "Pairs per source (question/paragraph pairs per language; translation pairs between languages):", "",
        "| source | pairs |", "|---|---:|", *[f"| {k} | {v} |" for k, v in sorted(_grouped(counts).items())], "",
        "## Training data and licenses", "",
        "| dataset | license |", "|---|---|", *[f"| {d} | {DATA_LICENSES.get(d, '?')} |" for d in datasets], "",
        "Several sets are CC BY-SA (share-alike): derivatives of this model should keep their terms in view. "
        "KorQuAD (CC BY-ND) is used for evaluation only, never for training; the paragraphs and sentences of the "
        "evaluation tasks are held out of training.", "",
    ]
    if metrics_markdown:
        lines += ["## Quality (eval/nanobeir.py, local Nano tasks, NDCG@10)", "", metrics_markdown, ""]
    if speed:
        lines += ["## Speed", "", speed, ""]
    if limitations:
        lines += ["## Limitations", "", limitations, ""]
    path = model_dir / "README.md"
    path.write_text("\n".join(line for line in lines if line is not None), encoding="utf-8")
    return path


def _grouped(counts: dict[str, int]) -> dict[str, int]:
    """Translation pairs summed into one row (there is one source per language pair)."""
    out: dict[str, int] = {}
    for source, n in counts.items():
        key = "ntrex (translation pairs, all language pairs)" if source.startswith("ntrex/") else source
        out[key] = out.get(key, 0) + n
    return out
