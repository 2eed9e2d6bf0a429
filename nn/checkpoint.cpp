#include "nn/checkpoint.hpp"

#include <map>
#include <set>

#include "nn/npz.hpp"
#include "tensor/npy.hpp"

namespace theta::nn {

namespace {

constexpr std::string_view kParam = "param/", kBuffer = "buffer/", kOptim = "optim/";

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Checks that `found` can be copied into `target`, else throws naming the member.
void check_fits(const std::string& what, const std::string& member, const Tensor& found, const Tensor& target,
                const char* owner) {
  THETA_CHECK(found.shape() == target.shape(), FormatError, what, ": tensor '", member, "' has shape ",
              shape_str(found.shape()), ", ", owner, " expects ", shape_str(target.shape()));
  THETA_CHECK(found.dtype() == target.dtype(), FormatError, what, ": tensor '", member, "' has dtype ",
              dtype_name(found.dtype()), ", ", owner, " expects ", dtype_name(target.dtype()));
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer) {
  std::vector<NamedTensor> members;
  for (const auto& [name, p] : model.named_parameters()) members.emplace_back(std::string(kParam) + name, p.value());
  for (const auto& [name, b] : model.named_buffers()) members.emplace_back(std::string(kBuffer) + name, b);
  if (optimizer != nullptr)
    for (const auto& [key, t] : optimizer->state()) members.emplace_back(std::string(kOptim) + key, t);
  write_file_atomic(path, npz_serialize(members, "save_checkpoint: " + path), "save_checkpoint");
}

// Note [Checkpoint loading order]
// Loading is all or nothing. The archive is parsed and every member CRC-checked first; then each
// parameter and buffer is matched with its member (present, same shape and dtype) and members the
// model does not have are rejected; then the optimizer loads its state, which by its contract
// validates everything before changing anything. Only after all of that succeeded are the values
// copied into the model, and those copies cannot fail.
void load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer) {
  const std::string what = "load_checkpoint: " + path;
  std::map<std::string, Tensor, std::less<>> members;
  for (auto& [name, t] : npz_parse(read_file(path), what)) members.emplace(std::move(name), std::move(t));

  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  std::set<std::string, std::less<>> used;
  const auto take = [&](const std::string& member, const Tensor& target, const char* owner) {
    const auto it = members.find(member);
    THETA_CHECK(it != members.end(), FormatError, what, ": missing tensor '", member, "' (", owner, " expects ",
                shape_str(target.shape()), ")");
    check_fits(what, member, it->second, target, owner);
    used.insert(member);
    copies.emplace_back(target, it->second);
  };
  for (const auto& [name, p] : model.named_parameters()) take(std::string(kParam) + name, p.value(), "model");
  for (const auto& [name, b] : model.named_buffers()) take(std::string(kBuffer) + name, b, "model");

  std::vector<NamedTensor> optim_state;
  for (const auto& [name, t] : members) {
    if (starts_with(name, kOptim)) {
      optim_state.emplace_back(name.substr(kOptim.size()), t);
      continue;
    }
    THETA_CHECK(used.count(name) != 0, FormatError, what, ": unexpected tensor '", name,
                starts_with(name, kParam) || starts_with(name, kBuffer)
                    ? "': the model has no such parameter or buffer"
                    : "': not a 'param/', 'buffer/' or 'optim/' member");
  }

  if (optimizer != nullptr) {
    THETA_CHECK(!optim_state.empty(), FormatError, what,
                ": the checkpoint holds no optimizer state ('optim/' tensors)");
    // Keys the optimizer already holds must keep their shape and dtype; keys it creates lazily
    // (momentum after the first step) are checked by its own load_state.
    for (const auto& [key, current] : optimizer->state())
      for (const auto& [name, t] : optim_state)
        if (name == key) check_fits(what, std::string(kOptim) + key, t, current, "optimizer");
    try {
      optimizer->load_state(optim_state);
    } catch (const std::invalid_argument& e) {
      THETA_THROW(FormatError, what, ": optimizer state: ", e.what());
    }
  }

  for (auto& [dst, src] : copies) dst.copy_(src);
}

}  // namespace theta::nn
