// The decoder's method table (decode/methods.cpp): everything that differs between methods.
#pragma once

#include <cstdint>
#include <memory>

#include "decode/accept.h"
#include "decode/proposer.h"
#include "mtad/decoder.h"

namespace mtad {

struct MethodSpec {
  MethodInfo info;
  // Checks of the configuration this method reads; throws InputError.
  void (*check)(const DecodeConfig&);
  // Cache slots a step needs beyond the committed tokens (read at every step: ADED's
  // parameters may change).
  int64_t (*headroom)(const DecodeConfig&);
  std::unique_ptr<Proposer> (*proposer)(const ProposerArgs&);  // null: no draft
  AcceptRule accept;
};

const std::vector<MethodSpec>& method_specs();
const MethodSpec& method_spec(Method m);

}  // namespace mtad
