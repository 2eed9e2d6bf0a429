// The schemes of Winograd's minimal filtering F(m x m, 3 x 3), the choice between them (Note
// [Winograd schemes and dtypes]) and the kernels' transform G g G^T with its adjoint.

#include "tensor/conv_winograd_scheme.hpp"

#include <cstdint>
#include <vector>

#include "tensor/dtype.hpp"

namespace theta::detail {

namespace {

// Lavin and Gray's F(2x2, 3x3): interpolation points 0, 1, -1 and infinity.
constexpr WinogradScheme kF2{2,
                             4,
                             {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1},
                             {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1},
                             {1, 1, 1, 0, 0, 1, -1, -1}};

// F(4x4, 3x3): points 0, 1, -1, 2, -2 and infinity.
constexpr WinogradScheme kF4{4,
                             6,
                             {4, 0, -5, 0, 1, 0,   //
                              0, -4, -4, 1, 1, 0,  //
                              0, 4, -4, -1, 1, 0,  //
                              0, -2, -1, 2, 1, 0,  //
                              0, 2, -1, -2, 1, 0,  //
                              0, 4, 0, -5, 0, 1},
                             {1.0 / 4, 0, 0,                    //
                              -1.0 / 6, -1.0 / 6, -1.0 / 6,     //
                              -1.0 / 6, 1.0 / 6, -1.0 / 6,      //
                              1.0 / 24, 1.0 / 12, 1.0 / 6,      //
                              1.0 / 24, -1.0 / 12, 1.0 / 6,     //
                              0, 0, 1},
                             {1, 1, 1, 1, 1, 0,    //
                              0, 1, -1, 2, -2, 0,  //
                              0, 1, 1, 4, 4, 0,    //
                              0, 1, -1, 8, -8, 1}};

// u:[alpha^2, C_out, C_in] <- G g G^T of every 3x3 kernel of weight:[C_out, C_in, 3, 3], in double.
// Entry by entry, so each row of u is written in order (kernel by kernel, the alpha^2 rows would
// be written at once, C_out C_in apart: the strided streams of Note [Winograd convolution]'s
// entry_stride in conv_winograd.cpp).
template <class T>
void transform_weight(const ConvGeometry& g, const WinogradScheme& s, const T* weight, T* u) {
  const std::int64_t count = g.c_out * g.c_in, al = s.alpha;
  std::vector<double> gw(static_cast<std::size_t>(count * al * 3), 0.0);  // G g: [count, alpha, 3]
  for (std::int64_t k = 0; k < count; ++k)
    for (std::int64_t i = 0; i < al; ++i)
      for (std::int64_t q = 0; q < 3; ++q) {
        double total = 0;
        for (std::int64_t p = 0; p < 3; ++p)
          total += s.g[static_cast<std::size_t>(i * 3 + p)] * static_cast<double>(weight[9 * k + p * 3 + q]);
        gw[static_cast<std::size_t>((k * al + i) * 3 + q)] = total;
      }
  for (std::int64_t i = 0; i < al; ++i)  // (G g) G^T
    for (std::int64_t j = 0; j < al; ++j) {
      T* out = u + (i * al + j) * count;
      const double* gj = s.g.data() + j * 3;
      for (std::int64_t k = 0; k < count; ++k) {
        const double* row = gw.data() + (k * al + i) * 3;
        out[k] = static_cast<T>(row[0] * gj[0] + row[1] * gj[1] + row[2] * gj[2]);
      }
    }
}

// The adjoint of transform_weight: dweight:[C_out, C_in, 3, 3] <- G^T dU G of du:[alpha^2, C_out,
// C_in], in double, reading du row by row.
template <class T>
void transform_weight_adjoint(const ConvGeometry& g, const WinogradScheme& s, const T* du, T* dweight) {
  const std::int64_t count = g.c_out * g.c_in, al = s.alpha;
  std::vector<double> ug(static_cast<std::size_t>(count * al * 3), 0.0);  // dU G: [count, alpha, 3]
  for (std::int64_t i = 0; i < al; ++i)
    for (std::int64_t j = 0; j < al; ++j) {
      const T* in = du + (i * al + j) * count;
      const double* gj = s.g.data() + j * 3;
      for (std::int64_t k = 0; k < count; ++k) {
        double* row = ug.data() + (k * al + i) * 3;
        const double v = static_cast<double>(in[k]);
        row[0] += v * gj[0];
        row[1] += v * gj[1];
        row[2] += v * gj[2];
      }
    }
  for (std::int64_t k = 0; k < count; ++k)  // G^T (dU G)
    for (std::int64_t p = 0; p < 3; ++p)
      for (std::int64_t q = 0; q < 3; ++q) {
        double total = 0;
        for (std::int64_t i = 0; i < al; ++i)
          total += s.g[static_cast<std::size_t>(i * 3 + p)] * ug[static_cast<std::size_t>((k * al + i) * 3 + q)];
        dweight[9 * k + p * 3 + q] = static_cast<T>(total);
      }
}

}  // namespace

const WinogradScheme& winograd_scheme(WinogradTiles tiles) { return tiles == WinogradTiles::f4x4 ? kF4 : kF2; }

// Note [Winograd schemes and dtypes]
// F(4x4, 3x3) needs 1.78x fewer multiply-adds than F(2x2, 3x3) and transforms fewer values per
// output, but its rounding errors are larger: its matrices hold 5, 8, 1/6 and 1/24. Measured on
// x:[64, C, 8, 8] ~ N(0, 1), w ~ N(0, 1/(9 C)), padding 1, against the float64 definition:
//   float32, C = 32:   im2col rms error 2.4e-7 (max 2.7e-6), F(2x2) 1.8e-7 (1.3e-6), F(4x4) 1.2e-6 (2.9e-5)
//   float32, C = 256:  im2col 2.5e-7 (1.8e-6), F(2x2) 4.5e-7 (2.9e-6), F(4x4) 3.0e-6 (5.8e-5)
//   float64: F(4x4) differs from im2col by up to 5e-14 (C = 32) and 1e-13 (C = 256).
// float32 is theta's dtype for training, where errors of 1e-6 of the outputs are far below the
// noise of stochastic gradients, and F(4x4) made the digits CNN's training step 15-20% faster:
// float32 takes F(4x4) whenever the output has at least 4 rows and columns (on smaller outputs
// most of a 4x4 tile is dropped). float64 is for exact work, checked to 1e-12 and below: it keeps
// F(2x2), whose rounding stays within a few ulps of the direct form's.
WinogradTiles winograd_tiles(const ConvGeometry& g, DType dtype) {
  return dtype == DType::f32 && g.h_out >= 4 && g.w_out >= 4 ? WinogradTiles::f4x4 : WinogradTiles::f2x2;
}

Tensor winograd_weight_transform(const ConvGeometry& g, const WinogradScheme& s, const Tensor& weight) {
  Tensor u = Tensor::empty({std::int64_t{s.alpha} * s.alpha, g.c_out, g.c_in}, weight.dtype());
  visit_float_dtype(weight.dtype(), [&](auto v) {
    using T = decltype(v);
    transform_weight(g, s, weight.data<T>(), u.data<T>());
  });
  return u;
}

Tensor winograd_weight_transform_adjoint(const ConvGeometry& g, const WinogradScheme& s, const Tensor& du) {
  Tensor dweight = Tensor::empty({g.c_out, g.c_in, 3, 3}, du.dtype());
  visit_float_dtype(du.dtype(), [&](auto v) {
    using T = decltype(v);
    transform_weight_adjoint(g, s, du.data<T>(), dweight.data<T>());
  });
  return dweight;
}

}  // namespace theta::detail
