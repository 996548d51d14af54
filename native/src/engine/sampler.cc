// The CPU sampler shared by every backend, and Backend::forwardSample's default (forward, then sample on the
// CPU). Greedy breaks ties by the lowest id; the random path is a pure function of (logits, params, rngState),
// so a seeded request gives the same tokens on every run and every backend whose logits agree.
//
// Order (as vLLM's sampler): ids past the tokenizer's vocabulary and ids outside the grammar mask -> -inf,
// logit_bias, repetition penalty, presence/frequency penalties; logprobs are the log-softmax of these processed
// logits (before temperature and before min-p/top-k/top-p truncation, so they do not depend on the sampling
// knobs and the greedy choice is always the first alternative); then greedy, or temperature, min-p, top-k,
// top-p and a draw.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "engine/backend.h"

namespace swapserve::engine {

namespace {

// splitmix64: one 64-bit state word, advanced once per draw.
uint64_t NextU64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 bits.
double NextUnit(uint64_t& state) { return static_cast<double>(NextU64(state) >> 11) * (1.0 / 9007199254740992.0); }

int32_t Argmax(const float* logits, int vocab) {
  int32_t best = 0;
  for (int i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

// The processed logits: ids past vocabLimit and ids the mask forbids become -inf, then logit_bias, then the
// repetition penalty (HF: prompt + completion ids), then presence/frequency (OpenAI: completion ids only).
void ProcessLogits(float* l, int vocab, int limit, const Sampling& s) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int i = limit; i < vocab; ++i) l[i] = ninf;
  if (s.mask) {
    for (int i = 0; i < limit; ++i)
      if (!((s.mask[i >> 5] >> (i & 31)) & 1u)) l[i] = ninf;
  }
  for (int i = 0; i < s.nBias; ++i) {
    const int32_t id = s.biasIds[i];
    if (id >= 0 && id < vocab) l[id] += s.biasVals[i];
  }
  const bool rep = s.repetition > 0.f && s.repetition != 1.f;
  for (int i = 0; i < s.nHist; ++i) {
    const int32_t id = s.histIds[i];
    if (id < 0 || id >= vocab) continue;
    float v = l[id];
    if (rep) v = v > 0.f ? v / s.repetition : v * s.repetition;
    const int32_t c = s.histCounts[i];
    if (c > 0) v -= s.presence + s.frequency * static_cast<float>(c);
    l[id] = v;
  }
}

// Log-softmax of the processed row: the top `k` ids (ties: lower id first; -inf ids never listed, the rest of the
// slots get id -1) and the log-sum-exp for the chosen id's logprob.
double TopLogprobs(const float* l, int vocab, int k, int32_t* topIds, float* topLp) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) mx = std::max(mx, l[i]);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(l[i]) - mx);
  const double lse = static_cast<double>(mx) + std::log(sum);
  int n = 0;
  int32_t ids[kMaxTopLogprobs];
  for (int i = 0; i < vocab && k > 0; ++i) {
    const float v = l[i];
    if (v == -std::numeric_limits<float>::infinity()) continue;
    if (n == k && !(v > l[ids[n - 1]])) continue;
    int j = n < k ? n++ : n - 1;
    while (j > 0 && v > l[ids[j - 1]]) {
      ids[j] = ids[j - 1];
      --j;
    }
    ids[j] = i;
  }
  for (int j = 0; j < k; ++j) {
    topIds[j] = j < n ? ids[j] : -1;
    topLp[j] = j < n ? static_cast<float>(l[ids[j]] - lse) : -std::numeric_limits<float>::infinity();
  }
  return lse;
}

