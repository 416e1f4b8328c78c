"""STR: streamed logprobs equal the non-streamed ones."""

from logprobe.invariants import shape, streaming


def test_completions_stream_matches(api, completion_top5, judge, tolerance):
    plain = judge.response(completion_top5, shape.check_completions_shape, feature="logprobs")
    streamed = api.completions({**completion_top5.request_json, "stream": True})
    events = judge.applicable(streamed, feature="stream with logprobs")  # STR-002: the chunks
    judge.check([streamed, completion_top5], streaming.check_stream_matches,
                events or [], plain, tolerance)


def test_chat_stream_matches(api, chat_top5, judge, tolerance):
    plain = judge.response(chat_top5, shape.check_chat_shape, feature="logprobs")
    streamed = api.chat({**chat_top5.request_json, "stream": True})
    events = judge.applicable(streamed, feature="stream with logprobs")  # STR-002: the chunks
    judge.check([streamed, chat_top5], streaming.check_stream_matches,
                events or [], plain, tolerance)
