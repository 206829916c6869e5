// The file-based readers take a path: each fuzzer process writes its inputs to one file
// in its own folder under $TMPDIR, else /dev/shm (memory: several times faster than a
// disk), else /tmp, overwritten per input; the folder is removed at exit.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace fuzz {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    const std::filesystem::path base = tmp ? tmp : std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    path = base / ("mtad_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline std::string write_input(const char* name, const uint8_t* data, size_t size) {
  static const TempDir dir;
  const std::string path = (dir.path / name).string();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace fuzz
