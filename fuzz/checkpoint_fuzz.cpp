// libFuzzer target for .npz archives and checkpoints. Any input must either load or throw
// FormatError, never crash, read out of bounds, leak or reach undefined behaviour; an archive that
// parses must survive a serialise/parse round trip; a checkpoint that fails to load must leave
// model and optimizer bitwise unchanged, and one that loads must train on without an error.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/checkpoint.hpp"
#include "nn/layers.hpp"
#include "nn/npz.hpp"
#include "tensor/npy.hpp"

using namespace theta;

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace {

// Note [Checkpoint fuzzing]
// Every archive member carries a CRC-32, so nearly every byte-level mutation of a checkpoint stops
// at the CRC check and never reaches the .npy parser or the checkpoint's own validation (counts,
// flags, names, shapes, dtypes). The custom mutator below therefore works on the tensors half of
// the time: it parses the archive, mutates one member (its .npy bytes, its name, its removal, or
// an exchange of values with another member) and writes the archive again with correct CRCs. The
// other half it mutates raw bytes, for the archive parser itself. Seeds: the NumPy-written
// archives of tests/data/npz, and checkpoints of the model below, written by save_checkpoint into
// $THETA_FUZZ_SEED_DIR when that is set (scripts/theta fuzz sets it to the corpus folder).

enum class OptimizerKind { none, sgd, adam };

// A model with parameters and buffers (BatchNorm's running statistics) and its optimizer. Its
// activation is relu, not tanh: on AVX-512, xsimd 8.1's exp (behind tanh) converts doubles beyond
// the int64 range to int64 one by one, undefined behaviour that UBSan reports as soon as a loaded
// weight is near 1e262; that is a matter for the tensor kernels, not for checkpoint loading.
struct Target {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<nn::Optimizer> optimizer;
};

Target make_target(OptimizerKind kind) {
  Rng rng(5);
  auto model = std::make_shared<nn::Sequential>();
  model->add(std::make_shared<nn::Linear>(3, 4, rng));
  model->add(std::make_shared<nn::BatchNorm1d>(4));
  model->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  model->add(std::make_shared<nn::Linear>(4, 2, rng));
  std::unique_ptr<nn::Optimizer> optimizer;
  if (kind == OptimizerKind::sgd)
    optimizer = std::make_unique<nn::Sgd>(model->named_parameters(), nn::SgdOptions{.lr = 0.1, .momentum = 0.9});
  if (kind == OptimizerKind::adam)
    optimizer = std::make_unique<nn::Adam>(model->named_parameters(), nn::AdamOptions{.lr = 0.01});
  return {model, std::move(optimizer)};
}

// One training step on a fixed batch (every parameter gets a gradient).
void train_step(Target& t) {
  static const Tensor x = tensor({0.5, -1, 2, 1, 0, -0.5, -2, 1.5, 0.25, 1, 1, -1}, {4, 3});
  static const Tensor y = tensor({1, 0, 0, 1, -1, 2, 0.5, 0.5}, {4, 2});
  t.model->zero_grad();
  const autograd::Var out = (*t.model)(autograd::Var(x));
  autograd::backward(autograd::mean(autograd::square(autograd::sub(out, autograd::Var(y)))));
  if (t.optimizer) t.optimizer->step();
}

// Everything a load may change, as bytes.
std::string state_bytes(const Target& t) {
  std::vector<nn::NamedTensor> all;
  for (const auto& [name, p] : t.model->named_parameters()) all.emplace_back("param/" + name, p.value());
  for (const auto& [name, b] : t.model->named_buffers()) all.emplace_back("buffer/" + name, b);
  if (t.optimizer)
    for (const auto& [key, s] : t.optimizer->state()) all.emplace_back("optim/" + key, s);
  return nn::npz_serialize(all);
}

std::string temp_path() {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/theta_checkpoint_fuzz_XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) std::abort();
  ::close(fd);
  return path;
}

void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush()) std::abort();
}

// Loads the checkpoint at `path` into `t`: either it loads and `t` trains on, or it throws
// FormatError and `t` is unchanged. Any other exception escapes (and libFuzzer reports it).
void check_load(const std::string& path, Target& t) {
  const std::string before = state_bytes(t);
  try {
    nn::load_checkpoint(path, *t.model, t.optimizer.get());
  } catch (const FormatError&) {
    if (state_bytes(t) != before) __builtin_trap();
    return;
  }
  train_step(t);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* seeds = std::getenv("THETA_FUZZ_SEED_DIR");
  if (seeds == nullptr || *seeds == '\0') return 0;
  for (const auto& [kind, name] : {std::pair{OptimizerKind::none, "model"}, std::pair{OptimizerKind::sgd, "sgd"},
                                   std::pair{OptimizerKind::adam, "adam"}}) {
    Target t = make_target(kind);
    for (int s = 0; s < 2; ++s) train_step(t);
    nn::save_checkpoint(std::string(seeds) + "/checkpoint_" + name + ".npz", *t.model, t.optimizer.get());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<nn::NamedTensor> members;
  try {
    members = nn::npz_parse(bytes, "fuzz input");
  } catch (const FormatError&) {
    return 0;
  }
  const std::string once = nn::npz_serialize(members);
  if (nn::npz_serialize(nn::npz_parse(once, "round trip")) != once) __builtin_trap();

  static const std::string path = temp_path();
  write_bytes(path, bytes);
  for (const OptimizerKind kind : {OptimizerKind::none, OptimizerKind::sgd, OptimizerKind::adam}) {
    Target fresh = make_target(kind);
    check_load(path, fresh);
    if (kind == OptimizerKind::none) continue;
    Target trained = make_target(kind);
    train_step(trained);
    check_load(path, trained);
  }
  return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  std::minstd_rand rng(seed);
  const auto raw = [&] { return LLVMFuzzerMutate(data, size, max_size); };
  if (rng() % 2 == 0) return raw();
  std::vector<nn::NamedTensor> members;
  try {
    members = nn::npz_parse(std::string_view(reinterpret_cast<const char*>(data), size), "mutator");
  } catch (const FormatError&) {
    return raw();
  }
  if (members.empty()) return raw();
  // Mutates `s` in place with room for `extra` more bytes.
  const auto mutate = [](std::string& s, std::size_t extra) {
    const std::size_t n = s.size();
    s.resize(n + extra);
    s.resize(LLVMFuzzerMutate(reinterpret_cast<std::uint8_t*>(s.data()), n, s.size()));
  };
  const std::size_t pick = rng() % members.size();
  auto& [name, value] = members[pick];
  switch (rng() % 4) {
    case 0: {
      std::string npy = npy_serialize(value);
      mutate(npy, 64);
      try {
        value = npy_parse(npy, "mutator");
      } catch (const FormatError&) {
        return raw();
      }
      break;
    }
    case 1: mutate(name, 16); break;
    case 2: std::swap(value, members[rng() % members.size()].second); break;
    default: members.erase(members.begin() + static_cast<std::ptrdiff_t>(pick)); break;
  }
  std::string out;
  try {
    out = nn::npz_serialize(members, "mutator");
  } catch (const std::invalid_argument&) {
    return raw();
  }
  if (out.size() > max_size) return raw();
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
