"""Pure processing rules over pydantic models: no faust, no SQL, no HTTP. Policy comes from ``pipeline.policy``."""

from pipeline.processors.chain import (
    Accepted,
    ChainContext,
    ChainResult,
    Dropped,
    Failed,
    Outcome,
    Quarantined,
    run_chain,
)
from pipeline.processors.compiled import CompiledPolicy, compile_policy

__all__ = [
    "Accepted",
    "ChainContext",
    "ChainResult",
    "CompiledPolicy",
    "Dropped",
    "Failed",
    "Outcome",
    "Quarantined",
    "compile_policy",
    "run_chain",
]
