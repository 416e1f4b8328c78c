"""ECHO: prompt logprobs returned with echo: true."""

from cases import completion, first_logprobs

from logprobe.forcing import echo_scoring
from logprobe.invariants import echo, shape
from logprobe.invariants.core import nothing_to_judge
from logprobe.invariants.readers import usage


def test_echo_covers_prompt(echo_top2, judge):
    judge.response(echo_top2, echo.check_echo, feature="echo")


def test_echo_token_ids_prompt(api, model, prompt_tokenizer, judge):
    ids = prompt_tokenizer.encode("The capital of France is Paris", add_special_tokens=False)
    exchange = api.completions(completion(model, ids, echo=True, max_tokens=2, logprobs=1))
    judge.response(exchange, shape.check_completions_shape, echo.check_echo, feature="echo")


def test_echo_max_tokens_zero(api, model, judge):
    prompt = "Hello world, this is a test"
    probe = api.completions(completion(model, prompt, max_tokens=1))
    prompt_tokens = usage(judge.ok(probe), "prompt_tokens")
    exchange = api.completions(completion(model, prompt, echo=True, max_tokens=0, logprobs=1))
    # A refusal is classified as everywhere else (the properties send max_tokens 0 too): a
    # clean 4xx with an OpenAI error object is the server's stated limit, recorded, and
    # leaves ECHO-003 nothing to judge; a 4xx without one, or a 5xx, is an ERROR.
    if judge.refused(exchange):
        judge.record([exchange], [], nothing_to_judge(
            "the server refused max_tokens 0 with a clean 4xx", echo.ECHO_003))
        return
    body = judge.ok(exchange, feature="max_tokens 0 with echo")
    judge.check(exchange, echo.check_echo_max_tokens_zero, exchange.request_json,
                exchange.status, body, prompt_tokens)
    judge.check(exchange, echo.check_echo, exchange.request_json, body)


def test_shared_prefix_same_logprobs(api, model, judge, tolerance):
    first = api.completions(echo_scoring(model, "The cat sat on the mat and then it"))
    second = api.completions(echo_scoring(model, "The cat sat on the mat but the dog"))
    a = judge.response(first, echo.check_echo, feature="echo")
    b = judge.response(second, echo.check_echo, feature="echo")
    tokens_a = first_logprobs(a)["tokens"]
    tokens_b = first_logprobs(b)["tokens"]
    common = 0
    while common < min(len(tokens_a), len(tokens_b)) and tokens_a[common] == tokens_b[common]:
        common += 1
    assert common >= 4, f"the two prompts should share at least 4 tokens, got {common}"
    judge.check([first, second], echo.check_shared_prefix, a, b, common, tolerance)
