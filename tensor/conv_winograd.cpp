// conv2d and its adjoints for 3x3 kernels with stride 1 and dilation 1 by Winograd's minimal
// filtering F(m x m, 3 x 3) (Note [Winograd convolution]).

#include "tensor/conv_winograd.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/conv_chunks.hpp"
#include "tensor/conv_winograd_scheme.hpp"
#include "tensor/conv_winograd_tiling.hpp"
#include "tensor/dtype.hpp"
#include "tensor/kernels/kernels.hpp"

namespace theta::detail {

// Note [Winograd convolution]
// A 3x3 correlation with stride 1 makes each m x m block of outputs from an alpha x alpha tile of
// the padded input, alpha = m + 2; tiles step by m, so neighbours overlap by 2 rows or columns.
// Winograd's minimal filtering F(m x m, 3 x 3) (Lavin and Gray 2016, "Fast Algorithms for
// Convolutional Neural Networks") computes the block as
//   Y = A^T [U . V] A,   U = G g G^T  (alpha x alpha, from the 3x3 kernel g),   V = B^T d B  (from the tile d)
// where . multiplies entrywise, with the constant matrices B^T (alpha x alpha), G (alpha x 3) and
// A^T (m x alpha) of the scheme (conv_winograd_scheme.cpp). Summed over input channels, each of the
// alpha^2 entries e of a tile is one gemm over channels:
//   M_e:[C_out, T] = U_e:[C_out, C_in] @ V_e:[C_in, T]      (T: the tiles of a block of samples)
// alpha^2 C_out C_in multiply-adds per m^2 outputs against im2col's 9 m^2: F(2x2, 3x3) does 16 per
// 4 outputs (2.25x fewer), F(4x4, 3x3) 36 per 16 (4x fewer), less when the outputs do not fill the
// last tile row or column (its extra outputs are computed and dropped). The transforms are small
// constant matrices applied to runs of values (the kernel table's combine_runs), O(C (T + C))
// work beside the gemms' O(C^2 T).
//
// The adjoints run the same factorisation backwards, each step the exact adjoint of a forward one:
//   input adjoint   dM = A dY A^T per tile;  dV_e = U_e^T @ dM_e;  dd = B dV B^T added into the
//                   padded tile; the padding then folded back onto the input (zeros dropped,
//                   circular rows and columns added to those they repeat)
//   weight adjoint  dU_e = sum over tiles of dM_e @ V_e^T;  dg = G^T dU G
// so conv2d's adjoint identities hold to rounding. Rounding is where the schemes differ: F(2x2)'s
// matrices hold 0, +-1 and +-1/2 and change the sums' rounding by a few units in the last place;
// F(4x4)'s hold up to 8 and 1/24, and its results carry 5-12 times the direct form's rounding
// (the trend Lavin and Gray report). winograd_tiles takes F(4x4) for float32 and
// F(2x2) for float64 (Note [Winograd schemes and dtypes] in conv_winograd_scheme.cpp).
//
// Tiles past the last output row or column read zeros (padded rows past the padded input) and
// their extra outputs are dropped; in the adjoint they receive no gradient. Samples are split into
// chunks as in Note [Convolution as gemm], and a chunk's samples into blocks of about
// kEntriesPerBlock / alpha^2 tiles (fewer when V and M, alpha^2 (C_in + C_out) T values, would
// pass kBlockBytes; a multiple of kSampleMultiple samples), whose V and M stay near the caches; the
// weight adjoint keeps one partial dU per chunk and adds them in chunk order. When a backward pass
// needs both adjoints (conv2d_grads), each block transforms dY once for both.
//
// Layout: a block of samples [s0, s0 + nb) keeps entry (r, c) of sample s's padded plane at
// ((r * columns + c) * nb + s), and tile (a, b) of sample s is column ((a tw + b) nb + s) of V and
// M. Every transform then works on runs of nb consecutive samples, loops that vectorise.

namespace {

// out[i] (+)= sum_j matrix[i][j] in[j] over runs of n, `count` times with the runs moved by
// in_step and out_step each time (the kernel table's vector code).
template <class T>
void combine(const std::vector<T>& matrix, int rows, int cols, const std::array<const T*, 6>& in,
             const std::array<T*, 6>& out, std::int64_t n, bool accumulate, std::int64_t count = 1,
             std::int64_t in_step = 0, std::int64_t out_step = 0) {
  typed_kernels<T>(kernels()).combine_runs(matrix.data(), rows, cols, in.data(), out.data(), n, accumulate, count,
                                           in_step, out_step);
}

// The distance between two entries' [C, T] matrices in a workspace: C T, plus a skew that keeps
// the entries of a tile off one cache set (with C T a power of two, as for 32 channels of 512
// tiles, the transforms' strided streams would all map to the same sets of a set-associative
// cache and evict each other: this made the transforms slower than the gemms they feed).
std::int64_t entry_stride(std::int64_t channels, std::int64_t tiles) { return channels * tiles + 16; }

// A chunk's scratch: V:[alpha^2, C_in, T], M:[alpha^2, C_out, T] (entries entry_stride apart) for
// blocks of up to T tiles; for each sample of a block a padded plane and a plane of m th x m tw
// outputs; and the transforms' intermediate rows (alpha padded rows, or alpha x m runs of T).
template <class T>
struct Workspace {
  Tensor storage;
  std::int64_t c_in = 0, c_out = 0;
  T *v = nullptr, *m = nullptr, *planes = nullptr, *rows = nullptr, *outputs = nullptr;
  Workspace(const ConvGeometry& g, const Tiling& t, DType dtype) : c_in(g.c_in), c_out(g.c_out) {
    const std::int64_t nb = t.samples_per_block, tiles = nb * t.per_sample();
    const std::int64_t nv = t.entries * entry_stride(c_in, tiles), nm = t.entries * entry_stride(c_out, tiles);
    const std::int64_t nrows = std::max(t.alpha * t.pw * nb, t.m * t.alpha * tiles);
    storage = Tensor::empty({nv + nm + (t.ph * t.pw + t.m * t.th * t.m * t.tw) * nb + nrows}, dtype);
    v = storage.data<T>();
    m = v + nv;
    planes = m + nm;
    outputs = planes + t.ph * t.pw * nb;
    rows = outputs + t.m * t.th * t.m * t.tw * nb;
  }
  // Entry e's [C_in, tiles] of V and [C_out, tiles] of M for a block of `tiles` tiles.
  T* v_entry(std::int64_t e, std::int64_t tiles) const { return v + e * entry_stride(c_in, tiles); }
  T* m_entry(std::int64_t e, std::int64_t tiles) const { return m + e * entry_stride(c_out, tiles); }
};

// A block of samples [s0, s0 + nb), laid out as in Note [Winograd convolution].
struct Block {
  std::int64_t s0 = 0, nb = 0;
  std::int64_t tiles(const Tiling& t) const { return nb * t.per_sample(); }
};

// Up to 6 run pointers: base + i * step for i < count.
template <class P>
std::array<P*, 6> runs(P* base, std::int64_t step, std::int64_t count) {
  std::array<P*, 6> r{};
  for (std::int64_t i = 0; i < count; ++i) r[static_cast<std::size_t>(i)] = base + i * step;
  return r;
}
template <class T>
std::array<const T*, 6> const_runs(const T* base, std::int64_t step, std::int64_t count) {
  return runs<const T>(base, step, count);
}

// Sample by sample, each sample's plane read or written in order (a loop over the samples inside
// would step through memory a whole sample at a time, C H W elements: with that a power of two, all
// its accesses fall into one cache set), the block side from the L1-sized buffer.

// The entries of p:[ph, pw, nb] that hold input pixels <- those of channel `channel` of the block's
// samples of x:[N, C, H, W] (the others, zeros, are the same for every channel: zero_outside).
template <class T>
void gather_padded(const ConvGeometry& g, const Tiling& t, const Block& blk, const T* x, std::int64_t channel,
                   T* p) {
  const std::int64_t nb = blk.nb, inside = static_cast<std::int64_t>(t.inside.size());
  const std::int64_t *at = t.inside.data(), *from = t.source.data();
  for (std::int64_t s = 0; s < nb; ++s) {
    const T* src = x + ((blk.s0 + s) * g.c_in + channel) * g.h * g.w;
    for (std::int64_t k = 0; k < inside; ++k) p[at[k] * nb + s] = src[from[k]];
  }
}

// The entries of p:[ph, pw, nb] that hold the padding's zeros <- 0.
template <class T>
void zero_outside(const Tiling& t, std::int64_t nb, T* p) {
  for (const std::int64_t k : t.outside) std::fill_n(p + k * nb, nb, T(0));
}

// Channel `channel` of the block's samples of x:[N, C, H, W] += the padded planes p:[ph, pw, nb]
// folded back onto the pixels their entries hold.
template <class T>
void scatter_padded(const ConvGeometry& g, const Tiling& t, const Block& blk, const T* p, std::int64_t channel,
                    T* x) {
  const std::int64_t nb = blk.nb, inside = static_cast<std::int64_t>(t.inside.size());
  const std::int64_t *at = t.inside.data(), *from = t.source.data();
  for (std::int64_t s = 0; s < nb; ++s) {
    T* dst = x + ((blk.s0 + s) * g.c_in + channel) * g.h * g.w;
    for (std::int64_t k = 0; k < inside; ++k) dst[from[k]] += p[at[k] * nb + s];
  }
}

// V = B^T d B of every tile of the padded planes p:[ph, pw, nb]: entry e of tile column j goes to
// v[e * stride + j]. `rows` is scratch for alpha padded rows.
template <class T>
void transform_input(const Tiling& t, const Matrices<T>& mat, std::int64_t nb, const T* p, T* v, std::int64_t stride,
                     T* rows) {
  const int al = static_cast<int>(t.alpha);
  const std::int64_t row = t.pw * nb;
  for (std::int64_t a = 0; a < t.th; ++a) {
    // B^T d: the rows of the tile row.
    combine(mat.bt, al, al, const_runs(p + t.m * a * row, row, al), runs(rows, row, al), row, false);
    for (std::int64_t i = 0; i < al; ++i)  // (B^T d) B: the columns of each tile, tile after tile
      combine(mat.bt, al, al, const_runs<T>(rows + i * row, nb, al),
              runs(v + i * al * stride + a * t.tw * nb, stride, al), nb, false, t.tw, t.m * nb, nb);
  }
}

// The adjoint of transform_input: p:[ph, pw, nb] (zeros on entry) += B dV B^T of every tile, dV's
// entry e of tile column j read from dv[e * stride + j].
template <class T>
void transform_input_adjoint(const Tiling& t, const Matrices<T>& mat, std::int64_t nb, const T* dv,
                             std::int64_t stride, T* p, T* rows) {
  const int al = static_cast<int>(t.alpha);
  const std::int64_t row = t.pw * nb;
  for (std::int64_t a = 0; a < t.th; ++a) {
    std::fill(rows, rows + al * row, T(0));
    for (std::int64_t i = 0; i < al; ++i)  // dV B^T: the columns of each tile, neighbours overlapping by 2
      combine(mat.b, al, al, const_runs(dv + i * al * stride + a * t.tw * nb, stride, al), runs(rows + i * row, nb, al),
              nb, true, t.tw, nb, t.m * nb);
    // B (dV B^T): the rows of the tile row.
    combine(mat.b, al, al, const_runs<T>(rows, row, al), runs(p + t.m * a * row, row, al), row, true);
  }
}

// Output channel `channel` of the block's samples of y:[N, C_out, H_out, W_out] <- A^T M A of every
// tile, M's entry e of tile column j read from m[e * stride + j]. `buffer` holds [m th, m tw, nb]
// outputs, those past the last output row or column included; `rows` holds [m, alpha, tiles].
template <class T>
void transform_output(const ConvGeometry& g, const Tiling& t, const Matrices<T>& mat, const Block& blk, const T* m,
                      std::int64_t stride, std::int64_t channel, T* buffer, T* rows, T* y) {
  const int al = static_cast<int>(t.alpha), mo = static_cast<int>(t.m);
  const std::int64_t nb = blk.nb, tiles = blk.tiles(t), row = t.m * t.tw * nb;
  for (std::int64_t j = 0; j < al; ++j)  // A^T M: every tile's m output rows, entry j of each
    combine(mat.at, mo, al, const_runs(m + j * stride, al * stride, al), runs(rows + j * tiles, al * tiles, mo), tiles,
            false);
  for (std::int64_t a = 0; a < t.th; ++a)
    for (std::int64_t x = 0; x < mo; ++x)  // (A^T M) A: the m outputs of each row, tile after tile
      combine(mat.at, mo, al, const_runs<T>(rows + x * al * tiles + a * t.tw * nb, tiles, al),
              runs(buffer + (t.m * a + x) * row, nb, mo), nb, false, t.tw, nb, t.m * nb);
  for (std::int64_t s = 0; s < nb; ++s) {
    T* dst = y + ((blk.s0 + s) * g.c_out + channel) * g.pixels();
    for (std::int64_t oy = 0; oy < g.h_out; ++oy)
      for (std::int64_t ox = 0; ox < g.w_out; ++ox) *dst++ = buffer[oy * row + ox * nb + s];
  }
}

// The outputs of buffer:[m th, m tw, nb] past the last output row or column <- 0.
template <class T>
void zero_past_edges(const ConvGeometry& g, const Tiling& t, std::int64_t nb, T* buffer) {
  const std::int64_t row = t.m * t.tw * nb;
  for (std::int64_t oy = 0; oy < g.h_out; ++oy)
    std::fill(buffer + oy * row + g.w_out * nb, buffer + (oy + 1) * row, T(0));
  std::fill(buffer + g.h_out * row, buffer + t.m * t.th * row, T(0));
}

// The adjoint of transform_output: dM = A dY A^T of every tile of output channel `channel` of the
// block's samples of dy:[N, C_out, H_out, W_out], entry e of tile column j written to
// dm[e * stride + j]. `buffer` holds [m th, m tw, nb], its outputs past the last row or column
// zeros (zero_past_edges); `rows` holds [alpha, m, tiles].
template <class T>
void transform_output_adjoint(const ConvGeometry& g, const Tiling& t, const Matrices<T>& mat, const Block& blk,
                              const T* dy, std::int64_t channel, T* dm, std::int64_t stride, T* buffer, T* rows) {
  const int al = static_cast<int>(t.alpha), mo = static_cast<int>(t.m);
  const std::int64_t nb = blk.nb, tiles = blk.tiles(t), row = t.m * t.tw * nb;
  for (std::int64_t s = 0; s < nb; ++s) {
    const T* src = dy + ((blk.s0 + s) * g.c_out + channel) * g.pixels();
    for (std::int64_t oy = 0; oy < g.h_out; ++oy)
      for (std::int64_t ox = 0; ox < g.w_out; ++ox) buffer[oy * row + ox * nb + s] = *src++;
  }
  for (std::int64_t a = 0; a < t.th; ++a)
    for (std::int64_t z = 0; z < mo; ++z)  // A dY: alpha rows of each tile's output column z, tile after tile
      combine(mat.a, al, mo, const_runs<T>(buffer + t.m * a * row + z * nb, row, mo),
              runs(rows + z * tiles + a * t.tw * nb, mo * tiles, al), nb, false, t.tw, t.m * nb, nb);
  for (std::int64_t i = 0; i < al; ++i)  // (A dY) A^T, every tile at once
    combine(mat.a, al, mo, const_runs<T>(rows + i * mo * tiles, tiles, mo), runs(dm + i * al * stride, stride, al),
            tiles, false);
}

// Runs body(workspace, chunk, block, first) over the blocks of each chunk's samples, each chunk
// with a workspace of its own; first is true for a chunk's first block.
template <class T, class Body>
void for_each_block(const ConvGeometry& g, const Tiling& t, DType dtype, Body&& body) {
  for_each_chunk(g.n, chunk_count(g.n), [&](std::int64_t chunk, std::int64_t begin, std::int64_t end) {
    Workspace<T> ws(g, t, dtype);
    for (std::int64_t s0 = begin; s0 < end; s0 += t.samples_per_block)
      body(ws, chunk, Block{s0, std::min(end - s0, t.samples_per_block)}, s0 == begin);
  });
}

// ws.v <- the transformed tiles of the block's samples of x:[N, C_in, H, W].
template <class T>
void transform_inputs(const ConvGeometry& g, const Tiling& t, const Matrices<T>& mat, const Block& blk,
                      Workspace<T>& ws, const T* x) {
  const std::int64_t tiles = blk.tiles(t);
  zero_outside(t, blk.nb, ws.planes);
  for (std::int64_t c = 0; c < g.c_in; ++c) {
    gather_padded(g, t, blk, x, c, ws.planes);
    transform_input(t, mat, blk.nb, ws.planes, ws.v + c * tiles, entry_stride(g.c_in, tiles), ws.rows);
  }
}

// ws.m <- dM of the block's samples of dy:[N, C_out, H_out, W_out].
template <class T>
void transform_output_grads(const ConvGeometry& g, const Tiling& t, const Matrices<T>& mat, const Block& blk,
                            Workspace<T>& ws, const T* dy) {
  const std::int64_t tiles = blk.tiles(t);
  zero_past_edges(g, t, blk.nb, ws.outputs);
  for (std::int64_t o = 0; o < g.c_out; ++o)
    transform_output_adjoint(g, t, mat, blk, dy, o, ws.m + o * tiles, entry_stride(g.c_out, tiles), ws.outputs,
                             ws.rows);
}

}  // namespace

bool winograd_supports(const ConvGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride == std::array<std::int64_t, 2>{1, 1} &&
         g.dilation == std::array<std::int64_t, 2>{1, 1} && g.n > 0 && g.c_in > 0 && g.c_out > 0 && g.h_out > 0 &&
         g.w_out > 0;
}

// Note [When Winograd pays]
// The transforms cost O(C_in + C_out) per tile and the gemms O(C_in C_out): with few input
// channels the output transforms dominate, and im2col's gemm over C_in 9 taps is cheaper.
// Measured on batches of 128 (forward and both adjoints, one thread, C_out 1 to 64): from 8 input
// channels on Winograd took 0.44-0.89x im2col's time in float32 (F(4x4); images 8 x 8, 16 x 16 and
// 32 x 32) and 0.64-1.02x in float64 (F(2x2), 8 x 8); with 1 to 3 input channels 0.75-3.7x (a first
// layer on one grey channel with 32 or 64 outputs: 2.3-3.7x); with 4, 0.65-1.5x depending on the
// image and C_out.
bool winograd_applies(const ConvGeometry& g) { return winograd_supports(g) && g.c_in >= kWinogradMinInputChannels; }

void winograd_conv2d(const ConvGeometry& g, const Tensor& x, const Tensor& weight, Tensor& out,
                     WinogradTiles scheme) {
  const Tiling t(g, x.dtype(), scheme);
  const Tensor u = winograd_weight_transform(g, t.scheme, weight);
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const Matrices<T> mat(t.scheme);
    const T *xp = x.data<T>(), *up = u.data<T>();
    T* op = out.data<T>();
    for_each_block<T>(g, t, x.dtype(), [&](Workspace<T>& ws, std::int64_t, const Block& blk, bool) {
      const std::int64_t tiles = blk.tiles(t);
      transform_inputs(g, t, mat, blk, ws, xp);
      for (std::int64_t e = 0; e < t.entries; ++e)  // M_e = U_e V_e
        gemm<T>(false, false, g.c_out, tiles, g.c_in, up + e * g.c_out * g.c_in, g.c_in, ws.v_entry(e, tiles), tiles,
                T(0), ws.m_entry(e, tiles), tiles);
      for (std::int64_t o = 0; o < g.c_out; ++o)
        transform_output(g, t, mat, blk, ws.m + o * tiles, entry_stride(g.c_out, tiles), o, ws.outputs, ws.rows, op);
    });
  });
}

