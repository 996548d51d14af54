// Speed of the CUDA engine on the Llama-3.1-8B shape (random bf16 weights), each number beside its floor measured
// in the same run: memory bandwidth (device copy), cuBLASLt GEMMs of the prefill's own shapes, and a plain pinned
// host -> device copy of the weights for execute-while-loading.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "engine/cuda/gemm.h"
#include "engine/cuda/kernels.h"
#include "dev_common.h"
#include "engine/backend.h"
#include "engine/kv_pool.h"

namespace swapserve::dev {

using cuda::ET;
using engine::DType;
using engine::TensorRef;

namespace {

struct Shape {
  int C = 4096, F = 14336, L = 32, H = 32, KVH = 8, D = 128, V = 128256;
};

// Arena layout as the model planner makes it: group 0 = embeddings, group i+1 = layer i (q|k|v and gate|up adjacent),
// group L+1 = norm + output head; every tensor 256-byte aligned.
struct Layout {
  engine::ModelDesc desc;
  std::vector<std::pair<size_t, size_t>> groups;
  std::vector<std::pair<size_t, size_t>> norms;  // (offset, elements) of norm vectors
  size_t bytes = 0;
};

Layout Plan(const Shape& s) {
  Layout L;
  engine::ModelDesc& d = L.desc;
  d.hidden = s.C; d.intermediate = s.F; d.layers = s.L; d.heads = s.H; d.kvHeads = s.KVH; d.headDim = s.D;
  d.vocab = s.V; d.maxPositions = 131072; d.rmsEps = 1e-5f; d.ropeTheta = 500000.f;
  d.ropeScaling = engine::RopeScaling::kLlama3; d.ropeFactor = 8.f; d.ropeLowFreqFactor = 1.f;
  d.ropeHighFreqFactor = 4.f; d.ropeOriginalMaxPositions = 8192;
  size_t off = 0;
  auto take = [&](size_t elems, bool norm = false) {
    TensorRef t{off, DType::kBF16, true};
    if (norm) L.norms.push_back({off, elems});
    off += (elems * 2 + 255) / 256 * 256;
    return t;
  };
  const size_t C = s.C, F = s.F, QD = size_t(s.H) * s.D, KD = size_t(s.KVH) * s.D;
  size_t g0 = off;
  d.tokEmbeddings = take(size_t(s.V) * C);
  L.groups.push_back({g0, off});
  d.layer.resize(s.L);
  for (int i = 0; i < s.L; ++i) {
    g0 = off;
    auto& w = d.layer[i];
    w.attnNorm = take(C, true);
    w.wq = take(QD * C); w.wk = take(KD * C); w.wv = take(KD * C); w.wo = take(C * QD);
    w.ffnNorm = take(C, true);
    w.w1 = take(F * C); w.w3 = take(F * C); w.w2 = take(C * F);
    L.groups.push_back({g0, off});
  }
  g0 = off;
  d.norm = take(C, true);
  d.output = take(size_t(s.V) * C);
  L.groups.push_back({g0, off});
  L.bytes = off;
  return L;
}

void FillWeights(uint8_t* base, const Layout& L, cudaStream_t s) {
  cuda::LaunchFillUniform(base, ET::kBF16, L.bytes / 2, 2026, -0.03f, 0.03f, s);
  for (auto [o, n] : L.norms) cuda::LaunchFillUniform(base + o, ET::kBF16, n, o, 0.8f, 1.2f, s);
  SS_CUDA_CHECK(cudaStreamSynchronize(s));
}

double EventMs(cudaStream_t s, const std::function<void()>& f, int warm, int reps) {
  cudaEvent_t a, b;
  SS_CUDA_CHECK(cudaEventCreate(&a));
  SS_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int i = 0; i < warm + reps; ++i) {
    SS_CUDA_CHECK(cudaEventRecord(a, s));
    f();
    SS_CUDA_CHECK(cudaEventRecord(b, s));
    SS_CUDA_CHECK(cudaEventSynchronize(b));
    float m = 0;
    SS_CUDA_CHECK(cudaEventElapsedTime(&m, a, b));
    if (i >= warm) ms.push_back(m);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return Median(ms);
}

std::vector<int32_t> RandomTokens(int n, int V, uint32_t seed) {
  std::vector<int32_t> t(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& v : t) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; v = static_cast<int32_t>(x % V); }
  return t;
}

}  // namespace

