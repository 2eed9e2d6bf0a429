// The factors of a whole batch formed a block of rows at a time (Note [Compact factors]).

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include "nn/structured.hpp"
#include "tensor/ops.hpp"
#include "tensor/row_store.hpp"
#include "theory/model_probe.hpp"
#include "theory/ntk_blocks.hpp"

namespace theta::theory::detail {

// Note [Compact factors]
// The factors of a whole batch, formed at once, hold the forward graph (every activation and
// what its backward saved) and every layer's cotangents, dense where they do not factor by
// channel: for the digits CNN on 256 samples the first convolution's [n, O, 32, 8, 8] alone is
// 40 MiB, as much as most of the kernel. As samples are independent (forward_captured checks
// it), the factors of the batch are those of its blocks of rows stacked: compact_block_factors
// runs the model and the backward passes on one block of rows at a time and keeps of each block
// only what the rules read: each layer's input and cotangents (factored by channel where they
// factor, the blocks' factors brought to one u by nn::CotangentRows), or, for a layer whose rule
// prefers them (StructuredLayer::prefers_features, asked on the first block), its features: the
// first convolution's are [n, O, 32 * 10], a sixth of its cotangents. The kernel is then formed
// from the kept factors as from the whole batch's, and the features' Gram is the rule's
// weight-gradient route.
//
// Where the memory goes matters as much as how much is live (Note [Large blocks] in
// tensor/large_blocks.cpp): the kept factors are written into tensors of the whole batch
// (RowStore), allocated once, after a small first block of 8 rows, and each block's graph is
// dropped before its factors are copied in. The later blocks' temporaries then reuse one range
// above the stores, which the kernel takes over next. Kept per block and stacked at the end, the
// factors were scattered between the blocks' temporaries, and the kernel found no room in what
// they left: the digits CNN's footprint was 104.6 MiB against 99.5 now (1 thread, in-process
// resident memory), for the same peak of live bytes.

namespace {

// Rows of the first block: few, so that the temporaries it leaves below the stores are small.
constexpr std::int64_t kFirstBlockRows = 8;
// Rows of the later blocks, at least.
constexpr std::int64_t kMinBlockRows = 32;
// Bytes of cotangents per block, as the backward passes form them (and at most the caller's budget).
constexpr std::int64_t kBlockBytes = std::int64_t{8} << 20;

std::int64_t cotangent_bytes(const nn::Cotangents& d) {
  const Tensor& t = d.factored() ? d.v() : d.dense();
  return t.numel() * static_cast<std::int64_t>(dtype_size(t.dtype()));
}

}  // namespace

BlockFactors compact_block_factors(nn::Module& model, const Tensor& x, const char* op, std::int64_t max_bytes) {
  THETA_CHECK(x.dim() == 2 && x.size(0) > 0, ShapeError, op, ": inputs must be [n, d] with n > 0, got ",
              shape_str(x.shape()));
  check_finite_inputs(model, x, op);  // each block checks its rows too; an error names the whole input
  const std::int64_t n = x.size(0);
  BlockFactors out;
  out.x = x;
  RowStore outputs(n);
  std::vector<RowStore> inputs, features;
  std::vector<nn::CotangentRows> cotangents;
  std::vector<char> use_features;
  std::int64_t rows = std::min(n, kFirstBlockRows);
  for (std::int64_t begin = 0; begin < n;) {
    const std::int64_t end = std::min(n, begin + rows);
    // The model's sample independence is checked on the first block (a property of the model:
    // the later blocks' checks cost a forward pass of two samples each, 2.7 ms of the digits
    // CNN's 256-sample kernel).
    BlockFactors block = block_factors(model, x.slice(0, begin, end), op, begin == 0);
    const std::vector<StructuredCall>& calls = block.captured.layers;
    const std::size_t layers = calls.size();
    if (begin == 0) {
      out.captured.other_params = block.captured.other_params;
      for (const StructuredCall& call : calls) out.captured.layers.push_back({call.layer, call.rule, Var(), Var()});
      for (std::size_t l = 0; l < layers; ++l) {
        inputs.emplace_back(n), features.emplace_back(n), cotangents.emplace_back(n);
        use_features.push_back(calls[l].rule->prefers_features(calls[l].input.value(), block.output_grads[l]));
      }
    }
    THETA_CHECK(layers == out.captured.layers.size(), std::logic_error, op, ": the model ran ", layers,
                " structured layers on samples ", begin, "..", end - 1, " and ", out.captured.layers.size(),
                " on the samples before");
    // What the rules read, taken from the block; then the block (its forward graph and the
    // cotangents not kept) goes before the stores are written, so that they are allocated,
    // after the first block, below the later blocks' temporaries.
    std::vector<Tensor> kept_inputs(layers), kept_features(layers);
    std::vector<nn::Cotangents> kept_cotangents(layers);
    std::int64_t bytes = 0;
    for (std::size_t l = 0; l < layers; ++l) {
      THETA_CHECK(calls[l].rule == out.captured.layers[l].rule, std::logic_error, op,
                  ": the model ran different structured layers on different samples");
      bytes += cotangent_bytes(block.output_grads[l]);
      if (use_features[l]) {
        kept_features[l] = calls[l].rule->cotangent_features(calls[l].input.value(), block.output_grads[l]);
      } else {
        kept_inputs[l] = calls[l].input.value();
        kept_cotangents[l] = std::move(block.output_grads[l]);
      }
    }
    const Tensor output = block.captured.output.value();
    block = BlockFactors();
    outputs.put(begin, output);
    for (std::size_t l = 0; l < layers; ++l) {
      if (use_features[l]) {
        features[l].put(begin, kept_features[l]);
      } else {
        inputs[l].put(begin, kept_inputs[l]);
        cotangents[l].put(begin, kept_cotangents[l]);
      }
    }
    // The next blocks: rows whose cotangents take about kBlockBytes, in multiples of 16 samples
    // (the Winograd convolutions' blocks of samples), at least kMinBlockRows.
    const std::int64_t per_row = std::max<std::int64_t>(1, bytes / (end - begin));
    rows = std::max(kMinBlockRows, std::min(kBlockBytes, max_bytes) / per_row / 16 * 16);
    begin = end;
  }
  out.captured.output = Var(outputs.take());
  out.output_grads.resize(out.captured.layers.size());
  out.features.resize(out.captured.layers.size());
  for (std::size_t l = 0; l < out.captured.layers.size(); ++l) {
    if (use_features[l]) {
      out.features[l] = features[l].take();
    } else {
      out.captured.layers[l].input = Var(inputs[l].take());
      out.output_grads[l] = cotangents[l].take();
    }
  }
  return out;
}

}  // namespace theta::theory::detail
