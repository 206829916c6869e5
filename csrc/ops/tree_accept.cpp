#include "ops/tree_accept.h"

#include <ATen/ATen.h>

#include <limits>

#include "ops/dispatch.h"
#include "ops/to_host.h"

namespace mtad::ops {
namespace {

namespace td = tree_accept_detail;

// The header (and path) of a finished walk, on the host; throws on a bad trie.
TreeAcceptResult finish(const char* op, const at::Tensor& info_host, int64_t N, int64_t V) {
  const int64_t* h = info_host.data_ptr<int64_t>();
  const int64_t status = h[td::kStatus], node = h[td::kBadNode], value = h[td::kBadValue];
  TORCH_CHECK(status != td::kBadParent, op, ": parents[", node, "] = ", value,
              " must be -1 (a child of the root) or an earlier node index");
  TORCH_CHECK(status != td::kBadToken, op, ": tokens[", node, "] = ", value, " is outside the vocabulary [0, ", V,
              ")");
  TORCH_CHECK(status == td::kOk, op, ": internal error, unknown status ", status);
  TreeAcceptResult r;
  r.accept_len = h[td::kAcceptLen];
  r.accept_node = h[td::kAcceptNode];
  r.next_token = h[td::kNextToken];
  r.path = info_host.narrow(0, td::kHeader, r.accept_len).clone();
  return r;
}

}  // namespace

TreeAcceptResult tree_accept(const at::Tensor& target, const at::Tensor& parents, const at::Tensor& tokens) {
  TORCH_CHECK(target.defined(), "tree_accept: target is undefined");
  at::Tensor best;
  int64_t V;
  if (target.scalar_type() == at::kLong) {
    TORCH_CHECK(target.dim() == 1 && target.size(0) >= 1, "tree_accept: argmax ids must be int64 [N + 1], got ",
                target.sizes());
    best = target.contiguous();
    V = std::numeric_limits<int64_t>::max();  // ids given: tokens are only compared with them
  } else {
    check_float(target, "tree_accept", "target");
    TORCH_CHECK(target.dim() == 2 && target.size(0) >= 1 && target.size(1) > 0,
                "tree_accept: target logits must be [N + 1, V] with V > 0, got ", target.sizes());
    best = at::argmax(target, 1).contiguous();
    V = target.size(1);
  }
  const int64_t N = best.size(0) - 1;
  check_index_vector(parents, target, "tree_accept", "parents", N, "the target rows");
  check_index_vector(tokens, target, "tree_accept", "tokens", N, "the target rows");
  const at::Tensor par = parents.contiguous(), tok = tokens.contiguous();
  if (best.device().is_cpu()) {
    at::Tensor info = at::empty({td::info_size(N)}, best.options());
    cpu::tree_accept(best.data_ptr<int64_t>(), par.data_ptr<int64_t>(), tok.data_ptr<int64_t>(), N, V,
                     info.data_ptr<int64_t>());
    count_host_read();  // the CUDA branch's one read
    return finish("tree_accept", info, N, V);
  }
#ifdef MTAD_WITH_CUDA
  if (best.is_cuda()) {
    const c10::cuda::CUDAGuard guard(best.device());
    at::Tensor info = at::empty({td::info_size(N)}, best.options());
    cuda::tree_accept(best.data_ptr<int64_t>(), par.data_ptr<int64_t>(), tok.data_ptr<int64_t>(), N, V,
                      info.data_ptr<int64_t>(), stream_of(best));
    // Header and path in one small copy.
    return finish("tree_accept", to_host(info.narrow(0, 0, td::kHeader + N)), N, V);
  }
#endif
  no_kernel("tree_accept", target);
}

TreeAcceptResult tree_sample(const at::Tensor& target_logprobs, const at::Tensor& parents, const at::Tensor& tokens,
                             uint64_t seed, uint64_t offset) {
  const at::Tensor& t = target_logprobs;
  TORCH_CHECK(t.defined(), "tree_sample: target_logprobs is undefined");
  TORCH_CHECK(t.scalar_type() == at::kFloat, "tree_sample: target_logprobs must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 2 && t.size(0) >= 1 && t.size(1) > 0,
              "tree_sample: target_logprobs must be [N + 1, V] with V > 0, got ", t.sizes());
  const int64_t N = t.size(0) - 1, V = t.size(1);
  check_index_vector(parents, t, "tree_sample", "parents", N, "the target rows");
  check_index_vector(tokens, t, "tree_sample", "tokens", N, "the target rows");
  const at::Tensor lp = t.contiguous(), par = parents.contiguous(), tok = tokens.contiguous();
  at::Tensor info = at::empty({td::info_size(N)}, par.options());
  TreeAcceptResult r;
  if (lp.device().is_cpu()) {
    cpu::tree_sample_f32(lp.data_ptr<float>(), V, par.data_ptr<int64_t>(), tok.data_ptr<int64_t>(), N, seed, offset,
                         info.data_ptr<int64_t>());
    count_host_read();  // the CUDA branch's one read
    r = finish("tree_sample", info, N, V);
  }
#ifdef MTAD_WITH_CUDA
  else if (lp.is_cuda()) {
    const c10::cuda::CUDAGuard guard(lp.device());
    cuda::tree_sample(lp.data_ptr<float>(), V, par.data_ptr<int64_t>(), tok.data_ptr<int64_t>(), N, seed, offset,
                      info.data_ptr<int64_t>(), stream_of(lp));
    r = finish("tree_sample", to_host(info.narrow(0, 0, td::kHeader + N)), N, V);
  }
#endif
  else {
    no_kernel("tree_sample", lp);
  }
  TORCH_CHECK(r.next_token >= 0, "tree_sample: row ", r.accept_node + 1,
              " of target_logprobs has no probability mass (expected normalised log-probs)");
  return r;
}

}  // namespace mtad::ops
