"""The private names of faust, mode and aiokafka that leadpipe relies on, checked against the installed libraries.

``pipeline.agents.faust_adapter.PRIVATE_API`` lists every one of them; this test fails, naming the attribute, when
an upgrade removes one, changes its kind (a coroutine that became a plain method, an attribute now set elsewhere)
or changes the parameters the adapter passes or receives. It also fails when the adapter uses a private name it
does not list, or when any other module of ``pipeline/`` reaches into these libraries' private names.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import faust
import pytest
from aiokafka.consumer.consumer import AIOKafkaConsumer
from aiokafka.producer.message_accumulator import MessageBatch
from aiokafka.producer.producer import AIOKafkaProducer
from aiokafka.structs import TopicPartition

import pipeline
from pipeline.agents import faust_adapter
from pipeline.agents.app import LeadpipeApp
from pipeline.agents.faust_adapter import PRIVATE_API, BatchingAppMixin, Reliance

LIBRARIES = ("faust", "mode", "aiokafka")
DISTRIBUTIONS = {"faust": "faust-streaming", "mode": "mode-streaming", "aiokafka": "aiokafka"}
#: Mixins of the adapter and the library class they are mixed into.
MIXED_INTO: dict[type, type] = {BatchingAppMixin: faust.App}


def resolve(owner: str) -> Any:
    module_name, _, qualname = owner.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        found = getattr(found, part)
    return found


def where(reliance: Reliance) -> str:
    library = reliance.owner.split(".", 1)[0]
    version = metadata.version(DISTRIBUTIONS[library])
    why = f" ({reliance.why})" if reliance.why else ""
    return (
        f"pipeline/agents/faust_adapter.py relies on {reliance.owner}.{reliance.name}{why}, "
        f"as a {reliance.kind}; installed {DISTRIBUTIONS[library]} {version}"
    )


@pytest.fixture
async def instances() -> AsyncIterator[dict[str, Any]]:
    """Unstarted objects (no broker is contacted) whose ``__init__`` sets the instance attributes relied on."""
    app = LeadpipeApp("contract-probe", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    table = app.Table("contract-probe", key_type=bytes, value_type=bytes)
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", transactional_id="contract-probe")
    batch = MessageBatch(TopicPartition("contract-probe", 0), producer.create_batch(), ttl=1, linger_time=0)
    built = {
        "faust.transport.drivers.aiokafka:Consumer": app.consumer,
        "faust.transport.drivers.aiokafka:Producer": app.producer,
        "aiokafka.consumer.consumer:AIOKafkaConsumer": consumer,
        "faust.stores.memory:Store": table.data,
        "faust.streams:Stream": app.stream(app.topic("contract-probe")),
        "aiokafka.producer.producer:AIOKafkaProducer": producer,
        "aiokafka.producer.transaction_manager:TransactionManager": producer._txn_manager,
        "aiokafka.producer.message_accumulator:MessageAccumulator": producer._message_accumulator,
        "aiokafka.producer.message_accumulator:MessageBatch": batch,
    }
    yield built
    await consumer.stop()
    await producer.stop()


@pytest.mark.parametrize("reliance", PRIVATE_API, ids=lambda r: f"{r.owner}.{r.name}")
async def test_each_relied_on_name_is_there_as_the_adapter_uses_it(
    reliance: Reliance, instances: dict[str, Any]
) -> None:
    owner = resolve(reliance.owner)
    if reliance.kind == "instance_attribute":
        instance = instances[reliance.owner]
        assert isinstance(instance, owner), f"the contract test builds the wrong object for {reliance.owner}"
        assert hasattr(instance, reliance.name), f"{where(reliance)}: a new instance has no such attribute"
        return
    assert hasattr(owner, reliance.name), f"{where(reliance)}: no such attribute"
    static = inspect.getattr_static(owner, reliance.name)
    found = getattr(owner, reliance.name)
    if reliance.kind == "property":
        assert hasattr(static, "__get__") and not inspect.isfunction(static), f"{where(reliance)}: not a property"
    elif reliance.kind == "coroutine":
        assert inspect.iscoroutinefunction(found), f"{where(reliance)}: not a coroutine function any more"
    elif reliance.kind == "async_generator":
        assert inspect.isasyncgenfunction(found), f"{where(reliance)}: not an async generator any more"
    elif reliance.kind == "method":
        assert callable(found) and not inspect.iscoroutinefunction(found), f"{where(reliance)}: not a plain method"
    if reliance.params:
        parameters = list(inspect.signature(found).parameters)[1 : 1 + len(reliance.params)]
        assert parameters == list(reliance.params), (
            f"{where(reliance)}: its parameters are now {parameters}, the adapter uses {list(reliance.params)}"
        )


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _used_private_names(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Private names the module reads or writes as attributes, or defines in its classes (overrides)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            yield node.attr, node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name):
                    yield item.name, item.lineno


def _library_bases(cls: type) -> list[type]:
    bases = [base for base in cls.__mro__[1:] if base.__module__.split(".", 1)[0] in LIBRARIES]
    if cls in MIXED_INTO:
        bases.extend(MIXED_INTO[cls].__mro__)
    return bases


def _on_a_base(name: str, bases: list[type]) -> bool:
    return any(hasattr(base, name) or name in getattr(base, "__annotations__", {}) for base in bases)


def _class_names(node: ast.ClassDef) -> set[str]:
    """What a class body defines: methods, class attributes, and attributes its methods assign on ``self``."""
    names = set()
    for item in ast.walk(node):
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item in node.body:
            names.add(item.name)
        elif isinstance(item, ast.AnnAssign | ast.Assign):
            for target in item.targets if isinstance(item, ast.Assign) else [item.target]:
                if isinstance(target, ast.Name) and item in node.body:
                    names.add(target.id)
                elif isinstance(target, ast.Attribute) and ast.unparse(target.value) == "self":
                    names.add(target.attr)
    return {name for name in names if _private(name)}


def _split_names(module: ModuleType, tree: ast.Module) -> tuple[set[str], set[str]]:
    """(private names the module introduces itself, private names its classes override on a library's classes)."""
    own = {name for name in vars(module) if _private(name)}
    overrides = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and isinstance(cls := vars(module).get(node.name), type):
            bases = _library_bases(cls)
            for name in _class_names(node):
                (overrides if _on_a_base(name, bases) else own).add(name)
    return own, overrides


def test_the_adapter_uses_no_private_name_it_does_not_list() -> None:
    tree = ast.parse(Path(faust_adapter.__file__).read_text())
    listed = {reliance.name for reliance in PRIVATE_API}
    own, _overrides = _split_names(faust_adapter, tree)
    unlisted = sorted({f"{name} (line {line})" for name, line in _used_private_names(tree) if name not in own | listed})
    assert not unlisted, f"add these to faust_adapter.PRIVATE_API (and check them here): {unlisted}"


def _pipeline_modules() -> Iterator[ModuleType]:
    root = Path(pipeline.__file__).parent
    for path in sorted(root.rglob("*.py")):
        name = ".".join(("pipeline", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        if ".migrations." in name or name.endswith("__main__"):  # alembic scripts; running them is their import
            continue
        yield importlib.import_module(name)


def test_no_other_module_reaches_into_the_libraries_private_names() -> None:
    """Outside the adapter: no subclass of theirs overrides or reads a private name, no private access on their
    objects (a module that imports them may not touch ``obj._name`` at all, but for ``os._exit``)."""
    offences = []
    for module in _pipeline_modules():
        if module is faust_adapter or not module.__file__:
            continue
        source = Path(module.__file__).read_text()
        tree = ast.parse(source)
        imports_them = any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] in LIBRARIES for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in LIBRARIES)
            for n in ast.walk(tree)
        )
        own, overrides = _split_names(module, tree)
        offences += [f"{module.__name__} overrides {name} of a library class" for name in sorted(overrides)]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)) or node.attr in own:
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id == "os" and node.attr == "_exit":
                continue
            on_self = isinstance(base, ast.Name) and base.id in ("self", "cls")
            if imports_them and (not on_self or node.attr not in own):
                offences.append(f"{module.__name__}:{node.lineno} touches {ast.unparse(node)}")
    assert not offences, "move these into pipeline/agents/faust_adapter.py:\n" + "\n".join(offences)


def test_the_libraries_are_the_ones_the_project_pins() -> None:
    """The contract was written against faust-streaming 0.15 (pyproject pins below 0.16)."""
    assert metadata.version("faust-streaming").startswith("0.15."), metadata.version("faust-streaming")
    assert "faust" in sys.modules
