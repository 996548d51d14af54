// GPU bench of the weight codec (issue 15), one process: builds Llama-3.1-8B-shaped bf16 weights with Llama-like
// exponent statistics (bench/codec/synth.ts explains the model and its sources), encodes them on the CPU with
// runtime/codec, then on the GPU, in the same run:
//   copy    : the plain pinned copy of the raw bytes into the arena (one cudaMemcpyAsync per tensor) — the floor;
//   decode  : GPU decode throughput with the compressed image already on the device (GB/s of output);
//   pipe    : the compressed image copied in staging batches while the previous batch decodes straight into the
//             arena (copy stream + decode stream, 4 × 64 MiB staging slots) — a compressed swap-in;
// and checks every result bit for bit (device chunk checksums against the containers' tables, then the whole arena
// copied back and compared with the raw bytes).
//
// Env: LAYERS (default 32), REPS (3), SMALL=1 (a tiny shape), NOGPU=1 (CPU path only: generate, encode, CPU decode
// and compare — for checking the bench itself on a machine without a GPU), OUT (results folder).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "runtime/codec/codec.h"
#include "runtime/codec/cuda/decode.cuh"

using namespace swapserve::runtime::codec;

#define CK(x)                                                                                           \
  do {                                                                                                  \
    cudaError_t e_ = (x);                                                                               \
    if (e_ != cudaSuccess) {                                                                            \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", #x, __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                     \
    }                                                                                                   \
  } while (0)

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int EnvInt(const char* k, int d) { const char* v = std::getenv(k); return v && *v ? std::atoi(v) : d; }

struct Tensor {
  std::string name, kind;
  uint64_t rows, cols;
  float sigma;  // per-tensor scale (exponent entropy does not depend on it; the binades used do)
  bool norm;
  uint64_t rawOff = 0, rawBytes = 0;     // in the raw arena
  uint64_t tabOff = 0, tabBytes = 0;     // header + tables, in the tables blob
  uint64_t payOff = 0, payBytes = 0;     // payload, in the compressed image
  std::vector<uint8_t> container;
  EncodeStats st;
  Mode mode = Mode::kRaw;
  uint32_t chunks = 0;
  Layout L{};
};

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
}

// Row r of tensor ti: Gaussian with row scale sigma·exp(0.3·z) (synth.ts); norms: 1 + 0.1·z. Seeded per row, so
// the bytes do not depend on the thread schedule.
void GenRow(const Tensor& t, uint64_t ti, uint64_t r, uint16_t* out) {
  uint64_t s = (ti << 40) ^ (r * 0x2545F4914F6CDD1Dull) ^ 0x1234567ull;
  auto gauss2 = [&](float& a, float& b) {
    double u = (static_cast<double>(SplitMix(s) >> 11) + 1.0) / 9007199254740993.0;
    double v = static_cast<double>(SplitMix(s) >> 11) / 9007199254740992.0;
    double m = std::sqrt(-2.0 * std::log(u));
    a = static_cast<float>(m * std::cos(6.283185307179586 * v));
    b = static_cast<float>(m * std::sin(6.283185307179586 * v));
  };
  float z, dummy;
  gauss2(z, dummy);
  if (t.norm) {
    for (uint64_t c = 0; c < t.cols; c += 2) {
      float a, b;
      gauss2(a, b);
      out[c] = ToBf16(1.0f + 0.1f * a);
      if (c + 1 < t.cols) out[c + 1] = ToBf16(1.0f + 0.1f * b);
    }
    return;
  }
  const float scale = t.sigma * std::exp(0.3f * z);
  for (uint64_t c = 0; c < t.cols; c += 2) {
    float a, b;
    gauss2(a, b);
    out[c] = ToBf16(scale * a);
    if (c + 1 < t.cols) out[c + 1] = ToBf16(scale * b);
  }
}

template <class F>
void Parallel(size_t n, F&& f) {
  unsigned T = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<size_t> next{0};
  std::vector<std::thread> th;
  for (unsigned i = 0; i < T; ++i)
    th.emplace_back([&]() {
      for (size_t j; (j = next.fetch_add(1)) < n;) f(j);
    });
  for (auto& x : th) x.join();
}

bool SameBytes(const uint8_t* a, const uint8_t* b, uint64_t n) {
  const uint64_t step = 64ull << 20;
  std::atomic<bool> ok{true};
  Parallel((n + step - 1) / step, [&](size_t j) {
    uint64_t o = j * step, len = std::min(step, n - o);
    if (std::memcmp(a + o, b + o, len) != 0) ok = false;
  });
  return ok;
}

}  // namespace

