"""Chunk languages (index/language.py): confident guesses only, a document's language as the fallback."""

from lfm2_retrieval.index.language import identify, language_of


def test_languages_of_chunk_sized_text():
    for text, code in [
        ("東京は日本の首都で、多くの人が住んでいます。", "ja"),
        ("Київ — столиця України і найбільше місто.", "uk"),
        ("Rotate the signing keys every month and keep the old ones.", "en"),
        ("Die Schlüssel werden jeden Monat gewechselt.", "de"),
        ("서울은 한국의 수도입니다.", "ko"),
    ]:
        assert language_of(text) == code, text


def test_unclear_text_gets_the_default():
    assert identify("")[1] == 0.0 and language_of("   ", default="fr") == "fr"
    assert language_of("x = 1; y = 2", default="en") == "en"  # code: no confident guess
    assert language_of("42", default=None) is None
