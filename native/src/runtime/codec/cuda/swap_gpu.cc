// swap_in of a compressed host image on the CUDA backend (design: runtime/codec/design.md "Pipelining with the PCIe
// copy", "Device memory"): every container's tables go to the device once; then the image's payload is copied in
// batches of whole chunks into a ring of codec::kWorkSlots staging slots on the copy stream, and each batch is
// decoded straight into the model's arena on the decode stream (raw containers: a device-to-device copy). Tables
// and slots live in the codec work buffer, carved out of the gpu budget at open. Copy of batch b+1 overlaps the
// decode of batch b; a slot is reused once the decode that read it has finished. Group g's readiness event is
// recorded on the decode stream after its last decode, so WeightsLease::waitGroup (execute-while-loading) is
// unchanged. codecVerify: every decoded chunk's checksum is recomputed on the GPU and compared before any group
// is reported landed.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common/cuda_check.h"
#include "runtime/codec/cuda/decode.cuh"
#include "runtime/core.h"

namespace swapserve::runtime {

void RuntimeCore::doSwapInCompressedGpu(const Prepared& p, const MoveCallbacks& cb, MoveResult& r) {
  const codec::HostImage& img = *p.source->image;
  const Layout& L = p.model->layout;
  const uint8_t* host = p.source->block->data();
  uint8_t* arena = p.target->block->data();
  std::lock_guard<std::mutex> lock(codecMu_);
  // The work buffer was carved out of the gpu budget at open (codecWorkBytes) and never grows; compress kept any
  // model whose tables do not fit it raw, so PlanWork throwing here means a runtime opened without one.
  if (!codecWork_.p) throw NativeError(ErrorCode::kState, "compressed swap-in on the GPU needs a codec work buffer (codecWorkBytes > 0)");
  const codec::WorkPlan plan = codec::PlanWork(img, codecWork_.bytes);
  const int S = codec::kWorkSlots;
  const uint64_t slotBytes = plan.slotBytes;
  uint8_t* work = codecWork_.p;
  uint8_t* slots = work + plan.slotsAt;
  uint8_t* dTables = work + plan.tablesAt;
  uint32_t* dSums = reinterpret_cast<uint32_t*>(work + plan.sumsAt);
  int* dErr = reinterpret_cast<int*>(work + plan.errAt);
  checkInjected();
  const int dev = device->ordinal();
  const int G = static_cast<int>(L.groups.size());
  auto copyS = device->newStream(), decS = device->newStream();
  cudaStream_t cs = static_cast<cudaStream_t>(copyS->handle()), ds = static_cast<cudaStream_t>(decS->handle());
  auto start = device->newEvent(true), end = device->newEvent(true), tablesIn = device->newEvent(false);
  std::vector<std::unique_ptr<Event>> copied(S), freed(S);
  for (int s = 0; s < S; ++s) copied[s] = device->newEvent(false), freed[s] = device->newEvent(false);
  // Groups [0, R) are a resident prefix: already in the target and landed by begin() (no event, as waitGroup
  // expects), so none of their entries is copied or decoded.
  const int R = p.resident;
  for (int g = R; g < G; ++g) p.target->events[g] = device->newEvent(false);
  const bool verify = opts_.codecVerify;
  uint64_t total = 0, done = 0;
  for (int g = R; g < G; ++g) total += L.groups[g].second - L.groups[g].first;
  for (int g = 0; g < R; ++g) {
    if (cb.group) cb.group(g);
  }
  int enqueued = R, landed = R;
  auto poll = [&](bool wait) {
    while (landed < enqueued) {
      Event& e = *p.target->events[landed];
      if (wait) e.synchronize();
      else if (!e.done()) break;
      p.target->markLanded(landed);
      done += L.groups[landed].second - L.groups[landed].first;
      if (cb.group) cb.group(landed);
      if (cb.progress) cb.progress(done, total);
      ++landed;
    }
  };
  // Groups before `upTo` have all their work in the decode stream: record their readiness events.
  auto enqueueGroups = [&](int upTo) {
    for (; enqueued < upTo; ++enqueued) {
      decS->record(*p.target->events[enqueued]);
      p.target->markEnqueued(enqueued);
    }
  };
  struct Part {
    size_t entry;
    uint32_t k0, k1;
  };
  std::vector<Part> batch;
  uint64_t bStart = 0, bEnd = 0;
  int b = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    if (abort_) throw NativeError(ErrorCode::kAborted, "the move was aborted (runtime closing)");
    const int slot = b % S;
    uint8_t* sp = slots + slot * slotBytes;
    if (b >= S) device->streamWaitEvent(cs, *freed[slot]);  // the decode that read this slot has finished
    copyS->copyToDevice(sp, host + bStart, bEnd - bStart);
    copyS->record(*copied[slot]);
    device->streamWaitEvent(ds, *copied[slot]);
    for (const Part& pt : batch) {
      const codec::Entry& e = img.entries[pt.entry];
      if (!verify) enqueueGroups(e.group);  // verify: no group is reported before every checksum matched
      const uint64_t payloadAt = e.containerOff + e.layout.payload;  // image offset of the payload
      if (e.mode == codec::Mode::kRaw) {
        const uint64_t a = e.chunkOffset[pt.k0], n = e.chunkOffset[pt.k1] - a;
        SS_CUDA_CHECK_ON(cudaMemcpyAsync(arena + e.arenaOffset + a, sp + (payloadAt + a - bStart), n, cudaMemcpyDeviceToDevice, ds), dev);
      } else {
        codec::GpuDecodeParams gp{};
        // payload + chunkOffset[k] is chunk k in the slot (pointer arithmetic may start before the slot for k0 > 0).
        gp.payload = sp - static_cast<int64_t>(bStart - payloadAt);
        gp.chunkOffset = reinterpret_cast<const uint64_t*>(dTables + e.tablesOff + e.layout.chunkOffset);
        gp.codeLen = dTables + e.tablesOff + e.layout.codeLen;
        gp.out = arena + e.arenaOffset;
        gp.elements = e.rawBytes / codec::FormatOf(e.dtype).elemBytes;
        gp.firstChunk = pt.k0;
        gp.numChunks = pt.k1 - pt.k0;
        gp.dtype = static_cast<uint32_t>(e.dtype);
        gp.chunkSums = verify ? dSums + e.sumBase : nullptr;
        gp.error = dErr;
        SS_CUDA_CHECK_ON(codec::LaunchDecode(gp, ds), dev);
      }
    }
    decS->record(*freed[slot]);
    batch.clear();
    ++b;
    poll(false);
  };
  try {
    copyS->record(*start);
    SS_CUDA_CHECK_ON(cudaMemsetAsync(dErr, 0, sizeof(int), cs), dev);
    copyS->copyToDevice(dTables, host, img.tablesBytes);
    copyS->record(*tablesIn);
    device->streamWaitEvent(ds, *tablesIn);
    for (size_t i = 0; i < img.entries.size(); ++i) {
      const codec::Entry& e = img.entries[i];
      if (e.group < R) continue;  // in the resident prefix
      const uint64_t payloadAt = e.containerOff + e.layout.payload;
      for (uint32_t k = 0; k < e.numChunks; ++k) {
        const uint64_t a = payloadAt + e.chunkOffset[k], z = payloadAt + e.chunkOffset[k + 1];
        if (!batch.empty() && z - bStart > slotBytes) flush();
        if (batch.empty()) bStart = a;
        bEnd = z;
        if (!batch.empty() && batch.back().entry == i) batch.back().k1 = k + 1;
        else batch.push_back({i, k, k + 1});
      }
    }
    flush();
    if (!verify) enqueueGroups(G);
    decS->record(*end);
    if (verify) {
      // Debug: nothing is reported landed before every chunk's checksum matched.
      end->synchronize();
      std::vector<uint32_t> sums(img.totalChunks);
      SS_CUDA_CHECK_ON(cudaMemcpy(sums.data(), dSums, sums.size() * 4, cudaMemcpyDeviceToHost), dev);
      for (const codec::Entry& e : img.entries) {
        if (e.mode == codec::Mode::kRaw || e.group < R) continue;  // stored raw, or in the prefix (not decoded)
        for (uint32_t k = 0; k < e.numChunks; ++k) {
          if (sums[e.sumBase + k] != e.chunkSum[k]) {
            throw NativeError(ErrorCode::kIo, "codec: GPU-decoded chunk " + std::to_string(k) + " of the tensor at arena offset " +
                                                  std::to_string(e.arenaOffset) + " fails its checksum");
          }
        }
      }
      enqueueGroups(G);
      decS->record(*end);
    }
    poll(true);
    end->synchronize();
    int err = 0;
    SS_CUDA_CHECK_ON(cudaMemcpy(&err, dErr, sizeof err, cudaMemcpyDeviceToHost), dev);
    if (err) throw NativeError(ErrorCode::kIo, "codec: a lane of chunk " + std::to_string(err - 1) + " did not decode (corrupt host image)");
  } catch (...) {
    try {
      copyS->synchronize();
      decS->synchronize();
    } catch (...) {
    }
    throw;
  }
  r.deviceMs = device->elapsedMs(*start, *end);
  r.bytes = total;
}

}  // namespace swapserve::runtime
