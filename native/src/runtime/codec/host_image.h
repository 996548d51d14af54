// A model's compressed host image (issue 15 part 2; design: runtime/codec/design.md "A model in the host tier"):
// one codec container per tensor piece, in arena order, plus a copy of every container's header + tables at the
// image's start so a GPU swap-in copies all tables to the device once and then streams payload ranges. Built on a
// background thread (BuildImage), decoded on the CPU (DecodeEntry) or by codec/cuda/swap_gpu.cc. No N-API, no CUDA.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/codec/codec.h"

namespace swapserve::engine {
class ThreadPool;
}

namespace swapserve::runtime::codec {

// A tensor to store: bytes at arenaOffset of the raw arena, in layer group `group` (set by beginCompress). `coded`
// false: stored as a raw container (quantized or other dtypes the codec does not model; its bytes must be even).
struct Piece {
  uint64_t arenaOffset = 0, bytes = 0;
  DType dtype = DType::kBf16;
  bool coded = true;
  int group = 0;
};

// One container of the image.
struct Entry {
  uint64_t arenaOffset = 0, rawBytes = 0;
  int group = 0;
  Mode mode = Mode::kRaw;
  DType dtype = DType::kBf16;
  uint32_t numChunks = 0;
  uint64_t tablesOff = 0;   // image offset of its header + tables copy (tables region)
  uint64_t containerOff = 0;  // image offset of the whole container (header, tables, payload)
  uint64_t containerBytes = 0;
  Layout layout{};          // offsets inside the container
  uint32_t sumBase = 0;     // index of its chunk 0 in the image's flat chunk-sum list
  std::vector<uint64_t> chunkOffset;  // numChunks + 1 payload offsets (host copy, for batching copies)
  std::vector<uint32_t> chunkSum;     // numChunks (debug verification of GPU decodes)
};

struct HostImage {
  std::vector<Entry> entries;  // arena order
  uint64_t tablesBytes = 0;    // [0, tablesBytes): header + tables of every entry
  uint64_t bytes = 0;          // whole image
  uint64_t rawBytes = 0;       // sum of the entries' rawBytes
  uint32_t totalChunks = 0;
  double ratio() const { return rawBytes ? static_cast<double>(bytes) / static_cast<double>(rawBytes) : 1.0; }
};

// Encoded containers, not yet placed in pinned memory (WriteImage does that once the block is reserved).
struct Built {
  std::shared_ptr<HostImage> index;
  std::vector<std::vector<uint8_t>> containers;  // one per entry
};

// Largest container, elements: big tensors are cut so the encoder runs in parallel and a swap can start early.
constexpr uint64_t kMaxEntryElems = 16ull << 20;

// Encodes every piece of `arena` on `threads` threads (0: hardware concurrency). Checks `abort` between pieces
// (throws kAborted).
Built BuildImage(const uint8_t* arena, const std::vector<Piece>& pieces, const EncodeOptions& opt, int threads,
                 const std::atomic<bool>* abort);
// Writes the built image (index->bytes bytes) to `dst`.
void WriteImage(const Built& b, uint8_t* dst);
// Decodes entry e of the image at `image` into the arena (CPU; verifies every chunk's checksum and the data hash).
void DecodeEntry(const HostImage& img, const uint8_t* image, size_t e, uint8_t* arena);
// Decodes entries [i0, i1) on `pool`: every chunk of every entry in parallel, then each entry's data hash. Bit-exact
// with DecodeEntry, and the error it throws is the one DecodeEntry over i0, i0+1, ... would throw first (the lowest
// entry's header/table error, else its lowest failing chunk, else its data hash). `abort` is checked per chunk
// (throws kAborted).
void DecodeEntries(const HostImage& img, const uint8_t* image, size_t i0, size_t i1, uint8_t* arena,
                   engine::ThreadPool& pool, const std::atomic<bool>* abort);

// Where a compressed GPU swap-in (cuda/swap_gpu.cc) puts its device work inside the runtime's codec work buffer
// (design.md "Device memory"): [tables | chunk sums | error word | kSlots staging slots]. The buffer has a fixed
// size carved out of the gpu budget at open and never grows: the tables come first and the slots share what is
// left (at most kMaxSlotBytes each).
struct WorkPlan {
  uint64_t tablesAt = 0, sumsAt = 0, errAt = 0, slotsAt = 0, slotBytes = 0, usedBytes = 0;
};
constexpr int kWorkSlots = 4;
constexpr uint64_t kMinSlotBytes = 1ull << 20;   // > the largest chunk (256 KiB of fp32)
constexpr uint64_t kMaxSlotBytes = 32ull << 20;
// Smallest work buffer: the slots at their minimum plus 1 MiB of tables (a model of ~8 GB of bf16; design.md).
constexpr uint64_t kMinWorkBytes = kWorkSlots * kMinSlotBytes + (1ull << 20);
// Throws kBudget, naming both sizes, when the image's tables leave less than kMinSlotBytes per slot.
WorkPlan PlanWork(const HostImage& img, uint64_t workBytes);

}  // namespace swapserve::runtime::codec
