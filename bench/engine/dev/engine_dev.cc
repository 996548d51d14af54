// Dev harness of the CUDA engine (run on the GPU machine; built by bench/engine/dev/build.sh):
//   engine_dev ops          every kernel and the GEMM wrapper against CPU references; flash timing
//   engine_dev hf DIR       a model written by bench/engine/hf_check.py through the backend
//   engine_dev bench [ewl|decode]  Llama-3.1-8B-shape speed against floors measured in the same run (ewl: with
//                           execute-while-loading; decode: decode steps only)
#include <cstdio>
#include <string>

#include "common/errors.h"

namespace swapserve::dev {
int RunOps();
int RunHf(const std::string& dir);
int RunBench(const std::string& what);
}  // namespace swapserve::dev

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "ops") return swapserve::dev::RunOps();
    if (mode == "hf" && argc > 2) return swapserve::dev::RunHf(argv[2]);
    if (mode == "bench") return swapserve::dev::RunBench(argc > 2 ? argv[2] : "");
  } catch (const swapserve::NativeError& e) {
    std::fprintf(stderr, "engine_dev: %s: %s\n", swapserve::ErrorCodeName(e.code()), e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: engine_dev ops | hf DIR | bench [ewl|decode|sweep]\n");
  return 64;
}
