"""Hypothesis strategies for requests: what no hand-written case thought of.

Scalar parameters (logprobs, top_logprobs, temperature, top_p, n, seed…)
come from the request schemas in ``schemas/`` through hypothesis-jsonschema,
so the valid ranges live in one place. Prompts and chat messages are written
by hand, because what breaks servers there is not in any schema: characters
that split across tokens, CJK, emoji with joiners, whitespace only, long
inputs, raw token ids.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from logprobe import schemas

SEED_PROMPTS = [
    "", "你好", "你好，世界", "日本語のテキストです。", "Ça va ? Très bien, merci.",
    "🙂🚀 emoji 👩‍👩‍👧 split across tokens", "   ", "\n\n\t", "The capital of France is",
    "def f(x):\n    return", "a" * 600,
]


# Values at their boundaries: the int64 seed range's edges and one past each (2**63 killed
# vLLM 0.26.0's engine on a GPU, ../shared/gpu-runs/vllm-0.26-seed-overflow.txt: a clean
# 4xx is a stated limit, a 5xx or a death a failure), and stop lists up to the reference's
# four strings (one of them a single space, which ends most texts at once).
SEED_EDGES = [-(2**63) - 1, -(2**63), -1, 2**63 - 1, 2**63]
SEEDS = st.one_of(st.integers(min_value=0, max_value=2**31 - 1), st.sampled_from(SEED_EDGES))
STOPS = st.sampled_from(["\n", ".", [" the", "!"], [" ", "\n", ".", ","]])


def param(schema_name: str, name: str, **override: Any) -> st.SearchStrategy[Any]:
    """A parameter's strategy from its subschema in schemas/, with bounds narrowed if asked."""
    sub = {k: v for k, v in schemas.load(schema_name)["properties"][name].items()}
    sub.update(override)
    return from_schema(sub)


def text_prompts() -> st.SearchStrategy[str]:
    printable = st.characters(min_codepoint=32, max_codepoint=126)
    return st.one_of(
        st.sampled_from(SEED_PROMPTS),
        st.text(alphabet=printable, min_size=1, max_size=60),
        st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=24),
    )


def token_id_prompts(vocab_size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=vocab_size - 1), min_size=1, max_size=48)


def completion_requests(
    model: str, *, max_logprobs: int = 20, vocab_size: int | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    prompts = text_prompts() if vocab_size is None else st.one_of(
        text_prompts(), token_id_prompts(vocab_size))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        request: dict[str, Any] = {"model": model, "prompt": draw(prompts)}
        echo = draw(st.booleans())
        if echo:
            request["echo"] = True
        # 0 is legal (the OpenAI reference's minimum); without echo some servers refuse it,
        # which the property tests record as a stated limit, not a failure
        request["max_tokens"] = draw(st.integers(min_value=0, max_value=32))
        # echo is nearly always asked with logprobs (lm-eval's request): weight it so
        wants_logprobs = draw(st.sampled_from([True, True, True, False] if echo else [True, False]))
        if wants_logprobs:
            request["logprobs"] = draw(param("completion.request", "logprobs", type="integer",
                                             maximum=max_logprobs))
        request["temperature"] = draw(st.one_of(
            st.just(0), param("completion.request", "temperature")))
        for name, drawn in (("top_p", param("completion.request", "top_p")),
                            ("n", param("completion.request", "n", maximum=4)),
                            ("seed", SEEDS),
                            ("stop", STOPS)):
            if draw(st.booleans()):
                request[name] = draw(drawn)
        if draw(st.sampled_from([True, False, False, False])):  # streams: their own checks
            request["stream"] = True
        elif not echo and draw(st.sampled_from([True, False, False, False])):
            # vLLM's extension; not beside echo, whose prompt positions it then governs
            # (echo with logprobs 5 and prompt_logprobs 2 gives 2-3 alternatives there)
            request["prompt_logprobs"] = draw(st.sampled_from([0, 1, 2, 5]))
        return request

    return build()


def chat_requests(model: str, max_top_logprobs: int = 20) -> st.SearchStrategy[dict[str, Any]]:
    turn = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                  "content": text_prompts()})

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        messages = []
        if draw(st.booleans()):
            messages.append({"role": "system", "content": draw(text_prompts())})
        messages += draw(st.lists(turn, min_size=0, max_size=2))
        messages.append({"role": "user", "content": draw(text_prompts())})
        request: dict[str, Any] = {"model": model, "messages": messages,
                                   "max_tokens": draw(st.integers(1, 16))}
        if draw(st.booleans()):
            request["logprobs"] = True
            if draw(st.booleans()):
                request["top_logprobs"] = draw(param("chat.request", "top_logprobs",
                                                     maximum=min(20, max_top_logprobs)))
        request["temperature"] = draw(st.one_of(st.just(0), param("chat.request", "temperature")))
        if draw(st.booleans()):
            request["n"] = draw(param("chat.request", "n", maximum=3))
        if draw(st.booleans()):
            request["seed"] = draw(SEEDS)
        return request

    return build()