void winograd_input_grad(const ConvGeometry& g, const Tensor& grad_out, const Tensor& weight, Tensor& dx,
                         WinogradTiles scheme) {
  winograd_adjoints(g, nullptr, grad_out, &weight, &dx, scheme);
}

Tensor winograd_weight_grad(const ConvGeometry& g, const Tensor& x, const Tensor& grad_out,
                            WinogradTiles scheme) {
  return winograd_adjoints(g, &x, grad_out, nullptr, nullptr, scheme);
}

Tensor winograd_adjoints(const ConvGeometry& g, const Tensor* x, const Tensor& grad_out, const Tensor* weight,
                         Tensor* dx, WinogradTiles scheme) {
  const Tiling t(g, grad_out.dtype(), scheme);
  const bool input_adjoint = dx != nullptr, weight_adjoint = x != nullptr;
  const Tensor u = input_adjoint ? winograd_weight_transform(g, t.scheme, *weight) : Tensor();
  // One partial dU:[alpha^2, C_out, C_in] per chunk, added in chunk order.
  std::vector<Tensor> partials(weight_adjoint ? static_cast<std::size_t>(chunk_count(g.n)) : 0);
  for (auto& p : partials) p = zeros({t.entries, g.c_out, g.c_in}, grad_out.dtype());
  visit_float_dtype(grad_out.dtype(), [&](auto v) {
    using T = decltype(v);
    const Matrices<T> mat(t.scheme);
    const T* dyp = grad_out.data<T>();
    for_each_block<T>(g, t, grad_out.dtype(), [&](Workspace<T>& ws, std::int64_t chunk, const Block& blk, bool first) {
      const std::int64_t tiles = blk.tiles(t);
      transform_output_grads(g, t, mat, blk, ws, dyp);  // dM, shared by both adjoints
      if (weight_adjoint) {
        T* du = partials[static_cast<std::size_t>(chunk)].data<T>();
        transform_inputs(g, t, mat, blk, ws, x->data<T>());
        for (std::int64_t e = 0; e < t.entries; ++e)  // dU_e += dM_e V_e^T
          gemm<T>(false, true, g.c_out, g.c_in, tiles, ws.m_entry(e, tiles), tiles, ws.v_entry(e, tiles), tiles,
                  first ? T(0) : T(1), du + e * g.c_out * g.c_in, g.c_in);
      }
      if (input_adjoint) {
        const T* up = u.data<T>();
        for (std::int64_t e = 0; e < t.entries; ++e)  // dV_e = U_e^T dM_e (V is no longer needed)
          gemm<T>(true, false, g.c_in, tiles, g.c_out, up + e * g.c_out * g.c_in, g.c_in, ws.m_entry(e, tiles), tiles,
                  T(0), ws.v_entry(e, tiles), tiles);
        for (std::int64_t c = 0; c < g.c_in; ++c) {
          std::fill(ws.planes, ws.planes + t.ph * t.pw * blk.nb, T(0));
          transform_input_adjoint(t, mat, blk.nb, ws.v + c * tiles, entry_stride(g.c_in, tiles), ws.planes, ws.rows);
          scatter_padded(g, t, blk, ws.planes, c, dx->data<T>());
        }
      }
    });
  });
  if (!weight_adjoint) return Tensor();
  for (std::size_t c = 1; c < partials.size(); ++c) partials[0].add_(partials[c]);
  return winograd_weight_transform_adjoint(g, t.scheme, partials[0]);
}

}  // namespace theta::detail
