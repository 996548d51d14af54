// ggml's CUDA quantized matrix-vector kernels (mmvq.cu) and activation quantizer (quantize.cu), compiled from the
// files bench/quant/fetch_ggml.sh copies into bench/quant/.ggml (never committed), behind two plain functions for
// gemv_bench.cu. Only the launch path of ggml_cuda_op_mul_mat_vec_q is used; the ggml runtime symbols it touches are
// defined here (device info, abort, block size), and the others the two files reference abort if ever called.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "mmvq.cu"
#include "quantize.cu"

const ggml_cuda_device_info& ggml_cuda_info() {
  static ggml_cuda_device_info info = [] {
    ggml_cuda_device_info i{};
    int n = 0;
    cudaGetDeviceCount(&n);
    i.device_count = i.physical_device_count = n;
    for (int d = 0; d < n && d < GGML_CUDA_MAX_DEVICES; ++d) {
      cudaDeviceProp p{};
      cudaGetDeviceProperties(&p, d);
      i.devices[d].cc = 100 * p.major + 10 * p.minor;
      i.devices[d].nsm = p.multiProcessorCount;
      i.devices[d].smpb = p.sharedMemPerBlock;
      i.devices[d].smpbo = p.sharedMemPerBlockOptin;
      i.devices[d].warp_size = p.warpSize;
      i.devices[d].total_vram = p.totalGlobalMem;
      i.devices[d].physical_device = d;
      i.devices[d].physical_share_count = 1;
    }
    return i;
  }();
  return info;
}

int ggml_cuda_get_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

extern "C" void ggml_abort(const char* file, int line, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "ggml_abort %s:%d: ", file, line);
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

extern "C" int64_t ggml_blck_size(enum ggml_type t) {
  switch (t) {
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: return 32;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: return 256;
    default: return 1;
  }
}

// The rest of ggml that mmvq.cu / quantize.cu reference from code this bench never runs (tensor-level entry points,
// pools): defined to abort, so the bench links without the rest of ggml.
[[noreturn]] static void NotHere(const char* f) {
  std::fprintf(stderr, "ggml_ref: %s is not part of the bench\n", f);
  std::abort();
}
extern "C" {
int64_t ggml_nelements(const struct ggml_tensor*) { NotHere("ggml_nelements"); }
size_t ggml_nbytes(const struct ggml_tensor*) { NotHere("ggml_nbytes"); }
size_t ggml_type_size(enum ggml_type) { NotHere("ggml_type_size"); }
bool ggml_is_quantized(enum ggml_type) { NotHere("ggml_is_quantized"); }
bool ggml_is_contiguous(const struct ggml_tensor*) { NotHere("ggml_is_contiguous"); }
bool ggml_is_contiguously_allocated(const struct ggml_tensor*) { NotHere("ggml_is_contiguously_allocated"); }
bool ggml_are_same_stride(const struct ggml_tensor*, const struct ggml_tensor*) { NotHere("ggml_are_same_stride"); }
size_t ggml_backend_buffer_get_alloc_size(ggml_backend_buffer_t, const struct ggml_tensor*) { NotHere("ggml_backend_buffer_get_alloc_size"); }
enum ggml_backend_buffer_usage ggml_backend_buffer_get_usage(ggml_backend_buffer_t) { NotHere("ggml_backend_buffer_get_usage"); }
}
void ggml_cuda_error(const char* stmt, const char* func, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "ggml CUDA error: %s in %s (%s:%d): %s\n", stmt, func, file, line, msg);
  std::abort();
}
void ggml_cuda_set_device(int device) { cudaSetDevice(device); }
std::unique_ptr<ggml_cuda_pool> ggml_backend_cuda_context::new_pool_for_device(int, int) { NotHere("new_pool_for_device"); }

// y (K padded to 512) -> q8_1 blocks at vy.
void GgmlQuantizeQ8_1(const float* x, void* vy, int type, int K, int Kpad, cudaStream_t s) {
  quantize_row_q8_1_cuda(x, nullptr, vy, static_cast<ggml_type>(type), K, K, K, K, Kpad, 1, 1, 1, s);
}

// dst (N) = W (N, K; ggml type) · y (q8_1 of K values), as ggml_cuda_op_mul_mat_vec_q launches it for one column.
void GgmlMmvq(const void* W, int type, const void* vy, float* dst, int N, int K, int Kpad, cudaStream_t s) {
  ggml_cuda_mm_fusion_args_device fusion{};
  mul_mat_vec_q_switch_type(W, static_cast<ggml_type>(type), vy, nullptr, fusion, dst, K, N, 1,
                            K / static_cast<int>(ggml_blck_size(static_cast<ggml_type>(type))), Kpad / QK8_1, N,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, s);
}
