// Dev harness of the CUDA engine (run on the GPU machine; built by bench/engine/dev/build.sh):
//   engine_dev ops [attn2]  every kernel (attn2: only the decode attention v2 checks) and the GEMM wrapper against CPU references; flash timing
//   engine_dev hf DIR       a model written by bench/engine/hf_check.py through the backend
//   engine_dev bench [ewl|decode]  Llama-3.1-8B-shape speed against floors measured in the same run (ewl: with
//                           execute-while-loading; decode: decode steps only)
#include <cstdio>
#include <string>

#include "common/errors.h"

namespace swapserve::dev {
int RunOps();
int RunOnlyAttnV2();
int RunHf(const std::string& dir);
int RunBench(const std::string& what);
}  // namespace swapserve::dev

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a run killed by a time limit still shows its last check
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "ops" && argc > 2 && std::string(argv[2]) == "attn2") return swapserve::dev::RunOnlyAttnV2();
    if (mode == "ops") return swapserve::dev::RunOps();
    if (mode == "hf" && argc > 2) return swapserve::dev::RunHf(argv[2]);
    if (mode == "bench") return swapserve::dev::RunBench(argc > 2 ? argv[2] : "");
  } catch (const swapserve::NativeError& e) {
    std::fprintf(stderr, "engine_dev: %s: %s\n", swapserve::ErrorCodeName(e.code()), e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: engine_dev ops [attn2] | hf DIR | bench [ewl|decode|sweep]\n");
  return 64;
}
