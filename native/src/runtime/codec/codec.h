// Lossless weight codec (design: runtime/codec/design.md): each float's exponent field is Huffman-coded
// (canonical, code length <= 12), sign + mantissa are kept raw and bit-packed, in independently decodable chunks
// of 65536 elements cut into lanes of 256. A tensor whose coded form does not pay is stored raw. No N-API and no
// CUDA here: the GPU decoder (cuda/decode.cu) and the GPU bench include this header too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace swapserve::runtime::codec {

enum class DType : uint8_t { kBf16 = 0, kFp16 = 1, kFp32 = 2 };
enum class Mode : uint8_t { kRaw = 0, kHuffman = 1 };

constexpr uint32_t kMagic = 0x315A5753u;  // "SWZ1" little-endian
constexpr uint16_t kVersion = 1;
constexpr uint32_t kChunkElems = 65536;
constexpr uint32_t kLaneElems = 256;
constexpr uint32_t kLanesPerChunk = kChunkElems / kLaneElems;  // 256: one GPU thread each
constexpr uint32_t kMaxCodeLen = 12;                           // decode table: 4096 entries
constexpr uint32_t kSymbols = 256;

struct Format {
  uint32_t elemBytes, expBits, expShift, restBits;
};
constexpr Format FormatOf(DType d) {
  return d == DType::kBf16 ? Format{2, 8, 7, 8} : d == DType::kFp16 ? Format{2, 5, 10, 11} : Format{4, 8, 23, 24};
}

#pragma pack(push, 1)
struct Header {
  uint32_t magic;
  uint16_t version;
  uint8_t dtype;
  uint8_t mode;
  uint64_t elements;
  uint32_t chunkElems, laneElems, numChunks, maxCodeLen;
  uint64_t payloadBytes;
  uint64_t dataHash;   // runtime/hash.h Hasher digest of the original bytes
  uint32_t metaHash;   // MetaHash over the header (this field 0) and all tables
  uint32_t reserved[3];
};
#pragma pack(pop)
static_assert(sizeof(Header) == 64, "header is 64 bytes");

// Byte offsets of the tables inside a container (all derived from the header).
struct Layout {
  uint64_t codeLen, chunkOffset, chunkSum, payload, total;
};
Layout LayoutOf(const Header& h);

// What a container holds, after its header and tables were verified.
struct Info {
  Header header;
  Layout layout;
  DType dtype;
  Mode mode;
  uint64_t rawBytes;  // decoded size
};

struct EncodeOptions {
  // Stored raw when coded bytes >= rawThreshold * raw bytes.
  double rawThreshold = 0.97;
  bool forceRaw = false;
};

struct EncodeStats {
  double entropyBits = 0;   // Shannon entropy of the exponent field, bits per element (rANS's bound)
  double huffmanBits = 0;   // average Huffman code length with the length-limited code, bits per element
  uint32_t maxLen = 0;      // longest code used
  uint32_t distinct = 0;    // distinct exponent values
  uint64_t codedBytes = 0;  // size the coded container would have (whether or not it was chosen)
};

// Encodes `bytes` of `dtype` elements (bytes % elemBytes == 0, else invalid_argument).
std::vector<uint8_t> Encode(const uint8_t* data, size_t bytes, DType dtype, const EncodeOptions& opt = {},
                            EncodeStats* stats = nullptr);

// Verifies the header and tables (metaHash, bounds); throws invalid_argument "codec: corrupt ..." otherwise.
Info Inspect(const uint8_t* c, size_t bytes);

// Decodes into out (outBytes must equal Info::rawBytes). Verifies every lane's length, every chunk's checksum
// and the whole tensor's hash; corrupt input throws invalid_argument, never reads or writes out of bounds.
// Equivalent to ChunkDecoder d(c, bytes, outBytes); d.decodeChunk(k, ...) for k = 0..chunks()-1; d.checkHash(out).
void Decode(const uint8_t* c, size_t bytes, uint8_t* out, size_t outBytes);

// Decode in pieces (the runtime's parallel CPU swap-in, host_image.h DecodeEntries): the constructor inspects the
// container (the errors Inspect and Decode throw for its header, tables and output size); decodeChunk may then run
// for the chunks in any order on any threads (chunks write disjoint output ranges; `exps` is kChunkElems bytes of
// scratch owned by the calling thread); checkHash once every chunk is decoded. Each throws the error Decode would.
class ChunkDecoder {
 public:
  ChunkDecoder(const uint8_t* c, size_t bytes, size_t outBytes);
  uint32_t chunks() const { return info_.header.numChunks; }
  void decodeChunk(uint32_t k, uint8_t* out, uint8_t* exps) const;
  void checkHash(const uint8_t* out) const;

 private:
  const uint8_t* c_;
  Info info_;
  std::vector<uint16_t> table_;
};

// Position-dependent 32-bit checksum of one chunk's output (zero-padded to 4 bytes): sum of Mix32(word_i + i *
// 0x9E3779B9). An order-free sum, so the GPU computes it with one reduction.
uint32_t ChunkSum(const uint8_t* p, size_t bytes);
inline uint32_t Mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

// Canonical Huffman helpers (shared with the GPU decoder's host side and tests).
// Code lengths (0 = unused) for a histogram, limited to maxLen; a single used symbol gets length 1.
std::vector<uint8_t> CodeLengths(const uint64_t* freq, uint32_t n, uint32_t maxLen);
// 1 << maxLen entries: (length << 8) | symbol, 0 where no code starts (invalid prefix). Throws on lengths whose
// Kraft sum exceeds 1.
std::vector<uint16_t> DecodeTable(const uint8_t* lens, uint32_t maxLen);

const char* DTypeName(DType d);

}  // namespace swapserve::runtime::codec
