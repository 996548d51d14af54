// The weight codec's CPU side: histogram, length-limited canonical Huffman, the container writer and a
// bounds-checked, bit-exact decoder (format: codec.h, design.md).
#include "runtime/codec/codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <queue>

#include "common/errors.h"
#include "runtime/hash.h"

namespace swapserve::runtime::codec {

namespace {

[[noreturn]] void Corrupt(const std::string& what) {
  throw NativeError(ErrorCode::kInvalidArgument, "codec: corrupt container: " + what);
}

uint64_t Align16(uint64_t x) { return (x + 15) & ~uint64_t{15}; }

uint32_t ReadElem(const uint8_t* p, uint32_t elemBytes) {
  if (elemBytes == 2) return uint32_t{p[0]} | uint32_t{p[1]} << 8;
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

void WriteElem(uint8_t* p, uint32_t elemBytes, uint32_t w) {
  if (elemBytes == 2) {
    p[0] = static_cast<uint8_t>(w);
    p[1] = static_cast<uint8_t>(w >> 8);
  } else {
    std::memcpy(p, &w, 4);
  }
}

uint32_t MetaHash(const uint8_t* c, const Layout& L) {
  Header h;
  std::memcpy(&h, c, sizeof h);
  h.metaHash = 0;
  Hasher hs;
  hs.update(reinterpret_cast<const uint8_t*>(&h), sizeof h);
  hs.update(c + sizeof h, L.payload - sizeof h);
  return static_cast<uint32_t>(hs.digest());
}

struct ChunkShape {
  uint64_t first, n;  // first element, element count
  uint32_t lanes;
};
ChunkShape ShapeOf(uint64_t elements, uint32_t k) {
  uint64_t first = uint64_t{k} * kChunkElems;
  uint64_t n = std::min<uint64_t>(kChunkElems, elements - first);
  return {first, n, static_cast<uint32_t>((n + kLaneElems - 1) / kLaneElems)};
}

}  // namespace

const char* DTypeName(DType d) { return d == DType::kBf16 ? "bf16" : d == DType::kFp16 ? "fp16" : "fp32"; }

Layout LayoutOf(const Header& h) {
  Layout L;
  L.codeLen = sizeof(Header);
  L.chunkOffset = L.codeLen + (h.mode == static_cast<uint8_t>(Mode::kHuffman) ? kSymbols : 0);
  L.chunkSum = L.chunkOffset + (uint64_t{h.numChunks} + 1) * 8;
  L.payload = Align16(L.chunkSum + uint64_t{h.numChunks} * 4);
  L.total = L.payload + h.payloadBytes;
  return L;
}

uint32_t ChunkSum(const uint8_t* p, size_t bytes) {
  uint32_t s = 0;
  size_t words = bytes / 4;
  for (size_t i = 0; i < words; ++i) {
    uint32_t w;
    std::memcpy(&w, p + 4 * i, 4);
    s += Mix32(w + static_cast<uint32_t>(i) * 0x9E3779B9u);
  }
  if (bytes % 4) {
    uint32_t w = 0;
    std::memcpy(&w, p + 4 * words, bytes % 4);
    s += Mix32(w + static_cast<uint32_t>(words) * 0x9E3779B9u);
  }
  return s;
}

// ------------------------------------------------------------------------------------------------ Huffman

std::vector<uint8_t> CodeLengths(const uint64_t* freq, uint32_t n, uint32_t maxLen) {
  std::vector<uint8_t> len(n, 0);
  std::vector<uint32_t> used;
  for (uint32_t s = 0; s < n; ++s)
    if (freq[s]) used.push_back(s);
  if (used.empty()) return len;
  if (used.size() == 1) {
    len[used[0]] = 1;
    return len;
  }
  // Plain Huffman over the used symbols (node weights in a min-heap; parents recorded to read depths).
  struct Node {
    uint64_t w;
    int id;
    bool operator>(const Node& o) const { return w != o.w ? w > o.w : id > o.id; }
  };
  std::priority_queue<Node, std::vector<Node>, std::greater<Node>> heap;
  std::vector<int> parent(2 * used.size(), -1);
  for (size_t i = 0; i < used.size(); ++i) heap.push({freq[used[i]], static_cast<int>(i)});
  int next = static_cast<int>(used.size());
  while (heap.size() > 1) {
    Node a = heap.top();
    heap.pop();
    Node b = heap.top();
    heap.pop();
    parent[a.id] = parent[b.id] = next;
    heap.push({a.w + b.w, next++});
  }
  std::vector<uint32_t> depth(next, 0);
  for (int i = next - 2; i >= 0; --i) depth[i] = depth[parent[i]] + 1;  // parents have larger ids
  for (size_t i = 0; i < used.size(); ++i) len[used[i]] = static_cast<uint8_t>(std::min<uint32_t>(depth[i], 255));
  // Limit: clamp, then lengthen the least probable codes below the limit until the Kraft sum fits, then spend
  // the slack on shortening the most probable codes that fit.
  const uint64_t target = uint64_t{1} << maxLen;
  uint64_t kraft = 0;
  for (uint32_t s : used) {
    if (len[s] > maxLen) len[s] = static_cast<uint8_t>(maxLen);
    kraft += uint64_t{1} << (maxLen - len[s]);
  }
  while (kraft > target) {
    int best = -1;
    for (uint32_t s : used) {
      if (len[s] >= maxLen) continue;
      if (best < 0 || len[s] > len[best] || (len[s] == len[best] && freq[s] < freq[best])) best = static_cast<int>(s);
    }
    kraft -= uint64_t{1} << (maxLen - len[best] - 1);
    ++len[best];
  }
  for (bool changed = true; changed;) {
    changed = false;
    int best = -1;
    for (uint32_t s : used) {
      if (len[s] <= 1 || kraft + (uint64_t{1} << (maxLen - len[s])) > target) continue;
      if (best < 0 || freq[s] > freq[best]) best = static_cast<int>(s);
    }
    if (best >= 0) {
      kraft += uint64_t{1} << (maxLen - len[best]);
      --len[best];
      changed = true;
    }
  }
  return len;
}

namespace {
// Canonical codes: by (length, symbol), consecutive values, each length step shifts left.
std::vector<uint32_t> CanonicalCodes(const uint8_t* lens, uint32_t n) {
  std::vector<uint32_t> order;
  for (uint32_t s = 0; s < n; ++s)
    if (lens[s]) order.push_back(s);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return lens[a] != lens[b] ? lens[a] < lens[b] : a < b; });
  std::vector<uint32_t> code(n, 0);
  uint32_t c = 0, prev = 0;
  for (uint32_t s : order) {
    c <<= (lens[s] - prev);
    prev = lens[s];
    code[s] = c++;
  }
  return code;
}
}  // namespace

