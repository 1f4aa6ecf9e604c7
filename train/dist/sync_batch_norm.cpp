#include "train/dist/sync_batch_norm.h"

#include "nn/layers.h"

namespace mtl::train {

int convert_sync_batch_norm(nn::Module& model, std::shared_ptr<Communicator> comm) {
  int n = 0;
  model.visit([&](const std::string& name, nn::Module& m) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(&m);
    if (!bn) return;
    const std::string what = "the batch statistics of " + (name.empty() ? std::string("the model") : name);
    bn->sync = [comm, what](const Tensor& t) { comm->all_reduce(t, ReduceOp::sum, what); };
    ++n;
  });
  return n;
}

}  // namespace mtl::train
