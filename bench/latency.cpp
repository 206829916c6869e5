// bench/latency: runs decoding methods through the public C++ API on token-id prompts and
// prints tokens/s, mean tokens per target forward and the time split, as a table and JSON.
//
//   latency --target DIR [--draft DIR] --prompts FILE [--methods ar,sps,mtad,mtad-tree]
//           [--new-tokens 128] [--gamma 4|auto] [--width 4] [--tau 0.5] [--temperature 1]
//           [--top-k 10] [--top-p 0.9] [--seed 0] [--device cpu] [--json FILE]
//
// A prompts file holds one prompt per line as whitespace-separated token ids.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "mtad/decoder.h"
#include "mtad/errors.h"
#include "mtad/model.h"

namespace {

const char* kUsage =
    "usage: latency --target DIR [--draft DIR] --prompts FILE [options]\n"
    "  --methods LIST     comma-separated of ar, sps, mtad, mtad-tree (default: ar, plus the\n"
    "                     others when --draft is given)\n"
    "  --new-tokens N     tokens to generate per prompt (default 128)\n"
    "  --gamma N|auto     draft length, or auto: chosen per step (default 4)\n"
    "  --width N          MTAD beam width (default 4)\n"
    "  --tau X            MTAD acceptance threshold (default 0.5)\n"
    "  --temperature X    target and draft temperature, 0 = greedy (default 1)\n"
    "  --top-k N          (default 10)     --top-p X   (default 0.9)\n"
    "  --seed N           (default 0)      --device D  cpu or cuda (default cpu)\n"
    "  --json FILE        also write the results as JSON to FILE ('-' for stdout)\n";

struct Args {
  std::string target, draft, prompts, methods, device = "cpu", json;
  int64_t new_tokens = 128, gamma = 4, width = 4, top_k = 10, seed = 0;
  double tau = 0.5, temperature = 1.0, top_p = 0.9;
};

Args parse(int argc, char** argv) {
  Args a;
  std::map<std::string, std::string*> strs{{"--target", &a.target}, {"--draft", &a.draft},
                                           {"--prompts", &a.prompts}, {"--methods", &a.methods},
                                           {"--device", &a.device},   {"--json", &a.json}};
  std::map<std::string, int64_t*> ints{{"--new-tokens", &a.new_tokens}, {"--gamma", &a.gamma},
                                       {"--width", &a.width},           {"--top-k", &a.top_k},
                                       {"--seed", &a.seed}};
  std::map<std::string, double*> reals{{"--tau", &a.tau}, {"--temperature", &a.temperature}, {"--top-p", &a.top_p}};
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(k + " needs a value");
    const std::string v = argv[++i];
    if (strs.count(k)) {
      *strs[k] = v;
    } else if (k == "--gamma" && v == "auto") {
      a.gamma = mtad::DecodeConfig::kAutoGamma;
    } else if (ints.count(k)) {
      *ints[k] = std::stoll(v);
    } else if (reals.count(k)) {
      *reals[k] = std::stod(v);
    } else {
      throw std::invalid_argument("unknown option " + k);
    }
  }
  if (a.target.empty() || a.prompts.empty()) throw std::invalid_argument("--target and --prompts are required");
  if (a.methods.empty()) a.methods = a.draft.empty() ? "ar" : "ar,sps,mtad,mtad-tree";
  return a;
}

std::vector<std::vector<int64_t>> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read prompts file " + path);
  std::vector<std::vector<int64_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::vector<int64_t> ids;
    for (int64_t x; ss >> x;) ids.push_back(x);
    if (!ids.empty()) out.push_back(ids);
  }
  if (out.empty()) throw std::invalid_argument(path + " holds no prompts");
  return out;
}

struct Row {
  std::string method;
  int64_t tokens = 0;
  double seconds = 0;
  mtad::StepStats stats;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto prompts = read_prompts(a.prompts);
    auto target = mtad::load_model(a.target, {a.device, "auto", false});
    std::unique_ptr<mtad::Model> draft;
    if (!a.draft.empty()) draft = mtad::load_model(a.draft, {a.device, "auto", false});

    std::vector<Row> rows;
    std::stringstream methods(a.methods);
    for (std::string name; std::getline(methods, name, ',');) {
      mtad::DecodeConfig c;
      c.method = mtad::parse_method(name);
      c.target = {a.temperature, a.top_k, a.top_p};
      c.draft = c.target;
      c.gamma = a.gamma;
      c.width = a.width;
      c.tau = a.tau;
      c.seed = static_cast<uint64_t>(a.seed);
      int64_t longest = 0;
      for (const auto& p : prompts) longest = std::max<int64_t>(longest, p.size());
      mtad::Decoder dec(*target, draft.get(), c, longest + a.new_tokens + 1);
      Row r;
      r.method = name;
      for (const auto& p : prompts) {
        dec.start(p);
        const auto t0 = std::chrono::steady_clock::now();
        while (static_cast<int64_t>(dec.tokens().size() - p.size()) < a.new_tokens) dec.step();
        r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        r.tokens += static_cast<int64_t>(dec.tokens().size() - p.size());
        r.stats += dec.total();
      }
      rows.push_back(r);
    }

    std::printf("target %s%s%s, %zu prompt(s), %lld new tokens each, %d threads\n", a.target.c_str(),
                a.draft.empty() ? "" : ", draft ", a.draft.c_str(), prompts.size(),
                static_cast<long long>(a.new_tokens), at::get_num_threads());
    std::printf("%-10s %9s %9s %9s %8s %8s %9s %8s\n", "method", "tok/s", "vs ar", "tok/fwd", "draft%", "verify%",
                "rollback%", "other%");
    const double ar_rate = rows.front().method == "ar" ? rows.front().tokens / rows.front().seconds : 0;
    std::ostringstream js;
    js << "{\"target\": \"" << a.target << "\", \"draft\": \"" << a.draft << "\", \"new_tokens\": " << a.new_tokens
       << ", \"results\": [";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      const auto& s = r.stats;
      const double rate = r.tokens / r.seconds;
      const double per_fwd = s.target_forwards ? double(s.emitted) / s.target_forwards : 0;
      const double tot = s.draft_s + s.verify_s + s.rollback_s + s.other_s;
      auto pct = [&](double x) { return tot > 0 ? 100.0 * x / tot : 0.0; };
      std::printf("%-10s %9.2f %9.2f %9.2f %8.1f %8.1f %9.1f %8.1f\n", r.method.c_str(), rate,
                  ar_rate > 0 ? rate / ar_rate : 0.0, per_fwd, pct(s.draft_s), pct(s.verify_s), pct(s.rollback_s),
                  pct(s.other_s));
      js << (i ? ", " : "") << "{\"method\": \"" << r.method << "\", \"tokens_per_s\": " << rate
         << ", \"tokens_per_target_forward\": " << per_fwd << ", \"tokens\": " << r.tokens
         << ", \"seconds\": " << r.seconds << ", \"drafted\": " << s.drafted << ", \"accepted\": " << s.accepted
         << ", \"target_forwards\": " << s.target_forwards << ", \"draft_forwards\": " << s.draft_forwards
         << ", \"draft_s\": " << s.draft_s << ", \"verify_s\": " << s.verify_s << ", \"rollback_s\": " << s.rollback_s
         << ", \"other_s\": " << s.other_s << "}";
    }
    js << "]}\n";
    if (a.json == "-") {
      std::cout << js.str();
    } else if (!a.json.empty()) {
      std::ofstream(a.json) << js.str();
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latency: error: %s\n", e.what());
    return 2;
  }
}
