#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/checkpoint.hpp"
#include "nn/train.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/nn/tiny_model.hpp"

using namespace theta;
using namespace theta::nn;
using theta::test::TempDir;
using theta::test::TinyNet;

namespace {

// Regression targets from a teacher network, so a student of the same shape can fit them.
Dataset teacher_data(std::int64_t n) {
  Rng rng(11);
  const Tensor x = rng.normal({n, 4});
  TinyNet teacher(4, 3, 2, 12);
  return Dataset{x, teacher(Var(x)).value()};
}

Var mse(const Var& out, const Tensor& y) { return autograd::mean(autograd::square(autograd::sub(out, Var(y)))); }

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype()));
}

void check_same_parameters(const Module& a, const Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    INFO("parameter " << pa[i].first);
    CHECK(bytes_of(pa[i].second.value()) == bytes_of(pb[i].second.value()));
  }
}

// Points file descriptor 2 at `fd` until restore() or destruction.
class StderrRedirect {
 public:
  explicit StderrRedirect(int fd) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    REQUIRE(saved_ >= 0);
    REQUIRE(::dup2(fd, 2) == 2);
  }
  ~StderrRedirect() { restore(); }
  StderrRedirect(const StderrRedirect&) = delete;
  StderrRedirect& operator=(const StderrRedirect&) = delete;
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }

 private:
  int saved_ = -1;
};

// What fit() writes to stderr when stderr is the regular file `path`.
std::string stderr_of_fit_to_file(const std::string& path, const FitOptions& options, std::int64_t first_epoch) {
  const Dataset data = teacher_data(32);
  const DataLoader loader(data, {.batch_size = 8, .seed = 3});
  TinyNet model(4, 3, 2, 1);
  Sgd opt(model.named_parameters(), {.lr = 0.05});
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  {
    StderrRedirect redirect(fd);
    fit(model, opt, loader, mse, options, first_epoch);
  }
  ::close(fd);
  return read_file(path);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

// TinyNet with a buffer that its training-mode forward updates, as BatchNorm's running statistics
// are: "calls" counts the forward passes.
class CountingNet : public Cloneable<CountingNet> {
 public:
  CountingNet() {
    register_module("net", std::make_shared<TinyNet>(4, 3, 2, 1));
    register_buffer("calls", zeros({}));
  }
  Var forward(const Var& x) override {
    if (training()) buffer(0).add_(ones({}));
    return child(0)(x);
  }
  std::string describe() const override { return "CountingNet"; }
};

double calls(const Module& m) {
  for (const auto& [name, b] : m.named_buffers())
    if (name == "calls") return b.item();
  FAIL("no buffer 'calls'");
  return 0.0;
}

// mse, except that the loss of call number `at` (counted from 0) is multiplied by `factor`.
LossFn mse_spoiled_at(int at, double factor) {
  auto calls = std::make_shared<int>(0);
  return [=](const Var& out, const Tensor& y) {
    const Var l = mse(out, y);
    return (*calls)++ == at ? l * factor : l;
  };
}

}  // namespace

TEST_CASE("fit runs zero_grad, forward, loss, backward, step per batch and reports epoch losses", "[nn][train]") {
  const Dataset data = teacher_data(40);
  const DataLoader loader(data, {.batch_size = 16, .seed = 5});  // batches of 16, 16, 8
  TinyNet model(4, 3, 2, 1);
  const auto reference = model.clone();
  Sgd opt(model.named_parameters(), {.lr = 0.2, .momentum = 0.9});
  Sgd ref_opt(reference->named_parameters(), {.lr = 0.2, .momentum = 0.9});

  std::vector<std::int64_t> seen;
  const auto logs = fit(model, opt, loader, mse,
                        {.epochs = 30, .quiet = true, .on_epoch = [&](const EpochLog& l) { seen.push_back(l.epoch); }});
  REQUIRE(logs.size() == 30);
  REQUIRE(seen.size() == 30);
  for (std::int64_t e = 0; e < 30; ++e) {
    CHECK(logs[static_cast<std::size_t>(e)].epoch == e);
    CHECK(seen[static_cast<std::size_t>(e)] == e);
    CHECK(logs[static_cast<std::size_t>(e)].seconds >= 0.0);
  }
  CHECK(logs.back().train_loss < 0.2 * logs.front().train_loss);

  // The same loop written out by hand gives bitwise the same parameters and epoch losses.
  for (std::int64_t e = 0; e < 30; ++e) {
    double weighted = 0.0;
    for (const auto& [x, y] : loader.epoch(e)) {
      ref_opt.zero_grad();
      const Var loss = mse((*reference)(Var(x)), y);
      autograd::backward(loss);
      ref_opt.step();
      weighted += loss.item() * static_cast<double>(x.size(0));
    }
    CHECK(logs[static_cast<std::size_t>(e)].train_loss == weighted / 40.0);
  }
  check_same_parameters(model, *reference);
  CHECK(opt.steps_taken() == 90);
}