std::vector<uint16_t> DecodeTable(const uint8_t* lens, uint32_t maxLen) {
  uint64_t kraft = 0;
  for (uint32_t s = 0; s < kSymbols; ++s) {
    if (lens[s] > maxLen) Corrupt("code length " + std::to_string(lens[s]) + " over " + std::to_string(maxLen));
    if (lens[s]) kraft += uint64_t{1} << (maxLen - lens[s]);
  }
  if (kraft > (uint64_t{1} << maxLen)) Corrupt("code lengths over-subscribe the code space");
  std::vector<uint32_t> code = CanonicalCodes(lens, kSymbols);
  std::vector<uint16_t> table(size_t{1} << maxLen, 0);
  for (uint32_t s = 0; s < kSymbols; ++s) {
    if (!lens[s]) continue;
    uint32_t shift = maxLen - lens[s];
    uint32_t lo = code[s] << shift, hi = (code[s] + 1) << shift;
    for (uint32_t i = lo; i < hi; ++i) table[i] = static_cast<uint16_t>(uint32_t{lens[s]} << 8 | s);
  }
  return table;
}

// ------------------------------------------------------------------------------------------------ encoder

std::vector<uint8_t> Encode(const uint8_t* data, size_t bytes, DType dtype, const EncodeOptions& opt, EncodeStats* stats) {
  if (static_cast<uint8_t>(dtype) > 2) throw NativeError(ErrorCode::kInvalidArgument, "codec: unknown dtype");
  const Format F = FormatOf(dtype);
  if (bytes % F.elemBytes)
    throw NativeError(ErrorCode::kInvalidArgument, "codec: " + std::to_string(bytes) + " bytes is not a whole number of " +
                                                       DTypeName(dtype) + " elements");
  const uint64_t n = bytes / F.elemBytes;
  const uint32_t expMask = (1u << F.expBits) - 1, lowMask = (1u << F.expShift) - 1;
  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.dtype = static_cast<uint8_t>(dtype);
  h.elements = n;
  h.chunkElems = kChunkElems;
  h.laneElems = kLaneElems;
  h.numChunks = static_cast<uint32_t>((n + kChunkElems - 1) / kChunkElems);
  h.maxCodeLen = kMaxCodeLen;
  Hasher hs;
  hs.update(data, bytes);
  h.dataHash = hs.digest();

  std::vector<uint64_t> freq(kSymbols, 0);
  for (uint64_t i = 0; i < n; ++i) ++freq[(ReadElem(data + i * F.elemBytes, F.elemBytes) >> F.expShift) & expMask];
  std::vector<uint8_t> lens = CodeLengths(freq.data(), kSymbols, kMaxCodeLen);

  // Size of the coded form, from the histogram (lane padding counted per lane exactly below; estimate here).
  uint64_t codedBits = 0;
  EncodeStats st;
  for (uint32_t s = 0; s < kSymbols; ++s) {
    if (!freq[s]) continue;
    codedBits += freq[s] * lens[s];
    double p = static_cast<double>(freq[s]) / n;
    st.entropyBits -= p * std::log2(p);
    st.maxLen = std::max<uint32_t>(st.maxLen, lens[s]);
    ++st.distinct;
  }
  st.huffmanBits = n ? static_cast<double>(codedBits) / n : 0;
  uint64_t lanesTotal = (n + kLaneElems - 1) / kLaneElems;
  Header hh = h;
  hh.mode = static_cast<uint8_t>(Mode::kHuffman);
  uint64_t estimate = LayoutOf(hh).payload + lanesTotal * 3 + codedBits / 8 + (n * F.restBits + 7) / 8 +
                      uint64_t{h.numChunks} * 32;
  st.codedBytes = estimate;
  bool raw = opt.forceRaw || n == 0 || static_cast<double>(estimate) >= opt.rawThreshold * static_cast<double>(bytes);

  std::vector<uint8_t> out;
  if (raw) {
    h.mode = static_cast<uint8_t>(Mode::kRaw);
    h.payloadBytes = bytes;
    Layout L = LayoutOf(h);
    out.assign(L.total, 0);
    const uint64_t chunkBytes = uint64_t{kChunkElems} * F.elemBytes;
    for (uint32_t k = 0; k <= h.numChunks; ++k) {
      uint64_t off = std::min<uint64_t>(uint64_t{k} * chunkBytes, bytes);
      std::memcpy(out.data() + L.chunkOffset + 8 * k, &off, 8);
    }
    for (uint32_t k = 0; k < h.numChunks; ++k) {
      uint64_t off = uint64_t{k} * chunkBytes, len = std::min<uint64_t>(chunkBytes, bytes - off);
      uint32_t sum = ChunkSum(data + off, len);
      std::memcpy(out.data() + L.chunkSum + 4 * k, &sum, 4);
    }
    if (bytes) std::memcpy(out.data() + L.payload, data, bytes);
  } else {
    h.mode = static_cast<uint8_t>(Mode::kHuffman);
    std::vector<uint32_t> code = CanonicalCodes(lens.data(), kSymbols);
    std::vector<uint8_t> payload;
    payload.reserve(estimate);
    std::vector<uint64_t> offsets(h.numChunks + 1, 0);
    std::vector<uint32_t> sums(h.numChunks, 0);
    for (uint32_t k = 0; k < h.numChunks; ++k) {
      ChunkShape cs = ShapeOf(n, k);
      const uint8_t* src = data + cs.first * F.elemBytes;
      sums[k] = ChunkSum(src, cs.n * F.elemBytes);
      size_t base = payload.size();
      offsets[k] = base;
      payload.resize(base + cs.lanes * 2, 0);  // laneBytes, filled below
      for (uint32_t l = 0; l < cs.lanes; ++l) {
        size_t start = payload.size();
        uint64_t acc = 0;
        int nbits = 0;
        uint64_t e0 = uint64_t{l} * kLaneElems, e1 = std::min<uint64_t>(e0 + kLaneElems, cs.n);
        for (uint64_t i = e0; i < e1; ++i) {
          uint32_t e = (ReadElem(src + i * F.elemBytes, F.elemBytes) >> F.expShift) & expMask;
          acc = (acc << lens[e]) | code[e];
          nbits += lens[e];
          while (nbits >= 8) {
            payload.push_back(static_cast<uint8_t>(acc >> (nbits - 8)));
            nbits -= 8;
          }
          acc &= (uint64_t{1} << nbits) - 1;
        }
        if (nbits) payload.push_back(static_cast<uint8_t>(acc << (8 - nbits)));
        uint16_t lb = static_cast<uint16_t>(payload.size() - start);
        std::memcpy(payload.data() + base + 2 * l, &lb, 2);
      }
      payload.resize(base + Align16(payload.size() - base), 0);
      // Rest stream: sign above the mantissa, restBits per element, LSB-first.
      uint64_t acc = 0;
      int nbits = 0;
      for (uint64_t i = 0; i < cs.n; ++i) {
        uint32_t w = ReadElem(src + i * F.elemBytes, F.elemBytes);
        uint32_t rest = (w & lowMask) | ((w >> (F.expShift + F.expBits)) << F.expShift);
        acc |= uint64_t{rest} << nbits;
        nbits += F.restBits;
        while (nbits >= 8) {
          payload.push_back(static_cast<uint8_t>(acc));
          acc >>= 8;
          nbits -= 8;
        }
      }
      if (nbits) payload.push_back(static_cast<uint8_t>(acc));
      payload.resize(base + Align16(payload.size() - base), 0);
    }
    offsets[h.numChunks] = payload.size();
    h.payloadBytes = payload.size();
    Layout L = LayoutOf(h);
    out.assign(L.total, 0);
    std::memcpy(out.data() + L.codeLen, lens.data(), kSymbols);
    std::memcpy(out.data() + L.chunkOffset, offsets.data(), offsets.size() * 8);
    if (!sums.empty()) std::memcpy(out.data() + L.chunkSum, sums.data(), sums.size() * 4);
    std::memcpy(out.data() + L.payload, payload.data(), payload.size());
    st.codedBytes = out.size();
    if (static_cast<double>(out.size()) >= opt.rawThreshold * static_cast<double>(bytes)) {
      if (stats) *stats = st;
      EncodeOptions o = opt;
      o.forceRaw = true;
      std::vector<uint8_t> r = Encode(data, bytes, dtype, o, nullptr);
      return r;
    }
  }
  std::memcpy(out.data(), &h, sizeof h);
  uint32_t mh = MetaHash(out.data(), LayoutOf(h));
  std::memcpy(out.data() + offsetof(Header, metaHash), &mh, 4);
  if (stats) *stats = st;
  return out;
}

