"""TXT: tokens, bytes and offsets line up with the text."""

from logprobe.invariants import text


def test_tokens_and_offsets_match_text(completion_top5, judge):
    judge.response(completion_top5, text.check_completions_text, feature="logprobs")


def test_echo_offsets_match_text(echo_top2, judge):
    judge.response(echo_top2, text.check_completions_text, feature="echo")


def test_chat_bytes_decode_to_content(chat_top5, judge):
    judge.response(chat_top5, text.check_chat_bytes, feature="logprobs")
