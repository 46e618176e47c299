"""``pipeline/topics.py`` is the one place topic names are written, and it names exactly the topics of topics.yaml."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

from pipeline import topics
from pipeline.config import Settings
from pipeline.kafka.topics import default_topics_path, load_topics

REPO = Path(__file__).resolve().parents[3]
PIPELINE = REPO / "pipeline"


def test_the_module_names_every_topic_of_topics_yaml_and_no_other() -> None:
    in_file = set(load_topics(REPO / "topics.yaml").names())
    in_module = set(topics.all_topics())
    assert not in_file - in_module, f"in topics.yaml but not in pipeline/topics.py: {sorted(in_file - in_module)}"
    assert not in_module - in_file, f"in pipeline/topics.py but not in topics.yaml: {sorted(in_module - in_file)}"


def test_the_dead_letter_topics_are_topics() -> None:
    assert set(topics.DLQ_TOPICS) <= topics.all_topics()


def test_the_default_worker_app_id_has_its_leader_topic() -> None:
    """faust's leader election topic is created by topics.yaml (the app may not declare topics)."""
    default = Settings.model_fields["app_id"].default
    assert default in topics.WORKER_APP_IDS
    assert topics.leader_topic(default) in topics.all_topics()


def test_the_packaged_topics_file_is_the_repository_file() -> None:
    """One hand-edited file: the package's copy (what an installed wheel reads) links to the repository's."""
    packaged = PIPELINE / "kafka" / "topics.yaml"
    assert packaged.is_symlink(), f"{packaged} must be a symbolic link to the repository's topics.yaml, not a copy"
    assert packaged.resolve() == (REPO / "topics.yaml").resolve()
    assert default_topics_path().resolve() == (REPO / "topics.yaml").resolve()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "kafka/*.yaml" in package_data["pipeline"], "a built wheel must carry topics.yaml (as a regular file)"


def _literals(tree: ast.AST) -> Iterator[tuple[int, str, ast.AST | None]]:
    """Every string constant that is not a docstring, with the node it is an argument of or compared with."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for arg in [*node.args[:1], *(k.value for k in node.keywords if k.arg in ("topic", "topics"))]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.lineno, arg.value, node
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "topic" for s in sides):
                for side in sides:
                    if isinstance(side, ast.Constant) and isinstance(side.value, str):
                        yield side.lineno, side.value, node
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value, None


def test_no_topic_name_is_written_anywhere_else_in_pipeline() -> None:
    """A dotted name (``contacts.dlq``) anywhere, or a plain one (``audit``) where a topic goes, is a second copy."""
    names = topics.all_topics() | {topics.RAW_TOPIC_PREFIX}
    copies = []
    for path in sorted(PIPELINE.rglob("*.py")):
        if path == PIPELINE / "topics.py":
            continue
        for line, value, context in _literals(ast.parse(path.read_text())):
            plain = "." not in value and "-" not in value
            if value in names and (context is not None or not plain):
                copies.append(f"{path.relative_to(REPO)}:{line}: {value!r}")
    assert not copies, "topic names belong in pipeline/topics.py:\n" + "\n".join(copies)