// ------------------------------------------------------------------------------------------------ decoder

Info Inspect(const uint8_t* c, size_t bytes) {
  if (bytes < sizeof(Header)) Corrupt(std::to_string(bytes) + " bytes is shorter than the 64-byte header");
  Info info;
  std::memcpy(&info.header, c, sizeof(Header));
  const Header& h = info.header;
  if (h.magic != kMagic) Corrupt("bad magic (not a swapserve codec container)");
  if (h.version != kVersion) Corrupt("unsupported version " + std::to_string(h.version));
  if (h.dtype > 2) Corrupt("unknown dtype " + std::to_string(h.dtype));
  if (h.mode > 1) Corrupt("unknown mode " + std::to_string(h.mode));
  if (h.chunkElems != kChunkElems || h.laneElems != kLaneElems || h.maxCodeLen != kMaxCodeLen)
    Corrupt("chunk/lane/code-length parameters differ from this decoder's");
  if (h.elements > (uint64_t{1} << 48)) Corrupt("element count " + std::to_string(h.elements) + " is implausible");
  if (h.numChunks != (h.elements + kChunkElems - 1) / kChunkElems) Corrupt("chunk count does not match the element count");
  if (h.payloadBytes > bytes) Corrupt("payload larger than the container");
  info.dtype = static_cast<DType>(h.dtype);
  info.mode = static_cast<Mode>(h.mode);
  info.rawBytes = h.elements * FormatOf(info.dtype).elemBytes;
  info.layout = LayoutOf(h);
  if (info.layout.total != bytes)
    Corrupt("size " + std::to_string(bytes) + " differs from the " + std::to_string(info.layout.total) + " its header declares");
  if (MetaHash(c, info.layout) != h.metaHash) Corrupt("header/table checksum mismatch");
  const uint8_t* offs = c + info.layout.chunkOffset;
  uint64_t prev = 0;
  for (uint32_t k = 0; k <= h.numChunks; ++k) {
    uint64_t o;
    std::memcpy(&o, offs + 8 * k, 8);
    if ((k == 0 && o != 0) || o < prev || o > h.payloadBytes) Corrupt("chunk offset table out of order or bounds");
    prev = o;
  }
  if (prev != h.payloadBytes) Corrupt("chunk offsets do not end at the payload's end");
  if (info.mode == Mode::kRaw && h.payloadBytes != info.rawBytes) Corrupt("raw payload size differs from the element count");
  if (info.mode == Mode::kHuffman) DecodeTable(c + info.layout.codeLen, kMaxCodeLen);  // validates lengths
  return info;
}

