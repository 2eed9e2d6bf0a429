// View, join and indexing primitives. Views of a Var share storage with its value.

#include "autograd/primitive.hpp"

namespace theta::autograd {

using detail::constant;

THETA_PRIMITIVE(reshape, "reshape");
THETA_PRIMITIVE(permute, "permute");
THETA_PRIMITIVE(transpose, "transpose");
THETA_PRIMITIVE(slice, "slice");
THETA_PRIMITIVE(slice_backward, "slice_backward");
THETA_PRIMITIVE(concat, "concat");
THETA_PRIMITIVE(index_select, "index_select");
THETA_PRIMITIVE(gather, "gather");
THETA_PRIMITIVE(scatter_add, "scatter_add");

Var reshape(const Var& x, const Shape& shape) {
  if (shape == x.shape()) return x;
  Tensor value = x.value().reshape_copy(shape);
  if (value.shape() == x.shape()) return x;
  return make_result(
      std::move(value), "reshape", {x},
      [](const Var& g, const Node& n, const InputMask&) { return VarList{reshape(g, n.inputs[0].shape())}; },
      [&shape](const VarList& t, const VarList&) { return reshape(t[0], shape); });
}

Var permute(const Var& x, const std::vector<std::int64_t>& perm) {
  Tensor value = x.value().permute(perm);
  std::vector<std::int64_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    inverse[static_cast<std::size_t>(normalize_axis(perm[i], x.dim(), "permute"))] = static_cast<std::int64_t>(i);
  return make_result(
      std::move(value), "permute", {x},
      [inverse](const Var& g, const Node&, const InputMask&) { return VarList{permute(g, inverse)}; },
      [&perm](const VarList& t, const VarList&) { return permute(t[0], perm); });
}

Var transpose(const Var& x, std::int64_t a, std::int64_t b) {
  // Its own primitive (self-inverse, two captured ints): matmul's backward transposes a lot.
  return make_result(
      x.value().transpose(a, b), "transpose", {x},
      [a, b](const Var& g, const Node&, const InputMask&) { return VarList{transpose(g, a, b)}; },
      [a, b](const VarList& t, const VarList&) { return transpose(t[0], a, b); });
}

Var t(const Var& x) {
  THETA_CHECK(x.dim() == 2, ShapeError, "t: expected a 2-D Var, got ", shape_str(x.shape()));
  return transpose(x, 0, 1);
}

Var slice(const Var& x, std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
  Tensor value = x.value().slice(axis, start, stop, step);
  return make_result(
      std::move(value), "slice", {x},
      [axis, start, stop, step](const Var& g, const Node& n, const InputMask&) {
        return VarList{slice_backward(g, n.inputs[0].shape(), axis, start, stop, step)};
      },
      [&](const VarList& t, const VarList&) { return slice(t[0], axis, start, stop, step); });
}

Var slice_backward(const Var& x, const Shape& shape, std::int64_t axis, std::int64_t start,
                   std::int64_t stop, std::int64_t step) {
  Tensor value = zeros(shape, x.dtype());
  Tensor window = value.slice(axis, start, stop, step);
  THETA_CHECK(window.shape() == x.shape(), ShapeError, "slice_backward: ", shape_str(x.shape()),
              " does not fit the slice ", shape_str(window.shape()), " of ", shape_str(shape));
  window.copy_(x.value());
  return make_result(std::move(value), "slice_backward", {x},
                     [axis, start, stop, step](const Var& g, const Node&, const InputMask&) {
                       return VarList{slice(g, axis, start, stop, step)};
                     },
                     [&](const VarList& t, const VarList&) { return slice_backward(t[0], shape, axis, start, stop, step); });
}

Var select(const Var& x, std::int64_t axis, std::int64_t index) {
  const std::int64_t a = normalize_axis(axis, x.dim(), "select");
  const std::int64_t i = index < 0 ? index + x.size(a) : index;
  THETA_CHECK(i >= 0 && i < x.size(a), IndexError, "select: index ", index, " out of range for axis ",
              axis, " of shape ", shape_str(x.shape()));
  return squeeze(slice(x, a, i, i + 1), a);
}

Var squeeze(const Var& x, std::int64_t axis) { return reshape(x, x.value().squeeze(axis).shape()); }

Var unsqueeze(const Var& x, std::int64_t axis) { return reshape(x, x.value().unsqueeze(axis).shape()); }

Var flatten(const Var& x) { return reshape(x, {x.numel()}); }

Var concat(const std::vector<Var>& xs, std::int64_t axis) {
  std::vector<Tensor> values;
  values.reserve(xs.size());
  for (const auto& x : xs) values.push_back(x.value());
  Tensor value = theta::concat(values, axis);
  const std::int64_t a = normalize_axis(axis, value.dim(), "concat");
  return make_result(std::move(value), "concat", xs, [a](const Var& g, const Node& n, const InputMask& needs) {
    std::vector<Var> grads;
    std::int64_t start = 0;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const std::int64_t len = n.inputs[i].size(a);
      grads.push_back(needs[i] ? slice(g, a, start, start + len) : Var());
      start += len;
    }
    return grads;
  },
  [a](const VarList& t, const VarList& in) {
    std::vector<Var> parts;  // zero blocks where an input has no tangent
    for (std::size_t i = 0; i < in.size(); ++i)
      parts.push_back(t[i].defined() ? t[i] : constant(zeros(in[i].shape(), in[i].dtype())));
    return concat(parts, a);
  });
}

