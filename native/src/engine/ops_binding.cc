// exports.engineOps: each CPU op callable from JS, synchronously, so tests can compare it with a scalar
// reference. Test hooks only (small inputs): the engine itself never calls these.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/bindings.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/quant.h"
#include "engine/quant_blocks.h"
#include "engine/cpu/thread_pool.h"

namespace swapserve::engine {

namespace {

typedef float v8sfOps __attribute__((vector_size(32)));

[[noreturn]] void Bad(Napi::Env env, const std::string& msg) { throw MakeError(env, ErrorCode::kInvalidArgument, msg); }

std::vector<float> F32(Napi::Env env, Napi::Value v, size_t n, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    Bad(env, std::string("Expected a Float32Array for ") + name);
  auto a = v.As<Napi::Float32Array>();
  if (a.ElementLength() < n) Bad(env, std::string(name) + " is too short");
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<uint8_t> Bytes(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    Bad(env, std::string("Expected a Uint8Array for ") + name);
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength());
}

int Int(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsNumber()) Bad(env, std::string("Expected a number for ") + name);
  return v.As<Napi::Number>().Int32Value();
}

DType Dt(Napi::Env env, Napi::Value v, const char* name) {
  const int d = Int(env, v, name);
  if (d < 0 || d > 7) Bad(env, std::string("Expected 0 (f32), 1 (f16), 2 (bf16) or 3..7 (q8_0, q4_0, q4_k, q5_k, q6_k) for ") + name);
  return static_cast<DType>(d);
}

Napi::Float32Array Out(Napi::Env env, const float* p, size_t n) {
  auto a = Napi::Float32Array::New(env, n);
  std::memcpy(a.Data(), p, n * sizeof(float));
  return a;
}

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

// matmul(x: F32 (T,I), w: U8 (O,I) of wdtype, wdtype, bias: U8 (O) | null, bdtype, T, I, O) -> F32 (T,O)
Napi::Value MatMulOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int T = Int(env, info[5], "T"), I = Int(env, info[6], "I"), O = Int(env, info[7], "O");
  if (T < 1 || I < 1 || O < 1) Bad(env, "Expected T, I, O >= 1");
  const DType wdt = Dt(env, info[2], "wdtype");
  auto x = F32(env, info[0], static_cast<size_t>(T) * I, "x");
  auto w = Bytes(env, info[1], "w");
  if (I % cpu::BlockElems(wdt) != 0) Bad(env, "I is not a multiple of the weight type's block size");
  if (w.size() < static_cast<size_t>(O) * cpu::RowBytes(wdt, I)) Bad(env, "w is too short");
  std::vector<uint8_t> b;
  DType bdt = DType::kF32;
  if (!info[3].IsNull()) {
    b = Bytes(env, info[3], "bias");
    bdt = Dt(env, info[4], "bdtype");
    if (b.size() < static_cast<size_t>(O) * cpu::DTypeBytes(bdt)) Bad(env, "bias is too short");
  }
  std::vector<float> y(static_cast<size_t>(T) * O);
  cpu::MatMul(Pool(), y.data(), x.data(), w.data(), wdt, b.empty() ? nullptr : b.data(), bdt, T, I, O, false);
  return Out(env, y.data(), y.size());
}

// rmsnorm(x: F32 (T,C), w: U8 (C) of wdtype, wdtype, T, C, eps) -> F32 (T,C)
Napi::Value RmsNormOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int T = Int(env, info[3], "T"), C = Int(env, info[4], "C");
  if (T < 1 || C < 1) Bad(env, "Expected T, C >= 1");
  auto x = F32(env, info[0], static_cast<size_t>(T) * C, "x");
  auto w = Bytes(env, info[1], "w");
  const DType wdt = Dt(env, info[2], "wdtype");
  if (cpu::IsQuant(wdt)) Bad(env, "Expected a float dtype for the norm weight");
  if (w.size() < static_cast<size_t>(C) * cpu::DTypeBytes(wdt)) Bad(env, "w is too short");
  std::vector<float> y(x.size());
  cpu::RmsNorm(y.data(), x.data(), w.data(), wdt, T, C, static_cast<float>(info[5].As<Napi::Number>().DoubleValue()));
  return Out(env, y.data(), static_cast<size_t>(T) * C);
}