TEST_CASE("fit resumed from a checkpoint repeats an uninterrupted run exactly", "[nn][train]") {
  TempDir dir;
  const Dataset data = teacher_data(30);
  const DataLoader loader(data, {.batch_size = 7, .seed = 9});
  const SgdOptions sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3};

  TinyNet straight(4, 3, 2, 1);
  Sgd straight_opt(straight.named_parameters(), sgd);
  const auto straight_logs = fit(straight, straight_opt, loader, mse, {.epochs = 6, .quiet = true});

  TinyNet first(4, 3, 2, 1);
  Sgd first_opt(first.named_parameters(), sgd);
  fit(first, first_opt, loader, mse, {.epochs = 6, .quiet = true, .on_epoch = [&](const EpochLog& l) {
        if (l.epoch == 2) save_checkpoint(dir.file("epoch2.npz"), first, &first_opt);
      }});

  TinyNet resumed(4, 3, 2, 77);  // different initial values, overwritten by the checkpoint
  Sgd resumed_opt(resumed.named_parameters(), sgd);
  load_checkpoint(dir.file("epoch2.npz"), resumed, &resumed_opt);
  const auto resumed_logs = fit(resumed, resumed_opt, loader, mse, {.epochs = 6, .quiet = true}, 3);

  REQUIRE(resumed_logs.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(resumed_logs[i].epoch == straight_logs[i + 3].epoch);
    CHECK(resumed_logs[i].train_loss == straight_logs[i + 3].train_loss);
  }
  check_same_parameters(resumed, straight);
  CHECK(resumed_opt.steps_taken() == straight_opt.steps_taken());
}

TEST_CASE("fit writes plain progress lines when stderr is not a terminal", "[nn][train]") {
  TempDir dir;
  const std::string out = stderr_of_fit_to_file(dir.file("log.txt"), {.epochs = 5, .log_every = 2}, 0);
  CHECK(out.find('\r') == std::string::npos);
  const auto lines = lines_of(out);
  REQUIRE(lines.size() == 3);
  CHECK_THAT(lines[0], Catch::StartsWith("epoch 2/5  loss "));
  CHECK_THAT(lines[1], Catch::StartsWith("epoch 4/5  loss "));
  CHECK_THAT(lines[2], Catch::StartsWith("epoch 5/5  loss "));
  CHECK_THAT(lines[2], Catch::EndsWith("s"));
  CHECK(out.back() == '\n');

  const std::string resumed = stderr_of_fit_to_file(dir.file("log2.txt"), {.epochs = 5, .log_every = 2}, 3);
  CHECK(lines_of(resumed).size() == 2);
  CHECK_THAT(resumed, Catch::StartsWith("epoch 4/5  loss "));

  CHECK(stderr_of_fit_to_file(dir.file("log3.txt"), {.epochs = 3, .quiet = true}, 0).empty());
}

TEST_CASE("fit rewrites a live line when stderr is a terminal", "[nn][train]") {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0 || ::ptsname(master) == nullptr) {
    WARN("no pseudo-terminal available: the terminal progress line is not tested here");
    if (master >= 0) ::close(master);
    return;
  }
  const int terminal = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  REQUIRE(terminal >= 0);

  const Dataset data = teacher_data(32);
  const DataLoader loader(data, {.batch_size = 8, .seed = 3});
  TinyNet model(4, 3, 2, 1);
  Sgd opt(model.named_parameters(), {.lr = 0.05});
  {
    StderrRedirect redirect(terminal);
    REQUIRE(::isatty(2) == 1);
    fit(model, opt, loader, mse, {.epochs = 3, .log_every = 2});
  }
  std::string out;
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 300) <= 0 || !(p.revents & POLLIN)) break;
    char buffer[4096];
    const ssize_t n = ::read(master, buffer, sizeof(buffer));
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(terminal);
  ::close(master);

  INFO("terminal output: " << out);
  CHECK_THAT(out, Catch::StartsWith("\repoch 1/3  batch 1/4  loss "));
  CHECK_THAT(out, Catch::Contains("\repoch 1/3  loss "));
  CHECK_THAT(out, Catch::Contains("\repoch 2/3  loss "));
  CHECK_THAT(out, Catch::Contains("\repoch 3/3  loss "));
  // Only the kept epochs (2 and the last) end their line; the terminal shows '\n' as "\r\n".
  CHECK(std::count(out.begin(), out.end(), '\n') == 2);
  CHECK_THAT(out, Catch::EndsWith("\n"));
}

TEST_CASE("fit rejects bad arguments", "[nn][train]") {
  const Dataset data = teacher_data(8);
  const DataLoader loader(data, {.batch_size = 4});
  TinyNet model(4, 3, 2, 1);
  Sgd opt(model.named_parameters(), {.lr = 0.05});
  CHECK_THROWS_AS(fit(model, opt, loader, mse, {.epochs = 2, .quiet = true}, 3), std::invalid_argument);
  CHECK_THROWS_AS(fit(model, opt, loader, mse, {.epochs = 2, .quiet = true, .log_every = 0}), std::invalid_argument);
  CHECK_THROWS_AS(fit(model, opt, loader, LossFn(), {.epochs = 1, .quiet = true}), std::invalid_argument);
  const LossFn per_sample = [](const Var& out, const Tensor& y) {
    return autograd::mean(autograd::square(autograd::sub(out, Var(y))), {1});
  };
  CHECK_THROWS_AS(fit(model, opt, loader, per_sample, {.epochs = 1, .quiet = true}), ShapeError);
  CHECK(fit(model, opt, loader, mse, {.epochs = 2, .quiet = true}, 2).empty());
}

