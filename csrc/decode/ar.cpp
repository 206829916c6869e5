// Autoregressive baseline (algorithms.md 1): one target forward, one token.
#include <ATen/ATen.h>

#include "decode/timer.h"
#include "mtad/decoder.h"
#include "ops/sampling.h"

namespace mtad {

std::vector<int64_t> Decoder::step_ar(StepStats& s) {
  const auto& p = config_.target;
  at::Tensor logits;
  {
    ScopedTimer t(s.verify_s);
    logits = target_.forward(tcache_, at::tensor({tokens_.back()}, at::kLong), at::Tensor(), at::Tensor(),
                             at::Tensor());
  }
  s.target_forwards = 1;
  at::Tensor lp = ops::normalize(logits, p.temperature, p.top_k, p.top_p);
  return {ops::sample(lp, config_.seed, next_offset()).item<int64_t>()};
}

}  // namespace mtad
