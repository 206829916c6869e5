#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined) into
# $MTAD_FUZZ_BUILD (default build/fuzz, ignored by git). Needs clang and its runtime
# (Debian: clang libclang-rt-14-dev), torch and nlohmann-json from pip.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${MTAD_FUZZ_BUILD:-build/fuzz}"
mkdir -p "$out"
cxx="${CXX_FUZZ:-clang++}"
torch_dir="$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
json_dir="$(python3 -c 'import os, nlohmann_json; print(os.path.dirname(nlohmann_json.__file__))')/include"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Icsrc -Ifuzz -isystem "$json_dir")
torch_inc=(-isystem "$torch_dir/include" -isystem "$torch_dir/include/torch/csrc/api/include")
torch_lib=(-L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib" -ltorch_cpu -lc10)
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(ccache)
objects() {  # compiles each source to an object (cached by ccache); prints the objects
  for src in "$@"; do
    local obj="$out/obj/${src//\//_}.o"
    mkdir -p "$out/obj"
    "${launcher[@]}" "$cxx" "${flags[@]}" "${torch_inc[@]}" -c "$src" -o "$obj"
    echo "$obj"
  done
}
build() {  # name, sources...
  local name="$1"; shift
  mapfile -t objs < <(objects "$@")
  "$cxx" "${flags[@]}" "${objs[@]}" "${torch_lib[@]}" -o "$out/$name"
  echo "built $out/$name"
}
build config_fuzz fuzz/config_fuzz.cpp csrc/io/config.cpp
build trigram_fuzz fuzz/trigram_fuzz.cpp csrc/decode/aded/trigram.cpp
build safetensors_fuzz fuzz/safetensors_fuzz.cpp csrc/io/safetensors.cpp
