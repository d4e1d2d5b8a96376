"""What starts a catalog `local` worker: the model file it serves and the command line of its server."""

from __future__ import annotations

import importlib.util
import os
import shutil
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


def llama_server_binary(configured: str | None = None) -> Path:
    """The `llama-server` to run: `configured` (GATEWAY_LLAMA_SERVER), else the one `make install` linked
    beside the gateway's Python (`.venv/bin`), else the first on the PATH."""
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LocalWorkerError(f"GATEWAY_LLAMA_SERVER={configured!r} is not an executable file")
        return path
    beside_python = Path(sys.executable).parent / "llama-server"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("llama-server")
    if on_path is None:
        raise LocalWorkerError("llama.cpp's server (llama-server) is not built: run `make install` (it builds and "
                               "caches it), or set GATEWAY_LLAMA_SERVER to a llama-server binary")
    return Path(on_path)


SHIPPED_TEMPLATES = Path(__file__).parent / "chat_templates"


def chat_template_path(worker: WorkerSpec) -> Path:
    """The worker's `chat_template`: a shipped template's name (a file of `chat_templates/`), or a file."""
    assert worker.local is not None and worker.local.chat_template is not None
    name = worker.local.chat_template
    shipped = SHIPPED_TEMPLATES / f"{name}.jinja"
    path = shipped if shipped.is_file() else Path(name).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SHIPPED_TEMPLATES.glob("*.jinja")))
        raise LocalWorkerError(f"worker {worker.name!r}: chat_template {name!r} is neither a file nor a shipped "
                               f"template ({known})")
    return path


def command_for(worker: WorkerSpec, binary: Path) -> list[str]:
    """llama-server's command line for `worker`: its model under the worker's id of it, on loopback, with
    `parallel` slots of `context_size` tokens each, Prometheus `/metrics` and `/slots` on (the gateway
    reads load from them); an embeddings worker pools by mean and takes a whole input in one batch."""
    assert worker.local is not None
    local = worker.local
    command = [str(binary), "--model", str(model_path(worker)), "--alias", worker.served()[0].worker_model_id,
               "--host", "127.0.0.1", "--port", str(local.port),
               "--ctx-size", str(local.context_size * local.parallel), "--parallel", str(local.parallel),
               "--threads", str(local.threads or os.cpu_count() or 1), "--metrics", "--slots", "--no-webui"]
    if local.chat_template:
        command += ["--chat-template-file", str(chat_template_path(worker))]
    if local.embeddings:
        command += ["--embeddings", "--pooling", "mean",
                    "--batch-size", str(local.context_size), "--ubatch-size", str(local.context_size)]
    return command + list(local.args)
