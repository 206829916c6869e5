// Kernels of ops/tree_accept.h (layout: ops/detail/common.h): the walks over a draft
// trie that the CPU reference and the CUDA kernels share (MTAD_HD helpers, one thread
// each), then the kernels' declarations.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/detail/common.h"
#include "ops/rng.h"  // the counter-based uniforms

namespace mtad::tree_accept_detail {

// Layout of the int64 result buffer: a fixed header, the accepted path (N slots, the
// first accept_len used), then N slots of scratch (greedy: per-node matched depth;
// sampling: the tokens rejected at the last node, kRejected of them).
enum Info : int64_t {
  kStatus = 0,      // one of Status
  kBadNode = 1,     // the offending node when status != kOk
  kBadValue = 2,    // its offending parent / token
  kAcceptLen = 3,   // a: accepted draft tokens
  kAcceptNode = 4,  // the node ending the accepted path, -1 when a == 0
  kNextRow = 5,     // the target row the next token comes from (accept_node + 1)
  kNextToken = 6,   // the target's next token (filled by the caller of sample_walk)
  kRejected = 7,    // sampling: how many tokens were rejected at the last node
  kHeader = 8,
};
enum Status : int64_t { kOk = 0, kBadParent = 1, kBadToken = 2 };

inline constexpr int64_t info_size(int64_t nodes) { return kHeader + 2 * nodes; }

// Parents must precede children (-1: a child of the root) and tokens lie in [0, V).
MTAD_HD bool check_trie(const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V, int64_t* info) {
  info[kStatus] = kOk;
  info[kBadNode] = -1;
  info[kBadValue] = 0;
  info[kAcceptLen] = 0;
  info[kAcceptNode] = -1;
  info[kNextRow] = 0;
  info[kNextToken] = -1;
  info[kRejected] = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t p = parents[n], t = tokens[n];
    if (p < -1 || p >= n) {
      info[kStatus] = kBadParent;
      info[kBadNode] = n;
      info[kBadValue] = p;
      return false;
    }
    if (t < 0 || t >= V) {
      info[kStatus] = kBadToken;
      info[kBadNode] = n;
      info[kBadValue] = t;
      return false;
    }
  }
  return true;
}

// Greedy: best[r] is the target's argmax of row r (row 0 after the committed prefix, row
// n + 1 after node n). Node n matches if its token equals best[parent + 1] and its parent
// matches; the deepest matching node wins (ties: the lower index), and the next token is
// best[accept_node + 1].
MTAD_HD void greedy_walk(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                         int64_t* info) {
  if (!check_trie(parents, tokens, N, V, info)) return;
  int64_t* path = info + kHeader;
  int64_t* matched = path + N;  // depth of a matching node, 0 otherwise
  int64_t a = 0, end = -1;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t p = parents[n];
    const bool ok = tokens[n] == best[p + 1] && (p < 0 || matched[p] > 0);
    matched[n] = ok ? (p < 0 ? 1 : matched[p] + 1) : 0;
    if (matched[n] > a) {
      a = matched[n];
      end = n;
    }
  }
  for (int64_t i = a - 1, n = end; i >= 0; --i, n = parents[n]) path[i] = n;
  info[kAcceptLen] = a;
  info[kAcceptNode] = end;
  info[kNextRow] = end + 1;
  info[kNextToken] = best[end + 1];
}

// Lossless multi-candidate rejection over the trie (SpecInfer's multi-step speculative
// sampling with a deterministic draft). logp [N + 1, V]: normalised target log-probs.
// From the root, the children of the current node are tried in index order; child c with
// token x is accepted with probability min(1, p(x) / q(x)) against the residual p, with q
// the draft's distribution for that candidate, which is the point mass on x because the
// draft chose x deterministically. So the test is u_c < p(x) / (1 - R), with R the
// target mass of the tokens already rejected at this node, and a rejection updates
// p <- norm(max(0, p - q)) = p without x, renormalised. On acceptance the walk moves to c
// (a fresh p: the target's row after c). The uniform of child c is rng(seed, offset + c).
// Writes the path and the rejected tokens of the last node; the caller then draws the next
// token from that node's row without those tokens (u = rng(seed, offset + N)).
MTAD_HD void sample_walk(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                         uint64_t seed, uint64_t offset, int64_t* info) {
  if (!check_trie(parents, tokens, N, V, info)) return;
  int64_t* path = info + kHeader;
  int64_t* rejected = path + N;
  int64_t a = 0, node = -1, nrej = 0;
  for (;;) {
    const float* p = logp + (node + 1) * V;
    double mass_rejected = 0.0;
    int64_t next = -1;
    nrej = 0;
    for (int64_t c = node + 1; c < N; ++c) {
      if (parents[c] != node) continue;
      const int64_t x = tokens[c];
      bool seen = false;  // a repeated sibling token: already rejected, so p(x) is 0 now
      for (int64_t j = 0; j < nrej; ++j) seen = seen || rejected[j] == x;
      const double px = seen ? 0.0 : exp(static_cast<double>(p[x]));
      const double rest = 1.0 - mass_rejected;
      const double accept = rest > 0.0 ? fmin(1.0, px / rest) : 0.0;
      if (static_cast<double>(rng::uniform(seed, offset + static_cast<uint64_t>(c))) < accept) {
        next = c;
        break;
      }
      if (!seen) {
        mass_rejected += px;
        rejected[nrej++] = x;
      }
    }
    if (next < 0) break;
    path[a++] = next;
    node = next;
  }
  info[kAcceptLen] = a;
  info[kAcceptNode] = node;
  info[kNextRow] = node + 1;
  info[kRejected] = nrej;
}

// The residual weight of token v at the last node: p(v), or 0 for a rejected token.
MTAD_HD float residual_weight(const float* p, const int64_t* rejected, int64_t nrej, int64_t v) {
  for (int64_t j = 0; j < nrej; ++j)
    if (rejected[j] == v) return 0.f;
  return expf(p[v]);
}

// tree_sample's next token after sample_walk (status kOk), with `draw(weight,
// scale_by_total)` the device's inverse-CDF draw at u = rng(seed, offset + N)
// (cpu::draw_weighted, cuda::block_draw): from the last node's row without the rejected
// tokens, or, when nothing but those is left (rounding), from the row itself. -1 when
// the row has no mass.
template <class Draw>
MTAD_HD int64_t next_token(const float* logp, int64_t V, int64_t N, const int64_t* info, Draw&& draw) {
  const float* p = logp + info[kNextRow] * V;
  const int64_t* rejected = info + kHeader + N;
  const int64_t nrej = info[kRejected];
  int64_t token = draw([=](int64_t v) { return residual_weight(p, rejected, nrej, v); }, true);
  if (token < 0) token = draw([=](int64_t v) { return expf(p[v]); }, false);
  return token;
}

}  // namespace mtad::tree_accept_detail

namespace mtad::ops::cpu {

// best [N + 1] argmax ids; see tree_accept_detail::greedy_walk.
void tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                 int64_t* info);
// logp [N + 1, V]; sample_walk plus the draw of the next token into info[kNextToken].
void tree_sample_f32(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                     uint64_t seed, uint64_t offset, int64_t* info);

}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS

namespace mtad::cuda {

// Device pointers; the same contracts as the CPU kernels above (one thread walks the trie:
// it is a chain of a few dozen dependent steps; the sampling draw runs on one block).
void tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                 int64_t* info, cudaStream_t stream);
void tree_sample(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                 uint64_t seed, uint64_t offset, int64_t* info, cudaStream_t stream);

}  // namespace mtad::cuda
#endif
