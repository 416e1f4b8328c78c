"""STR: streamed logprobs equal the non-streamed ones, and every streamed position holds
together on its own (judged in one pass, so a report names every invariant a stream breaks)."""

from logprobe.invariants import shape, streaming
from logprobe.invariants.core import bind


def test_completions_stream_matches(api, completion_top5, judge, tolerance):
    plain = judge.response(completion_top5, shape.check_completions_shape, feature="logprobs")
    streamed = api.completions({**completion_top5.request_json, "stream": True})
    judge.applicable(streamed, bind(streaming.check_stream_matches, plain, tolerance),
                     feature="stream with logprobs")


def test_chat_stream_matches(api, chat_top5, judge, tolerance):
    plain = judge.response(chat_top5, shape.check_chat_shape, feature="logprobs")
    streamed = api.chat({**chat_top5.request_json, "stream": True})
    judge.applicable(streamed, bind(streaming.check_stream_matches, plain, tolerance),
                     feature="stream with logprobs")