ChunkDecoder::ChunkDecoder(const uint8_t* c, size_t bytes, size_t outBytes) : c_(c), info_(Inspect(c, bytes)) {
  if (outBytes != info_.rawBytes)
    throw NativeError(ErrorCode::kInvalidArgument, "codec: output buffer of " + std::to_string(outBytes) +
                                                       " bytes for " + std::to_string(info_.rawBytes) + " decoded bytes");
  if (info_.mode == Mode::kHuffman) table_ = DecodeTable(c + info_.layout.codeLen, kMaxCodeLen);
}

void ChunkDecoder::decodeChunk(uint32_t k, uint8_t* out, uint8_t* exps) const {
  const uint8_t* c = c_;
  const Info& info = info_;
  const Header& h = info.header;
  const std::vector<uint16_t>& table = table_;
  const Format F = FormatOf(info.dtype);
  const uint8_t* payload = c + info.layout.payload;
  if (k >= h.numChunks) throw NativeError(ErrorCode::kInvalidArgument, "codec: chunk " + std::to_string(k) + " of " + std::to_string(h.numChunks));
  auto offsetOf = [&](uint32_t j) {
    uint64_t o;
    std::memcpy(&o, c + info.layout.chunkOffset + 8 * uint64_t{j}, 8);
    return o;
  };
  uint32_t want;
  std::memcpy(&want, c + info.layout.chunkSum + 4 * uint64_t{k}, 4);
  ChunkShape cs = ShapeOf(h.elements, k);
  uint8_t* dst = out + cs.first * F.elemBytes;
  const uint8_t* src = payload + offsetOf(k);
  const uint64_t avail = offsetOf(k + 1) - offsetOf(k);
  const std::string where = "chunk " + std::to_string(k);
  if (info.mode == Mode::kRaw) {
    if (avail != cs.n * F.elemBytes) Corrupt(where + ": raw chunk size differs from its element count");
    std::memcpy(dst, src, cs.n * F.elemBytes);
  } else {
    if (avail < cs.lanes * 2) Corrupt(where + ": shorter than its lane table");
    uint64_t pos = cs.lanes * 2;
    for (uint32_t l = 0; l < cs.lanes; ++l) {
      uint16_t lb;
      std::memcpy(&lb, src + 2 * l, 2);
      if (pos + lb > avail) Corrupt(where + ": lane " + std::to_string(l) + " runs past the chunk");
      const uint8_t* p = src + pos;
      uint64_t e0 = uint64_t{l} * kLaneElems, e1 = std::min<uint64_t>(e0 + kLaneElems, cs.n);
      uint64_t buf = 0, consumed = 0;
      int have = 0;
      uint32_t next = 0;
      for (uint64_t i = e0; i < e1; ++i) {
        while (have <= 56) {
          buf |= uint64_t{next < lb ? p[next] : uint8_t{0}} << (56 - have);
          ++next;
          have += 8;
        }
        uint16_t e = table[buf >> (64 - kMaxCodeLen)];
        if (!e) Corrupt(where + ": lane " + std::to_string(l) + " holds a prefix that is no code");
        uint32_t len = e >> 8;
        exps[i] = static_cast<uint8_t>(e);
        buf <<= len;
        have -= len;
        consumed += len;
      }
      if ((consumed + 7) / 8 != lb) Corrupt(where + ": lane " + std::to_string(l) + " length does not match its codes");
      pos += lb;
    }
    uint64_t restAt = Align16(pos), restBytes = (cs.n * F.restBits + 7) / 8;
    if (Align16(restAt + restBytes) != avail) Corrupt(where + ": size does not match its lanes and rest stream");
    const uint8_t* r = src + restAt;
    uint64_t acc = 0;
    int have = 0;
    uint64_t rp = 0;
    const uint32_t restMask = (1u << F.restBits) - 1, lowMask = (1u << F.expShift) - 1;
    for (uint64_t i = 0; i < cs.n; ++i) {
      while (have < static_cast<int>(F.restBits)) {
        acc |= uint64_t{r[rp++]} << have;
        have += 8;
      }
      uint32_t rest = static_cast<uint32_t>(acc) & restMask;
      acc >>= F.restBits;
      have -= F.restBits;
      uint32_t w = (rest & lowMask) | (uint32_t{exps[i]} << F.expShift) | ((rest >> F.expShift) << (F.expShift + F.expBits));
      WriteElem(dst + i * F.elemBytes, F.elemBytes, w);
    }
  }
  if (ChunkSum(dst, cs.n * F.elemBytes) != want) Corrupt(where + ": decoded bytes fail the chunk checksum");
}

void ChunkDecoder::checkHash(const uint8_t* out) const {
  Hasher hs;
  hs.update(out, info_.rawBytes);
  if (hs.digest() != info_.header.dataHash) Corrupt("decoded tensor fails the data hash");
}

void Decode(const uint8_t* c, size_t bytes, uint8_t* out, size_t outBytes) {
  ChunkDecoder d(c, bytes, outBytes);
  std::vector<uint8_t> exps(kChunkElems);
  for (uint32_t k = 0; k < d.chunks(); ++k) d.decodeChunk(k, out, exps.data());
  d.checkHash(out);
}

}  // namespace swapserve::runtime::codec
