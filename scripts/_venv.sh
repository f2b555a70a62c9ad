# Shared by scripts/run-benchmark and scripts/test (sourced, not run): create or reuse one
# virtualenv for this clone, install torch if it is missing, install the project with extras.
#
#   ensure_venv DIR EXTRAS     e.g. ensure_venv .venv-test "test,onnx,ray"
#
# Environment: PYTHON (interpreter that creates the venv, default python3); TORCH (the torch
# requirement installed when torch is missing, default the version CI and the baseline use);
# TORCH_INDEX_URL (package index for torch: the PyTorch CPU wheel index from pytorch.org's
# install selector gives the CPU build on any machine; default: pip's own configuration; on
# Linux without an NVIDIA GPU, one line says how to choose the CPU build before torch is
# installed); BENCH_VENV (overrides DIR, used by CI).
# A stamp file records what was installed (pyproject.toml's hash and the extras): a second run
# with the same stamp installs nothing.

set -euo pipefail

has_torch() {  # without importing it (seconds): is a torch package installed for Python $1?
    "$1" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' \
        2>/dev/null
}

#: Present when an NVIDIA driver is loaded (a variable so that tests can point it elsewhere).
NVIDIA_PROC_DIR=/proc/driver/nvidia
#: PyTorch's CPU wheel index: the example the hint below gives.
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

has_nvidia_gpu() {  # an NVIDIA driver answers (nvidia-smi) or is loaded (/proc/driver/nvidia)
    if command -v nvidia-smi >/dev/null 2>&1 && timeout 20 nvidia-smi -L >/dev/null 2>&1; then
        return 0
    fi
    [ -e "$NVIDIA_PROC_DIR" ]
}

cpu_torch_hint() {  # one line before torch is installed on Linux without an NVIDIA GPU
    if [ -z "${TORCH_INDEX_URL:-}" ] && [ "$(uname -s)" = Linux ] && ! has_nvidia_gpu; then
        echo "setup: no NVIDIA GPU found, and torch's default Linux build bundles CUDA (several GB);" \
            "for the CPU build stop now (Ctrl-C) and rerun with PyTorch's CPU wheel index:" \
            "TORCH_INDEX_URL=$TORCH_CPU_INDEX $0" >&2
    fi
}

ensure_venv() {
    local venv="${BENCH_VENV:-$1}" extras="$2"
    local python="${PYTHON:-python3}"
    local stamp="$venv/.inpaint-bench-installed"

    if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c "pass" 2>/dev/null; then
        echo "setup: $venv is broken (its Python does not start); recreating it" >&2
        rm -rf "$venv"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "setup: $python is missing or older than Python 3.10; set PYTHON=..." >&2
            return 1
        fi
        local site=()
        # A torch that is already installed (e.g. a CUDA build) is reused, not replaced.
        if has_torch "$python"; then
            site=(--system-site-packages)
            echo "setup: creating $venv (reusing the installed torch)" >&2
        else
            echo "setup: creating $venv (first run: installs torch and dependencies)" >&2
        fi
        "$python" -m venv ${site[@]+"${site[@]}"} "$venv"
    fi
    VENV_PYTHON="$venv/bin/python"
    local want
    want="$("$VENV_PYTHON" -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml) [$extras]"

    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && has_torch "$VENV_PYTHON"; then
        return 0  # installed before from this very pyproject.toml: nothing to do
    fi
    if ! has_torch "$VENV_PYTHON"; then
        local index=()
        if [ -n "${TORCH_INDEX_URL:-}" ]; then index=(--index-url "$TORCH_INDEX_URL"); fi
        local torch="${TORCH:-torch==2.13.0}"
        cpu_torch_hint
        echo "setup: installing $torch${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL}" >&2
        "$VENV_PYTHON" -m pip install --quiet ${index[@]+"${index[@]}"} "$torch"
    fi
    local target="."
    if [ -n "$extras" ]; then target=".[$extras]"; fi
    echo "setup: installing this clone's inpaint-bench${extras:+[$extras]} into $venv" >&2
    # An extra that this version does not declare only makes pip warn; it is not an error.
    "$VENV_PYTHON" -m pip install --quiet -e "$target"
    rm -f "$stamp"
    echo "$want" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
}
