// conv2d and its adjoints for 3x3 kernels with stride 1 and dilation 1 by Winograd's minimal
// filtering F(2x2, 3x3) (Note [Winograd convolution]).

#include "tensor/conv_winograd.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "tensor/conv_chunks.hpp"
#include "tensor/dtype.hpp"
#include "tensor/kernels/kernels.hpp"

namespace theta::detail {

// Note [Winograd convolution]
// A 3x3 correlation with stride 1 makes each 2x2 block of outputs from a 4x4 tile of the padded
// input; tiles step by 2, so neighbours overlap by 2 rows or columns. Winograd's minimal filtering
// F(2x2, 3x3) (Lavin and Gray 2016, "Fast Algorithms for Convolutional Neural Networks") computes
// the block as
//   Y = A^T [U . V] A,   U = G g G^T  (4x4, from the 3x3 kernel g),   V = B^T d B  (4x4, from the tile d)
// where . multiplies entrywise and
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// Summed over input channels, each of the 16 entries e of the 4x4 tile is one gemm over channels:
//   M_e:[C_out, T] = U_e:[C_out, C_in] @ V_e:[C_in, T]      (T: the tiles of a block of samples)
// 16 C_out C_in multiply-adds per 2x2 outputs against im2col's 36: the gemms shrink 2.25x (less for
// odd output sizes, whose last tile row or column computes outputs that are dropped). The
// transforms only add and halve, O(C (T + C)) work beside the gemms' O(C^2 T).
//
// The adjoints run the same factorisation backwards, each step the exact adjoint of a forward one:
//   input adjoint   dM = A dY A^T per tile;  dV_e = U_e^T @ dM_e;  dd = B dV B^T added into the
//                   padded tile; the padding then folded back onto the input (zeros dropped,
//                   circular rows and columns added to those they repeat)
//   weight adjoint  dU_e = sum over tiles of dM_e @ V_e^T;  dg = G^T dU G
// so conv2d's adjoint identities hold to rounding. The entries of A, B and G are 0, +-1 and +-1/2,
// exact in binary; the results differ from the definition by rounding alone (a few units in the
// last place of the sums; the tests hold both routes to the seven-loop definition).
//
// Tiles past an odd output's last row or column read zeros (padded rows past the padded input) and
// their extra outputs are dropped; in the adjoint they receive no gradient. Samples are split into
// chunks as in Note [Convolution as gemm], and a chunk's samples into blocks of about
// kTilesPerBlock tiles, whose V and M (16 (C_in + C_out) T entries) stay near the caches; the
// weight adjoint keeps one partial dU per chunk and adds them in chunk order.

namespace {

constexpr std::int64_t kEntries = 16;         // entries of a transformed 4x4 tile
constexpr std::int64_t kTilesPerBlock = 512;  // tiles transformed and multiplied together

// For each of `extent` padded coordinates along an axis of `size` padded by `padding`, the input
// coordinate it holds, or -1 for a zero. Coordinates past the padded input (the last tile of an odd
// output reaches one) hold zeros in either padding mode.
std::vector<std::int64_t> padded_sources(std::int64_t size, std::int64_t padding, std::int64_t extent,
                                         bool circular) {
  std::vector<std::int64_t> table(static_cast<std::size_t>(extent), -1);
  for (std::int64_t r = 0; r < std::min(extent, size + 2 * padding); ++r) {
    const std::int64_t i = r - padding;
    if (circular)
      table[static_cast<std::size_t>(r)] = ((i % size) + size) % size;
    else if (i >= 0 && i < size)
      table[static_cast<std::size_t>(r)] = i;
  }
  return table;
}

// How one convolution's outputs split into tiles.
struct Tiling {
  std::int64_t th = 0, tw = 0;           // tiles down and across a sample
  std::int64_t ph = 0, pw = 0;           // the padded plane the tiles read: 2 th + 2 by 2 tw + 2
  std::int64_t samples_per_block = 1;
  // The entries r pw + c of a padded plane that hold an input pixel (inside[k], read from offset
  // source[k] of the input plane), and those that hold a zero (outside).
  std::vector<std::int64_t> inside, source, outside;

