"""SHAPE: the JSON shape of logprobs on both endpoints."""

from cases import chat, completion

from logprobe.invariants import shape


def test_completions_without_logprobs_has_none(api, model, judge):
    judge.response(api.completions(completion(model)), shape.check_no_logprobs_unasked)


def test_chat_without_logprobs_has_none(api, model, judge):
    judge.response(api.chat(chat(model)), shape.check_no_logprobs_unasked)


def test_completions_logprobs_shape(completion_top5, judge):
    judge.response(completion_top5, shape.check_completions_shape, feature="logprobs")


def test_completions_echo_shape(echo_top2, judge):
    judge.response(echo_top2, shape.check_completions_shape, feature="echo")


def test_chat_logprobs_shape(chat_top5, judge):
    judge.response(chat_top5, shape.check_chat_shape, feature="logprobs")
