"""The served model's tokenizer, asked of the server: ``/tokenize`` and ``/detokenize``.

lm-eval sends token-id prompts whenever it knows the model's tokenizer, so the suite
sends them too. Without ``--tokenizer`` it needs another way to make them: vLLM, SGLang
and llama.cpp's server tokenize on request (vLLM answered ``{"count":2,
"tokens":[19556,905]}`` for "Hello world"). vLLM and SGLang take ``{"model", "prompt",
"add_special_tokens"}`` at ``/tokenize`` and answer ``{"tokens": [...]}``, ``/detokenize``
answering ``{"prompt": ...}``; llama.cpp takes ``{"content", "add_special"}`` and
answers ``{"tokens": [...]}``, then ``{"content": ...}``. One body carries both spellings
(each server ignores the other's keys), at the server's root or below ``/v1``.

Only for building prompts. A check that needs an independent view of the vocabulary
(TXT-006's spellings, teacher forcing by spelling) cannot ask the server it judges,
and listing a vocabulary would take a request per token: those stay skipped without
``--tokenizer``, and say so.
"""

from __future__ import annotations

from typing import Any

from logprobe.client import RecordingClient
from logprobe.judge import HarnessError

PROBE_TEXT = "Hello world"
PATHS = ("/tokenize", "/v1/tokenize")  # below the server's root, then below the API's


def root_of(base_url: str) -> str:
    """``http://host:port`` of ``http://host:port/v1``."""
    return base_url.rstrip("/").removesuffix("/v1")


def _body(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "prompt": text, "content": text, "add_special_tokens": False,
            "add_special": False}


def _ids(body: Any) -> list[int] | None:
    """The token ids of a tokenize answer (none for an empty text), or None if it is not one."""
    tokens = body.get("tokens") if isinstance(body, dict) else None
    if isinstance(tokens, list) and all(isinstance(t, int) and not isinstance(t, bool)
                                        for t in tokens):
        return tokens
    return None


def locate(client: RecordingClient, model: str) -> tuple[str | None, str]:
    """The server's tokenize URL, or None; and what was found, for the report's header."""
    root = root_of(client.base_url)
    tried = []
    for path in PATHS:
        exchange = client.post(root + path, _body(model, PROBE_TEXT))
        ids = _ids(exchange.json) if exchange.status == 200 and not exchange.truncated else None
        if ids:
            return root + path, f"the server's {path} ({PROBE_TEXT!r} -> {ids})"
        if exchange.transport_error:  # it hangs or drops: do not ask again
            tried.append(f"{path}: {exchange.transport_error}")
            break
        tried.append(f"{path}: HTTP {exchange.status}")
    return None, "the server does not tokenize (" + "; ".join(tried) + ")"


class ServerTokenizer:
    """``encode`` and ``decode`` by the server under test, as the checks call a tokenizer's."""

    independent = False  # the server's own word: not a witness of its vocabulary

    def __init__(self, client: RecordingClient, url: str, model: str):
        self._client = client
        self._url = url
        self._model = model
        self._encoded: dict[str, list[int]] = {}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The prompt's ids, without special tokens (how the suite and lm-eval build them;
        ``add_special_tokens=True`` is not asked for anywhere)."""
        if text not in self._encoded:
            exchange = self._client.post(self._url, _body(self._model, text))
            ids = _ids(exchange.json) if exchange.status == 200 else None
            if ids is None:
                raise HarnessError(f"the server's /tokenize failed on {text!r} (pass "
                                   f"--tokenizer): {exchange.summary(300)}")
            self._encoded[text] = ids
        return list(self._encoded[text])

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        url = self._url.removesuffix("/tokenize") + "/detokenize"
        exchange = self._client.post(url, {"model": self._model, "tokens": list(ids)})
        body = exchange.json if exchange.status == 200 else None
        text = (body.get("prompt", body.get("content")) if isinstance(body, dict) else None)
        if not isinstance(text, str):
            raise HarnessError(f"the server's /detokenize failed on {ids} (pass --tokenizer): "
                               f"{exchange.summary(300)}")
        return text

    def __bool__(self) -> bool:
        return True  # a tokenizer, though it has no length to tell

    def __len__(self) -> int:
        raise TypeError("the server's /tokenize does not list its vocabulary")