// ropeInvFreq({headDim, ropeTheta, ropeScaling, ropeFactor, ropeLowFreqFactor, ropeHighFreqFactor,
//              ropeOriginalMaxPositions}) -> F32 (D/2)
Napi::Value RopeInvFreqOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) Bad(env, "Expected an object");
  Napi::Object o = info[0].As<Napi::Object>();
  ModelDesc d;
  d.headDim = Int(env, o.Get("headDim"), "headDim");
  d.ropeTheta = o.Get("ropeTheta").As<Napi::Number>().FloatValue();
  d.ropeScaling = static_cast<RopeScaling>(Int(env, o.Get("ropeScaling"), "ropeScaling"));
  d.ropeFactor = o.Get("ropeFactor").As<Napi::Number>().FloatValue();
  d.ropeLowFreqFactor = o.Get("ropeLowFreqFactor").As<Napi::Number>().FloatValue();
  d.ropeHighFreqFactor = o.Get("ropeHighFreqFactor").As<Napi::Number>().FloatValue();
  d.ropeOriginalMaxPositions = Int(env, o.Get("ropeOriginalMaxPositions"), "ropeOriginalMaxPositions");
  auto inv = cpu::RopeInvFreq(d);
  return Out(env, inv.data(), inv.size());
}

// rope(x: F32 (T, heads*D), pos: Int32Array (T), heads, D, invFreq: F32 (D/2), interleaved) -> F32
Napi::Value RopeOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int heads = Int(env, info[2], "heads"), D = Int(env, info[3], "D");
  if (heads < 1 || D < 2 || D % 2) Bad(env, "Expected heads >= 1 and an even D");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    Bad(env, "Expected an Int32Array for pos");
  auto pa = info[1].As<Napi::Int32Array>();
  const int T = static_cast<int>(pa.ElementLength());
  auto x = F32(env, info[0], static_cast<size_t>(T) * heads * D, "x");
  auto inv = F32(env, info[4], D / 2, "invFreq");
  cpu::Rope(x.data(), pa.Data(), T, heads, D, inv.data(), info[5].ToBoolean().Value());
  return Out(env, x.data(), static_cast<size_t>(T) * heads * D);
}

// attention(q: F32 (T, H*D), k: F32 (pos0+T, KVH*D), v: same, T, pos0, H, KVH, D) -> F32 (T, H*D)
Napi::Value AttentionOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int T = Int(env, info[3], "T"), pos0 = Int(env, info[4], "pos0"), H = Int(env, info[5], "H"),
            KVH = Int(env, info[6], "KVH"), D = Int(env, info[7], "D");
  if (T < 1 || pos0 < 0 || H < 1 || KVH < 1 || H % KVH || D < 1) Bad(env, "bad attention shape");
  auto q = F32(env, info[0], static_cast<size_t>(T) * H * D, "q");
  auto k = F32(env, info[1], static_cast<size_t>(pos0 + T) * KVH * D, "k");
  auto v = F32(env, info[2], static_cast<size_t>(pos0 + T) * KVH * D, "v");
  std::vector<float> out(static_cast<size_t>(T) * H * D);
  std::vector<std::vector<float>> scratch;
  cpu::Attention(Pool(), {cpu::AttnSeq{q.data(), k.data(), v.data(), out.data(), T, pos0}}, H, KVH, D, scratch);
  return Out(env, out.data(), out.size());
}

// swiglu(g: F32 (n), u: F32 (n)) -> F32 (n)
Napi::Value SwiGLUOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = F32(env, info[0], 0, "g");
  auto u = F32(env, info[1], g.size(), "u");
  cpu::SwiGLU(g.data(), u.data(), g.size());
  return Out(env, g.data(), g.size());
}

// toF32(bytes: U8, dtype) -> F32
Napi::Value ToF32Op(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto b = Bytes(env, info[0], "bytes");
  const DType dt = Dt(env, info[1], "dtype");
  if (b.size() % cpu::BlockBytes(dt) != 0) Bad(env, "bytes is not a whole number of elements / blocks");
  const size_t n = b.size() / cpu::BlockBytes(dt) * cpu::BlockElems(dt);
  std::vector<float> out(n);
  cpu::ToF32(b.data(), dt, out.data(), n);
  return Out(env, out.data(), n);
}

