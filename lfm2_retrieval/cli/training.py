"""Models: `train` a backbone into a ColBERT encoder, `model-info` on a model folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app
from .common import console, errors_are_answers, fail, table_of


@app.command("train")
@errors_are_answers
def train_command(
    config: Path = typer.Argument(None, help="A .toml or .json file of training settings (see configs/)."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set steps=500. Repeatable."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Only fill the teacher cache (the dense "
                                    "teacher's vectors of every training text; resumable) and stop: start it early, "
                                    "it is slow."),
) -> None:
    """Train an LFM2 backbone into a ColBERT encoder (contrastive, MaxSim).

    Settings: lfm2_retrieval/training/config.py. The main ones:
    init_from: a ColBERT folder or a plain LFM2 checkpoint (empty: scratch);
    hard_negatives, negatives_from; teacher (e5, a sentence-transformers or a
    ColBERT folder) and distill_teacher, distill_bm25, distill_minilm;
    parallel_languages; query_expansion.

    Resumes from the latest checkpoint in output_dir. Writes log.jsonl
    (loss, dev NDCG@10), checkpoints/ and model/ (a folder for --model).

    lfm2-search train configs/default-model.toml --set steps=100

    lfm2-search train configs/default-model-hn.toml --set init_from=./LFM2-350M

    lfm2-search train configs/default-model-e5.toml --cache-only   # E5 vectors first
    """
    from lfm2_retrieval.training import TrainConfig
    from lfm2_retrieval.training.trainer import Trainer, prepare_data

    try:
        cfg = TrainConfig.load(config, set_)
        if cache_only:
            pairs, teacher, _ = prepare_data(cfg, lambda record: console.print(record))
            if teacher is None or not hasattr(teacher, "cache"):
                fail("this config has no dense teacher to cache (set distill_teacher or negatives_from=\"teacher\", "
                      "with teacher = \"e5\" or a sentence-transformers folder)")
            console.print(f"teacher cache complete for {len(pairs)} pairs: {teacher.cache.folder}")
            return
        final = Trainer(cfg).train()
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    console.print(f"model written to {final}")


@app.command("model-info")
@errors_are_answers
def model_info(
    model: str = typer.Argument(..., help="A PyLate ColBERT folder, or a Hugging Face hub id (needs internet)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a ColBERT model's backbone, projection and ColBERT settings.

    Example: lfm2-search model-info ./models/my-colbert
    """
    from lfm2_retrieval import ColBERTEncoder

    try:
        encoder = ColBERTEncoder.from_pretrained(model)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    cfg, bb = encoder.config, encoder.backbone.config
    info = {
        "folder": str(encoder.source_dir),
        "layers": f"{bb.num_hidden_layers} ({bb.layer_types.count('full_attention')} attention, "
                  f"{bb.layer_types.count('conv')} conv)",
        "mode": "bidirectional" if bb.bidirectional else "causal",
        "hidden size": bb.hidden_size,
        "heads (query/key-value)": f"{bb.num_attention_heads}/{bb.num_key_value_heads}",
        "vocabulary": bb.vocab_size,
        "parameters": sum(p.numel() for p in encoder.backbone.parameters()) +
                      sum(p.numel() for p in encoder.dense.parameters()),
        "embedding dim": encoder.dim,
        "query / document prefix": f"{cfg.query_prefix!r} / {cfg.document_prefix!r}",
        "query / document length": f"{cfg.query_length} / {cfg.document_length}",
        "query expansion": f"{cfg.do_query_expansion} (attend to expansion: {cfg.attend_to_expansion_tokens})",
        "skiplist tokens": len(encoder.tokenizer.skiplist_ids),
        "fingerprint": encoder.fingerprint,
    }
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        console.print(table_of(f"model {model}", info))
