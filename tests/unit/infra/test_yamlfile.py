"""The hand-edited YAML files fail one way: a typed error naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.yamlfile import load_mapping


class FileError(ValueError):
    pass


def test_a_mapping_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\nb: [x]\n")
    assert load_mapping(path, FileError, "test file") == {"a": 1, "b": ["x"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "test file not found"),
        ("a: [\n", "not valid YAML"),
        ("", "expected a mapping at the top level of the test file"),
        ("- a\n", "expected a mapping at the top level of the test file"),
    ],
)
def test_each_failure_names_the_file(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "f.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(FileError, match=message) as caught:
        load_mapping(path, FileError, "test file")
    assert str(caught.value).startswith(f"{path}: ")


def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="cannot read the test file: Is a directory"):
        load_mapping(tmp_path, FileError, "test file")