int32_t SampleProcessed(const float* logits, int vocab, Sampling& s) {
  if (!(s.temperature > 0.f) || s.topK == 1) return Argmax(logits, vocab);
  // Unnormalised probabilities exp((l - max) / T) of the whole vocabulary: one pass, no sort.
  float mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  const float invT = 1.f / s.temperature;
  std::vector<float> p(vocab);
  double total = 0.0;
  for (int i = 0; i < vocab; ++i) {
    p[i] = std::exp((logits[i] - mx) * invT);
    total += p[i];
  }
  if (s.minP > 0.f) {  // min-p: relative to the likeliest id's probability (exp(0) = 1 here)
    total = 0.0;
    for (int i = 0; i < vocab; ++i) {
      if (p[i] < s.minP) p[i] = 0.f;
      total += p[i];
    }
  }
  const bool topK = s.topK > 0 && s.topK < vocab;
  const bool topP = s.topP > 0.f && s.topP < 1.f;
  if (!topK && !topP) {  // the full distribution, in id order
    double r = NextUnit(s.rngState) * total;
    for (int i = 0; i < vocab; ++i) {
      r -= p[i];
      if (r < 0.0) return i;
    }
    return Argmax(logits, vocab);  // rounding left r >= 0: the likeliest token
  }
  // Candidates in descending logit order (ties: lower id first). Only a prefix is ordered: the top k, or for
  // top-p a prefix grown 4x at a time until it holds topP of the mass (usually a few hundred ids).
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  // nth_element selects the top n unordered in O(V); a larger n re-selects only among the rest. Only the final
  // prefix is sorted.
  int n = topK ? s.topK : std::min(vocab, 64);
  int done = 0;       // ids[0, done) are already the top `done`
  double mass = 0.0;  // of ids[0, n)
  for (;;) {
    if (n < vocab) std::nth_element(ids.begin() + done, ids.begin() + n, ids.end(), before);
    for (int i = done; i < n; ++i) mass += p[ids[i]];
    done = n;
    if (topK || n == vocab || mass >= s.topP * total) break;
    n = std::min(vocab, n * 4);
  }
  std::sort(ids.begin(), ids.begin() + n, before);
  // Top-p over the candidates' renormalised probabilities: the smallest prefix reaching topP (at least one).
  if (topP) {
    const double norm = topK ? mass : total;  // top-k first renormalises over its k; else the whole vocabulary
    double cum = 0.0;
    int keep = 0;
    while (keep < n) {
      cum += p[ids[keep]];
      ++keep;
      if (cum >= s.topP * norm) break;
    }
    n = keep;
    mass = cum;
  }
  double r = NextUnit(s.rngState) * mass;
  for (int i = 0; i < n; ++i) {
    r -= p[ids[i]];
    if (r < 0.0) return ids[i];
  }
  for (int i = n - 1; i > 0; --i)  // rounding: the last candidate that has any probability
    if (p[ids[i]] > 0.f) return ids[i];
  return ids[0];
}

}  // namespace

int32_t SampleLogits(const float* raw, int vocab, Sampling& s) {
  const int limit = s.vocabLimit > 0 && s.vocabLimit < vocab ? s.vocabLimit : vocab;
  const float* logits = raw;
  std::vector<float> work;
  if (limit < vocab || s.mask || s.nBias > 0 || s.nHist > 0) {
    work.assign(raw, raw + vocab);
    ProcessLogits(work.data(), vocab, limit, s);
    logits = work.data();
  }
  double lse = 0.0;
  const int k = std::min(s.numLogprobs, kMaxTopLogprobs);
  if (s.numLogprobs >= 0) lse = TopLogprobs(logits, vocab, k, s.topIds, s.topLogprobs);
  const int32_t id = SampleProcessed(logits, vocab, s);
  if (s.numLogprobs >= 0 && s.logprob) *s.logprob = static_cast<float>(logits[id] - lse);
  return id;
}

void Backend::forwardSample(const std::vector<SeqInput>& batch, Sampling* sampling, int32_t* next) {
  if (batch.empty()) return;
  const int vocab = vocabSize();
  std::vector<float> logits(batch.size() * static_cast<size_t>(vocab));
  forward(batch, logits.data());
  for (size_t b = 0; b < batch.size(); ++b) next[b] = SampleLogits(logits.data() + b * vocab, vocab, sampling[b]);
}

}  // namespace swapserve::engine
