// The empirical NTK between two blocks of inputs: structured (from per-block factors) and by
// Jacobian contraction.

#include "theory/ntk_blocks.hpp"

#include <algorithm>
#include <functional>
#include <optional>
#include <unordered_set>

#include "autograd/engine.hpp"
#include "nn/structured.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tensor/parallel.hpp"
#include "theory/checks.hpp"

namespace theta::theory::detail {

// Note [Structured NTK]
// A layer with a structured-Jacobian rule (Note [Structured Jacobians] in nn/structured.hpp),
// used once per sample, contributes
//   Theta_l(i1, o1; i2, o2) = K_in(A1[i1], A2[i2]) <D1[i1, o1], D2[i2, o2]>,
// where A[i] is the layer's input for sample i (seen by a forward hook), K_in the layer's input
// kernel (s_w^2 <a, a'> + s_b^2 for Linear) and D[i, o] = d f_o(x_i) / d y(x_i): the rule's
// input kernel [n1, n2] and one gemm for D1 D2^T [n1 O, n2 O], with no Jacobian of size n * P
// ever formed. D is obtained with O backward passes over the whole batch (cotangent e_o on every
// row): because samples are independent, row i of the gradient with respect to y is exactly
// D[i, o]. Along chains of structured layers most of those passes are saved (Note [Cotangent
// pullback]). This file holds no layer formula. Parameters outside single-use structured layers
// fall back to Jacobian contraction, for their blocks only.

namespace {

// Note [Cotangent pullback]
// O backward passes over the whole model give D for every layer, but each pass pays for all the
// layers between the outputs and the first structured layer: for a CNN, O transposed
// convolutions of its widest layer. When a structured layer's output reaches the outputs only
// through the next structured layer (through that layer's input, and from there only through the
// layer itself: a chain, as in a Sequential stack, not a skip connection around it), its D
// follows from the next layer's: that layer's rule maps its output cotangents to input cotangents
// for all O at once (StructuredLayer::input_cotangents, free to use structure such as
// channel-factored cotangents), and O backward passes over the segment between the two layers
// (activations, pooling: cheap) carry them to the earlier layer's output. The chain condition is
// read off the autograd graph; layers outside chains get D from the full passes as before.

// Whether `output` depends on `from` along a path of the autograd graph that avoids `blocked`.
bool depends_avoiding(const Var& output, const Var& from, const Var& blocked) {
  std::vector<const Var*> stack{&output};
  std::unordered_set<const void*> seen{output.id()};
  while (!stack.empty()) {
    const Var* v = stack.back();
    stack.pop_back();
    if (v->id() == blocked.id()) continue;
    if (v->id() == from.id()) return true;
    if (const auto& fn = v->grad_fn())
      for (const Var& in : fn->inputs)
        if (in.requires_grad() && seen.insert(in.id()).second) stack.push_back(&in);
  }
  return false;
}

// Whether layer l's cotangents can be pulled back from layer l + 1's (Note [Cotangent pullback]).
bool chained(const Captured& c, std::size_t l) {
  const StructuredCall& next = c.layers[l + 1];
  return next.input.requires_grad() && !depends_avoiding(c.output, c.layers[l].output, next.input) &&
         !depends_avoiding(c.output, next.input, next.output);
}

// One backward pass per output o from `outputs` with cotangent cotangents(o) to `targets`: the
// gradients as [n, O, *target.shape[1:]] (zeros where a target does not matter). With one target,
// `into` (when defined) receives them: it may be the tensor whose slots o the cotangents are, as
// each slot is read only by its own pass, which runs before the slot is overwritten.
std::vector<Tensor> backward_per_output(const Var& outputs, const std::vector<Var>& targets, std::int64_t count,
                                        const std::function<Tensor(std::int64_t)>& cotangents,
                                        const Tensor& into = Tensor()) {
  THETA_ASSERT(!into.defined() || targets.size() == 1);
  std::vector<Tensor> d;
  for (const Var& t : targets) {
    Shape shape{t.size(0), count};
    shape.insert(shape.end(), t.shape().begin() + 1, t.shape().end());
    if (into.defined()) THETA_ASSERT(into.shape() == shape && into.dtype() == t.dtype());
    d.push_back(into.defined() ? into : Tensor::empty(shape, t.dtype()));
  }
  if (targets.empty()) return d;
  for (std::int64_t o = 0; o < count; ++o) {
    const auto g = autograd::grad({outputs}, targets, {Var(cotangents(o))}, {.retain_graph = true, .allow_unused = true});
    for (std::size_t l = 0; l < targets.size(); ++l) {
      const Tensor slot = d[l].select(1, o);
      // A gradient that is a view of its cotangent (a segment that only moves entries) may
      // overlap the slot: copy_ reads such a source through a copy.
      if (g[l].defined())
        slot.copy_(g[l].value());
      else
        slot.fill_(0.0);
    }
  }
  return d;
}

// Note [Channel-wise segments]
// Pulled-back cotangents often factor by channel: a Linear readout's input cotangents are
// E[i, o, c] = s W[o, c] for every sample. When the segment between two structured layers acts on
// each channel alone (activations, pooling, global average pooling), so do its backward passes,
// and the factorisation survives: the pass of U[o] * V is U[o] * (the pass of V). Two passes then
// replace O, and the layer's cotangents are stored as U and V (O times smaller). Whether the
// segment acts on each channel alone is tested rather than assumed: one pass with V, one with
// R * V for random per-sample, per-channel factors R, which agree, R * pass(V) = pass(R * V), to
// rounding (1e-12 of each channel's largest entry) only if no channel's cotangents leak into
// another's (for a segment that mixes channels they differ almost surely). Otherwise the O passes
// run as before. Only layers whose outputs are feature maps [n, C, ...] take this path: for a
// plain [n, C] output (an MLP's hidden layer) the O passes are as cheap as the test, and the rule
// would form the dense cotangents anyway.

// One backward pass from `from` to `to` with cotangent `cotangent` (zeros when `to` does not matter).
Tensor segment_pass(const Var& from, const Var& to, const Tensor& cotangent) {
  const auto g = autograd::grad({from}, {to}, {Var(cotangent)}, {.retain_graph = true, .allow_unused = true});
  return g[0].defined() ? g[0].value() : zeros(to.shape(), to.dtype());
}

// The cotangents at `to` from channel-factored cotangents e at `from` (Note [Channel-wise
// segments]); nullopt when the segment does not act on each channel alone.
std::optional<nn::Cotangents> channel_wise_segment(const Var& from, const Var& to, const nn::Cotangents& e) {
  const Tensor& v = e.v();  // [n, C, ...] like `from`
  if (to.dim() < 2 || to.size(1) != v.size(1)) return std::nullopt;
  const std::int64_t n = v.size(0), channels = v.size(1);
  Rng rng(0x5e6);
  const Tensor r = rng.uniform({n, channels}, 0.5, 1.5, v.dtype());
  const auto per_channel = [&](const Tensor& t) {
    Shape shape{n, channels};
    shape.resize(static_cast<std::size_t>(t.dim()), 1);
    return r.reshape(shape);
  };
  const Tensor pass = segment_pass(from, to, v);
  const Tensor mixed = segment_pass(from, to, v * per_channel(v));
  // Each channel's largest entry, over the positions of a sample (contiguous) and then the samples.
  std::vector<std::int64_t> positions;
  for (std::int64_t axis = 2; axis < mixed.dim(); ++axis) positions.push_back(axis);
  const auto channel_max = [&](const Tensor& t) { return max(positions.empty() ? t : max(t, positions), {0}); };
  const Tensor top = channel_max(abs(mixed)), worst = channel_max(abs(mixed - pass * per_channel(pass)));
  if (!(max(worst - top * 1e-12).item() <= 0.0)) return std::nullopt;  // NaN too
  return nn::Cotangents::by_channel(e.u(), pass);
}

// D[l] = [n, O, *out_l.shape[1:]]: gradients of every output with respect to each captured layer
// output, by full backward passes for the last layer and any layer outside a chain, and by
// pullback from the next layer for the rest.
std::vector<nn::Cotangents> output_gradients(const Captured& c) {
  const std::int64_t n = c.output.size(0), outputs = c.output.size(1);
  const std::size_t layers = c.layers.size();
  std::vector<nn::Cotangents> d(layers);
  if (layers == 0) return d;
  std::vector<char> pulled(layers, 0);
  std::vector<Var> direct;
  std::vector<std::size_t> direct_index;
  for (std::size_t l = 0; l < layers; ++l) {
    pulled[l] = l + 1 < layers && chained(c, l);
    if (!pulled[l]) direct.push_back(c.layers[l].output), direct_index.push_back(l);
  }
  const auto one_hot = [&](std::int64_t o) {
    Tensor cot = zeros({n, outputs}, c.output.dtype());
    cot.select(1, o).fill_(1.0);
    return cot;
  };
  auto full = backward_per_output(c.output, direct, outputs, one_hot);
  for (std::size_t k = 0; k < direct.size(); ++k) d[direct_index[k]] = std::move(full[k]);
  for (std::size_t l = layers - 1; l-- > 0;) {
    if (!pulled[l]) continue;
    const StructuredCall& next = c.layers[l + 1];
    const Tensor into_next = next.rule->input_cotangents(next.input.value(), d[l + 1]);  // [n, O, *a.shape[1:]]
    if (next.input.id() == c.layers[l].output.id()) {
      d[l] = into_next;
      continue;
    }
    if (c.layers[l].output.dim() > 2)  // feature maps (Note [Channel-wise segments])
      if (const auto e = nn::Cotangents::find_channel_factors(into_next))
        if (auto seg = channel_wise_segment(next.input, c.layers[l].output, *e)) {
          d[l] = std::move(*seg);
          continue;
        }
    // Through a segment that keeps the shape (an activation), the passes overwrite into_next:
    // one [n, O, C, H, W] tensor fewer at the pullback's peak (the digits CNN: 40 MiB). Only when
    // into_next is a tensor of its own: not a broadcast view, nor memory anything else holds (the
    // next layer's cotangents must stay as they are).
    const Var& out = c.layers[l].output;
    Shape out_shape{n, outputs};
    out_shape.insert(out_shape.end(), out.shape().begin() + 1, out.shape().end());
    const bool in_place = into_next.shape() == out_shape && into_next.dtype() == out.dtype() &&
                          into_next.is_contiguous() && into_next.storage().use_count() == 1;
    d[l] = backward_per_output(next.input, {out}, outputs, [&](std::int64_t o) { return into_next.select(1, o); },
                               in_place ? into_next : Tensor())[0];
  }
  // A finite output can still have infinite derivatives (sqrt at 0). The factors are checked
  // rather than the kernel they make: a width-th of its size (Note [Non-finite values]).
  for (const nn::Cotangents& g : d) {
    if (g.factored()) {
      require_finite(g.u(), "empirical_ntk", "output gradient");
      require_finite(g.v(), "empirical_ntk", "output gradient");
    } else {
      require_finite(g.dense(), "empirical_ntk", "output gradient");
    }
  }
  return d;
}

// Contraction over `params`, accumulated into k_full [n1, O, n2, O] (layout before the final
// permute), or k_trace [n1, n2] when trace is set.
void contract_into(nn::Module& model, const Tensor& x1, const Tensor& x2, bool same,
                   const std::vector<std::pair<std::string, Var>>& params, std::int64_t outputs,
                   std::int64_t max_bytes, bool trace, const Tensor& k) {
  if (params.empty()) return;
  const std::int64_t n1 = x1.size(0), n2 = x2.size(0);
  const std::int64_t p_total = numel_of(params);
  const std::int64_t chunk = samples_per_chunk(max_bytes, outputs, p_total, std::max(n1, n2));
  // Adds a [na, O, nb, O] block at samples (a0, b0) of the kernel (or its output trace).
  auto accumulate = [&](std::int64_t a0, std::int64_t b0, const Tensor& b4) {
    const std::int64_t na = b4.size(0), nb = b4.size(2);
    if (trace) {
      Tensor tr = zeros({na, nb}, b4.dtype());
      for (std::int64_t o = 0; o < outputs; ++o) tr = tr + b4.select(3, o).select(1, o);
      k.slice(0, a0, a0 + na).slice(1, b0, b0 + nb).add_(tr);
    } else {
      k.slice(0, a0, a0 + na).slice(2, b0, b0 + nb).add_(b4);
    }
  };
  for (std::int64_t a0 = 0; a0 < n1; a0 += chunk) {
    const std::int64_t na = std::min(chunk, n1 - a0);
    const Tensor ja = jacobian_rows(model, x1, a0, na, params, outputs);
    // The kernel of x with itself is symmetric: blocks below the diagonal are mirrored.
    for (std::int64_t b0 = same ? a0 : 0; b0 < n2; b0 += chunk) {
      if (!theta::detail::in_parallel_region()) check_interrupt();  // tiled workers run this too
      const std::int64_t nb = std::min(chunk, n2 - b0);
      const bool diagonal = same && b0 == a0;
      const Tensor jb = diagonal ? ja : jacobian_rows(model, x2, b0, nb, params, outputs);
      const Tensor block = diagonal ? gram(ja) : matmul(ja, jb.t());  // [na O, nb O]
      const Tensor b4 = block.reshape({na, outputs, nb, outputs});
      accumulate(a0, b0, b4);
      if (same && !diagonal) accumulate(b0, a0, b4.permute({2, 3, 0, 1}));
    }
  }
}

// Keeps of a recorded forward pass only what the rules read once the cotangents are formed: each
// layer's input value and the output's. Every other activation, and what the backward pass
// would have saved, is released with the graph.
void keep_rule_inputs(Captured& c) {
  c.output = Var(c.output.value());
  for (StructuredCall& call : c.layers) {
    if (call.input.defined()) call.input = Var(call.input.value());
    call.output = Var();
  }
}

// Layer l's features for the kernel: the kept ones, or formed by its rule from the kept input
// and cotangents (a block whose factors were not compacted, paired with one whose were).
Tensor layer_features(const BlockFactors& f, std::size_t l) {
  if (f.features[l].defined()) return f.features[l];
  const StructuredCall& call = f.captured.layers[l];
  return call.rule->cotangent_features(call.input.value(), f.output_grads[l]);
}

// Adds <p1[i, a], p2[j, b]> for features p1:[n1, m, w], p2:[n2, m, w] to k:[n1, n2, m, m], or
// their sum over a = b to k:[n1, n2] with `trace`, as a rule's add_cotangent_kernel would (with
// `same`, p2 is p1: the blocks j <= i in full, an exactly symmetric trace).
void add_features_kernel(const Tensor& k, const Tensor& p1, const Tensor& p2, bool same, bool trace) {
  const std::int64_t n1 = p1.size(0), n2 = p2.size(0), m = p1.size(1), w = p1.size(2);
  if (trace) {
    const Tensor r1 = p1.reshape({n1, m * w});
    k.add_(same ? gram(r1) : matmul(r1, p2.reshape({n2, m * w}).t()));
    return;
  }
  const Tensor r1 = p1.reshape({n1 * m, w});
  nn::add_feature_gram(k, r1, same ? r1 : p2.reshape({n2 * m, w}), Tensor(), same);
}

}  // namespace

BlockFactors block_factors(nn::Module& model, const Tensor& x, const char* op, bool check_samples) {
  BlockFactors f;
  f.x = x;
  forward_captured(model, x, f.captured, op, check_samples);
  f.output_grads = output_gradients(f.captured);
  f.features.resize(f.captured.layers.size());
  return f;
}

Tensor structured_block_kernel(nn::Module& model, BlockFactors& f1, BlockFactors& f2, bool same, KernelForm form,
                               std::int64_t max_bytes, std::int64_t output, FactorUse use) {
  const bool trace = form == KernelForm::trace, one = form == KernelForm::output;
  const std::int64_t n1 = f1.rows(), n2 = f2.rows(), outputs = f1.outputs();
  THETA_ASSERT(!one || (output >= 0 && output < outputs));
  const DType dtype = f1.dtype();
  const Captured& c1 = f1.captured;
  const Captured& c2 = f2.captured;
  if (use == FactorUse::consume) {
    keep_rule_inputs(f1.captured);
    keep_rule_inputs(f2.captured);
  }
  Tensor k = trace || one ? zeros({n1, n2}, dtype) : zeros({n1, n2, outputs, outputs}, dtype);
  // Every rule adds its block; with `same`, the lower half of the full (or one output's) kernel,
  // completed once at the end.
  const Tensor target = one ? k.reshape({n1, n2, 1, 1}) : k;
  for (std::size_t l = 0; l < c1.layers.size(); ++l) {
    if (f1.features[l].defined() || f2.features[l].defined()) {
      const Tensor p1 = layer_features(f1, l), p2 = same ? p1 : layer_features(f2, l);
      const auto slot = [&](const Tensor& p) { return one ? p.slice(1, output, output + 1) : p; };
      add_features_kernel(target, slot(p1), slot(p2), same, trace);
    } else {
      const Tensor& a1 = c1.layers[l].input.value();
      const Tensor& a2 = same ? a1 : c2.layers[l].input.value();
      const nn::Cotangents& d1 = f1.output_grads[l];
      const nn::Cotangents& d2 = same ? d1 : f2.output_grads[l];
      const nn::Cotangents e1 = one ? d1.slots(output, output + 1) : d1;
      const nn::Cotangents e2 = one ? d2.slots(output, output + 1) : d2;
      c1.layers[l].rule->add_cotangent_kernel(target, a1, e1, a2, e2, same, trace, max_bytes);
    }
    if (use == FactorUse::consume) {
      f1.output_grads[l] = nn::Cotangents();
      f2.output_grads[l] = nn::Cotangents();
      f1.features[l] = Tensor();
      f2.features[l] = Tensor();
    }
  }
  if (same && !trace) nn::mirror_lower_blocks(target);
  if (trace) {
    contract_into(model, f1.x, f2.x, same, c1.other_params, outputs, max_bytes, true, k);
  } else if (!c1.other_params.empty()) {
    Tensor rest = zeros({n1, outputs, n2, outputs}, dtype);
    contract_into(model, f1.x, f2.x, same, c1.other_params, outputs, max_bytes, false, rest);
    k = k + (one ? rest.select(3, output).select(1, output) : rest.permute({0, 2, 1, 3}));
  }
  return k;
}

Tensor contraction_kernel(nn::Module& model, const Tensor& x1, const Tensor& x2, bool same, KernelForm form,
                          std::int64_t max_bytes, const char* op) {
  const bool trace = form == KernelForm::trace;
  const OutputInfo info = checked_output_info(model, x1, op);
  if (!same) checked_output_info(model, x2, op);
  const auto params = unique_parameters(model);
  const std::int64_t n1 = x1.size(0), n2 = x2.size(0), outputs = info.outputs;
  Tensor k = trace ? zeros({n1, n2}, info.dtype) : zeros({n1, outputs, n2, outputs}, info.dtype);
  contract_into(model, x1, x2, same, params, outputs, max_bytes, trace, k);
  if (!trace) k = k.permute({0, 2, 1, 3}).contiguous();
  return k;
}

bool same_view(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset() == b.offset() && a.shape() == b.shape() &&
         a.strides() == b.strides();
}

}  // namespace theta::theory::detail
