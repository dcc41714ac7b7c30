// The bundled stories260K model, loaded once per process and thread/batch
// setting, for tests that run it through caches and schedulers.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "kvforge/status.h"
#include "model/model.h"

namespace kvforge::test_util {

inline Model& stories_model(int32_t n_threads, int32_t max_batch) {
  static std::map<std::pair<int32_t, int32_t>, std::unique_ptr<Model>> models;
  std::unique_ptr<Model>& model = models[{n_threads, max_batch}];
  if (model == nullptr) {
    ModelOptions o;
    o.n_threads = n_threads;
    o.max_batch = max_batch;
    auto loaded = Model::load(std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf", o);
    KVF_CHECK(loaded.ok());
    model = std::move(loaded).value();
  }
  return *model;
}

}  // namespace kvforge::test_util
