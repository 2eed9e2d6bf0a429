// Every differentiable primitive, and the composites built on them, checked to first and second
// order against finite differences, over contiguous, transposed, sliced and broadcast inputs.
// The table (op_registry_cases.cpp) is keyed by primitive name: a primitive registered with
// THETA_PRIMITIVE that has no entry there fails the coverage test, so a new op cannot land untested.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/autograd/op_registry.hpp"
#include "tests/support/gradcheck.hpp"

using namespace theta;
using namespace theta::autograd;
using namespace theta::test::op_registry;

namespace {

const std::set<std::string> kComposites = {"mean",   "var",       "softmax", "log_softmax", "cross_entropy",
                                           "norm",   "select",    "squeeze", "unsqueeze",   "stack",
                                           "t",         "flatten", "vdot",    "mlp"};

/// Inputs of `c` in `layout`, drawn from a generator seeded by the case's position.
std::vector<Tensor> inputs_of(const OpCase& c, Layout layout, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Tensor> out;
  for (const auto& spec : c.inputs) out.push_back(make_input(spec, layout, rng));
  return out;
}

}  // namespace

TEST_CASE("every registered primitive has gradcheck cases", "[autograd][op_registry]") {
  const auto& names = primitive_names();
  REQUIRE(names.size() >= 40);  // the op files' registrations were linked in
  std::set<std::string> covered;
  for (const auto& c : cases()) covered.insert(c.op);
  for (const auto& name : names) {
    INFO("primitive " << name << " has no entry in the op registry table");
    CHECK(covered.count(name) == 1);
  }
  // Every table entry names a registered primitive or a known composite (no stale names).
  for (const auto& name : covered) {
    INFO("table entry " << name << " is neither a registered primitive nor a listed composite");
    CHECK((std::find(names.begin(), names.end(), name) != names.end() || kComposites.count(name) == 1));
  }
}

TEST_CASE("layouts reach the ops as views", "[autograd][op_registry]") {
  Rng rng(1);
  const InputSpec spec{{3, 4}, Domain::real};
  CHECK(make_input(spec, Layout::contiguous, rng).is_contiguous());
  const Tensor tr = make_input(spec, Layout::transposed, rng);
  CHECK((tr.shape() == Shape{3, 4} && tr.strides() == Strides{1, 3}));
  const Tensor sl = make_input(spec, Layout::sliced, rng);
  CHECK((sl.shape() == Shape{3, 4} && sl.strides() == Strides{18, 2} && sl.offset() == 10));
  const Tensor br = make_input(spec, Layout::broadcast, rng);
  CHECK((br.shape() == Shape{3, 4} && br.strides() == Strides{0, 1}));
}

TEST_CASE("gradcheck and gradgradcheck pass for every op", "[autograd][op_registry]") {
  const auto& all = cases();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const OpCase& c = all[i];
    for (const Layout layout : c.layouts) {
      DYNAMIC_SECTION("#" << i << " " << c.op << ": " << c.label << " (" << layout_name(layout) << ")") {
        const std::vector<Tensor> inputs = inputs_of(c, layout, 1000 + 17 * i);
        std::vector<std::vector<double>> before;
        for (const auto& t : inputs) before.push_back(to_vector(t));
        const auto first = theta::testing::gradcheck(c.f, inputs);
        INFO(first.message);
        REQUIRE(first.ok);
        const auto second = theta::testing::gradgradcheck(c.f, inputs);
        INFO(second.message);
        REQUIRE(second.ok);
        for (std::size_t j = 0; j < inputs.size(); ++j) REQUIRE(to_vector(inputs[j]) == before[j]);
      }
    }
  }
}
