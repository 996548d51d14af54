// The addon's entry: registers each concern's functions, nothing else.
#include <napi.h>

#include "common/register.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
#ifdef SWAPSERVE_CUDA
  exports.Set("build", Napi::String::New(env, "cuda"));
#else
  exports.Set("build", Napi::String::New(env, "cpu"));
#endif
  swapserve::RegisterRuntime(env, exports);
  swapserve::RegisterEngine(env, exports);
  // Test hooks live apart from the production surface: only native/ts/testing.ts reads `testing`.
  Napi::Object testing = Napi::Object::New(env);
  swapserve::RegisterRuntimeTesting(env, testing);
  swapserve::RegisterEngineTesting(env, testing);
  exports.Set("testing", testing);
  return exports;
}

NODE_API_MODULE(swapserve, Init)