TEST_CASE("fit stops at the first non-finite loss, before that batch changes the model", "[nn][train]") {
  const Dataset data = teacher_data(40);
  const DataLoader loader(data, {.batch_size = 8, .seed = 5});  // 5 batches per epoch
  const double inf = std::numeric_limits<double>::infinity();
  for (const double factor : {std::numeric_limits<double>::quiet_NaN(), inf, -inf}) {
    INFO("loss factor " << factor);
    CountingNet model;
    const auto reference = model.clone();
    Sgd opt(model.named_parameters(), {.lr = 0.2, .momentum = 0.9});
    Sgd ref_opt(reference->named_parameters(), {.lr = 0.2, .momentum = 0.9});
    std::vector<std::int64_t> epochs_done;
    // Loss call 7 is batch 2 of epoch 1.
    try {
      fit(model, opt, loader, mse_spoiled_at(7, factor),
          {.epochs = 3, .quiet = true, .on_epoch = [&](const EpochLog& l) { epochs_done.push_back(l.epoch); }});
      FAIL("fit trained through a non-finite loss");
    } catch (const NonFiniteLossError& e) {
      CHECK(e.epoch() == 1);
      CHECK(e.batch() == 2);
      CHECK_FALSE(std::isfinite(e.loss()));
      CHECK_THAT(std::string(e.what()), Catch::StartsWith("fit: non-finite loss ") &&
                                            Catch::Contains(" at epoch 1, batch 2 of 5 (counted from 0)"));
    }
    CHECK(epochs_done == std::vector<std::int64_t>{0});
    CHECK(opt.steps_taken() == 7);

    // The same 7 steps written out by hand; the counting buffer, advanced by the failed batch's
    // forward, is back at 7.
    int steps = 0;
    for (std::int64_t e = 0; e < 2; ++e)
      for (const auto& [x, y] : loader.epoch(e)) {
        if (steps++ == 7) break;
        ref_opt.zero_grad();
        autograd::backward(mse((*reference)(Var(x)), y));
        ref_opt.step();
      }
    check_same_parameters(model, *reference);
    CHECK(calls(model) == 7.0);
    CHECK(calls(*reference) == 7.0);
  }
}

TEST_CASE("fit trains on through a non-finite loss when asked to", "[nn][train]") {
  const Dataset data = teacher_data(40);
  const DataLoader loader(data, {.batch_size = 8, .seed = 5});
  CountingNet model;
  Sgd opt(model.named_parameters(), {.lr = 0.2});
  const auto logs = fit(model, opt, loader, mse_spoiled_at(1, std::numeric_limits<double>::quiet_NaN()),
                        {.epochs = 2, .quiet = true, .stop_on_non_finite_loss = false});
  REQUIRE(logs.size() == 2);
  CHECK(std::isnan(logs[0].train_loss));
  CHECK(opt.steps_taken() == 10);
  CHECK(calls(model) == 10.0);
  // The NaN gradient of batch 1 reached the parameters.
  bool nan_parameter = false;
  for (const auto& [name, p] : model.named_parameters())
    for (const double v : to_vector(p.value())) nan_parameter = nan_parameter || std::isnan(v);
  CHECK(nan_parameter);
}

namespace {
int interrupt_polls = 0;
void counting_interrupt_hook() { ++interrupt_polls; }
void second_poll_interrupts() {
  if (++interrupt_polls == 2) throw std::runtime_error("interrupted");
}
}  // namespace

TEST_CASE("fit polls for interrupts between batches and after epochs, and stops where one is raised",
          "[nn][train]") {
  const InterruptHook previous = set_interrupt_hook(&counting_interrupt_hook);
  const DataLoader loader(teacher_data(40), {.batch_size = 4, .seed = 5});  // 10 batches per epoch
  TinyNet model(4, 3, 2, 1);
  Sgd opt(model.named_parameters(), {.lr = 0.1});
  interrupt_polls = 0;
  fit(model, opt, loader, mse, {.epochs = 2, .quiet = true});
  CHECK(interrupt_polls == 2 * (10 + 1));  // before each batch and after each epoch

  // A poll before each batch: the second one raises, after one step.
  set_interrupt_hook(&second_poll_interrupts);
  interrupt_polls = 0;
  TinyNet second(4, 3, 2, 1);
  Sgd second_opt(second.named_parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(fit(second, second_opt, loader, mse, {.epochs = 1, .quiet = true}), "interrupted");
  CHECK(interrupt_polls == 2);
  CHECK(second_opt.steps_taken() == 1);
  set_interrupt_hook(previous);
}