def responses_requests(model: str, max_top_logprobs: int = 20
                       ) -> st.SearchStrategy[dict[str, Any]]:
    """Responses API requests: text input, top_logprobs with and without the include entry
    that OpenAI needs for them, temperature 0 or sampled."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        request: dict[str, Any] = {"model": model, "input": draw(text_prompts()),
                                   "max_output_tokens": draw(st.integers(1, 16))}
        if draw(st.booleans()):
            request["top_logprobs"] = draw(st.integers(0, min(20, max_top_logprobs)))
            if draw(st.sampled_from([True, True, True, False])):
                request["include"] = ["message.output_text.logprobs"]
        request["temperature"] = draw(st.one_of(st.just(0), param("chat.request", "temperature")))
        return request

    return build()


def invalid_requests(model: str, logprobs_limit: int) -> st.SearchStrategy[tuple[str, Any, str]]:
    """(path, body, invariant) triples a server must refuse with a 4xx: bytes for malformed
    JSON; the invariant is the one the request tests (ERR-001 invalid top_logprobs, ERR-002
    top_logprobs without logprobs, ERR-003 invalid completions logprobs, SHAPE-004 any other
    invalid input, which must still get a 4xx error object)."""
    chat_base = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    completion_base = {"model": model, "prompt": "hi", "max_tokens": 2}
    bad_top = st.one_of(st.integers(min_value=21, max_value=10_000), st.integers(max_value=-1),
                        st.floats(min_value=0.1, max_value=19.9).filter(lambda x: x != int(x)),
                        st.text(max_size=3))
    bad_logprobs = st.one_of(st.integers(min_value=logprobs_limit + 1, max_value=10_000),
                             st.integers(max_value=-1), st.text(min_size=1, max_size=3))
    return st.one_of(
        bad_top.map(lambda v: ("/chat/completions", {**chat_base, "logprobs": True,
                                                     "top_logprobs": v}, "ERR-001")),
        st.integers(1, 20).map(lambda v: ("/chat/completions", {**chat_base, "top_logprobs": v},
                                          "ERR-002")),
        bad_logprobs.map(lambda v: ("/completions", {**completion_base, "logprobs": v},
                                    "ERR-003")),
        st.sampled_from(["hot", -1.0, 2.5]).map(
            lambda v: ("/completions", {**completion_base, "temperature": v}, "SHAPE-004")),
        st.sampled_from([-5, "ten"]).map(
            lambda v: ("/completions", {**completion_base, "max_tokens": v}, "SHAPE-004")),
        st.sampled_from([b'{"model": ', b"not json", b'{"prompt": "hi",}']).map(
            lambda raw: ("/completions", raw, "SHAPE-004")),
    )


# The request shapes that reach each defect of the fault proxy's property-space faults,
# sent on every run beside the generated ones: coverage that does not rest on which
# examples a derandomised profile draws. (path, body, invariant of an invalid request).
PinnedShape = tuple[str, dict[str, Any], str | None]


def pinned_shapes(model: str, logprobs_limit: int) -> dict[str, PinnedShape]:
    prompt = {"model": model, "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}
    chat = {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4,
            "temperature": 0}
    k = min(3, logprobs_limit)
    return {
        "completions-logprobs": ("/completions", {**prompt, "logprobs": k}, None),
        "completions-echo": ("/completions", {**prompt, "echo": True, "logprobs": 1,
                                              "max_tokens": 1}, None),
        "completions-stream": ("/completions", {**prompt, "logprobs": k, "stream": True}, None),
        "completions-stop": ("/completions", {**prompt, "logprobs": k, "max_tokens": 8,
                                              "stop": [" city", "\n"]}, None),
        "completions-prompt-logprobs": ("/completions", {**prompt, "max_tokens": 1,
                                                         "prompt_logprobs": k}, None),
        "seed-beyond-int64": ("/completions", {**prompt, "seed": 2**63, "logprobs": k}, None),
        "completions-n-sampled": ("/completions", {**prompt, "n": 3, "temperature": 1,
                                                   "seed": 1234, "logprobs": k}, None),
        "chat-top-logprobs": ("/chat/completions", {**chat, "logprobs": True,
                                                    "top_logprobs": k}, None),
        "chat-logprobs-without-top": ("/chat/completions", {**chat, "logprobs": True}, None),
        "chat-stream": ("/chat/completions", {**chat, "logprobs": True, "top_logprobs": k,
                                              "stream": True}, None),
        "responses-top-logprobs": ("/responses", {"model": model, "input": "Say hi",
                                                  "max_output_tokens": 4, "temperature": 0,
                                                  "top_logprobs": k, "include": [
                                                      "message.output_text.logprobs"]}, None),
        "invalid-top-logprobs": ("/chat/completions", {**chat, "logprobs": True,
                                                       "top_logprobs": 21}, "ERR-001"),
        "top-logprobs-without-logprobs": ("/chat/completions", {**chat, "top_logprobs": 2},
                                          "ERR-002"),
        "invalid-completions-logprobs": ("/completions", {**prompt, "logprobs":
                                                          logprobs_limit + 1}, "ERR-003"),
    }


PINNED_SHAPE_NAMES = list(pinned_shapes("m", 20))
