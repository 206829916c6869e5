// Kernels of ops/verify.h (layout: ops/detail/common.h): the scalar logic the CPU
// reference and the CUDA kernels share as MTAD_HD helpers (so the CPU tests exercise
// the code the GPU runs), then the kernels' declarations.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/detail/common.h"
#include "ops/rng.h"  // uniform

namespace mtad::verify_detail {

// Layout of the int64 result buffer of the tree pass: a fixed header, then the accepted
// path (N slots, the first accept_len used), then per-node depths (N, scratch).
enum Info : int64_t {
  kStatus = 0,      // one of Status
  kBadNode = 1,     // the offending node when status != kOk
  kBadValue = 2,    // its offending parent / token / depth
  kAcceptLen = 3,   // a
  kAcceptNode = 4,  // -1 when a == 0
  kBonusRow = 5,    // the target row the bonus token is drawn from (valid even on error)
  kHeader = 6,
};
enum Status : int64_t { kOk = 0, kBadParent = 1, kBadToken = 2, kTooDeep = 3 };

inline constexpr int64_t info_size(int64_t nodes) { return kHeader + 2 * nodes; }

// The tree pass of verify (algorithms.md 3.2 / 3.3) over normalised target log-probs
// logp [N + 1, V]. Writes LP(n) to node_lp [N] and the header and path to info
// [info_size(N)]. Inputs are validated here (not before) so that the CUDA path needs
// no host round trip before the kernel: errors come back as a status.
MTAD_HD void verify_tree(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                         const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info) {
  int64_t* path = info + kHeader;
  int64_t* depth = path + N;
  info[kStatus] = kOk;
  info[kBadNode] = -1;
  info[kBadValue] = 0;
  info[kAcceptLen] = 0;
  info[kAcceptNode] = -1;
  info[kBonusRow] = 0;
  const auto fail = [&](Status s, int64_t node, int64_t value) {
    info[kStatus] = s;
    info[kBadNode] = node;
    info[kBadValue] = value;
  };
  // Parents precede their children, so one forward pass gives every depth and LP.
  for (int64_t n = 0; n < N; ++n) {
    const int64_t p = parents[n], tok = tokens[n];
    if (p < -1 || p >= n) return fail(kBadParent, n, p);
    if (tok < 0 || tok >= V) return fail(kBadToken, n, tok);
    const int64_t d = p < 0 ? 1 : depth[p] + 1;
    if (d > G) return fail(kTooDeep, n, d);
    depth[n] = d;
    // Row 0 predicts depth-1 nodes; row p + 1 holds the logits after node p.
    node_lp[n] = (p < 0 ? 0.f : node_lp[p]) + logp[(p + 1) * V + tok];
  }
  // Deepest passing depth (a shallower failing one does not stop it), and there the
  // highest LP (ties: the lower index, by the strict >).
  int64_t a = 0, best = -1;
  float lq = 0.f;
  for (int64_t d = 1; d <= G; ++d) {
    lq += best_lq[d - 1];
    int64_t pick = -1;
    for (int64_t n = 0; n < N; ++n) {
      if (depth[n] != d || !(node_lp[n] - lq > log_tau)) continue;
      if (pick < 0 || node_lp[n] > node_lp[pick]) pick = n;
    }
    if (pick >= 0) {
      a = d;
      best = pick;
    }
  }
  for (int64_t i = a - 1, n = best; i >= 0; --i, n = parents[n]) path[i] = n;
  info[kAcceptLen] = a;
  info[kAcceptNode] = best;
  info[kBonusRow] = best + 1;  // row 0 when nothing is accepted (best == -1)
}

// Speculative sampling's acceptance probability min(1, p(x) / q(x)) from log-probs. A
// token the draft gives no mass could not have been drafted: accept it if p has it. NaN
// inputs reject (the comparison with u fails).
MTAD_HD float sps_accept_prob(float lp, float lq) {
  if (lp == -INFINITY) return 0.f;
  if (lq == -INFINITY) return 1.f;
  const float d = lp - lq;
  return d >= 0.f ? 1.f : expf(d);
}

// The residual weight max(0, p(v) - q(v)) of a rejection, in probability space.
MTAD_HD float sps_residual(float lp, float lq) { return fmaxf(0.f, expf(lp) - expf(lq)); }

// Speculative sampling's acceptance chain (algorithms.md 2) over tlp [G + 1, V] and
// dlp [G, V]: token i is accepted while rng(seed, offset + i) < sps_accept_prob of its
// target and draft log-probs. Writes the sps_accept result out [3]: out[0] = how many
// were accepted (G when all), out[1] = 0 (the caller then draws the next token, see
// sps_next_token), out[2] = the first token outside [0, V), or -1. Returns false for
// such a token (nothing is accepted then, and out[1] stays 0).
MTAD_HD bool sps_chain(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V,
                       uint64_t seed, uint64_t offset, int64_t* out) {
  out[0] = 0;
  out[1] = 0;
  out[2] = -1;
  for (int64_t i = 0; i < G; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V) {
      out[2] = i;
      return false;
    }
  }
  int64_t n = G;
  for (int64_t i = 0; i < G; ++i) {
    const int64_t x = tokens[i];
    const float u = rng::uniform(seed, offset + static_cast<uint64_t>(i));
    if (!(u < sps_accept_prob(tlp[i * V + x], dlp[i * V + x]))) {
      n = i;
      break;
    }
  }
  out[0] = n;
  return true;
}

// sps_accept's next token after a chain that accepted n of G, with `draw(weight,
// scale_by_total)` the device's inverse-CDF draw at u = rng(seed, offset + G)
// (cpu::draw_weighted, cuda::block_draw): from the residual norm(max(0, p_n - q_n))
// after a rejection, from p_G when all were accepted, and from p_n when the residual has
// no mass (p_n == q_n up to rounding). -1 when that row has no mass either.
template <class Draw>
MTAD_HD int64_t sps_next_token(const float* tlp, const float* dlp, int64_t n, int64_t G, int64_t V, Draw&& draw) {
  const float* p = tlp + n * V;
  int64_t token = -1;
  if (n < G) {
    const float* q = dlp + n * V;
    token = draw([=](int64_t v) { return sps_residual(p[v], q[v]); }, true);
  }
  if (token < 0) token = draw([=](int64_t v) { return expf(p[v]); }, false);
  return token;
}

}  // namespace mtad::verify_detail

namespace mtad::ops::cpu {

// See verify_detail::verify_tree.
void verify_tree_f32(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                     const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info);
// tlp [G + 1, V], dlp [G, V], tokens [G] -> out [3] (see verify_detail::sps_chain), with
// out[1] = the next token (-1 when its row has no mass).
void sps_accept_f32(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                    uint64_t offset, int64_t* out);

}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {

// One thread runs verify_detail::verify_tree (N is a few dozen nodes: the pass is a
// dependency chain through the parents, not worth a parallel scheme). Device pointers.
void verify_tree(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                 const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info, cudaStream_t stream);
// Fused speculative-sampling acceptance; out: int64 [3] on the device, as sps_accept_f32.
void sps_accept(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                uint64_t offset, int64_t* out, cudaStream_t stream);

}  // namespace mtad::cuda
#endif
