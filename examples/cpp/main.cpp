// mtad from a custom runtime: load a model folder, then decode the same prompt with AR,
// MTAD (when a draft is given) and ADED (from a tri-gram table file, or one counted from
// the prompt), printing each method's tokens and tokens per target forward.
//
//   mtad_example --model DIR --prompt "1 2 3" [--draft DIR] [--table FILE]
//                [--new-tokens 32] [--temperature 0] [--seed 0]
//
// Token ids in and out: tokenisation belongs to the runtime (mtad's Python driver uses the
// folder's tokenizer.json). Errors are exceptions (mtad/errors.h), reported on stderr.
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "mtad/aded.h"
#include "mtad/decoder.h"
#include "mtad/errors.h"
#include "mtad/model.h"

namespace {

struct Args {
  std::string model, draft, table, prompt;
  int64_t new_tokens = 32, seed = 0;
  double temperature = 0.0;
};

Args parse(int argc, char** argv) {
  Args a;
  std::map<std::string, std::string*> strs{
      {"--model", &a.model}, {"--draft", &a.draft}, {"--table", &a.table}, {"--prompt", &a.prompt}};
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(k + " needs a value");
    const std::string v = argv[++i];
    if (strs.count(k)) {
      *strs[k] = v;
    } else if (k == "--new-tokens") {
      a.new_tokens = std::stoll(v);
    } else if (k == "--seed") {
      a.seed = std::stoll(v);
    } else if (k == "--temperature") {
      a.temperature = std::stod(v);
    } else {
      throw std::invalid_argument("unknown option " + k);
    }
  }
  if (a.model.empty() || a.prompt.empty()) throw std::invalid_argument("--model and --prompt are required");
  return a;
}

std::vector<int64_t> parse_ids(const std::string& text) {
  std::istringstream in(text);
  std::vector<int64_t> ids;
  for (int64_t id; in >> id;) ids.push_back(id);
  return ids;
}

// Runs `config` on the prompt until new_tokens are out; prints one line.
void run(mtad::Model& target, mtad::Model* draft, const mtad::DecodeConfig& config,
         std::shared_ptr<mtad::TrigramTable> table, const std::vector<int64_t>& prompt, int64_t new_tokens) {
  // The decoder owns its KV caches; it borrows the models, which must outlive it.
  mtad::Decoder dec(target, draft, config, static_cast<int64_t>(prompt.size()) + new_tokens);
  if (table) dec.set_trigram_table(std::move(table));
  dec.start(prompt);
  const size_t end = prompt.size() + static_cast<size_t>(new_tokens);
  while (dec.tokens().size() < end) dec.step();
  const mtad::StepStats& s = dec.total();
  std::printf("%s:", mtad::method_name(config.method).c_str());
  for (size_t i = prompt.size(); i < end; ++i) std::printf(" %lld", static_cast<long long>(dec.tokens()[i]));
  std::printf("\n%s tokens per target forward: %.3f\n", mtad::method_name(config.method).c_str(),
              static_cast<double>(s.emitted) / static_cast<double>(s.target_forwards));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const std::vector<int64_t> prompt = parse_ids(a.prompt);
    std::unique_ptr<mtad::Model> target = mtad::load_model(a.model);
    std::unique_ptr<mtad::Model> draft = a.draft.empty() ? nullptr : mtad::load_model(a.draft);

    mtad::DecodeConfig config;
    config.target.temperature = config.draft.temperature = a.temperature;
    config.seed = static_cast<uint64_t>(a.seed);

    config.method = mtad::Method::AR;
    run(*target, nullptr, config, nullptr, prompt, a.new_tokens);
    if (draft) {
      config.method = mtad::Method::MTAD;
      run(*target, draft.get(), config, nullptr, prompt, a.new_tokens);
    }
    // ADED drafts from a tri-gram table: a file made by `mtad build-trigram`, else one
    // counted from the prompt itself.
    std::shared_ptr<mtad::TrigramTable> table;
    const int64_t vocab = target->config().vocab_size;
    if (!a.table.empty()) {
      table = std::make_shared<mtad::TrigramTable>(mtad::TrigramTable::load(a.table, vocab));
    } else {
      table = std::make_shared<mtad::TrigramTable>(vocab);
      table->add_sequence(prompt.data(), static_cast<int64_t>(prompt.size()));
      table->finalize();
    }
    config.method = mtad::Method::ADED;
    run(*target, nullptr, config, table, prompt, a.new_tokens);
    return 0;
  } catch (const std::exception& e) {  // mtad::Error and its kinds derive from std::runtime_error
    std::fprintf(stderr, "mtad_example: %s\n", e.what());
  }
  return 1;
}
