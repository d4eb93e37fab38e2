"""`max_tokens` and `stop` as every provider keeps them (agents/sampling.py): whatever the pieces a stream
arrives in, the released text is the answer cut before the first stop sequence or at the token cap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sampling import OutputLimit
from retrieval.tokens import count_tokens, encoding


def _stream(limit: OutputLimit, pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        out += limit.feed(piece)
        if limit.ended:
            break
    return out + limit.flush()


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab c.\n", max_size=60), st.lists(st.text(alphabet="ab c.", min_size=1, max_size=4),
                                                          max_size=3), st.lists(st.integers(0, 60), max_size=8))
def test_stop_sequences_cut_at_the_first_one_whatever_the_pieces(text: str, stops: list[str], cuts: list[int]) -> None:
    limit = OutputLimit(stop=stops)
    # as a model checks after each token: the first point where the text ends with a stop sequence
    ends = next(([e - len(s) for s in stops if text[:e].endswith(s)] for e in range(1, len(text) + 1)
                 if any(text[:e].endswith(s) for s in stops)), [])
    assert _stream(limit, _split(text, cuts)) == text[:min(ends, default=len(text))]
    assert limit.reason == ("stop" if ends else None)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.integers(1, 30), st.lists(st.integers(0, 80), max_size=8))
def test_the_token_cap_keeps_a_prefix_of_at_most_max_tokens(text: str, cap: int, cuts: list[int]) -> None:
    limit = OutputLimit(max_tokens=cap)
    out = _stream(limit, _split(text, cuts))
    assert text.startswith(out) and count_tokens(out) <= cap
    if count_tokens(text) <= cap:
        assert out == text and limit.reason is None
    else:
        assert limit.reason == "length"


def test_a_cut_inside_a_multibyte_character_drops_the_character() -> None:
    text = "Fees: 💶💶💶 per payout"
    def partial(n: int) -> bool:
        try:
            encoding().decode_bytes(encoding().encode(text)[:n]).decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    cap = next(n for n in range(1, 20) if partial(n))  # the cap ends inside the first 💶
    out = _stream(OutputLimit(max_tokens=cap), [text])
    assert out == "Fees: " and "\ufffd" not in out
