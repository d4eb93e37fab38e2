"""The vocabulary check: which of a question's subject words no document of a corpus contains."""

from __future__ import annotations

from retrieval.coverage import missing_words, subject_words
from store.db import Database


def test_subject_words_leave_out_what_frames_any_question() -> None:
    assert subject_words("How long until my first payout? Can I get it in Bitcoin?") == ["payout", "bitcoin"]
    assert subject_words("What's the maximum number of pictures I'm allowed to upload?") == ["pictures", "upload"]
    assert subject_words("How much does it cost?") == []


def test_missing_words_are_matched_by_stem_against_the_corpus(knowledge: Database) -> None:
    # the shipped help center speaks of withdrawals and PayPal, never of Bitcoin or mortgages
    assert missing_words(knowledge, ["help_center"], "Can I withdraw to PayPal or Bitcoin?") == ["bitcoin"]
    assert missing_words(knowledge, ["help_center"], "withdrawing withdrawals") == []  # stems, not spellings
    assert missing_words(knowledge, ["help_center"], "mortgages and loans") == ["mortgages", "loans"]
    assert missing_words(knowledge, [], "Bitcoin") == []  # no corpus searched: nothing to say
