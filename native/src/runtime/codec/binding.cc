// The codec's test hooks, on the addon's `testing.codec` object (reached only through native/ts/testing.ts):
// encode / decode / inspect a container synchronously on the JS thread, and the length-limited code builder.
// Tests and the CPU bench only (the host tier will encode on a background thread, issue 15 part 2).
#include <napi.h>

#include <chrono>
#include <cstring>
#include <string>

#include "common/napi_error.h"
#include "engine/cpu/thread_pool.h"
#include "runtime/codec/codec.h"
#include "runtime/codec/host_image.h"

namespace swapserve::runtime::codec {
namespace {

[[noreturn]] void Bad(const std::string& msg) { throw NativeError(ErrorCode::kInvalidArgument, msg); }

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    Bad(std::string("codec: expected a Uint8Array for ") + name);
  return v.As<Napi::Uint8Array>();
}

DType DTypeArg(Napi::Value v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "bf16") return DType::kBf16;
  if (s == "fp16") return DType::kFp16;
  if (s == "fp32") return DType::kFp32;
  Bad("codec: expected dtype bf16, fp16 or fp32");
}

double Seconds(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

// encode(bytes, dtype, {forceRaw?, rawThreshold?}) -> {data, mode, entropyBits, huffmanBits, maxLen, distinct,
// codedBytes, seconds}
Napi::Value EncodeJs(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Uint8Array in = BytesArg(info, 0, "data");
    DType dt = DTypeArg(info[1]);
    EncodeOptions opt;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      if (o.Has("forceRaw")) opt.forceRaw = o.Get("forceRaw").ToBoolean();
      if (o.Has("rawThreshold")) opt.rawThreshold = o.Get("rawThreshold").ToNumber().DoubleValue();
    }
    EncodeStats st;
    auto t0 = std::chrono::steady_clock::now();
    std::vector<uint8_t> c = Encode(in.Data(), in.ByteLength(), dt, opt, &st);
    double secs = Seconds(t0);
    Napi::Object r = Napi::Object::New(env);
    r.Set("data", Napi::Buffer<uint8_t>::Copy(env, c.data(), c.size()));
    Header h;
    std::memcpy(&h, c.data(), sizeof h);
    r.Set("mode", h.mode == static_cast<uint8_t>(Mode::kRaw) ? "raw" : "huffman");
    r.Set("entropyBits", st.entropyBits);
    r.Set("huffmanBits", st.huffmanBits);
    r.Set("maxLen", st.maxLen);
    r.Set("distinct", st.distinct);
    r.Set("codedBytes", static_cast<double>(st.codedBytes));
    r.Set("seconds", secs);
    return r;
  });
}

// decode(container) -> {data, seconds}
Napi::Value DecodeJs(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Uint8Array in = BytesArg(info, 0, "container");
    Info ci = Inspect(in.Data(), in.ByteLength());
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, ci.rawBytes);
    auto t0 = std::chrono::steady_clock::now();
    Decode(in.Data(), in.ByteLength(), out.Data(), ci.rawBytes);
    double secs = Seconds(t0);
    Napi::Object r = Napi::Object::New(env);
    r.Set("data", out);
    r.Set("seconds", secs);
    return r;
  });
}

// decodeEntries(containers: Uint8Array[], rawBytes: number[], threads) -> {data, seconds}: the containers as the
// entries of one host image (back to back, 16-aligned), decoded by DecodeEntries (the runtime's CPU swap-in) on a
// pool of `threads` into one output, entry after entry. Errors as the runtime's swap-in reports them.
Napi::Value DecodeEntriesJs(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsArray() || !info[1].IsArray() || !info[2].IsNumber()) Bad("codec: decodeEntries(containers: Uint8Array[], rawBytes: number[], threads: number)");
    Napi::Array cs = info[0].As<Napi::Array>(), raws = info[1].As<Napi::Array>();
    const int threads = info[2].As<Napi::Number>().Int32Value();
    if (cs.Length() != raws.Length() || threads < 1 || threads > 64) Bad("codec: one rawBytes per container, threads in 1..64");
    HostImage img;
    std::vector<Napi::Uint8Array> in;
    uint64_t at = 0, out = 0;
    for (uint32_t i = 0; i < cs.Length(); ++i) {
      Napi::Value v = cs.Get(i);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) Bad("codec: expected Uint8Array containers");
      in.push_back(v.As<Napi::Uint8Array>());
      Entry e;
      e.containerOff = at;
      e.containerBytes = in.back().ByteLength();
      e.arenaOffset = out;
      e.rawBytes = static_cast<uint64_t>(raws.Get(i).ToNumber().DoubleValue());
      at = (at + e.containerBytes + 15) / 16 * 16;
      out += e.rawBytes;
      img.entries.push_back(std::move(e));
    }
    std::vector<uint8_t> image(at);
    for (size_t i = 0; i < in.size(); ++i) std::memcpy(image.data() + img.entries[i].containerOff, in[i].Data(), in[i].ByteLength());
    Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::New(env, out);
    engine::ThreadPool pool(threads);
    auto t0 = std::chrono::steady_clock::now();
    DecodeEntries(img, image.data(), 0, img.entries.size(), data.Data(), pool, nullptr);
    double secs = Seconds(t0);
    Napi::Object r = Napi::Object::New(env);
    r.Set("data", data);
    r.Set("seconds", secs);
    return r;
  });
}

