#include "train/model_factory.h"

#include <string>

namespace mtl::train {

models::ModelConfig model_config(const Config& cfg) {
  models::ModelConfig m;
  m.encoder = std::string(to_string(cfg.model.encoder));
  m.block = std::string(to_string(cfg.model.block));
  m.context = std::string(to_string(cfg.model.context));
  m.upsampling = std::string(to_string(cfg.model.upsampling));
  m.norm = std::string(to_string(cfg.model.norm));
  m.depth_head = std::string(to_string(cfg.model.depth_head));
  m.num_classes = cfg.model.num_classes;
  m.width = cfg.model.width;
  m.semantic = cfg.model.has_task(Task::semantic);
  m.depth = cfg.model.has_task(Task::depth);
  m.input_height = cfg.train.input_size.height;
  m.input_width = cfg.train.input_size.width;
  m.seed = cfg.runtime.seed;
  return m;
}

}  // namespace mtl::train
