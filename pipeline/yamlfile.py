"""Reading the hand-edited YAML files (``policy.yaml``, ``topics.yaml``): one way to fail, naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_mapping(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The file's top-level mapping; ``error`` (naming the file and what went wrong) when it cannot be one.

    ``what`` names the file for people ("policy file", "topics file"). Validation against a model is the caller's:
    each file says where a bad entry is in its own terms.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level of the {what}")
    return data
