// Exceptions that cross into Python as named exception types (see bindings.cpp).
// Every message names the file, tensor, key or argument that is wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace mtad {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A file that is not what it claims: truncated, malformed header, bad offsets.
struct FormatError : Error {
  using Error::Error;
};
// config.json asks for something this engine does not implement, or is inconsistent.
struct ConfigError : Error {
  using Error::Error;
};
// The tensors of a checkpoint do not match its config: missing, unexpected, shape, dtype.
struct WeightError : Error {
  using Error::Error;
};
// A call's arguments are invalid: token ids out of range, cache overflow, bad shapes.
struct InputError : Error {
  using Error::Error;
};
struct FileNotFound : Error {
  using Error::Error;
};

}  // namespace mtad
