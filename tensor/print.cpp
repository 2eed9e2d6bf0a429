// Printing tensors (and, through print_tensor, Vars): NumPy-like nested brackets, summarised past
// 1000 elements.

#include <iomanip>
#include <ostream>
#include <sstream>
#include <string_view>

#include "tensor/tensor.hpp"

namespace theta {

namespace {

constexpr std::int64_t kSummariseAbove = 1000;
constexpr std::int64_t kEdgeItems = 3;

void print_rec(std::ostream& out, const Tensor& t, std::size_t axis, std::int64_t offset,
               bool summarise, int indent) {
  const std::int64_t n = t.shape()[axis];
  const std::int64_t stride = t.strides()[axis];
  out << '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (summarise && n > 2 * kEdgeItems && i == kEdgeItems) {
      out << "...";
      i = n - kEdgeItems - 1;
      out << (axis + 1 == t.shape().size() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      continue;
    }
    const std::int64_t off = offset + i * stride;
    if (axis + 1 == t.shape().size()) {
      visit_dtype(t.dtype(), [&](auto v) {
        using T = decltype(v);
        out << static_cast<const T*>(t.storage()->data())[off];
      });
    } else {
      print_rec(out, t, axis + 1, off, summarise, indent + 1);
    }
    if (i + 1 < n)
      out << (axis + 1 == t.shape().size() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
  }
  out << ']';
}

}  // namespace

void print_tensor(std::ostream& out, const Tensor& t, std::string_view kind, std::string_view extra) {
  if (!t.defined()) {
    out << kind << "(undefined)";
    return;
  }
  std::ostringstream body;
  body << std::setprecision(t.dtype() == DType::f32 ? 6 : 10);
  if (t.dim() == 0) {
    visit_dtype(t.dtype(), [&](auto v) {
      using T = decltype(v);
      body << static_cast<const T*>(t.storage()->data())[t.offset()];
    });
  } else {
    print_rec(body, t, 0, t.offset(), t.numel() > kSummariseAbove, static_cast<int>(kind.size()) + 1);
  }
  out << kind << '(' << body.str() << ", dtype=" << dtype_name(t.dtype()) << ", shape=" << shape_str(t.shape())
      << extra << ')';
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  print_tensor(out, t, "tensor", "");
  return out;
}

}  // namespace theta
