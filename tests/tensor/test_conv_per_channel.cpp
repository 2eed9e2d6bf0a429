// conv2d_per_channel against conv2d run on one channel at a time (a second algorithm: im2col and
// gemm), on every SIMD kernel table, at widths that leave short runs at the end of each row and
// filter counts that leave filters outside the blocks of eight, kernels small and large;
// thread independence; errors.

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "tensor/conv.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/kernel_compare.hpp"
#include "tests/support/thread_count.hpp"
#include "tests/support/use_kernels.hpp"

using namespace theta;
using Catch::Contains;
using test::max_abs_diff;

namespace {

// out[:, c] = conv2d(x[:, c], weight[c]) channel by channel: [N, C, M, H_out, W_out].
Tensor per_channel_by_conv2d(const Tensor& x, const Tensor& weight, const Conv2dOptions& o) {
  std::vector<Tensor> channels;
  for (std::int64_t c = 0; c < x.size(1); ++c)
    channels.push_back(conv2d(x.slice(1, c, c + 1), weight.select(0, c).unsqueeze(1), o));
  return stack(channels, 1);
}

struct Case {
  Shape x, w;
  Conv2dOptions options;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const std::vector<std::pair<std::int64_t, std::int64_t>> images = {{8, 8}, {5, 7}, {4, 19}, {3, 33}};
  // 8 x 7 has more taps than the kernel keeps on its stack.
  const std::vector<std::pair<std::int64_t, std::int64_t>> kernels = {{3, 3}, {1, 1}, {2, 3}, {8, 7}};
  for (const auto& [h, w] : images)
    for (const auto& [kh, kw] : kernels)
      for (const std::int64_t filters : {1, 8, 11})
        for (const Padding mode : {Padding::zeros, Padding::circular})
          for (const std::int64_t dilation : {1, 2}) {
            const std::int64_t ph = mode == Padding::circular ? (dilation * (kh - 1)) / 2 : kh - 1;
            const std::int64_t pw = mode == Padding::circular ? (dilation * (kw - 1)) / 2 : 1;
            if (dilation * (kh - 1) + 1 > h + 2 * ph || dilation * (kw - 1) + 1 > w + 2 * pw) continue;
            out.push_back({{2, 3, h, w},
                           {3, filters, kh, kw},
                           {.padding = {ph, pw}, .dilation = {dilation, dilation}, .padding_mode = mode}});
          }
  return out;
}

}  // namespace

TEST_CASE("conv2d_per_channel equals conv2d channel by channel on every kernel table", "[conv]") {
  Rng rng(71);
  const auto all = cases();
  CHECK(all.size() > 100);
  for (const detail::KernelTable* table : test::kernel_tables()) {
    const test::UseKernels use(table);
    for (const Case& c : all) {
      INFO(table->arch_name << ": x " << shape_str(c.x) << ", weight " << shape_str(c.w) << ", padding ["
                            << c.options.padding[0] << ", " << c.options.padding[1] << "], dilation "
                            << c.options.dilation[0]
                            << (c.options.padding_mode == Padding::circular ? ", circular" : ", zeros"));
      const Tensor x = rng.normal(c.x), w = rng.normal(c.w);
      const Tensor want = per_channel_by_conv2d(x, w, c.options);
      const Tensor got = conv2d_per_channel(x, w, c.options);
      REQUIRE(got.shape() == want.shape());
      CHECK(max_abs_diff(got, want) <= 1e-13 * (1.0 + max(abs(want)).item()));
      const Tensor got32 = conv2d_per_channel(x.to(DType::f32), w.to(DType::f32), c.options);
      CHECK(got32.dtype() == DType::f32);
      CHECK(max_abs_diff(got32, want) <= 1e-5 * (1.0 + max(abs(want)).item()));
    }
  }
}

TEST_CASE("conv2d_per_channel reads non-contiguous operands and gives the same bits on any thread count", "[conv]") {
  Rng rng(72);
  const Tensor x = rng.normal({5, 4, 9, 9}).slice(3, 1, 8);  // [5, 4, 9, 7], rows not contiguous
  const Tensor w = rng.normal({6, 4, 3, 3}).transpose(0, 1);  // [4, 6, 3, 3]
  const Conv2dOptions o{.padding = {1, 1}};
  Tensor one;
  {
    const test::ThreadCount threads(1);
    one = conv2d_per_channel(x, w, o);
  }
  const test::ThreadCount threads(2);
  const Tensor two = conv2d_per_channel(x, w, o);
  CHECK(max_abs_diff(one, per_channel_by_conv2d(x, w, o)) <= 1e-12);
  CHECK(max_abs_diff(one, two) == 0.0);
  CHECK(conv2d_per_channel(zeros({0, 4, 9, 7}), w, o).shape() == Shape{0, 4, 6, 9, 7});
}

TEST_CASE("conv2d_per_channel rejects bad shapes, strides and dtypes", "[conv]") {
  const Tensor x = zeros({2, 3, 5, 5});
  CHECK_THROWS_WITH(conv2d_per_channel(x, zeros({4, 2, 3, 3})),
                    Contains("weight [C, M, kh, kw] with one bank of filters per channel") && Contains("[2, 3, 5, 5]") &&
                        Contains("[4, 2, 3, 3]"));
  CHECK_THROWS_AS(conv2d_per_channel(zeros({3, 5, 5}), zeros({3, 2, 3, 3})), ShapeError);
  CHECK_THROWS_WITH(conv2d_per_channel(x, zeros({3, 2, 3, 3}), {.stride = {2, 1}}), Contains("only stride 1"));
  CHECK_THROWS_AS(conv2d_per_channel(x, zeros({3, 2, 7, 7})), ShapeError);  // larger than the image
  CHECK_THROWS_AS(conv2d_per_channel(x, zeros({3, 2, 3, 3}, DType::f32)), DTypeError);
  CHECK_THROWS_AS(conv2d_per_channel(zeros({2, 3, 5, 5}, DType::i64), zeros({3, 2, 3, 3}, DType::i64)), DTypeError);
}
