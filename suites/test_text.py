"""TXT: tokens, bytes and offsets line up with the text; every token string is spelled
as the served tokenizer spells one vocabulary token."""

import pytest
from cases import completion

from logprobe.invariants import text
from logprobe.invariants.core import bind
from logprobe.tokenizer import token_spellings


def test_tokens_and_offsets_match_text(completion_top5, judge):
    judge.response(completion_top5, text.check_completions_text, feature="logprobs")


def test_echo_offsets_match_text(echo_top2, judge):
    judge.response(echo_top2, text.check_completions_text, feature="echo")


def test_stop_string_ends_the_logprobs(api, model, judge):
    """Greedy text that meets a stop string: its tokens may be kept (TXT-005, INFO), none
    generated after it (TXT-007)."""
    exchange = api.completions(completion(model, logprobs=1, stop=[" city", "\n"]))
    judge.response(exchange, text.check_completions_text, feature="logprobs with a stop string")


def test_chat_bytes_decode_to_content(chat_top5, judge):
    judge.response(chat_top5, text.check_chat_bytes, feature="logprobs")


@pytest.mark.parametrize("exchange", ["completion_top5", "echo_top2", "chat_top5"])
def test_tokens_are_vocabulary_spellings(exchange, request, tokenizer, judge):
    judge.response(request.getfixturevalue(exchange),
                   bind(text.check_token_spelling, token_spellings(tokenizer)),
                   feature="logprobs")
