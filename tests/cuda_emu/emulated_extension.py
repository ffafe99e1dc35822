"""inv_kernels' compiled extension built with its CUDA kernels emulated on the CPU, for tests without a GPU.

``load()`` compiles every source of csrc/ with g++: the C++ files as they are, the .cu files after two rewrites that
plain C++ cannot express (``kernel<<<grid, block, smem, stream>>>(args)`` becomes ``::emu::launch(kernel, grid,
block, smem, stream)(args)``, and ``extern __shared__ T name[];`` a pointer to the launch's dynamic shared memory;
calls that report each static ``__shared__`` array's size and each kernel's ``__launch_bounds__`` are added, so a
launch a GPU would refuse fails here too),
against include/cuda_emu.h in place of the CUDA headers. The module has the real one's Python API (``cpu`` and
``cuda`` submodules); its ``cuda`` functions take host pointers and run the kernels block by block, thread by thread.
The build is cached under ~/.cache/inv_kernels/cuda_emu/<module>-<hash of the sources>.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
EMU_INCLUDE = Path(__file__).resolve().parent / "include"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inv_kernels" / "cuda_emu"

LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(", re.S)
STATIC_SHARED = re.compile(r"__shared__\s+([^;{}()]+?)\s+(\w+)\s*((?:\[[^\]]+\])+)\s*;")
LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\(([^()]*)\)(\s*[A-Za-z_]\w*\s*\([^()]*\)\s*\{)")
DYNAMIC_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([A-Za-z_][\w:]*(?:\s+[A-Za-z_]\w*)*?)\s+(\w+)\s*\[\s*\]\s*;"
)
FLAGS = ["-std=c++17", "-O1", "-fPIC", "-fopenmp", "-DINV_WITH_CUDA=1", "-Wno-unknown-pragmas", "-Wno-attributes"]
# INV_KERNELS_CUDA_EMULATION_ASAN=1: AddressSanitizer finds reads and writes outside the tensors (run python with
# LD_PRELOAD=$(g++ -print-file-name=libasan.so) and ASAN_OPTIONS=detect_leaks=0).
if os.environ.get("INV_KERNELS_CUDA_EMULATION_ASAN") == "1":
    FLAGS += ["-fsanitize=address", "-fno-omit-frame-pointer"]


def translate(source: str, name: str) -> str:
    """The C++ text of a .cu file for the emulation (see the module docstring)."""
    launches = source.count("<<<")
    out, replaced = LAUNCH.subn(lambda m: f"::emu::launch({m[1]}, {m[2]})(", source)
    if replaced != launches:
        raise RuntimeError(f"{name}: rewrote {replaced} of {launches} kernel launches")
    out = LAUNCH_BOUNDS.sub(lambda m: f"__launch_bounds__({m[1]}){m[2]} ::emu::note_launch_bounds({m[1]});", out)
    out = DYNAMIC_SHARED.sub(lambda m: f"{m[1]}* {m[2]} = reinterpret_cast<{m[1]}*>(::emu::dynamic_shared());", out)
    out = STATIC_SHARED.sub(
        lambda m: f"__shared__ {m[1]} {m[2]}{m[3]}; ::emu::note_static_shared(sizeof({m[2]}));", out
    )
    if re.search(r"extern\s+__shared__", out):
        raise RuntimeError(f"{name}: an extern __shared__ declaration the rewrite does not understand")
    return f'#line 1 "{name}"\n' + out


def _pybind11_include() -> str:
    import pybind11

    return pybind11.get_include()


def _key(sources: list[Path]) -> str:
    digest = hashlib.sha256(" ".join(FLAGS).encode())
    for path in [Path(__file__), *sorted(EMU_INCLUDE.glob("*.h")), *sources]:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build(module: str = "_C", sources: list[Path] | None = None) -> Path:
    """Compiles an emulated extension module (or finds it in the cache); returns the path of its shared library.

    Args:
        module: the name in the sources' PYBIND11_MODULE.
        sources: .cpp and .cu files to compile (default: all of csrc/, making inv_kernels' ``_C``); the headers of
            csrc/ count towards the cache key too.
    """
    if shutil.which("g++") is None:
        raise RuntimeError("g++ is not installed")
    if sources is None:
        sources = sorted(CSRC.rglob("*.cpp")) + sorted(CSRC.rglob("*.cu"))
    headers = sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cuh"))
    out_dir = CACHE / f"{module}-{_key(headers + sources)}"
    library = out_dir / f"{module}{sysconfig.get_config_var('EXT_SUFFIX')}"
    if library.exists():
        return library
    work = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    includes = [
        "-I",
        str(EMU_INCLUDE),
        "-I",
        str(CSRC),
        "-I",
        sysconfig.get_paths()["include"],
        "-I",
        _pybind11_include(),
    ]
    units = []
    for path in sources:
        if path.suffix == ".cu":
            name = str(path.relative_to(ROOT))
            translated = work / (name.replace("/", "__") + ".cpp")
            translated.write_text(translate(path.read_text(), name))
            units.append(translated)
        else:
            units.append(path)

    def compile_unit(unit: Path) -> Path:
        obj = work / (unit.name + ".o")
        cmd = ["g++", *FLAGS, *includes, "-c", str(unit), "-o", str(obj)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"compiling {unit} failed:\n{result.stderr[-6000:]}")
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objects = list(pool.map(compile_unit, units))
    linked = work / library.name
    sanitize = [f for f in FLAGS if f.startswith("-fsanitize")]
    result = subprocess.run(
        ["g++", "-shared", "-fopenmp", *sanitize, *map(str, objects), "-o", str(linked)], capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"linking the emulated extension failed:\n{result.stderr[-6000:]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    os.replace(linked, library)
    shutil.rmtree(work, ignore_errors=True)
    return library


def load(module: str = "_C", sources: list[Path] | None = None) -> ModuleType:
    """The emulated extension module (built on first use); arguments as ``build``."""
    library = build(module, sources)
    spec = importlib.util.spec_from_file_location(module, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
