#include "nn/module.hpp"

namespace theta::nn {

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out = params_;
  for (const auto& [name, c] : children_)
    for (auto& [sub, p] : c->named_parameters()) out.emplace_back(name + "." + sub, p);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out = buffers_;
  for (const auto& [name, c] : children_)
    for (auto& [sub, b] : c->named_buffers()) out.emplace_back(name + "." + sub, b);
  return out;
}

std::int64_t Module::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void Module::zero_grad() const {
  for (const auto& p : parameters()) p.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, c] : children_) c->train(on);
}

void Module::copy_state_from(const Module& other) {
  const auto mine = named_parameters();
  const auto theirs = other.named_parameters();
  THETA_CHECK(mine.size() == theirs.size(), ShapeError, "copy_state_from: ", theirs.size(),
              " parameters given for a module with ", mine.size());
  for (std::size_t i = 0; i < mine.size(); ++i) {
    THETA_CHECK(mine[i].first == theirs[i].first && mine[i].second.shape() == theirs[i].second.shape(),
                ShapeError, "copy_state_from: parameter ", mine[i].first, " ",
                shape_str(mine[i].second.shape()), " does not match ", theirs[i].first, " ",
                shape_str(theirs[i].second.shape()));
  }
  const auto my_buffers = named_buffers();
  const auto their_buffers = other.named_buffers();
  THETA_CHECK(my_buffers.size() == their_buffers.size(), ShapeError, "copy_state_from: buffer count differs");
  for (std::size_t i = 0; i < mine.size(); ++i) mine[i].second.value().copy_(theirs[i].second.value());
  for (std::size_t i = 0; i < my_buffers.size(); ++i) {
    Tensor dst = my_buffers[i].second;
    dst.copy_(their_buffers[i].second);
  }
}

std::size_t Module::register_parameter(std::string name, Tensor value) {
  params_.emplace_back(std::move(name), Var(std::move(value), true));
  return params_.size() - 1;
}

std::size_t Module::register_buffer(std::string name, Tensor value) {
  buffers_.emplace_back(std::move(name), std::move(value));
  return buffers_.size() - 1;
}

std::size_t Module::register_module(std::string name, std::shared_ptr<Module> module) {
  THETA_CHECK(module != nullptr, std::invalid_argument, "register_module: ", name, " is null");
  children_.emplace_back(std::move(name), std::move(module));
  return children_.size() - 1;
}

void Module::make_deep() {
  for (auto& [name, p] : params_) p = Var(p.value().clone(), true);
  for (auto& [name, b] : buffers_) b = b.clone();
  for (auto& [name, c] : children_) c = std::shared_ptr<Module>(c->clone());
}

}  // namespace theta::nn
