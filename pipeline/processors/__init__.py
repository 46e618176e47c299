"""Pure processing rules over pydantic models: no faust, no SQL, no HTTP. Policy comes from ``pipeline.policy``."""

from pipeline.processors.chain import (
    ChainContext,
    ChainOutcome,
    ChainResult,
    Dropped,
    Failed,
    Passed,
    Quarantined,
    run_chain,
)
from pipeline.processors.compiled import CompiledPolicy, compile_policy

__all__ = [
    "ChainContext",
    "ChainOutcome",
    "ChainResult",
    "CompiledPolicy",
    "Dropped",
    "Failed",
    "Passed",
    "Quarantined",
    "compile_policy",
    "run_chain",
]