int main() {
  const bool small = EnvInt("SMALL", 0) != 0, noGpu = EnvInt("NOGPU", 0) != 0;
  const int layers = std::max(1, EnvInt("LAYERS", small ? 2 : 32)), reps = std::max(1, EnvInt("REPS", 3));
  const uint64_t H = small ? 256 : 4096, I = small ? 704 : 14336, KV = small ? 64 : 1024, V = small ? 1000 : 128256;
  const char* outDir = std::getenv("OUT");

  // Llama-3.1-8B: 32 layers, hidden 4096, 8 KV heads of 128, FFN 14336, vocab 128256 (untied output). Per-tensor σ
  // are of the order trained Llama weights show (≈0.01–0.03); exponent entropy is scale-free.
  std::vector<Tensor> ts;
  ts.push_back({"tok_embeddings", "embed", V, H, 0.015f, false});
  for (int l = 0; l < layers; ++l) {
    std::string p = "layers." + std::to_string(l) + ".";
    ts.push_back({p + "attention_norm", "norm", 1, H, 0, true});
    ts.push_back({p + "wq", "attn_qk", H, H, 0.03f, false});
    ts.push_back({p + "wk", "attn_qk", KV, H, 0.03f, false});
    ts.push_back({p + "wv", "attn_vo", KV, H, 0.015f, false});
    ts.push_back({p + "wo", "attn_vo", H, H, 0.015f, false});
    ts.push_back({p + "ffn_norm", "norm", 1, H, 0, true});
    ts.push_back({p + "w1", "mlp", I, H, 0.02f, false});
    ts.push_back({p + "w3", "mlp", I, H, 0.02f, false});
    ts.push_back({p + "w2", "mlp", H, I, 0.015f, false});
  }
  ts.push_back({"norm", "norm", 1, H, 0, true});
  ts.push_back({"output", "output", V, H, 0.02f, false});
  uint64_t rawTotal = 0;
  for (Tensor& t : ts) {
    t.rawOff = rawTotal;
    t.rawBytes = t.rows * t.cols * 2;
    rawTotal += (t.rawBytes + 255) & ~255ull;
  }
  std::printf("shape: %d layers, %zu tensors, %.3f GB bf16 (%s)\n", layers, ts.size(), rawTotal / 1e9, small ? "SMALL" : "Llama-3.1-8B");

  if (!noGpu) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      std::fprintf(stderr, "no CUDA device (run with NOGPU=1 to check the CPU path)\n");
      return 2;
    }
    CK(cudaSetDevice(0));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  }

  // Raw weights, in pinned memory (the host tier's form today).
  double t0 = Now();
  uint8_t* raw = nullptr;
  if (noGpu) raw = static_cast<uint8_t*>(std::malloc(rawTotal));
  else CK(cudaHostAlloc(reinterpret_cast<void**>(&raw), rawTotal, cudaHostAllocDefault));
  std::printf("pin raw: %.1f s\n", Now() - t0);
  t0 = Now();
  struct RowTask { uint32_t t; uint64_t r0, r1; };
  std::vector<RowTask> rt;
  for (uint32_t i = 0; i < ts.size(); ++i)
    for (uint64_t r = 0; r < ts[i].rows; r += 1024) rt.push_back({i, r, std::min(ts[i].rows, r + 1024)});
  Parallel(rt.size(), [&](size_t j) {
    const Tensor& t = ts[rt[j].t];
    for (uint64_t r = rt[j].r0; r < rt[j].r1; ++r)
      GenRow(t, rt[j].t, r, reinterpret_cast<uint16_t*>(raw + t.rawOff) + r * t.cols);
  });
  std::printf("generate: %.1f s\n", Now() - t0);

  // Encode each tensor on the CPU (largest first), as the host tier's background encoder would.
  t0 = Now();
  std::vector<size_t> order(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ts[a].rawBytes > ts[b].rawBytes; });
  Parallel(order.size(), [&](size_t j) {
    Tensor& t = ts[order[j]];
    t.container = Encode(raw + t.rawOff, t.rawBytes, DType::kBf16, {}, &t.st);
  });
  double encodeS = Now() - t0;
  uint64_t tabTotal = 0, payTotal = 0;
  for (Tensor& t : ts) {
    Info info = Inspect(t.container.data(), t.container.size());
    t.mode = info.mode;
    t.chunks = info.header.numChunks;
    t.L = info.layout;
    t.tabOff = tabTotal;
    t.tabBytes = t.L.payload;
    tabTotal += (t.tabBytes + 255) & ~255ull;
    t.payOff = payTotal;
    t.payBytes = info.header.payloadBytes;
    payTotal += (t.payBytes + 255) & ~255ull;
  }
  const uint64_t compTotal = tabTotal + payTotal;
  std::printf("encode: %.1f s (%.2f GB/s on %u threads); compressed %.3f GB = %.4f of raw\n", encodeS, rawTotal / encodeS / 1e9,
              std::thread::hardware_concurrency(), compTotal / 1e9, static_cast<double>(compTotal) / rawTotal);

  // Per-kind statistics.
  struct Kind { std::string k; double raw = 0, comp = 0, ent = 0, huf = 0, n = 0; int rawMode = 0, count = 0; };
  std::vector<Kind> kinds;
  for (const Tensor& t : ts) {
    auto it = std::find_if(kinds.begin(), kinds.end(), [&](const Kind& k) { return k.k == t.kind; });
    if (it == kinds.end()) { kinds.push_back({t.kind}); it = kinds.end() - 1; }
    double n = t.rows * t.cols;
    it->raw += t.rawBytes; it->comp += t.container.size(); it->ent += t.st.entropyBits * n; it->huf += t.st.huffmanBits * n; it->n += n;
    it->rawMode += t.mode == Mode::kRaw; it->count++;
  }
  std::string table = "| tensors | count | stored raw | raw GB | exponent entropy (bits) | Huffman (bits) | ratio |\n|---|---|---|---|---|---|---|\n";
  for (const Kind& k : kinds) {
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %d | %d | %.3f | %.3f | %.3f | %.4f |\n", k.k.c_str(), k.count, k.rawMode, k.raw / 1e9,
                  k.ent / k.n, k.huf / k.n, k.comp / k.raw);
    table += line;
  }
  std::printf("\n%s\n", table.c_str());

  if (noGpu) {
    // CPU path check: every container decodes to the raw bytes.
    std::atomic<int> bad{0};
    Parallel(ts.size(), [&](size_t i) {
      std::vector<uint8_t> out(ts[i].rawBytes);
      Decode(ts[i].container.data(), ts[i].container.size(), out.data(), out.size());
      if (std::memcmp(out.data(), raw + ts[i].rawOff, out.size()) != 0) bad++;
    });
    std::printf("NOGPU: CPU decode of %zu tensors: %s\n", ts.size(), bad ? "MISMATCH" : "bit-exact");
    return bad ? 1 : 0;
  }

  // Host tier image of the compressed model: tables blob + payload image, pinned.
  t0 = Now();
  uint8_t *hTab = nullptr, *hPay = nullptr;
  CK(cudaHostAlloc(reinterpret_cast<void**>(&hTab), tabTotal, cudaHostAllocDefault));
  CK(cudaHostAlloc(reinterpret_cast<void**>(&hPay), payTotal, cudaHostAllocDefault));
  Parallel(ts.size(), [&](size_t i) {
    Tensor& t = ts[i];
    std::memcpy(hTab + t.tabOff, t.container.data(), t.tabBytes);
    std::memcpy(hPay + t.payOff, t.container.data() + t.L.payload, t.payBytes);
    std::vector<uint8_t>().swap(t.container);
  });
  std::printf("pin + fill compressed image: %.1f s\n", Now() - t0);

  const uint64_t kSlot = 64ull << 20;
  const int kSlots = 4;
  uint8_t *dArena = nullptr, *dTab = nullptr, *dPay = nullptr, *dStage = nullptr;
  uint32_t* dSums = nullptr;
  int* dErr = nullptr;
  uint64_t totalChunks = 0;
  for (Tensor& t : ts) totalChunks += t.chunks;
  CK(cudaMalloc(&dArena, rawTotal));
  CK(cudaMalloc(&dTab, tabTotal));
  CK(cudaMalloc(&dPay, payTotal));
  CK(cudaMalloc(&dStage, kSlot * kSlots));
  std::vector<uint64_t> sumBase(ts.size());
  { uint64_t s = 0; for (size_t i = 0; i < ts.size(); ++i) { sumBase[i] = s; s += ts[i].chunks; } }
  CK(cudaMalloc(&dSums, std::max<uint64_t>(totalChunks, 1) * 4));
  CK(cudaMalloc(&dErr, sizeof(int)));
  cudaStream_t cs, ds;
  CK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&ds, cudaStreamNonBlocking));
  // Execute-while-loading readiness: the event after the last tensor of layer 0 (embedding + layer 0 in the arena).
  const size_t kFirst = 9;
  cudaEvent_t e0, e1, eFirst, csDone, copied[kSlots], freed[kSlots];
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaEventCreate(&eFirst));
  CK(cudaEventCreateWithFlags(&csDone, cudaEventDisableTiming));
  for (int s = 0; s < kSlots; ++s) {
    CK(cudaEventCreateWithFlags(&copied[s], cudaEventDisableTiming));
    CK(cudaEventCreateWithFlags(&freed[s], cudaEventDisableTiming));
  }
  auto params = [&](size_t i, const uint8_t* payloadBase, uint32_t first, uint32_t count, bool sums) {
    const Tensor& t = ts[i];
    GpuDecodeParams p{};
    p.payload = payloadBase;
    p.chunkOffset = reinterpret_cast<const uint64_t*>(dTab + t.tabOff + t.L.chunkOffset);
    p.codeLen = dTab + t.tabOff + t.L.codeLen;
    p.out = dArena + t.rawOff;
    p.elements = t.rows * t.cols;
    p.firstChunk = first;
    p.numChunks = count;
    p.dtype = static_cast<uint32_t>(DType::kBf16);
    p.chunkSums = sums ? dSums + sumBase[i] : nullptr;
    p.error = dErr;
    return p;
  };
  auto chunkOff = [&](const Tensor& t, uint32_t k) {
    uint64_t o;
    std::memcpy(&o, hTab + t.tabOff + t.L.chunkOffset + 8ull * k, 8);
    return o;
  };

  // The three methods. Each returns milliseconds between events around its work.
  double firstMs = 0;  // set by runCopy / runPipe: e0 -> eFirst
  auto runCopy = [&]() {
    CK(cudaEventRecord(e0, cs));
    for (size_t i = 0; i < ts.size(); ++i) {
      const Tensor& t = ts[i];
      CK(cudaMemcpyAsync(dArena + t.rawOff, raw + t.rawOff, t.rawBytes, cudaMemcpyHostToDevice, cs));
      if (i == kFirst) CK(cudaEventRecord(eFirst, cs));
    }
    CK(cudaEventRecord(e1, cs));
    CK(cudaEventSynchronize(e1));
    float ms, fm;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    CK(cudaEventElapsedTime(&fm, e0, eFirst));
    firstMs = fm;
    return static_cast<double>(ms);
  };
  auto runDecode = [&](bool sums) {  // image already on the device
    CK(cudaEventRecord(e0, ds));
    for (size_t i = 0; i < ts.size(); ++i) {
      const Tensor& t = ts[i];
      if (t.mode == Mode::kRaw) CK(cudaMemcpyAsync(dArena + t.rawOff, dPay + t.payOff, t.rawBytes, cudaMemcpyDeviceToDevice, ds));
      else CK(LaunchDecode(params(i, dPay + t.payOff, 0, t.chunks, sums), ds));
    }
    CK(cudaEventRecord(e1, ds));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    return static_cast<double>(ms);
  };
  auto runPipe = [&](bool sums) {
    CK(cudaEventRecord(e0, cs));
    CK(cudaMemcpyAsync(dTab, hTab, tabTotal, cudaMemcpyHostToDevice, cs));  // every tensor's header + tables
    CK(cudaEventRecord(csDone, cs));
    CK(cudaStreamWaitEvent(ds, csDone, 0));
    uint64_t batch = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      const Tensor& t = ts[i];
      if (t.mode == Mode::kRaw) {
        CK(cudaMemcpyAsync(dArena + t.rawOff, hPay + t.payOff, t.rawBytes, cudaMemcpyHostToDevice, cs));
        continue;
      }
      for (uint32_t k = 0; k < t.chunks;) {
        uint32_t end = k + 1;
        while (end < t.chunks && chunkOff(t, end + 1) - chunkOff(t, k) <= kSlot) ++end;
        const uint64_t from = chunkOff(t, k), bytes = chunkOff(t, end) - from;
        if (bytes > kSlot) { std::fprintf(stderr, "chunk larger than a staging slot\n"); std::exit(2); }
        const int s = static_cast<int>(batch % kSlots);
        uint8_t* slot = dStage + s * kSlot;
        if (batch >= static_cast<uint64_t>(kSlots)) CK(cudaStreamWaitEvent(cs, freed[s], 0));
        CK(cudaMemcpyAsync(slot, hPay + t.payOff + from, bytes, cudaMemcpyHostToDevice, cs));
        CK(cudaEventRecord(copied[s], cs));
        CK(cudaStreamWaitEvent(ds, copied[s], 0));
        CK(LaunchDecode(params(i, slot - from, k, end - k, sums), ds));
        CK(cudaEventRecord(freed[s], ds));
        ++batch;
        k = end;
      }
      if (i == kFirst) {  // raw tensors of the group went on cs: the group is ready when both streams got here
        CK(cudaEventRecord(csDone, cs));
        CK(cudaStreamWaitEvent(ds, csDone, 0));
        CK(cudaEventRecord(eFirst, ds));
      }
    }
    CK(cudaEventRecord(csDone, cs));
    CK(cudaStreamWaitEvent(ds, csDone, 0));
    CK(cudaEventRecord(e1, ds));
    CK(cudaEventSynchronize(e1));
    float ms, fm;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    CK(cudaEventElapsedTime(&fm, e0, eFirst));
    firstMs = fm;
    return static_cast<double>(ms);
  };
  std::vector<uint8_t> back(rawTotal);
  auto verify = [&](const char* what, bool sums) {
    int err = 0;
    CK(cudaMemcpy(&err, dErr, sizeof err, cudaMemcpyDeviceToHost));
    bool ok = err == 0;
    if (!ok) std::printf("%s: decoder reported a bad lane in chunk %d\n", what, err - 1);
    if (sums) {
      std::vector<uint32_t> got(totalChunks);
      CK(cudaMemcpy(got.data(), dSums, totalChunks * 4, cudaMemcpyDeviceToHost));
      uint64_t mism = 0, checked = 0;
      for (size_t i = 0; i < ts.size(); ++i) {
        if (ts[i].mode == Mode::kRaw) continue;
        for (uint32_t k = 0; k < ts[i].chunks; ++k, ++checked) {
          uint32_t want;
          std::memcpy(&want, hTab + ts[i].tabOff + ts[i].L.chunkSum + 4ull * k, 4);
          mism += got[sumBase[i] + k] != want;
        }
      }
      std::printf("%s: %llu/%llu chunk checksums match\n", what, (unsigned long long)(checked - mism), (unsigned long long)checked);
      ok = ok && mism == 0;
    }
    CK(cudaMemcpy(back.data(), dArena, rawTotal, cudaMemcpyDeviceToHost));
    bool same = SameBytes(back.data(), raw, rawTotal);
    std::printf("%s: arena %s the raw bytes\n", what, same ? "is bit-exact with" : "DIFFERS from");
    return ok && same;
  };
  auto reset = [&]() {
    CK(cudaMemset(dArena, 0xFF, rawTotal));
    CK(cudaMemset(dErr, 0, sizeof(int)));
    CK(cudaDeviceSynchronize());
  };

  // Correctness first (with device checksums), then timing.
  CK(cudaMemcpy(dTab, hTab, tabTotal, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dPay, hPay, payTotal, cudaMemcpyHostToDevice));
  reset();
  runDecode(true);
  bool okDecode = verify("decode", true);
  reset();
  runPipe(true);
  bool okPipe = verify("pipe", true);

  runCopy(); runDecode(false); runPipe(false);  // warm-up
  std::vector<double> tc, td, tp, fc, fp;
  for (int r = 0; r < reps; ++r) {
    tc.push_back(runCopy());
    fc.push_back(firstMs);
    td.push_back(runDecode(false));
    tp.push_back(runPipe(false));
    fp.push_back(firstMs);
  }
  reset();
  runPipe(false);
  bool okLast = verify("pipe (timed form)", false);
  auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  auto mn = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };

  char buf[4096];
  std::snprintf(buf, sizeof buf,
                "| method | bytes over PCIe (GB) | median ms | best ms | GB/s of bf16 weights delivered | embedding + layer 0 ready, median ms |\n|---|---|---|---|---|---|\n"
                "| plain pinned copy of raw bf16 (floor) | %.3f | %.1f | %.1f | %.1f | %.1f |\n"
                "| compressed copy + decode, pipelined | %.3f | %.1f | %.1f | %.1f | %.1f |\n"
                "| GPU decode only (image on device) | 0 | %.1f | %.1f | %.1f | — |\n",
                rawTotal / 1e9, med(tc), mn(tc), rawTotal / med(tc) / 1e6, med(fc), compTotal / 1e9, med(tp), mn(tp), rawTotal / med(tp) / 1e6,
                med(fp), med(td), mn(td), rawTotal / med(td) / 1e6);
  std::printf("\n%s\ncompression ratio %.4f (%.3f GB -> %.3f GB); bit-exact: decode %s, pipe %s, timed pipe %s\n", buf,
              static_cast<double>(compTotal) / rawTotal, rawTotal / 1e9, compTotal / 1e9, okDecode ? "yes" : "NO", okPipe ? "yes" : "NO",
              okLast ? "yes" : "NO");
  if (outDir) {
    std::string path = std::string(outDir) + "/codec_gpu.md";
    if (FILE* f = std::fopen(path.c_str(), "w")) {
      std::fprintf(f, "%s\n%s\ncompression ratio %.4f; bit-exact decode=%d pipe=%d timedPipe=%d; encode %.1f s\n", table.c_str(), buf,
                   static_cast<double>(compTotal) / rawTotal, okDecode, okPipe, okLast, encodeS);
      std::fclose(f);
    }
  }
  return okDecode && okPipe && okLast ? 0 : 1;
}
