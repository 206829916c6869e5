#include "ops/verify.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "ops/dispatch.h"
#include "ops/sampling.h"
#include "ops/to_host.h"

namespace mtad::ops {
namespace {

namespace vd = verify_detail;

void check_f32(const at::Tensor& t, const char* op, const char* arg, int64_t dim) {
  TORCH_CHECK(t.defined(), op, ": ", arg, " is undefined");
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", arg, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, op, ": ", arg, " must have ", dim, " dimension(s), got shape ", t.sizes());
}

// Turns the tree pass's status into an exception naming the node and what is wrong.
void check_tree_status(const int64_t* info, int64_t G, int64_t V) {
  const int64_t status = info[vd::kStatus], node = info[vd::kBadNode], value = info[vd::kBadValue];
  if (status == vd::kOk) return;
  TORCH_CHECK(status != vd::kBadParent, "verify: parents[", node, "] = ", value,
              " must be -1 (depth 1) or an earlier node index");
  TORCH_CHECK(status != vd::kBadToken, "verify: tokens[", node, "] = ", value, " is outside the vocabulary [0, ", V,
              ")");
  TORCH_CHECK(status != vd::kTooDeep, "verify: node ", node, " is at depth ", value, " but best_lq has only ", G,
              " depths");
  TORCH_CHECK(false, "verify: internal error, unknown status ", status);
}

}  // namespace

VerifyResult verify(const at::Tensor& target_logits, const at::Tensor& parents, const at::Tensor& tokens,
                    const at::Tensor& best_lq, double tau, double temperature, int64_t top_k, double top_p,
                    uint64_t seed, uint64_t offset) {
  check_f32(target_logits, "verify", "target_logits", 2);
  const int64_t N = target_logits.size(0) - 1, V = target_logits.size(1);
  TORCH_CHECK(N >= 0 && V > 0, "verify: target_logits must be [N + 1, V] with V > 0, got ", target_logits.sizes());
  check_index_vector(parents, target_logits, "verify", "parents", N, "the logits");
  check_index_vector(tokens, target_logits, "verify", "tokens", N, "the logits");
  check_f32(best_lq, "verify", "best_lq", 1);
  TORCH_CHECK(best_lq.device() == target_logits.device(), "verify: best_lq is on ", best_lq.device(),
              " but the logits are on ", target_logits.device());
  TORCH_CHECK(tau > 0.0 && tau <= 1.0, "verify: tau must be in (0, 1], got ", tau);
  const int64_t G = best_lq.size(0);
  const float log_tau = static_cast<float>(std::log(tau));

  const at::Tensor logp = normalize(target_logits, temperature, top_k, top_p).contiguous();
  const at::Tensor par = parents.contiguous(), tok = tokens.contiguous(), lq = best_lq.contiguous();
  at::Tensor node_lp = at::empty({N}, logp.options());
  at::Tensor info = at::empty({vd::info_size(N)}, par.options());
  VerifyResult r;

  if (target_logits.device().is_cpu()) {
    cpu::verify_tree_f32(logp.data_ptr<float>(), V, par.data_ptr<int64_t>(), tok.data_ptr<int64_t>(), N,
                         lq.data_ptr<float>(), G, log_tau, node_lp.data_ptr<float>(), info.data_ptr<int64_t>());
    count_host_read();  // the CUDA branch's one read (header and bonus token)
    const int64_t* h = info.data_ptr<int64_t>();
    check_tree_status(h, G, V);
    r.accept_len = h[vd::kAcceptLen];
    r.accept_node = h[vd::kAcceptNode];
    r.bonus_token = sample(logp.narrow(0, h[vd::kBonusRow], 1), seed, offset).item<int64_t>();
    r.path = info.narrow(0, vd::kHeader, r.accept_len).clone();  // on the host, as the CUDA branch's
    r.node_logprob = node_lp;
    return r;
  }
#ifdef MTAD_WITH_CUDA
  if (target_logits.is_cuda()) {
    const c10::cuda::CUDAGuard guard(target_logits.device());
    cuda::verify_tree(logp.data_ptr<float>(), V, par.data_ptr<int64_t>(), tok.data_ptr<int64_t>(), N,
                      lq.data_ptr<float>(), G, log_tau, node_lp.data_ptr<float>(), info.data_ptr<int64_t>(),
                      stream_of(target_logits));
    // The bonus row index stays on the device (valid even on error), so the draw follows
    // without a round trip; header, path room and bonus then come back in one copy.
    const at::Tensor row = logp.index_select(0, info.narrow(0, vd::kBonusRow, 1));
    const at::Tensor bonus = sample(row, seed, offset).reshape({1});
    const at::Tensor host = to_host(at::cat({info.narrow(0, 0, vd::kHeader + N), bonus}));
    const int64_t* h = host.data_ptr<int64_t>();
    check_tree_status(h, G, V);
    r.accept_len = h[vd::kAcceptLen];
    r.accept_node = h[vd::kAcceptNode];
    r.bonus_token = h[vd::kHeader + N];
    r.path = host.narrow(0, vd::kHeader, r.accept_len).clone();  // on the host
    r.node_logprob = node_lp;
    return r;
  }
#endif
  no_kernel("verify", target_logits);
}

at::Tensor sps_accept_launch(const at::Tensor& target_logprobs, const at::Tensor& draft_logprobs,
                             const at::Tensor& tokens, uint64_t seed, uint64_t offset) {
  check_f32(target_logprobs, "sps_accept", "target_logprobs", 2);
  check_f32(draft_logprobs, "sps_accept", "draft_logprobs", 2);
  const int64_t G = target_logprobs.size(0) - 1, V = target_logprobs.size(1);
  TORCH_CHECK(G >= 0 && V > 0, "sps_accept: target_logprobs must be [G + 1, V] with V > 0, got ",
              target_logprobs.sizes());
  TORCH_CHECK(draft_logprobs.size(0) == G && draft_logprobs.size(1) == V, "sps_accept: draft_logprobs must be [",
              G, ", ", V, "] (one row fewer than target_logprobs), got ", draft_logprobs.sizes());
  TORCH_CHECK(draft_logprobs.device() == target_logprobs.device(), "sps_accept: draft_logprobs is on ",
              draft_logprobs.device(), " but target_logprobs is on ", target_logprobs.device());
  check_index_vector(tokens, target_logprobs, "sps_accept", "tokens", G, "the logits");
  const at::Tensor tlp = target_logprobs.contiguous(), dlp = draft_logprobs.contiguous(), tok = tokens.contiguous();

  // accepted count, next token, first out-of-range token or -1
  at::Tensor out = at::empty({3}, tok.options());
  if (tlp.device().is_cpu()) {
    cpu::sps_accept_f32(tlp.data_ptr<float>(), dlp.data_ptr<float>(), tok.data_ptr<int64_t>(), G, V, seed, offset,
                        out.data_ptr<int64_t>());
    return out;
  }
#ifdef MTAD_WITH_CUDA
  if (tlp.is_cuda()) {
    const c10::cuda::CUDAGuard guard(tlp.device());
    cuda::sps_accept(tlp.data_ptr<float>(), dlp.data_ptr<float>(), tok.data_ptr<int64_t>(), G, V, seed, offset,
                     out.data_ptr<int64_t>(), stream_of(tlp));
    return out;
  }
#endif
  no_kernel("sps_accept", tlp);
}

std::pair<int64_t, int64_t> sps_accept_finish(const int64_t* out, int64_t V) {
  TORCH_CHECK(out[2] < 0, "sps_accept: tokens[", out[2], "] is outside the vocabulary [0, ", V, ")");
  TORCH_CHECK(out[1] >= 0, "sps_accept: row ", out[0], " of target_logprobs has no probability mass",
              " (expected normalised log-probs)");
  return {out[0], out[1]};
}

std::pair<int64_t, int64_t> sps_accept(const at::Tensor& target_logprobs, const at::Tensor& draft_logprobs,
                                       const at::Tensor& tokens, uint64_t seed, uint64_t offset) {
  const at::Tensor out = to_host(sps_accept_launch(target_logprobs, draft_logprobs, tokens, seed, offset));
  return sps_accept_finish(out.data_ptr<int64_t>(), target_logprobs.size(1));
}

}  // namespace mtad::ops
