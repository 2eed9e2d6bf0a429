// InlineList, the small list a Node keeps its inputs, input versions and gradients in: inline up
// to N elements, on the heap beyond; copies are deep, moves leave the source empty.

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "autograd/inline_list.hpp"

using theta::autograd::InlineList;

namespace {
template <class List> std::vector<std::string> items(const List& list) {
  return std::vector<std::string>(list.begin(), list.end());
}
}  // namespace

TEST_CASE("InlineList keeps up to N elements inline and spills beyond", "[autograd][inline_list]") {
  using List = InlineList<std::string, 2>;
  for (const std::vector<std::string>& values :
       {std::vector<std::string>{}, {"a"}, {"a", "b"}, {"a", "b", "c"}, {"a", "b", "c", "d", "e"}}) {
    INFO(values.size() << " elements");
    const List from_vector(values);
    CHECK(from_vector.size() == values.size());
    CHECK(from_vector.empty() == values.empty());
    CHECK(items(from_vector) == values);
    // Storage is inside the object exactly when the elements fit.
    const auto* begin = reinterpret_cast<const char*>(from_vector.data());
    const auto* self = reinterpret_cast<const char*>(&from_vector);
    const bool inline_storage = begin >= self && begin < self + sizeof(List);
    CHECK(inline_storage == (values.size() <= 2));

    List copy = from_vector;  // deep copy
    if (!values.empty()) copy[0] = "changed";
    CHECK(items(from_vector) == values);

    List moved = std::move(copy);
    CHECK(moved.size() == values.size());
    CHECK(copy.size() == 0);  // NOLINT: a moved-from list is empty, and safe to iterate
    CHECK(items(copy).empty());

    List assigned;
    assigned = from_vector;
    CHECK(items(assigned) == values);
  }
  const InlineList<int, 2> listed{1, 2, 3};
  CHECK(std::vector<int>(listed.begin(), listed.end()) == std::vector<int>{1, 2, 3});
  const InlineList<bool, 4> mask(6);
  CHECK(mask.size() == 6);
  for (bool b : mask) CHECK_FALSE(b);  // value-initialised
}

TEST_CASE("InlineList destroys what it holds, inline or spilled", "[autograd][inline_list]") {
  const auto token = std::make_shared<int>(7);
  {
    const InlineList<std::shared_ptr<int>, 2> small{token, token};
    const InlineList<std::shared_ptr<int>, 2> large{token, token, token, token};
    CHECK(token.use_count() == 7);
  }
  CHECK(token.use_count() == 1);
}
