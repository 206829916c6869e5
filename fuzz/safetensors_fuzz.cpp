// libFuzzer target: the safetensors header and offset parser (csrc/io/safetensors.cpp).
// The input is written to a file (the reader maps files); a bad file must end in
// mtad::Error (FormatError naming the file), never a crash, a hang or a sanitizer report.
#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_file.h"
#include "io/safetensors.h"
#include "mtad/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("model.safetensors", data, size);
  try {
    mtad::SafetensorsFile f(path);
    // Every tensor the header admits must be readable within the file.
    for (const auto& [name, info] : f.tensors()) {
      const at::Tensor t = f.tensor(name);
      if (t.numel() > 0) (void)t.reshape(-1)[t.numel() - 1].item<double>();
      (void)info;
    }
  } catch (const mtad::Error&) {
  }
  return 0;
}