  explicit Tiling(const ConvGeometry& g)
      : th((g.h_out + 1) / 2),
        tw((g.w_out + 1) / 2),
        ph(2 * th + 2),
        pw(2 * tw + 2),
        samples_per_block(std::max<std::int64_t>(1, kTilesPerBlock / (th * tw))) {
    const std::vector<std::int64_t> rows = padded_sources(g.h, g.padding[0], ph, g.circular);
    const std::vector<std::int64_t> cols = padded_sources(g.w, g.padding[1], pw, g.circular);
    for (std::int64_t r = 0; r < ph; ++r)
      for (std::int64_t c = 0; c < pw; ++c) {
        const std::int64_t iy = rows[static_cast<std::size_t>(r)], ix = cols[static_cast<std::size_t>(c)];
        if (iy < 0 || ix < 0) {
          outside.push_back(r * pw + c);
        } else {
          inside.push_back(r * pw + c);
          source.push_back(iy * g.w + ix);
        }
      }
  }

  std::int64_t per_sample() const { return th * tw; }
};

// The distance between two entries' [C, T] matrices in a workspace: C T, plus a skew that keeps
// the 16 entries of a tile off one cache set (with C T a power of two, as for 32 channels of 512
// tiles, the transforms' 16 strided streams would all map to the same sets of a set-associative
// cache and evict each other: this made the transforms slower than the gemms they feed).
std::int64_t entry_stride(std::int64_t channels, std::int64_t tiles) { return channels * tiles + 16; }

// A chunk's scratch: V:[16, C_in, T], M:[16, C_out, T] (entries entry_stride apart) for blocks of
// up to T tiles, and for each sample of a block a padded plane, four rows of it and a plane of
// 2 th x 2 tw outputs.
template <class T>
struct Workspace {
  Tensor storage;
  std::int64_t c_in = 0, c_out = 0;
  T *v = nullptr, *m = nullptr, *planes = nullptr, *rows = nullptr, *outputs = nullptr;
  Workspace(const ConvGeometry& g, const Tiling& t, DType dtype) : c_in(g.c_in), c_out(g.c_out) {
    const std::int64_t nb = t.samples_per_block, tiles = nb * t.per_sample();
    const std::int64_t nv = kEntries * entry_stride(c_in, tiles), nm = kEntries * entry_stride(c_out, tiles);
    storage = Tensor::empty({nv + nm + ((t.ph + 4) * t.pw + 4 * t.th * t.tw) * nb}, dtype);
    v = storage.data<T>();
    m = v + nv;
    planes = m + nm;
    rows = planes + t.ph * t.pw * nb;
    outputs = rows + 4 * t.pw * nb;
  }
  // Entry e's [C_in, tiles] of V and [C_out, tiles] of M for a block of `tiles` tiles.
  T* v_entry(std::int64_t e, std::int64_t tiles) const { return v + e * entry_stride(c_in, tiles); }
  T* m_entry(std::int64_t e, std::int64_t tiles) const { return m + e * entry_stride(c_out, tiles); }
};

// One block of samples [s0, s0 + nb) laid out for the transforms: a plane of the block holds entry
// (r, c) of sample s at ((r * columns + c) * nb + s), and tile (a, b) of sample s is column
// ((a tw + b) nb + s) of V and M. Every transform then works on runs of nb consecutive samples,
// loops the compiler turns into vector code.
struct Block {
  std::int64_t s0 = 0, nb = 0;
  std::int64_t tiles(const Tiling& t) const { return nb * t.per_sample(); }
};

// Runs one WinogradStep of the kernel table (vector code for this CPU) over runs of n.
template <class T>
void step(WinogradStep which, std::initializer_list<const T*> in, std::initializer_list<T*> out, std::int64_t n) {
  typed_kernels<T>(kernels()).winograd(which, in.begin(), out.begin(), n);
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
// v[e * stride + j]. `rows` is scratch for four padded rows.
template <class T>
void transform_input(const Tiling& t, std::int64_t nb, const T* p, T* v, std::int64_t stride, T* rows) {
  const std::int64_t row = t.pw * nb;
  for (std::int64_t a = 0; a < t.th; ++a) {
    const T* d = p + 2 * a * row;
    // B^T d: the rows of the tile row.
    step<T>(WinogradStep::input, {d, d + row, d + 2 * row, d + 3 * row},
            {rows, rows + row, rows + 2 * row, rows + 3 * row}, row);
    for (std::int64_t u = 0; u < 4; ++u)  // (B^T d) B: the columns of each tile
      for (std::int64_t b = 0; b < t.tw; ++b) {
        const T* q = rows + u * row + 2 * b * nb;
        T* o = v + 4 * u * stride + (a * t.tw + b) * nb;
        step<T>(WinogradStep::input, {q, q + nb, q + 2 * nb, q + 3 * nb},
                {o, o + stride, o + 2 * stride, o + 3 * stride}, nb);
      }
  }
}

// The adjoint of transform_input: p:[ph, pw, nb] (zeros on entry) += B dV B^T of every tile, dV's
// entry e of tile column j read from dv[e * stride + j].
template <class T>
void transform_input_adjoint(const Tiling& t, std::int64_t nb, const T* dv, std::int64_t stride, T* p, T* rows) {
  const std::int64_t row = t.pw * nb;
  for (std::int64_t a = 0; a < t.th; ++a) {
    std::fill(rows, rows + 4 * row, T(0));
    for (std::int64_t u = 0; u < 4; ++u)  // dV B^T: the columns of each tile; neighbours overlap by 2
      for (std::int64_t b = 0; b < t.tw; ++b) {
        const T* i = dv + 4 * u * stride + (a * t.tw + b) * nb;
        T* q = rows + u * row + 2 * b * nb;
        step<T>(WinogradStep::input_adjoint, {i, i + stride, i + 2 * stride, i + 3 * stride},
                {q, q + nb, q + 2 * nb, q + 3 * nb}, nb);
      }
    T* d = p + 2 * a * row;  // B (dV B^T): the rows of the tile row
    step<T>(WinogradStep::input_adjoint, {rows, rows + row, rows + 2 * row, rows + 3 * row},
            {d, d + row, d + 2 * row, d + 3 * row}, row);
  }
}

// Output channel `channel` of the block's samples of y:[N, C_out, H_out, W_out] <- A^T M A of every
// tile, M's entry e of tile column j read from m[e * stride + j]. `buffer` holds [2 th, 2 tw, nb]
// outputs, those past an odd edge included; `rows` holds [2, 4, nb].
template <class T>
void transform_output(const ConvGeometry& g, const Tiling& t, const Block& blk, const T* m, std::int64_t stride,
                      std::int64_t channel, T* buffer, T* rows, T* y) {
  const std::int64_t nb = blk.nb, row = 2 * t.tw * nb;
  T *r0 = rows, *r1 = rows + 4 * nb;
  for (std::int64_t a = 0; a < t.th; ++a)
    for (std::int64_t b = 0; b < t.tw; ++b) {
      const T* i = m + (a * t.tw + b) * nb;
      for (std::int64_t v = 0; v < 4; ++v)  // A^T M: the tile's two output rows
        step<T>(WinogradStep::output,
                {i + v * stride, i + (4 + v) * stride, i + (8 + v) * stride, i + (12 + v) * stride},
                {r0 + v * nb, r1 + v * nb}, nb);
      T* top = buffer + 2 * a * row + 2 * b * nb;
      for (T* r : {r0, r1}) {  // (A^T M) A: their two columns
        step<T>(WinogradStep::output, {r, r + nb, r + 2 * nb, r + 3 * nb}, {top, top + nb}, nb);
        top += row;
      }
    }
  for (std::int64_t s = 0; s < nb; ++s) {
    T* dst = y + ((blk.s0 + s) * g.c_out + channel) * g.pixels();
    for (std::int64_t oy = 0; oy < g.h_out; ++oy)
      for (std::int64_t ox = 0; ox < g.w_out; ++ox) *dst++ = buffer[oy * row + ox * nb + s];
  }
}

// The outputs of buffer:[2 th, 2 tw, nb] past an odd edge <- 0: the column past an odd W_out, the
// row past an odd H_out.
template <class T>
void zero_past_edges(const ConvGeometry& g, const Tiling& t, std::int64_t nb, T* buffer) {
  const std::int64_t row = 2 * t.tw * nb;
  if (g.w_out % 2 == 1)
    for (std::int64_t oy = 0; oy < g.h_out; ++oy) std::fill_n(buffer + oy * row + g.w_out * nb, nb, T(0));
  if (g.h_out % 2 == 1) std::fill_n(buffer + g.h_out * row, row, T(0));
}

// The adjoint of transform_output: dM = A dY A^T of every tile of output channel `channel` of the
// block's samples of dy:[N, C_out, H_out, W_out], entry e of tile column j written to
// dm[e * stride + j]. `buffer` holds [2 th, 2 tw, nb], its outputs past an odd edge zeros
// (zero_past_edges); `rows` holds [4, 2, nb].
template <class T>
void transform_output_adjoint(const ConvGeometry& g, const Tiling& t, const Block& blk, const T* dy,
                              std::int64_t channel, T* dm, std::int64_t stride, T* buffer, T* rows) {
  const std::int64_t nb = blk.nb, row = 2 * t.tw * nb;
  for (std::int64_t s = 0; s < nb; ++s) {
    const T* src = dy + ((blk.s0 + s) * g.c_out + channel) * g.pixels();
    for (std::int64_t oy = 0; oy < g.h_out; ++oy)
      for (std::int64_t ox = 0; ox < g.w_out; ++ox) buffer[oy * row + ox * nb + s] = *src++;
  }
  for (std::int64_t a = 0; a < t.th; ++a)
    for (std::int64_t b = 0; b < t.tw; ++b) {
      const T* top = buffer + 2 * a * row + 2 * b * nb;
      for (std::int64_t x = 0; x < 2; ++x) {  // A dY: four rows q_u of the tile's column x
        T* q = rows + x * nb;
        step<T>(WinogradStep::output_adjoint, {top + x * nb, top + row + x * nb},
                {q, q + 2 * nb, q + 4 * nb, q + 6 * nb}, nb);
      }
      T* o = dm + (a * t.tw + b) * nb;
      for (std::int64_t u = 0; u < 4; ++u) {  // (A dY) A^T
        const T* q = rows + 2 * u * nb;
        T* e = o + 4 * u * stride;
        step<T>(WinogradStep::output_adjoint, {q, q + nb}, {e, e + stride, e + 2 * stride, e + 3 * stride}, nb);
      }
    }
}

// u:[16, C_out, C_in] <- G g G^T of every 3x3 kernel of weight:[C_out, C_in, 3, 3].
template <class T>
void transform_weight(const ConvGeometry& g, const T* weight, T* u) {
  const std::int64_t stride = g.c_out * g.c_in;
  for (std::int64_t k = 0; k < stride; ++k) {
    const T* w = weight + 9 * k;
    T s[4][3];  // G g
    for (std::int64_t j = 0; j < 3; ++j) {
      s[0][j] = w[j];
      s[1][j] = (w[j] + w[3 + j] + w[6 + j]) / 2;
      s[2][j] = (w[j] - w[3 + j] + w[6 + j]) / 2;
      s[3][j] = w[6 + j];
    }
    for (std::int64_t r = 0; r < 4; ++r) {  // (G g) G^T
      u[(4 * r) * stride + k] = s[r][0];
      u[(4 * r + 1) * stride + k] = (s[r][0] + s[r][1] + s[r][2]) / 2;
      u[(4 * r + 2) * stride + k] = (s[r][0] - s[r][1] + s[r][2]) / 2;
      u[(4 * r + 3) * stride + k] = s[r][2];
    }
  }
}

// The adjoint of transform_weight: dweight:[C_out, C_in, 3, 3] <- G^T dU G of du:[16, C_out, C_in].
template <class T>
void transform_weight_adjoint(const ConvGeometry& g, const T* du, T* dweight) {
  const std::int64_t stride = g.c_out * g.c_in;
  for (std::int64_t k = 0; k < stride; ++k) {
    T s[3][4];  // G^T dU
    for (std::int64_t c = 0; c < 4; ++c) {
      const T d0 = du[c * stride + k], d1 = du[(4 + c) * stride + k];
      const T d2 = du[(8 + c) * stride + k], d3 = du[(12 + c) * stride + k];
      s[0][c] = d0 + (d1 + d2) / 2;
      s[1][c] = (d1 - d2) / 2;
      s[2][c] = (d1 + d2) / 2 + d3;
    }
    T* w = dweight + 9 * k;
    for (std::int64_t i = 0; i < 3; ++i) {  // (G^T dU) G
      w[3 * i] = s[i][0] + (s[i][1] + s[i][2]) / 2;
      w[3 * i + 1] = (s[i][1] - s[i][2]) / 2;
      w[3 * i + 2] = (s[i][1] + s[i][2]) / 2 + s[i][3];
    }
  }
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
void transform_inputs(const ConvGeometry& g, const Tiling& t, const Block& blk, Workspace<T>& ws, const T* x) {
  const std::int64_t tiles = blk.tiles(t);
  for (std::int64_t c = 0; c < g.c_in; ++c) {
    if (c == 0) zero_outside(t, blk.nb, ws.planes);
    gather_padded(g, t, blk, x, c, ws.planes);
    transform_input(t, blk.nb, ws.planes, ws.v + c * tiles, entry_stride(g.c_in, tiles), ws.rows);
  }
}

// ws.m <- dM of the block's samples of dy:[N, C_out, H_out, W_out].
template <class T>
void transform_output_grads(const ConvGeometry& g, const Tiling& t, const Block& blk, Workspace<T>& ws,
                            const T* dy) {
  const std::int64_t tiles = blk.tiles(t);
  zero_past_edges(g, t, blk.nb, ws.outputs);
  for (std::int64_t o = 0; o < g.c_out; ++o)
    transform_output_adjoint(g, t, blk, dy, o, ws.m + o * tiles, entry_stride(g.c_out, tiles), ws.outputs, ws.rows);
}

Tensor transformed_weight(const ConvGeometry& g, const Tensor& weight) {
  Tensor u = Tensor::empty({kEntries, g.c_out, g.c_in}, weight.dtype());
  visit_float_dtype(weight.dtype(), [&](auto v) {
    using T = decltype(v);
    transform_weight(g, weight.data<T>(), u.data<T>());
  });
  return u;
}

}  // namespace

bool winograd_applies(const ConvGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.stride == std::array<std::int64_t, 2>{1, 1} &&
         g.dilation == std::array<std::int64_t, 2>{1, 1} && g.n > 0 && g.c_in > 0 && g.c_out > 0 && g.h_out > 0 &&
         g.w_out > 0;
}

void winograd_conv2d(const ConvGeometry& g, const Tensor& x, const Tensor& weight, Tensor& out) {
  const Tiling t(g);
  const Tensor u = transformed_weight(g, weight);
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T *xp = x.data<T>(), *up = u.data<T>();
    T* op = out.data<T>();
    for_each_block<T>(g, t, x.dtype(), [&](Workspace<T>& ws, std::int64_t, const Block& blk, bool) {
      const std::int64_t tiles = blk.tiles(t);
      transform_inputs(g, t, blk, ws, xp);
      for (std::int64_t e = 0; e < kEntries; ++e)  // M_e = U_e V_e
        gemm<T>(false, false, g.c_out, tiles, g.c_in, up + e * g.c_out * g.c_in, g.c_in, ws.v_entry(e, tiles), tiles,
                T(0), ws.m_entry(e, tiles), tiles);
      for (std::int64_t o = 0; o < g.c_out; ++o)
        transform_output(g, t, blk, ws.m + o * tiles, entry_stride(g.c_out, tiles), o, ws.outputs, ws.rows, op);
    });
  });
}

void winograd_input_grad(const ConvGeometry& g, const Tensor& grad_out, const Tensor& weight, Tensor& dx) {
  const Tiling t(g);
  const Tensor u = transformed_weight(g, weight);
  visit_float_dtype(grad_out.dtype(), [&](auto v) {
    using T = decltype(v);
    const T *dyp = grad_out.data<T>(), *up = u.data<T>();
    T* dxp = dx.data<T>();
    for_each_block<T>(g, t, dx.dtype(), [&](Workspace<T>& ws, std::int64_t, const Block& blk, bool) {
      const std::int64_t tiles = blk.tiles(t);
      transform_output_grads(g, t, blk, ws, dyp);
      for (std::int64_t e = 0; e < kEntries; ++e)  // dV_e = U_e^T dM_e
        gemm<T>(true, false, g.c_in, tiles, g.c_out, up + e * g.c_out * g.c_in, g.c_in, ws.m_entry(e, tiles), tiles,
                T(0), ws.v_entry(e, tiles), tiles);
      for (std::int64_t c = 0; c < g.c_in; ++c) {
        std::fill(ws.planes, ws.planes + t.ph * t.pw * blk.nb, T(0));
        transform_input_adjoint(t, blk.nb, ws.v + c * tiles, entry_stride(g.c_in, tiles), ws.planes, ws.rows);
        scatter_padded(g, t, blk, ws.planes, c, dxp);
      }
    });
  });
}

Tensor winograd_weight_grad(const ConvGeometry& g, const Tensor& x, const Tensor& grad_out) {
  const Tiling t(g);
  // One partial dU:[16, C_out, C_in] per chunk, added in chunk order.
  std::vector<Tensor> partials(static_cast<std::size_t>(chunk_count(g.n)));
  for (auto& p : partials) p = zeros({kEntries, g.c_out, g.c_in}, x.dtype());
  Tensor dweight = Tensor::empty({g.c_out, g.c_in, 3, 3}, x.dtype());
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T *xp = x.data<T>(), *dyp = grad_out.data<T>();
    for_each_block<T>(g, t, x.dtype(), [&](Workspace<T>& ws, std::int64_t chunk, const Block& blk, bool first) {
      const std::int64_t tiles = blk.tiles(t);
      T* du = partials[static_cast<std::size_t>(chunk)].data<T>();
      transform_inputs(g, t, blk, ws, xp);
      transform_output_grads(g, t, blk, ws, dyp);
      for (std::int64_t e = 0; e < kEntries; ++e)  // dU_e += dM_e V_e^T
        gemm<T>(false, true, g.c_out, g.c_in, tiles, ws.m_entry(e, tiles), tiles, ws.v_entry(e, tiles), tiles,
                first ? T(0) : T(1), du + e * g.c_out * g.c_in, g.c_in);
    });
    for (std::size_t c = 1; c < partials.size(); ++c) partials[0].add_(partials[c]);
    transform_weight_adjoint(g, partials[0].data<T>(), dweight.data<T>());
  });
  return dweight;
}

}  // namespace theta::detail
