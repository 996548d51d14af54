// Runs a model written by bench/engine/hf_check.py (arena.bin + desc.txt + prompts.txt) through the CUDA
// backend and writes what the script compares with Hugging Face transformers: the prompt's last-position logits,
// 32 greedy tokens; and checks batching (staggered sequences batched vs alone) and chunked prefill itself.
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "dev_common.h"
#include "engine/backend.h"

namespace swapserve::dev {

using engine::DType;
using engine::TensorRef;

namespace {

DType ParseDType(const std::string& s) {
  if (s == "f32") return DType::kF32;
  if (s == "f16") return DType::kF16;
  if (s == "bf16") return DType::kBF16;
  throw NativeError(ErrorCode::kInvalidArgument, "bad dtype " + s);
}

struct Loaded {
  engine::ModelDesc desc;
  std::vector<std::pair<size_t, size_t>> groups;
  size_t bytes = 0;
};

Loaded ParseDesc(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw NativeError(ErrorCode::kIo, "cannot read " + path);
  Loaded L;
  engine::ModelDesc& d = L.desc;
  std::map<std::string, TensorRef> tensors;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string k;
    ls >> k;
    if (k == "hidden") ls >> d.hidden;
    else if (k == "intermediate") ls >> d.intermediate;
    else if (k == "layers") ls >> d.layers;
    else if (k == "heads") ls >> d.heads;
    else if (k == "kv_heads") ls >> d.kvHeads;
    else if (k == "head_dim") ls >> d.headDim;
    else if (k == "vocab") ls >> d.vocab;
    else if (k == "max_positions") ls >> d.maxPositions;
    else if (k == "rms_eps") ls >> d.rmsEps;
    else if (k == "rope_theta") ls >> d.ropeTheta;
    else if (k == "rope_interleaved") { int v; ls >> v; d.ropeInterleaved = v != 0; }
    else if (k == "rope_scaling") {
      std::string v;
      ls >> v;
      d.ropeScaling = v == "llama3" ? engine::RopeScaling::kLlama3 : v == "linear" ? engine::RopeScaling::kLinear
                                                                                : engine::RopeScaling::kNone;
    } else if (k == "rope_factor") ls >> d.ropeFactor;
    else if (k == "rope_low") ls >> d.ropeLowFreqFactor;
    else if (k == "rope_high") ls >> d.ropeHighFreqFactor;
    else if (k == "rope_orig") ls >> d.ropeOriginalMaxPositions;
    else if (k == "arena_bytes") ls >> L.bytes;
    else if (k == "group") { size_t s, e; ls >> s >> e; L.groups.push_back({s, e}); }
    else if (k == "tensor") {
      std::string name, dt;
      TensorRef t;
      ls >> name >> t.offset >> dt;
      t.dtype = ParseDType(dt);
      t.present = true;
      tensors[name] = t;
    }
  }
  auto get = [&](const std::string& n) { auto it = tensors.find(n); return it == tensors.end() ? TensorRef{} : it->second; };
  d.tokEmbeddings = get("tok_embeddings");
  d.norm = get("norm");
  d.output = get("output");
  d.layer.resize(d.layers);
  for (int i = 0; i < d.layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    auto& w = d.layer[i];
    w.attnNorm = get(p + "attn_norm"); w.ffnNorm = get(p + "ffn_norm");
    w.wq = get(p + "wq"); w.wk = get(p + "wk"); w.wv = get(p + "wv"); w.wo = get(p + "wo");
    w.bq = get(p + "bq"); w.bk = get(p + "bk"); w.bv = get(p + "bv");
    w.w1 = get(p + "w1"); w.w2 = get(p + "w2"); w.w3 = get(p + "w3");
  }
  return L;
}

std::vector<std::vector<int32_t>> ReadPrompts(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> p;
    int32_t v;
    while (ls >> v) p.push_back(v);
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

// Greedy continuation of `prompt` for `steps` tokens in a sequence of its own.
std::vector<int32_t> Greedy(engine::Backend& be, int32_t seq, const std::vector<int32_t>& prompt, int steps) {
  std::vector<int32_t> toks;
  engine::Sampling sm;
  int32_t next = 0;
  be.forwardSample({{seq, prompt.data(), static_cast<int>(prompt.size()), 0}}, &sm, &next);
  toks.push_back(next);
  for (int i = 1; i < steps; ++i) {
    const int32_t in = toks.back();
    be.forwardSample({{seq, &in, 1, static_cast<int>(prompt.size()) + i - 1}}, &sm, &next);
    toks.push_back(next);
  }
  be.releaseSeq(seq);
  return toks;
}

}  // namespace

int RunHf(const std::string& dir) {
  Loaded L = ParseDesc(dir + "/desc.txt");
  std::ifstream bin(dir + "/arena.bin", std::ios::binary);
  std::vector<uint8_t> host(L.bytes);
  if (!bin.read(reinterpret_cast<char*>(host.data()), L.bytes)) throw NativeError(ErrorCode::kIo, "short arena.bin");
  auto lease = std::make_shared<DevLease>(L.bytes, L.groups);
  SS_CUDA_CHECK(cudaMemcpy(lease->mutableBase(), host.data(), L.bytes, cudaMemcpyHostToDevice));
  engine::BackendOptions opts;
  opts.maxContext = 512;
  auto be = engine::MakeCudaBackend(L.desc, lease, std::make_shared<DevPool>(), opts);
  const auto prompts = ReadPrompts(dir + "/prompts.txt");
  const auto& p0 = prompts.at(0);
  const int V = L.desc.vocab;

  // 1. Last-position logits of prompt 0 in one prefill.
  std::vector<float> logits(V), chunked(V);
  be->forward({{0, p0.data(), static_cast<int>(p0.size()), 0}}, logits.data());
  be->releaseSeq(0);
  std::ofstream(dir + "/ours_logits.bin", std::ios::binary).write(reinterpret_cast<char*>(logits.data()), V * 4);
  // 2. The same prompt prefilled in two chunks (the second attends to the first through the cache).
  const int cut = static_cast<int>(p0.size()) / 3;
  be->forward({{1, p0.data(), cut, 0}}, chunked.data());
  be->forward({{1, p0.data() + cut, static_cast<int>(p0.size()) - cut, cut}}, chunked.data());
  be->releaseSeq(1);
  double num = 0, den = 0;
  for (int i = 0; i < V; ++i) { num += (chunked[i] - logits[i]) * (chunked[i] - logits[i]); den += logits[i] * logits[i]; }
  std::printf("HF-DEV chunked_prefill_relerr %.3e\n", std::sqrt(num / den));
  // 3. Greedy tokens.
  const auto g0 = Greedy(*be, 2, p0, 32);
  {
    std::ofstream out(dir + "/ours_greedy.txt");
    for (int32_t t : g0) out << t << " ";
    out << "\n";
  }
  // 4. Batching: prompts 1 and 2 alone, then batched with a staggered start (prefill of one while the other decodes).
  const int steps = 16;
  const auto a1 = Greedy(*be, 3, prompts.at(1), steps), a2 = Greedy(*be, 4, prompts.at(2), steps);
  std::vector<int32_t> b1, b2;
  engine::Sampling sm[2];
  int32_t nx[2];
  const auto& q1 = prompts[1];
  const auto& q2 = prompts[2];
  be->forwardSample({{5, q1.data(), static_cast<int>(q1.size()), 0}}, sm, nx);
  b1.push_back(nx[0]);
  {
    const int32_t in1 = b1.back();
    be->forwardSample({{5, &in1, 1, static_cast<int>(q1.size())}, {6, q2.data(), static_cast<int>(q2.size()), 0}}, sm, nx);
    b1.push_back(nx[0]);
    b2.push_back(nx[1]);
  }
  while (static_cast<int>(b2.size()) < steps) {
    const int32_t in1 = b1.back(), in2 = b2.back();
    std::vector<engine::SeqInput> batch;
    if (static_cast<int>(b1.size()) < steps)
      batch.push_back({5, &in1, 1, static_cast<int>(q1.size() + b1.size()) - 1});
    batch.push_back({6, &in2, 1, static_cast<int>(q2.size() + b2.size()) - 1});
    be->forwardSample(batch, sm, nx);
    if (batch.size() == 2) { b1.push_back(nx[0]); b2.push_back(nx[1]); } else { b2.push_back(nx[0]); }
  }
  int same1 = 0, same2 = 0;
  for (int i = 0; i < steps; ++i) { same1 += a1[i] == b1[i]; same2 += a2[i] == b2[i]; }
  std::printf("HF-DEV batched_vs_alone seqA %d/%d seqB %d/%d tokens equal\n", same1, steps, same2, steps);
  // 5. Bad input gives a typed error, not a crash.
  try {
    const int32_t bad = V;
    be->forward({{7, &bad, 1, 0}}, logits.data());
    std::printf("HF-DEV bad_token NOT REJECTED\n");
  } catch (const NativeError& e) {
    std::printf("HF-DEV bad_token rejected: %s: %s\n", ErrorCodeName(e.code()), e.what());
  }
  return 0;
}

}  // namespace swapserve::dev