// planWork(tablesBytes, totalChunks, workBytes) -> {tablesAt, sumsAt, errAt, slotsAt, slotBytes, usedBytes}: where a
// compressed GPU swap-in of an image with these tables puts its work in a codec work buffer of workBytes.
Napi::Value PlanWorkJs(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) Bad("codec: planWork(tablesBytes, totalChunks, workBytes)");
    HostImage img;
    img.tablesBytes = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    img.totalChunks = info[1].As<Napi::Number>().Uint32Value();
    WorkPlan w = PlanWork(img, static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue()));
    Napi::Object r = Napi::Object::New(env);
    r.Set("tablesAt", static_cast<double>(w.tablesAt));
    r.Set("sumsAt", static_cast<double>(w.sumsAt));
    r.Set("errAt", static_cast<double>(w.errAt));
    r.Set("slotsAt", static_cast<double>(w.slotsAt));
    r.Set("slotBytes", static_cast<double>(w.slotBytes));
    r.Set("usedBytes", static_cast<double>(w.usedBytes));
    return r;
  });
}

// inspect(container) -> {dtype, mode, elements, chunks, rawBytes, bytes, payloadBytes}
Napi::Value InspectJs(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Uint8Array in = BytesArg(info, 0, "container");
    Info ci = Inspect(in.Data(), in.ByteLength());
    Napi::Object r = Napi::Object::New(env);
    r.Set("dtype", DTypeName(ci.dtype));
    r.Set("mode", ci.mode == Mode::kRaw ? "raw" : "huffman");
    r.Set("elements", static_cast<double>(ci.header.elements));
    r.Set("chunks", ci.header.numChunks);
    r.Set("rawBytes", static_cast<double>(ci.rawBytes));
    r.Set("bytes", static_cast<double>(in.ByteLength()));
    r.Set("payloadOffset", static_cast<double>(ci.layout.payload));
    return r;
  });
}

// codeLengths(freqs: number[], maxLen) -> number[]
Napi::Value CodeLengthsJs(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsArray() || !info[1].IsNumber()) Bad("codec: codeLengths(freqs: number[], maxLen: number)");
    Napi::Array a = info[0].As<Napi::Array>();
    uint32_t maxLen = info[1].As<Napi::Number>().Uint32Value();
    if (a.Length() > kSymbols || maxLen < 8 || maxLen > 24) Bad("codec: at most 256 symbols, maxLen in 8..24");
    std::vector<uint64_t> f(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) f[i] = static_cast<uint64_t>(a.Get(i).ToNumber().DoubleValue());
    std::vector<uint8_t> lens = CodeLengths(f.data(), static_cast<uint32_t>(f.size()), maxLen);
    Napi::Array r = Napi::Array::New(env, lens.size());
    for (uint32_t i = 0; i < lens.size(); ++i) r.Set(i, lens[i]);
    return r;
  });
}

}  // namespace
}  // namespace swapserve::runtime::codec

namespace swapserve {
void RegisterCodecTesting(Napi::Env env, Napi::Object testing) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("encode", Napi::Function::New(env, runtime::codec::EncodeJs));
  c.Set("decode", Napi::Function::New(env, runtime::codec::DecodeJs));
  c.Set("inspect", Napi::Function::New(env, runtime::codec::InspectJs));
  c.Set("codeLengths", Napi::Function::New(env, runtime::codec::CodeLengthsJs));
  c.Set("decodeEntries", Napi::Function::New(env, runtime::codec::DecodeEntriesJs));
  c.Set("planWork", Napi::Function::New(env, runtime::codec::PlanWorkJs));
  testing.Set("codec", c);
}
}  // namespace swapserve