int RunBench(const std::string& what) {
  // sweep: only the bandwidth floor and the decode sweep (run once more with SWAPSERVE_CUDA_GRAPHS=1 by run_device.sh).
  const bool withEwl = what == "ewl", sweepOnly = what == "sweep", decodeOnly = what == "decode" || sweepOnly;
  const Shape sh;
  const Layout L = Plan(sh);
  cudaDeviceProp prop{};
  SS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("BENCH device %s, %d SMs; Llama-3.1-8B shape, bf16 random weights, %.2f GB arena\n", prop.name,
              prop.multiProcessorCount, L.bytes / 1e9);
  cudaStream_t s;
  SS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  auto lease = std::make_shared<DevLease>(L.bytes, L.groups);
  FillWeights(lease->mutableBase(), L, s);

  // Floor 1: memory bandwidth, a 4 GiB device-to-device copy counted as bytes read + written.
  double bw = 0;
  {
    const size_t n = size_t(4) << 30;
    void *a, *b;
    SS_CUDA_CHECK(cudaMalloc(&a, n));
    SS_CUDA_CHECK(cudaMalloc(&b, n));
    cuda::LaunchFillUniform(a, ET::kBF16, n / 2, 5, -1.f, 1.f, s);
    const double ms = EventMs(s, [&] { SS_CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s)); }, 2, 7);
    bw = 2.0 * n / ms / 1e6;  // GB/s
    cudaFree(a);
    cudaFree(b);
    std::printf("BENCH memory bandwidth (4 GiB D2D copy, read+write): %.0f GB/s\n", bw);
  }
  const size_t embBytes = L.groups[0].second - L.groups[0].first;
  const double stepBytes = double(L.bytes - embBytes);  // a decode step reads every weight but the embedding table
  const double floorMs = stepBytes / bw / 1e6;

  // Floor 2: cuBLASLt on the prefill's own shapes (T = 2048), as the engine issues them.
  const int T = 2048;
  const double C = sh.C, F = sh.F, QS = (sh.H + 2 * sh.KVH) * sh.D, QD = sh.H * sh.D;
  double gemmLayerMs = 0, gemmRate = 0;
  if (!decodeOnly) {
    void *ws, *x, *y, *yf;
    SS_CUDA_CHECK(cudaMalloc(&ws, 32 << 20));
    SS_CUDA_CHECK(cudaMalloc(&x, size_t(T) * sh.F * 2));
    SS_CUDA_CHECK(cudaMalloc(&y, size_t(T) * 2 * sh.F * 2));
    SS_CUDA_CHECK(cudaMalloc(&yf, size_t(T) * sh.C * 4));
    cuda::LaunchFillUniform(x, ET::kBF16, size_t(T) * sh.F, 9, -1.f, 1.f, s);
    cuda::LaunchFillUniform(yf, ET::kF32, size_t(T) * sh.C, 10, -1.f, 1.f, s);
    cuda::Gemm g(ws, 32 << 20);
    const auto& w = L.desc.layer[3];
    const uint8_t* b = lease->base();
    struct G { const char* name; size_t off; int N, K; bool resid; };
    const G gs[] = {{"qkv", w.wq.offset, int(QS), sh.C, false}, {"o (+residual)", w.wo.offset, sh.C, int(QD), true},
                    {"gate|up", w.w1.offset, 2 * sh.F, sh.C, false}, {"down (+residual)", w.w2.offset, sh.C, sh.F, true}};
    double flops = 0;
    for (const G& gg : gs) {
      const double ms = EventMs(s, [&] {
        g.run(b + gg.off, ET::kBF16, gg.N, gg.K, x, ET::kBF16, gg.K, T, gg.resid ? yf : y, gg.resid ? ET::kF32 : ET::kBF16,
              gg.N, gg.resid ? 1.f : 0.f, s);
      }, 3, 10);
      const double f = 2.0 * T * gg.N * gg.K;
      std::printf("BENCH gemm %-18s T=%d N=%-6d K=%-6d %.3f ms %.0f TFLOP/s\n", gg.name, T, gg.N, gg.K, ms, f / ms / 1e9);
      gemmLayerMs += ms;
      flops += f;
    }
    gemmRate = flops / gemmLayerMs / 1e9;
    // A square product for reference with KINDS.md.
    void *a8, *b8, *c8;
    const int n8 = 8192;
    SS_CUDA_CHECK(cudaMalloc(&a8, size_t(n8) * n8 * 2));
    SS_CUDA_CHECK(cudaMalloc(&b8, size_t(n8) * n8 * 2));
    SS_CUDA_CHECK(cudaMalloc(&c8, size_t(n8) * n8 * 2));
    cuda::LaunchFillUniform(a8, ET::kBF16, size_t(n8) * n8, 3, -1.f, 1.f, s);
    cuda::LaunchFillUniform(b8, ET::kBF16, size_t(n8) * n8, 4, -1.f, 1.f, s);
    const double ms8 = EventMs(s, [&] { g.run(a8, ET::kBF16, n8, n8, b8, ET::kBF16, n8, n8, c8, ET::kBF16, n8, 0.f, s); }, 3, 10);
    std::printf("BENCH gemm 8192^3 bf16: %.0f TFLOP/s; prefill-shape layer GEMMs: %.0f TFLOP/s\n",
                2.0 * n8 * n8 * n8 / ms8 / 1e9, gemmRate);
    cudaFree(a8); cudaFree(b8); cudaFree(c8); cudaFree(ws); cudaFree(x); cudaFree(y); cudaFree(yf);
  }

  // Decode-shape products (T = 1 and 8): the engine's GEMV against cuBLASLt, as weight bytes per second.
  if (!sweepOnly) {
    void *ws, *x, *y;
    SS_CUDA_CHECK(cudaMalloc(&ws, 32 << 20));
    SS_CUDA_CHECK(cudaMalloc(&x, size_t(8) * sh.F * 2));
    SS_CUDA_CHECK(cudaMalloc(&y, size_t(8) * sh.V * 4));
    cuda::LaunchFillUniform(x, ET::kBF16, size_t(8) * sh.F, 19, -1.f, 1.f, s);
    cuda::LaunchFillUniform(y, ET::kF32, size_t(8) * sh.V, 20, -1.f, 1.f, s);
    cuda::Gemm g(ws, 32 << 20);
    const auto& w = L.desc.layer[5];
    const uint8_t* b = lease->base();
    struct G { const char* name; size_t off; int N, K; ET yT; float beta; int per; };
    const G gs[] = {{"qkv", w.wq.offset, int(QS), sh.C, ET::kBF16, 0.f, sh.L},
                    {"o (+residual)", w.wo.offset, sh.C, int(QD), ET::kBF16, 1.f, sh.L},
                    {"gate|up", w.w1.offset, 2 * sh.F, sh.C, ET::kBF16, 0.f, sh.L},
                    {"down (+residual)", w.w2.offset, sh.C, sh.F, ET::kBF16, 1.f, sh.L},
                    {"head", L.desc.output.offset, sh.V, sh.C, ET::kF32, 0.f, 1}};
    for (int T : {1, 8}) {
      double stepG = 0, stepB = 0;
      for (const G& gg : gs) {
        double ms[2];
        g.useGemv(false);
        ms[0] = EventMs(s, [&] { cuda::LaunchGemv(b + gg.off, ET::kBF16, gg.N, gg.K, x, gg.K, T, y, gg.yT, gg.N, gg.beta, s); }, 3, 20);
        ms[1] = EventMs(s, [&] { g.run(b + gg.off, ET::kBF16, gg.N, gg.K, x, ET::kBF16, gg.K, T, y, gg.yT, gg.N, gg.beta, s); }, 3, 20);
        const double bytes = 2.0 * gg.N * gg.K;
        std::printf("BENCH decode gemm %-17s T=%d: gemv %.1f us (%.0f GB/s), cuBLASLt %.1f us (%.0f GB/s)\n", gg.name, T,
                    ms[0] * 1e3, bytes / ms[0] / 1e6, ms[1] * 1e3, bytes / ms[1] / 1e6);
        stepG += ms[0] * gg.per;
        stepB += ms[1] * gg.per;
      }
      std::printf("BENCH decode step, products only, T=%d: gemv %.3f ms, cuBLASLt %.3f ms (floor %.3f ms)\n", T, stepG,
                  stepB, floorMs);
    }
    cudaFree(ws); cudaFree(x); cudaFree(y);
  }

  // The folded decode products (decode.cu) alone, at each launch shape: weight bytes per second. Kernels
  // launched back to back without programmatic dependent launch, so each time includes a launch gap.
  if (!sweepOnly) {
    const int cap = 256, D = sh.D, KVH = sh.KVH, H = sh.H;
    const int QDi = H * D, KD = KVH * D;
    void *x, *y, *ss, *kv, *meta, *cs;
    SS_CUDA_CHECK(cudaMalloc(&x, size_t(sh.F) * 2));
    SS_CUDA_CHECK(cudaMalloc(&y, size_t(sh.V) * 4));
    SS_CUDA_CHECK(cudaMalloc(&ss, 64));
    SS_CUDA_CHECK(cudaMalloc(&kv, size_t(2) * cap * KD * 2));
    SS_CUDA_CHECK(cudaMalloc(&meta, 256));
    SS_CUDA_CHECK(cudaMalloc(&cs, size_t(D) * 4));
    cuda::LaunchFillUniform(x, ET::kBF16, sh.F, 29, -1.f, 1.f, s);
    cuda::LaunchFillUniform(y, ET::kBF16, size_t(sh.V) * 2, 30, -1.f, 1.f, s);
    cuda::LaunchFillUniform(cs, ET::kF32, D, 31, -1.f, 1.f, s);
    const float ssv[2] = {sh.C / 3.f, 0.f};  // a uniform(-1, 1) row's sum of squares
    const int32_t pos = 100;
    const uint64_t kvb = reinterpret_cast<uint64_t>(kv);
    SS_CUDA_CHECK(cudaMemcpy(ss, ssv, 8, cudaMemcpyHostToDevice));
    SS_CUDA_CHECK(cudaMemcpy(meta, &pos, 4, cudaMemcpyHostToDevice));
    SS_CUDA_CHECK(cudaMemcpy(static_cast<uint8_t*>(meta) + 64, &kvb, 8, cudaMemcpyHostToDevice));
    const auto& w = L.desc.layer[5];
    const uint8_t* b = lease->base();
    auto args = [&](size_t off, int N, int K) {
      cuda::DecodeGemvArgs a;
      a.w0 = b + off; a.seg1 = a.seg2 = a.N = N; a.K = K; a.wT = ET::kBF16; a.x = x; a.eps = 1e-5f; a.y = y;
      a.yT = ET::kBF16; a.ssIn = static_cast<float*>(ss); a.ssOut = static_cast<float*>(ss) + 1;
      return a;
    };
    cuda::DecodeGemvArgs qkv = args(w.wq.offset, int(QS), sh.C);
    qkv.w1 = b + w.wk.offset; qkv.w2 = b + w.wv.offset; qkv.seg1 = QDi; qkv.seg2 = QDi + KD;
    qkv.normW = b + w.attnNorm.offset; qkv.normT = ET::kBF16; qkv.H = H; qkv.KVH = KVH; qkv.D = D;
    qkv.cosSin = static_cast<float*>(cs); qkv.pos = static_cast<int32_t*>(meta);
    qkv.kvBase = reinterpret_cast<uint64_t*>(static_cast<uint8_t*>(meta) + 64); qkv.cap = cap;
    cuda::DecodeGemvArgs o = args(w.wo.offset, sh.C, QDi);
    cuda::DecodeGemvArgs gu = args(w.w1.offset, 2 * sh.F, sh.C);
    gu.w1 = b + w.w3.offset; gu.seg1 = sh.F; gu.normW = b + w.ffnNorm.offset; gu.normT = ET::kBF16;
    cuda::DecodeGemvArgs down = args(w.w2.offset, sh.C, sh.F);
    cuda::DecodeGemvArgs head = args(L.desc.output.offset, sh.V, sh.C);
    head.normW = b + L.desc.norm.offset; head.normT = ET::kBF16; head.yT = ET::kF32;
    struct Op { const char* name; cuda::DecodeGemvArgs* a; cuda::DecodeIn in; cuda::DecodeOut out; int per; };
    const Op ops[] = {{"qkv+norm+rope", &qkv, cuda::DecodeIn::kNorm, cuda::DecodeOut::kQkvRope, sh.L},
                      {"o+residual", &o, cuda::DecodeIn::kPlain, cuda::DecodeOut::kResidual, sh.L},
                      {"gate|up+norm+swiglu", &gu, cuda::DecodeIn::kNorm, cuda::DecodeOut::kSwiGlu, sh.L},
                      {"down+residual", &down, cuda::DecodeIn::kPlain, cuda::DecodeOut::kResidual, sh.L},
                      {"head+norm", &head, cuda::DecodeIn::kNorm, cuda::DecodeOut::kStore, 1}};
    std::vector<double> best(5, 1e30);
    for (const char* spec : {"2x4", "2x8", "4x2", "2x4k", "4x4k"}) {
      cuda::DecodeTuning tu;
      SS_REQUIRE(cuda::ParseDecodeTuning(spec, &tu), "bench: bad tuning");
      double step = 0;
      for (int i = 0; i < 5; ++i) {
        const Op& op = ops[i];
        const double ms = EventMs(s, [&] { cuda::LaunchDecodeGemv(op.in, op.out, *op.a, tu, s); }, 3, 20);
        const double bytes = 2.0 * op.a->N * op.a->K;
        std::printf("BENCH decode fused %-20s %-4s: %.1f us (%.0f GB/s)\n", op.name, spec, ms * 1e3, bytes / ms / 1e6);
        step += ms * op.per;
        best[i] = std::min(best[i], ms);
      }
      std::printf("BENCH decode fused products per step, %s everywhere: %.3f ms\n", spec, step);
    }
    double bestStep = 0;
    for (int i = 0; i < 5; ++i) bestStep += best[i] * ops[i].per;
    std::printf("BENCH decode fused products per step, best shape per product: %.3f ms (floor %.3f ms)\n", bestStep,
                floorMs);
    cudaFree(x); cudaFree(y); cudaFree(ss); cudaFree(kv); cudaFree(meta); cudaFree(cs);
  }

  auto pool = std::make_shared<DevPool>();
  engine::BackendOptions opts;
  opts.maxBatch = 8;
  opts.maxContext = 4096;
  auto be = engine::MakeCudaBackend(L.desc, lease, pool, opts);
  std::vector<float> logits(size_t(8) * sh.V);

  // Prefill: one fresh sequence, host clock around forward (it returns once the logits are on the host).
  const double linPerTok = 2.0 * sh.L * (C * QS + C * QD + 2 * C * F + C * F);
  double prefill2048 = 0, prefill128 = 0;
  for (int n : {128, 2048}) {
    if (decodeOnly) break;
    const auto toks = RandomTokens(n, sh.V, n);
    std::vector<double> ms;
    for (int i = 0; i < 8; ++i) {
      const double t0 = NowMs();
      be->forward({{100 + i, toks.data(), n, 0}}, logits.data());
      const double t1 = NowMs();
      be->releaseSeq(100 + i);
      if (i >= 2) ms.push_back(t1 - t0);
    }
    const double m = Median(ms);
    const double flops = linPerTok * n + 4.0 * sh.D * sh.H * sh.L * (double(n) * (n + 1) / 2) + 2.0 * C * sh.V;
    std::printf("BENCH prefill %4d tokens: %.2f ms, %.0f TFLOP/s = %.0f%% of the prefill-shape GEMM rate\n", n, m,
                flops / m / 1e9, 100.0 * flops / m / 1e9 / gemmRate);
    (n == 128 ? prefill128 : prefill2048) = m;
  }

  // Decode: B sequences prefilled with 128 tokens, then batched greedy steps on the device.
  double tokps1 = 0;
  for (int B : {1, 8}) {
    if (sweepOnly) break;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<int32_t> last(B);
    std::vector<engine::Sampling> sm(B);
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) {
      prompts.push_back(RandomTokens(128, sh.V, 7 + b));
      be->forwardSample({{200 + b, prompts[b].data(), 128, 0}}, &sm[b], &next[b]);
    }
    std::vector<double> ms;
    for (int step = 0; step < 72; ++step) {
      std::vector<engine::SeqInput> batch;
      for (int b = 0; b < B; ++b) { last[b] = next[b]; batch.push_back({200 + b, &last[b], 1, 128 + step}); }
      const double t0 = NowMs();
      be->forwardSample(batch, sm.data(), next.data());
      const double t1 = NowMs();
      if (step >= 8) ms.push_back(t1 - t0);
    }
    for (int b = 0; b < B; ++b) be->releaseSeq(200 + b);
    const double m = Median(ms), tps = B * 1000.0 / m;
    if (B == 1) tokps1 = tps;
    std::printf("BENCH decode batch %d (ctx 128..200): %.3f ms/step, %.1f tokens/s; floor %.3f ms (%.2f GB / %.0f GB/s): "
                "%.2fx the floor%s\n", B, m, tps, floorMs, stepBytes / 1e9, bw, m / floorMs,
                B == 1 ? "" : (", " + std::to_string(tps / tokps1).substr(0, 4) + "x batch-1 tokens/s").c_str());
  }

  // Decode throughput by batch size beside the roofline (Llama-3.1-8B shape, paged KV): 256 sequences prefilled with
  // 512 random tokens once (chunks of 8 sequences a pass), then for B in 1, 8, ..., 256 greedy steps of the first B.
  // Roofline of a step: (weights but the embedding table + K and V of every position each sequence attends to) /
  // the measured bandwidth; ceiling tokens/s = B / that time.
  if (decodeOnly || std::getenv("BENCH_DECODE_SWEEP")) {
    // BENCH_SWEEP_BATCHES="1,64": only those batch sizes (with SWAPSERVE_CUDA_PROFILE=1, a per-op breakdown of each).
    const int CTX = 512, WARM = 4, STEPS = 20;
    std::vector<int> Bs = {1, 8, 32, 64, 128, 256};
    if (const char* only = std::getenv("BENCH_SWEEP_BATCHES")) {
      Bs.clear();
      for (const char* c = only; *c;) {
        char* end = nullptr;
        const long b = std::strtol(c, &end, 10);
        SS_REQUIRE(end != c && b >= 1 && b <= 256, "bench: BENCH_SWEEP_BATCHES wants batch sizes 1..256, comma-separated");
        Bs.push_back(static_cast<int>(b));
        c = *end == ',' ? end + 1 : end;
        SS_REQUIRE(*end == ',' || *end == 0, "bench: BENCH_SWEEP_BATCHES wants batch sizes 1..256, comma-separated");
      }
      SS_REQUIRE(!Bs.empty(), "bench: BENCH_SWEEP_BATCHES is empty");
    }
    const int MAXB = (*std::max_element(Bs.begin(), Bs.end()) + 7) / 8 * 8;  // prefilled in passes of 8 sequences
    engine::BackendOptions o2;
    o2.maxBatch = MAXB;
    o2.maxContext = 1024;
    const int kd = sh.KVH * sh.D;
    const size_t kvPerPos = size_t(2) * sh.L * kd * 2;  // bytes of K and V of one position, all layers (bf16)
    o2.kvCacheBytes = size_t(MAXB) * engine::KvPool::BlocksFor(CTX + int(Bs.size()) * (WARM + STEPS) + 1) *
                      engine::KvPool::BlockBytes(sh.L, kd, 2);
    auto sb = engine::MakeCudaBackend(L.desc, lease, pool, o2);
    const char* graphsEnv = std::getenv("SWAPSERVE_CUDA_GRAPHS");
    std::printf("BENCH decode sweep%s: paged KV pool %.2f GB (%d blocks of 16 positions)\n",
                graphsEnv && std::strcmp(graphsEnv, "1") == 0 ? " with CUDA graphs" : "", o2.kvCacheBytes / 1e9,
                sb->kvStats().blocksTotal);
    std::vector<std::vector<int32_t>> pr(MAXB);
    std::vector<int32_t> last(MAXB), posv(MAXB, CTX);
    std::vector<engine::Sampling> smp(MAXB);
    const double tp = NowMs();
    for (int b0 = 0; b0 < MAXB; b0 += 8) {
      std::vector<engine::SeqInput> batch;
      for (int b = b0; b < b0 + 8; ++b) {
        pr[b] = RandomTokens(CTX, sh.V, 1000 + b);
        batch.push_back({b, pr[b].data(), CTX, 0});
      }
      sb->forwardSample(batch, smp.data() + b0, last.data() + b0);
    }
    std::printf("BENCH decode sweep: prefilled %d x %d tokens in %.0f ms\n", MAXB, CTX, NowMs() - tp);
    std::printf("BENCH | batch | ctx | ms/step | tokens/s | roofline ms | roofline tokens/s | %% of roofline |\n");
    std::printf("BENCH |---|---|---|---|---|---|---|\n");
    for (int B : Bs) {
      std::vector<double> ms;
      double kvBytes = 0;
      int ctxLo = 1 << 30, ctxHi = 0;
      std::vector<int32_t> in(B), out(B);
      for (int step = 0; step < WARM + STEPS; ++step) {
        std::vector<engine::SeqInput> batch;
        double kv = 0;
        for (int b = 0; b < B; ++b) {
          in[b] = last[b];
          batch.push_back({b, &in[b], 1, posv[b]});
          kv += double(posv[b] + 1) * kvPerPos;
          ctxLo = std::min(ctxLo, posv[b] + 1);
          ctxHi = std::max(ctxHi, posv[b] + 1);
        }
        const double t0 = NowMs();
        sb->forwardSample(batch, smp.data(), out.data());
        const double t1 = NowMs();
        for (int b = 0; b < B; ++b) { last[b] = out[b]; posv[b]++; }
        if (step >= WARM) { ms.push_back(t1 - t0); kvBytes += kv; }
      }
      const double m = Median(ms), tps = B * 1000.0 / m;
      const double bytes = stepBytes + kvBytes / STEPS, roofMs = bytes / bw / 1e6, roofTps = B * 1000.0 / roofMs;
      std::printf("BENCH | %d | %d-%d | %.3f | %.0f | %.3f | %.0f | %.0f%% |\n", B, ctxLo, ctxHi, m, tps, roofMs, roofTps,
                  100.0 * tps / roofTps);
    }
    for (int b = 0; b < MAXB; ++b) sb->releaseSeq(b);
    std::printf("BENCH decode sweep: roofline = (%.2f GB of weights but the embedding + K,V of every context position) / "
                "%.0f GB/s (4 GiB device copy, read+write)\n", stepBytes / 1e9, bw);
  }

  // Where the time goes: the backend's own per-op events (SWAPSERVE_CUDA_PROFILE=1 prints one line per pass).
  if (!sweepOnly) {
    setenv("SWAPSERVE_CUDA_PROFILE", "1", 1);
    auto pb = engine::MakeCudaBackend(L.desc, lease, pool, opts);
    unsetenv("SWAPSERVE_CUDA_PROFILE");
    for (int n : {2048, 128}) {
      if (decodeOnly) break;
      const auto toks = RandomTokens(n, sh.V, 99);
      for (int i = 0; i < 2; ++i) {
        pb->forward({{400 + i, toks.data(), n, 0}}, logits.data());
        pb->releaseSeq(400 + i);
      }
    }
    for (int B : {1, 8}) {
      std::vector<int32_t> in(B, 5), nx(B);
      std::vector<engine::Sampling> sm(B);
      std::vector<engine::SeqInput> batch;
      for (int b = 0; b < B; ++b) batch.push_back({500 + b, &in[b], 1, 0});
      for (int step = 0; step < 3; ++step) {
        for (auto& e : batch) e.pos = step;
        pb->forwardSample(batch, sm.data(), nx.data());
      }
      for (int b = 0; b < B; ++b) pb->releaseSeq(500 + b);
    }
  }

  // The same batch-1 decode with engine options changed, for comparison: BENCH_FLIPS="A=1,B=2;C=3" runs one backend
  // with A=1 and B=2, one with C=3 (default: the unfolded decode path, and no programmatic dependent launch).
  const char* flipEnv = std::getenv("BENCH_FLIPS");
  const std::string flipSpec = sweepOnly ? "" : flipEnv ? flipEnv : "SWAPSERVE_CUDA_FUSED_DECODE=0;SWAPSERVE_CUDA_PDL=0";
  std::vector<std::vector<std::pair<std::string, std::string>>> flips;
  for (size_t i = 0; i < flipSpec.size();) {
    size_t j = flipSpec.find(';', i);
    if (j == std::string::npos) j = flipSpec.size();
    std::vector<std::pair<std::string, std::string>> set;
    for (size_t a = i; a < j;) {
      size_t b = flipSpec.find(',', a);
      if (b == std::string::npos || b > j) b = j;
      const std::string kv = flipSpec.substr(a, b - a);
      const size_t eq = kv.find('=');
      if (eq != std::string::npos) set.push_back({kv.substr(0, eq), kv.substr(eq + 1)});
      a = b + 1;
    }
    if (!set.empty()) flips.push_back(set);
    i = j + 1;
  }
  for (const auto& set : flips) {
    std::string label;
    for (const auto& [var, val] : set) {
      setenv(var.c_str(), val.c_str(), 1);
      label += (label.empty() ? "" : ",") + var + "=" + val;
    }
    auto nb = engine::MakeCudaBackend(L.desc, lease, pool, opts);
    for (const auto& kv : set) unsetenv(kv.first.c_str());
    const auto prompt = RandomTokens(128, sh.V, 7);
    engine::Sampling sm;
    int32_t next = 0, last = 0;
    nb->forwardSample({{600, prompt.data(), 128, 0}}, &sm, &next);
    std::vector<double> ms;
    for (int step = 0; step < 72; ++step) {
      last = next;
      const double t0 = NowMs();
      nb->forwardSample({{600, &last, 1, 128 + step}}, &sm, &next);
      if (step >= 8) ms.push_back(NowMs() - t0);
    }
    std::printf("BENCH decode batch 1 (ctx 128..200) with %s: %.3f ms/step, %.2fx the floor\n", label.c_str(),
                Median(ms), Median(ms) / floorMs);
  }

  if (withEwl) {
    // Execute-while-loading: the weights in pinned host memory, a second device arena, a 128-token prompt
    // enqueued the moment the group-by-group swap-in starts.
    uint8_t* hostW = nullptr;
    const double tp0 = NowMs();
    SS_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&hostW), L.bytes, cudaHostAllocDefault));
    SS_CUDA_CHECK(cudaMemcpy(hostW, lease->base(), L.bytes, cudaMemcpyDeviceToHost));
    std::printf("BENCH pinned host copy of the weights prepared in %.0f ms\n", NowMs() - tp0);
    auto lease2 = std::make_shared<DevLease>(L.bytes, L.groups);
    cudaStream_t copy;
    SS_CUDA_CHECK(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
    const double copyMs = EventMs(copy, [&] {
      SS_CUDA_CHECK(cudaMemcpyAsync(lease2->mutableBase(), hostW, L.bytes, cudaMemcpyHostToDevice, copy));
    }, 1, 3);
    std::printf("BENCH plain pinned copy of %.2f GB: %.1f ms (%.1f GB/s)\n", L.bytes / 1e9, copyMs, L.bytes / copyMs / 1e6);
    const auto toks = RandomTokens(128, sh.V, 128);
    std::vector<float> ref(sh.V), got(sh.V);
    be->forward({{300, toks.data(), 128, 0}}, ref.data());
    be->releaseSeq(300);
    auto be2 = engine::MakeCudaBackend(L.desc, lease2, pool, opts);
    std::vector<double> ttft;
    for (int rep = 0; rep < 4; ++rep) {
      SS_CUDA_CHECK(cudaMemsetAsync(lease2->mutableBase(), 0, L.bytes, copy));  // really empty before each swap-in
      SS_CUDA_CHECK(cudaStreamSynchronize(copy));
      const double t0 = NowMs();
      lease2->startSwapIn(hostW, copy);
      be2->forward({{301, toks.data(), 128, 0}}, got.data());
      const double t1 = NowMs();
      be2->releaseSeq(301);
      SS_CUDA_CHECK(cudaStreamSynchronize(copy));
      if (rep >= 1) ttft.push_back(t1 - t0);
    }
    double maxDiff = 0;
    for (int i = 0; i < sh.V; ++i) maxDiff = std::max(maxDiff, double(std::fabs(got[i] - ref[i])));
    const double m = Median(ttft);
    std::printf("BENCH execute-while-loading: TTFT %.1f ms for a 128-token prompt = %.3fx the plain copy (%.1f ms); "
                "copy-then-prefill would be %.1f ms; logits max |diff| vs resident run %.2e\n", m, m / copyMs, copyMs,
                copyMs + prefill128, maxDiff);
    be2.reset();
    cudaFreeHost(hostW);
    cudaStreamDestroy(copy);
  }
  std::printf("BENCH summary prefill128 %.2f ms, prefill2048 %.2f ms\n", prefill128, prefill2048);
  be.reset();
  SS_CUDA_CHECK(cudaStreamDestroy(s));
  return 0;
}

}  // namespace swapserve::dev