Var stack(const std::vector<Var>& xs, std::int64_t axis) {
  THETA_CHECK(!xs.empty(), std::invalid_argument, "stack: no Vars given");
  std::vector<Var> expanded;
  for (const auto& x : xs) {
    THETA_CHECK(x.shape() == xs.front().shape(), ShapeError, "stack: shapes differ: ",
                shape_str(xs.front().shape()), " vs ", shape_str(x.shape()));
    expanded.push_back(unsqueeze(x, axis));
  }
  return concat(expanded, axis);
}

Var index_select(const Var& x, std::int64_t axis, const Tensor& index) {
  Tensor value = theta::index_select(x.value(), axis, index);
  const std::int64_t a = normalize_axis(axis, x.dim(), "index_select");
  return make_result(std::move(value), "index_select", {x}, [a, index](const Var& g, const Node& n, const InputMask&) {
    // Scatter the selected rows back: index broadcast over g's other axes.
    Shape idx_shape(static_cast<std::size_t>(g.dim()), 1);
    idx_shape[static_cast<std::size_t>(a)] = index.numel();
    const Tensor full_index = index.reshape_copy(idx_shape).expand(g.shape()).contiguous();
    const Var& in = n.inputs[0];
    return VarList{scatter_add(constant(zeros(in.shape(), in.dtype())), a, full_index, g)};
  },
  [a, &index](const VarList& t, const VarList&) { return index_select(t[0], a, index); });
}

Var gather(const Var& x, std::int64_t axis, const Tensor& index) {
  return make_result(theta::gather(x.value(), axis, index), "gather", {x},
                     [axis, index](const Var& g, const Node& n, const InputMask&) {
                       const Var& in = n.inputs[0];
                       return VarList{scatter_add(constant(zeros(in.shape(), in.dtype())), axis, index, g)};
                     },
                     [axis, &index](const VarList& t, const VarList&) { return gather(t[0], axis, index); });
}

Var scatter_add(const Var& x, std::int64_t axis, const Tensor& index, const Var& src) {
  return make_result(theta::scatter_add(x.value(), axis, index, src.value()), "scatter_add", {x, src},
                     [axis, index](const Var& g, const Node&, const InputMask& needs) {
                       return VarList{needs[0] ? g : Var(), needs[1] ? gather(g, axis, index) : Var()};
                     },
                     [axis, &index](const VarList& t, const VarList& in) {
                       if (!t[1].defined()) return t[0];
                       const Var base = t[0].defined() ? t[0] : constant(zeros(in[0].shape(), in[0].dtype()));
                       return scatter_add(base, axis, index, t[1]);
                     });
}

}  // namespace theta::autograd
