"""The served model's tokenizer, loaded in milliseconds when it can be.

The checks only encode text to ids and decode ids to text. A local folder with
a ``tokenizer.json`` is read by the ``tokenizers`` library directly (70 ms)
instead of through transformers (3.5 s of imports on the embedded machine,
paid again by every pytest-xdist worker). Folders whose config asks for
transformers-only post-processing of decoded text, and hub ids, go through
``AutoTokenizer`` as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FastTokenizer:
    """``encode``/``decode``/``len`` of a ``tokenizer.json``, as transformers answers them."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))

    def __len__(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))


def fast_path(source: str) -> Path | None:
    """The folder's tokenizer.json when decoding it directly gives transformers' text."""
    folder = Path(source)
    if not (folder / "tokenizer.json").is_file():
        return None
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        config = {}
    if config.get("clean_up_tokenization_spaces"):  # a transformers-side edit of decoded text
        return None
    return folder / "tokenizer.json"


def load_tokenizer(source: str) -> Any:
    """A tokenizer for ``source`` (a folder or a hub id); ImportError if none can be built."""
    path = fast_path(source)
    if path is not None:
        try:
            return FastTokenizer(path)
        except ImportError:
            pass
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


_SPELLINGS: dict[int, tuple[dict[str, int | None], frozenset[str]]] = {}


def _spellings(tokenizer: Any) -> tuple[dict[str, int | None], frozenset[str]]:
    """(in-context spelling -> id, None where two ids share it; every spelling), built once
    per tokenizer (50 ms for 49k tokens with the fast path)."""
    key = id(tokenizer)
    if key not in _SPELLINGS:
        anchor = tokenizer.encode("a", add_special_tokens=False)[-1:]
        lead = tokenizer.decode(anchor)
        by_spelling: dict[str, int | None] = {}
        every: set[str] = set()
        for i in range(len(tokenizer)):
            alone = tokenizer.decode([i])
            in_context = tokenizer.decode([*anchor, i])
            spelling = in_context[len(lead):] if in_context.startswith(lead) else alone
            by_spelling[spelling] = None if spelling in by_spelling else i
            every.update((alone, spelling))
        _SPELLINGS[key] = (by_spelling, frozenset(every))
    return _SPELLINGS[key]


def token_id_of_spelling(tokenizer: Any) -> dict[str, int | None]:
    """How a server spells each vocabulary token mid-text (SentencePiece keeps a leading
    space there that it drops at the start), mapped back to its id; None where two ids
    are spelled alike, so a caller never guesses."""
    return _spellings(tokenizer)[0]


def token_spellings(tokenizer: Any) -> frozenset[str]:
    """Every string a server may give for one vocabulary token: decoded alone, or mid-text."""
    return _spellings(tokenizer)[1]
