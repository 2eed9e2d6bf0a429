#pragma once
// Internal to conv_winograd.cpp: how a convolution's samples and outputs split into Winograd tiles
// and blocks of samples, and a scheme's matrices in the element type (Note [Winograd convolution]
// in conv_winograd.cpp).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/conv_geometry.hpp"
#include "tensor/conv_winograd_scheme.hpp"
#include "tensor/dtype.hpp"

namespace theta::detail {

inline constexpr std::int64_t kEntriesPerBlock = 16 * 512;          // tile entries transformed and multiplied together
inline constexpr std::int64_t kBlockBytes = std::int64_t{8} << 20;  // bound on a block's V and M
// Blocks hold a multiple of this many samples, so the transforms' runs of samples fill whole
// vectors of every instruction set (a run's tail shorter than a vector takes a slower path through
// padded copies: 14-sample blocks of 16 x 16 images made the route slower than im2col). Images
// whose tiles would pass kBlockBytes take that many samples anyway, up to kMaxBlockBytes.
inline constexpr std::int64_t kSampleMultiple = 16;
inline constexpr std::int64_t kMaxBlockBytes = std::int64_t{64} << 20;

// A scheme's matrices in the element type, with the transposes the adjoints apply.
template <class T>
struct Matrices {
  std::vector<T> bt, b, at, a;  // B^T, B (alpha x alpha); A^T (m x alpha), A (alpha x m)
  explicit Matrices(const WinogradScheme& s) {
    const int m = s.m, al = s.alpha;
    for (int i = 0; i < al * al; ++i) bt.push_back(static_cast<T>(s.bt[static_cast<std::size_t>(i)]));
    for (int i = 0; i < al; ++i)
      for (int j = 0; j < al; ++j) b.push_back(static_cast<T>(s.bt[static_cast<std::size_t>(j * al + i)]));
    for (int i = 0; i < m * al; ++i) at.push_back(static_cast<T>(s.at[static_cast<std::size_t>(i)]));
    for (int i = 0; i < al; ++i)
      for (int j = 0; j < m; ++j) a.push_back(static_cast<T>(s.at[static_cast<std::size_t>(j * al + i)]));
  }
};

// For each of `extent` padded coordinates along an axis of `size` padded by `padding`, the input
// coordinate it holds, or -1 for a zero. Coordinates past the padded input (the last tile of an
// output that does not fill it reaches them) hold zeros in either padding mode.
inline std::vector<std::int64_t> padded_sources(std::int64_t size, std::int64_t padding, std::int64_t extent,
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

// How one convolution's outputs split into tiles of a scheme.
struct Tiling {
  const WinogradScheme& scheme;
  std::int64_t m = 0, alpha = 0, entries = 0;  // outputs per tile side, tile side, entries per tile
  std::int64_t th = 0, tw = 0;                  // tiles down and across a sample
  std::int64_t ph = 0, pw = 0;                  // the padded plane the tiles read: m th + 2 by m tw + 2
  std::int64_t samples_per_block = 1;
  // The entries r pw + c of a padded plane that hold an input pixel (inside[k], read from offset
  // source[k] of the input plane), and those that hold a zero (outside).
  std::vector<std::int64_t> inside, source, outside;

  Tiling(const ConvGeometry& g, DType dtype, WinogradTiles tiles)
      : scheme(winograd_scheme(tiles)),
        m(scheme.m),
        alpha(scheme.alpha),
        entries(alpha * alpha),
        th((g.h_out + m - 1) / m),
        tw((g.w_out + m - 1) / m),
        ph(m * th + 2),
        pw(m * tw + 2) {
    const std::int64_t bytes_per_tile = entries * (g.c_in + g.c_out) * static_cast<std::int64_t>(dtype_size(dtype));
    const std::int64_t block_tiles = std::min(kEntriesPerBlock / entries, kBlockBytes / bytes_per_tile);
    const std::int64_t bytes_per_sample = bytes_per_tile * th * tw;
    samples_per_block = block_tiles / (th * tw);
    if (samples_per_block < kSampleMultiple)  // larger images: a whole vector of samples while it fits
      samples_per_block = std::min(kSampleMultiple, kMaxBlockBytes / bytes_per_sample);
    if (samples_per_block >= kSampleMultiple) samples_per_block -= samples_per_block % kSampleMultiple;
    samples_per_block = std::max<std::int64_t>(1, samples_per_block);
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

}  // namespace theta::detail
