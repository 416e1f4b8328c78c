"""The served model's true next-token logprobs, for the reference oracle (ORACLE-001).

transformers in float32 on this machine's CPU, from a local folder (the embedded model,
or ``--reference-model DIR``) or a hub id (with internet). Loading it is the suite's own
side: a model that cannot load is a harness error, never a verdict on the server.
"""

from __future__ import annotations

from functools import cache
from typing import Any


class OracleModel:
    def __init__(self, source: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.source = source
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        self.model.eval()

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, user: str) -> list[int] | None:
        """The ids a chat server feeds the model for one user message, ready for the
        assistant's reply (the model's own chat template); None without a template."""
        if not getattr(self.tokenizer, "chat_template", None):
            return None
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                  add_generation_prompt=True, tokenize=False)
        return self.encode(text)

    def token_strings(self, ids: list[int]) -> list[str]:
        """Each id as it reads in place (what a server's echo lists for it): the text it
        adds to the decoded ids before it."""
        texts = [self.tokenizer.decode(ids[:n]) for n in range(len(ids) + 1)]
        return [texts[n + 1][len(texts[n]):] if texts[n + 1].startswith(texts[n]) else ""
                for n in range(len(ids))]

    def prompt_logprobs(self, ids: list[int]) -> list[float | None]:
        """log P(ids[p] | ids[:p]) for every position: None at 0, as an echo gives it."""
        torch = self._torch
        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0].float()
        table = torch.log_softmax(logits, dim=-1)
        return [None] + [float(table[p - 1, ids[p]]) for p in range(1, len(ids))]


@cache
def load_oracle_model(source: str) -> Any:
    """One model per process, whatever number of tests ask."""
    from logprobe.judge import HarnessError

    try:
        return OracleModel(source)
    except ImportError as exc:
        raise HarnessError(f"the reference oracle needs torch and transformers ({exc}); "
                           "pass --reference-model none to turn it off") from exc
    except (OSError, ValueError) as exc:
        raise HarnessError(f"--reference-model {source}: cannot load it ({exc}); pass a local "
                           "folder of the served model, or none") from exc