// toF32Lanes(bytes: U8 (whole blocks), dtype 3..7) -> F32: dequantized through the GPU kernels' lane split
// (engine/quant_blocks.h), every lane of every block, each value written at the index the lane says.
Napi::Value ToF32LanesOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto b = Bytes(env, info[0], "bytes");
  const int dt = Int(env, info[1], "dtype");
  std::vector<float> out;
  const bool ok = qblocks::Dispatch(dt, [&](auto blk) {
    using B = decltype(blk);
    if (b.size() % B::kBytes != 0) Bad(env, "bytes is not a whole number of blocks");
    const size_t nb = b.size() / B::kBytes;
    out.assign(nb * B::kElems, std::nanf(""));
    for (size_t i = 0; i < nb; ++i) {
      for (int s = 0; s < B::kLanes; ++s) {
        float v[8];
        B::Deq(b.data() + i * B::kBytes, s, v);
        for (int k = 0; k < 8; ++k) out[i * B::kElems + B::Idx(s, k)] = v[k];
      }
    }
  });
  if (!ok) Bad(env, "Expected a quantized dtype code (3..7)");
  return Out(env, out.data(), out.size());
}

// sample(logits: F32 (V), temperature, topP, topK, rng: bigint) -> { token, rng }
Napi::Value SampleOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto logits = F32(env, info[0], 1, "logits");
  if (!info[4].IsBigInt()) Bad(env, "Expected a bigint for rng");
  bool lossless = false;
  Sampling s{static_cast<float>(info[1].As<Napi::Number>().DoubleValue()),
             static_cast<float>(info[2].As<Napi::Number>().DoubleValue()), Int(env, info[3], "topK"),
             info[4].As<Napi::BigInt>().Uint64Value(&lossless)};
  const int32_t tok = SampleLogits(logits.data(), static_cast<int>(logits.size()), s);
  Napi::Object r = Napi::Object::New(env);
  r.Set("token", Napi::Number::New(env, tok));
  r.Set("rng", Napi::BigInt::New(env, s.rngState));
  return r;
}

// readBandwidth(bytes: Uint8Array (a multiple of 32 bytes), reps) -> best bytes/ms of reading it once with the
// ops pool (as many threads as the CPU backend's default). The decode floor: a step reads every weight once.
Napi::Value ReadBandwidthOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    Bad(env, "Expected a Uint8Array");
  auto a = info[0].As<Napi::Uint8Array>();
  const int reps = Int(env, info[1], "reps");
  const float* p = reinterpret_cast<const float*>(a.Data());
  const int64_t blocks = static_cast<int64_t>(a.ByteLength() / 256);  // 64 floats each
  if (blocks < 1 || reps < 1) Bad(env, "Expected at least 256 bytes and reps >= 1");
  ThreadPool& pool = Pool();
  std::vector<float> sums(pool.size() * 16, 0.f);
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(blocks, 4096, [&](int64_t b, int64_t e, int tid) {
      v8sfOps acc = {};
      for (int64_t i = b * 64; i < e * 64; i += 8) {
        v8sfOps v;
        std::memcpy(&v, p + i, 32);
        acc += v;
      }
      for (int j = 0; j < 8; ++j) sums[tid * 16] += acc[j];
    });
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  float keep = 0.f;  // use the sums so the reads are not optimised away
  for (float s : sums) keep += s;
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesPerMs", Napi::Number::New(env, static_cast<double>(blocks) * 256 / best));
  o.Set("checksum", Napi::Number::New(env, keep));
  o.Set("threads", Napi::Number::New(env, pool.size()));
  return o;
}

}  // namespace

void RegisterEngineOps(Napi::Env env, Napi::Object testing) {
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("matmul", Napi::Function::New(env, MatMulOp));
  ops.Set("rmsnorm", Napi::Function::New(env, RmsNormOp));
  ops.Set("ropeInvFreq", Napi::Function::New(env, RopeInvFreqOp));
  ops.Set("rope", Napi::Function::New(env, RopeOp));
  ops.Set("attention", Napi::Function::New(env, AttentionOp));
  ops.Set("swiglu", Napi::Function::New(env, SwiGLUOp));
  ops.Set("toF32", Napi::Function::New(env, ToF32Op));
  ops.Set("toF32Lanes", Napi::Function::New(env, ToF32LanesOp));
  ops.Set("sample", Napi::Function::New(env, SampleOp));
  ops.Set("readBandwidth", Napi::Function::New(env, ReadBandwidthOp));
  testing.Set("engineOps", ops);
}

}  // namespace swapserve::engine
