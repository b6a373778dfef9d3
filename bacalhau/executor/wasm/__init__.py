"""The WASM executor: WASI preview 1 modules run in-process by wasmtime."""

from bacalhau.executor.wasm._executor import WASM32_MAX_MEMORY, WasmExecutor
from bacalhau.executor.wasm._modules import ModuleCacheStats
from bacalhau.executor.wasm._params import WasmEngineSpec

__all__ = ["WASM32_MAX_MEMORY", "ModuleCacheStats", "WasmEngineSpec", "WasmExecutor"]
