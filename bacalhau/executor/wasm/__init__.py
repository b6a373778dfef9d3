"""The WASM executor: WASI preview 1 modules run in-process by wasmtime."""

from bacalhau.executor.wasm._executor import WasmExecutor
from bacalhau.executor.wasm._modules import ModuleCacheStats
from bacalhau.executor.wasm._params import WasmEngineSpec

__all__ = ["ModuleCacheStats", "WasmEngineSpec", "WasmExecutor"]
