"""Where logprobe's data folders are: inside the wheel (``_data/``) or in the checkout."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def data_dir(*parts: str) -> Path | None:
    """``_data/<parts>`` of an installed wheel, else ``<checkout>/<parts>``; None if neither."""
    for root in (_HERE / "_data", _HERE.parent):
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return None


def require_data_dir(*parts: str) -> Path:
    found = data_dir(*parts)
    if found is None:
        raise FileNotFoundError(f"logprobe's {'/'.join(parts)} folder is missing from this "
                                "installation")
    return found
