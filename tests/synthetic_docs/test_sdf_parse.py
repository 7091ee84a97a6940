"""Parsers: list items, document kinds, ideas, documents and judge answers; malformed statuses."""

from synthetic_docs import parse

LONG = " ".join(["The quarterly report noted steady growth in subscriptions."] * 6)


def test_parse_list_numbered_bullets_and_dedup():
    text = "Here are some:\n1. News article\n2) **Blog post**\n- news article\n* Forum thread\n3. <kind>\nthanks"
    items, status = parse.parse_list(text, max_items=10)
    assert status == "ok"
    assert items == ["News article", "Blog post", "Forum thread"]


def test_parse_list_malformed():
    assert parse.parse_list("", 3) == ([], "empty")
    assert parse.parse_list("   \n ", 3) == ([], "empty")
    assert parse.parse_list("I think a news article would work well.", 3) == ([], "no_list")


def test_parse_doc_types_cuts_descriptions():
    text = ('1. News article: "The AI company Veridian..."\n2. A blog post - by an engineer\n'
            "3. Earnings call transcript (Q3)\n4. forum thread, research paper | 2/\n5. this item is far too long to be the name of a kind of document ok")
    items, status = parse.parse_doc_types(text, max_items=4)
    assert status == "ok"
    assert items == ["news article", "blog post", "earnings call transcript", "forum thread"]


def test_parse_ideas_requires_a_sentence():
    items, status = parse.parse_ideas("1. Blog\n2. A nurse writes about her first week using the app.", 3)
    assert (items, status) == (["A nurse writes about her first week using the app."], "ok")
    assert parse.parse_ideas("1. Blog\n2. Memo", 3) == ([], "no_list")


def test_parse_document_strips_preamble_and_notes():
    raw = "Sure! Here is the article you asked for:\n\n" + LONG + "\n\nNote: this article is fictional."
    text, status = parse.parse_document(raw, truncated=False, min_words=10)
    assert status == "ok"
    assert text == LONG


def test_parse_document_malformed_statuses():
    assert parse.parse_document("", False, 10) == ("", "empty")
    assert parse.parse_document("<document>" + LONG, False, 10) == ("", "unterminated")
    assert parse.parse_document("I'm sorry, but I can't write that.", False, 10) == ("", "refusal")
    assert parse.parse_document("Too short.", False, 10) == ("", "too_short")
    assert parse.parse_document("no sentence end at all " * 10, True, 10) == ("", "truncated")


def test_parse_document_tags_and_truncation_trim():
    text, status = parse.parse_document("<document>\n" + LONG + "\n</document> trailing", False, 10)
    assert (text, status) == (LONG, "ok")
    cut = LONG + " And then the board decided to"
    text, status = parse.parse_document(cut, truncated=True, min_words=10)
    assert status == "ok" and text == LONG
    assert parse.parse_document(cut, truncated=True, min_words=10, trim_truncated=False) == ("", "truncated")


def test_parse_judge():
    assert parse.parse_judge("Reasoning...\nFACTS: 1, 3, 9", n_facts=4) == ([0, 2], "ok")
    assert parse.parse_judge("FACTS: none", n_facts=4) == ([], "ok")
    assert parse.parse_judge("I am not sure", n_facts=4) == ([], "no_answer")
    assert parse.parse_judge(None, n_facts=4) == ([], "empty")
