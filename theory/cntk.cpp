// The analytic convolutional NNGP and NTK (CNTK): the per-image self-covariances, the dynamic
// programme for one pair of images, and the loop over pairs.

#include "theory/cntk.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "theory/checks.hpp"
#include "theory/cntk_kernels.hpp"
#include "theory/ntk_blocks.hpp"

namespace theta::theory {

// Note [CNTK recursion]
// For one pair of images (x, x') and pixels p, q, with taps t over the k x k window and
// L = conv_layers:
//   Sigma^1_pq = sigma_w^2 / (C0 k^2) sum_t sum_c x_{c, p+t} x'_{c, q+t} + sigma_b^2,  Theta^1 = Sigma^1;
// then for h = 1 .. L - 1, with K and Kdot the ReLU expectations E[relu(u) relu(v)] and
// E[relu'(u) relu'(v)] for (u, v) ~ N(0, [[Sigma^h(x, x)_pp, Sigma^h_pq], [., Sigma^h(x', x')_qq]]):
//   Sigma^{h+1}_pq = sigma_w^2 / k^2 sum_t K_{p+t, q+t} + sigma_b^2,
//   Theta^{h+1}_pq = sigma_w^2 / k^2 sum_t (Theta^h Kdot)_{p+t, q+t} + Sigma^{h+1}_pq.
// A tap outside the image contributes 0 with Padding::zeros and wraps with Padding::circular.
// The readout takes K and Kdot from Sigma^L and averages over the pixel pairs it sees: all (p, q)
// for the global average, the diagonal (p, p) for flatten:
//   NNGP = sigma_w^2 mean K + sigma_b^2,  NTK = NNGP + sigma_w^2 mean (Theta^L Kdot).
// With the arc-cosine formulas, r = sqrt(Sigma(x, x)_pp Sigma(x', x')_qq), c = Sigma_pq / r and
// angle = acos(c): K = r (sin(angle) + (pi - angle) c) / (2 pi), Kdot = (pi - angle) / (2 pi).
// On 1 x 1 images with k = 1 (or any k with circular padding) this is analytic_ntk's ReLU
// recursion with conv_layers + 1 linear layers. A pixel whose self-covariance is 0 (an all-zero
// patch without bias) gives K = 0 and Theta Kdot = 0, as in the exact kernel (Theta = 0 there).
// The angle comes from acos of the clamped cosine: where two patches are collinear but their
// rounded covariances are not, the angle is ~1e-8 instead of 0 and Kdot is off by ~1e-9
// relative. Identical patches still see c = 1 exactly (Note [Exact self-covariances]).

// Note [Padded pixel grid]
// Images are stored on a grid padded by r = k / 2 on every side, Hp = H + 2r by Wp = W + 2r,
// flattened to Pp = Hp Wp positions; pixel (i, j) sits at (i + r) Wp + (j + r). A tap (di, dj)
// is then a shift by di Wp + dj, and for a pixel pair a shift of the pair array [Pp, Pp] by
// (di Wp + dj)(Pp + 1): every tap sum is a sum of shifted contiguous runs, with no bounds checks.
// The halo holds zeros (Padding::zeros) or copies of the pixels it wraps to (Padding::circular,
// refreshed after every layer). The runs cover the positions from the first interior pixel to the
// last (or each pixel row on its own, when that takes fewer vectors), rounded up to whole
// vectors, so they include halo positions; there the self-covariance array holds 0, which makes
// K and Theta Kdot 0 (the zero halo of the next layer), and the sums of the readout see only
// interior pixels. Positions no run covers keep their zeros (or wrapped copies). Arrays carry a
// zero tail so the rounded runs and their shifted reads stay inside them.

// Note [Exact self-covariances]
// The self-covariances Sigma^h(x, x)_pp are computed once per image by the same vector loops, in
// the same order, as the pair programme computes the diagonal entries Sigma^h(x, x')_pp when
// x' = x: the Gram products sum channels in order, the tap sums add taps in order from 0, and
// the ReLU expectations are one vector function (Note [CNTK vector loops] in cntk_kernels.hpp).
// So the kernel of an image with itself sees Sigma_pp equal to the self-covariances to the bit,
// cosines of exactly 1, angles of exactly 0, and no sqrt(eps) loss on the diagonal.

namespace {

constexpr const char* kOp = "analytic_cntk";

std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// The padded grid of Note [Padded pixel grid] and the index sets every loop needs.
struct Grid {
  std::int64_t channels = 0, height = 0, width = 0, pixels = 0;  // C, H, W, P = H W
  std::int64_t radius = 0, padded = 0;                           // r, Pp
  std::int64_t begin = 0, end = 0;                               // the run [first interior pixel, rounded-up end)
  std::vector<std::pair<std::int64_t, std::int64_t>> runs;       // (start, length): the same pixels in fewer vectors
  std::int64_t row_length = 0;          // padded images and 1-D arrays: Pp rounded up plus a tail
  std::int64_t gram_length = 0;         // Gram rows are computed over [0, gram_length)
  std::int64_t pair_length = 0;         // [Pp, Pp] pair arrays plus a tail
  std::vector<std::int64_t> taps;       // shifts of 1-D arrays
  std::vector<std::int64_t> pair_taps;  // shifts of pair arrays
  std::vector<std::int64_t> interior;   // padded positions of the pixels, in order
  std::vector<std::int64_t> halo;       // the other positions in [0, Pp)
  std::vector<std::int64_t> source;     // the interior position each position wraps to
  std::vector<char> is_interior;        // per position in [0, row_length)
  bool circular = false;
};

Grid make_grid(const Shape& shape, const CntkOptions& options, std::int64_t vector_width) {
  Grid g;
  g.channels = shape[1], g.height = shape[2], g.width = shape[3], g.pixels = g.height * g.width;
  g.radius = options.kernel_size / 2;
  g.circular = options.padding == Padding::circular;
  const std::int64_t r = g.radius, hp = g.height + 2 * r, wp = g.width + 2 * r;
  g.padded = hp * wp;
  const std::int64_t first = r * wp + r, last = (g.height - 1 + r) * wp + (g.width - 1 + r);
  g.begin = first;
  g.end = first + round_up(last + 1 - first, vector_width);
  // One run per image row when that needs fewer vectors than the whole span (8 of 10 for 8x8
  // images with 3x3 filters in vectors of 8): the halo between rows is then skipped.
  const std::int64_t row_run = round_up(g.width, vector_width);
  if (row_run * g.height < g.end - g.begin) {
    for (std::int64_t i = 0; i < g.height; ++i) g.runs.emplace_back((i + r) * wp + r, row_run);
  } else {
    g.runs.emplace_back(g.begin, g.end - g.begin);
  }
  g.gram_length = round_up(g.padded, vector_width);
  g.row_length = g.gram_length + 2 * vector_width;
  g.pair_length = g.padded * g.padded + g.row_length;
  for (std::int64_t di = -r; di <= r; ++di)
    for (std::int64_t dj = -r; dj <= r; ++dj) {
      g.taps.push_back(di * wp + dj);
      g.pair_taps.push_back((di * wp + dj) * (g.padded + 1));
    }
  g.is_interior.assign(static_cast<std::size_t>(g.row_length), 0);
  g.source.resize(static_cast<std::size_t>(g.padded));
  const auto wrap = [](std::int64_t i, std::int64_t n) { return ((i % n) + n) % n; };
  for (std::int64_t i = 0; i < hp; ++i)
    for (std::int64_t j = 0; j < wp; ++j) {
      const std::int64_t pos = i * wp + j;
      const bool inside = i >= r && i < r + g.height && j >= r && j < r + g.width;
      g.is_interior[static_cast<std::size_t>(pos)] = inside ? 1 : 0;
      (inside ? g.interior : g.halo).push_back(pos);
      g.source[static_cast<std::size_t>(pos)] = (wrap(i - r, g.height) + r) * wp + wrap(j - r, g.width) + r;
    }
  return g;
}

// x:[n, C, H, W] float64 -> [n, C, row_length]: each channel on the padded grid, its halo zero
// or wrapped, its tail zero.
std::vector<double> padded_images(const Tensor& x, const Grid& g) {
  const Tensor c = x.contiguous();
  const double* src = c.data<double>();
  const std::int64_t planes = x.size(0) * g.channels;
  std::vector<double> out(static_cast<std::size_t>(planes * g.row_length), 0.0);
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    double* dst = out.data() + plane * g.row_length;
    const double* image = src + plane * g.pixels;
    for (std::size_t k = 0; k < g.interior.size(); ++k) dst[g.interior[k]] = image[k];
    if (g.circular)
      for (const std::int64_t pos : g.halo) dst[pos] = dst[g.source[static_cast<std::size_t>(pos)]];
  }
  return out;
}

void wrap_row(double* a, const Grid& g) {
  for (const std::int64_t pos : g.halo) a[pos] = a[g.source[static_cast<std::size_t>(pos)]];
}

// The halo of a pair array from the entries it wraps to: first the halo columns of interior
// rows, then whole halo rows.
void wrap_pairs(double* a, const Grid& g) {
  for (const std::int64_t row : g.interior) wrap_row(a + row * g.padded, g);
  for (const std::int64_t row : g.halo)
    std::memcpy(a + row * g.padded, a + g.source[static_cast<std::size_t>(row)] * g.padded,
                static_cast<std::size_t>(g.padded) * sizeof(double));
}

struct Scales {
  double first = 0.0;  // sigma_w^2 / (C0 k^2)
  double next = 0.0;   // sigma_w^2 / k^2
  double bias = 0.0;   // sigma_b^2
  double w2 = 0.0;     // sigma_w^2
};

// Sigma^h(x, x)_pp for h = 1 .. L of every image: [n, L, row_length], 0 off the interior
// (Note [Exact self-covariances]).
std::vector<double> self_covariances(const std::vector<double>& images, std::int64_t n, const Grid& g,
                                     std::int64_t layers, const Scales& s, const detail::CntkKernelTable& kern) {
  const std::int64_t len = g.row_length, run = g.end - g.begin;
  const auto taps = static_cast<std::int64_t>(g.taps.size());
  std::vector<double> out(static_cast<std::size_t>(n * layers * len), 0.0);
  std::vector<double> k(static_cast<std::size_t>(len), 0.0), unused(static_cast<std::size_t>(len), 0.0);
  const auto clear_halo = [&](double* d) {
    for (std::int64_t pos = g.begin; pos < g.end; ++pos)
      if (!g.is_interior[static_cast<std::size_t>(pos)]) d[pos] = 0.0;
  };
  for (std::int64_t i = 0; i < n; ++i) {
    const double* x = images.data() + i * g.channels * len;
    double* d = out.data() + i * layers * len;
    kern.gram(x, 0, x, len, g.channels, true, k.data(), g.gram_length);
    kern.tap_sum(k.data() + g.begin, g.taps.data(), taps, s.first, nullptr, s.bias, d + g.begin, run);
    clear_halo(d);
    for (std::int64_t h = 1; h < layers; ++h, d += len) {
      const double* prev = d + g.begin;
      kern.relu_step(prev, prev, prev, 1, prev, k.data() + g.begin, unused.data() + g.begin, run);
      if (g.circular) wrap_row(k.data(), g);
      kern.tap_sum(k.data() + g.begin, g.taps.data(), taps, s.next, nullptr, s.bias, d + len + g.begin, run);
      clear_halo(d + len);
    }
  }
  return out;
}

// One worker's arrays: four pair arrays (global average) or four padded rows (flatten).
struct Workspace {
  std::vector<double> k, theta_kdot, sigma, theta;
  explicit Workspace(std::int64_t length)
      : k(static_cast<std::size_t>(length), 0.0), theta_kdot(k), sigma(k), theta(k) {}
};

struct PairInputs {
  const double* x1 = nullptr;  // [C, row_length], padded
  const double* x2 = nullptr;
  const double* self1 = nullptr;  // [L, row_length]
  const double* self2 = nullptr;
};

struct PairKernels {
  double nngp = 0.0;
  double ntk = 0.0;
};

// The global-average readout: the full [P, P] programme, row by interior row, each row over
// the runs of the grid.
PairKernels gap_pair(const PairInputs& in, const Grid& g, std::int64_t layers, const Scales& s,
                     const detail::CntkKernelTable& kern, Workspace& w) {
  const std::int64_t len = g.row_length, pp = g.padded;
  const auto taps = static_cast<std::int64_t>(g.pair_taps.size());
  double *k = w.k.data(), *tk = w.theta_kdot.data(), *sigma = w.sigma.data(), *theta = w.theta.data();
  // Gram of the padded pixels in k (halo rows stay 0 with zero padding).
  for (std::int64_t row = 0; row < pp; ++row)
    if (g.circular || g.is_interior[static_cast<std::size_t>(row)])
      kern.gram(in.x1 + row, len, in.x2, len, g.channels, false, k + row * pp, g.gram_length);
  for (const std::int64_t row : g.interior)
    for (const auto& [start, run] : g.runs) {
      const std::int64_t at = row * pp + start;
      kern.tap_sum(k + at, g.pair_taps.data(), taps, s.first, nullptr, s.bias, sigma + at, run);
    }
  const double* theta_now = sigma;  // Theta^1 = Sigma^1
  for (std::int64_t h = 1; h < layers; ++h) {
    const double *d1 = in.self1 + (h - 1) * len, *d2 = in.self2 + (h - 1) * len;
    for (const std::int64_t row : g.interior)
      for (const auto& [start, run] : g.runs) {
        const std::int64_t at = row * pp + start;
        kern.relu_step(sigma + at, theta_now + at, d1 + row, 0, d2 + start, k + at, tk + at, run);
      }
    if (g.circular) wrap_pairs(k, g), wrap_pairs(tk, g);
    for (const std::int64_t row : g.interior)
      for (const auto& [start, run] : g.runs) {
        const std::int64_t at = row * pp + start;
        kern.tap_sum(k + at, g.pair_taps.data(), taps, s.next, nullptr, s.bias, sigma + at, run);
        kern.tap_sum(tk + at, g.pair_taps.data(), taps, s.next, sigma + at, 0.0, theta + at, run);
      }
    theta_now = theta;
  }
  double sums[2] = {0.0, 0.0};
  const double *d1 = in.self1 + (layers - 1) * len, *d2 = in.self2 + (layers - 1) * len;
  for (const std::int64_t row : g.interior)
    for (const auto& [start, run] : g.runs) {
      const std::int64_t at = row * pp + start;
      kern.relu_sums(sigma + at, theta_now + at, d1 + row, 0, d2 + start, sums, run);
    }
  const double pairs = static_cast<double>(g.pixels) * static_cast<double>(g.pixels);
  const double nngp = s.w2 * (sums[0] / pairs) + s.bias;
  return {nngp, nngp + s.w2 * (sums[1] / pairs)};
}

// The flatten readout: only same-position pairs, one padded row per quantity.
PairKernels flatten_pair(const PairInputs& in, const Grid& g, std::int64_t layers, const Scales& s,
                         const detail::CntkKernelTable& kern, Workspace& w) {
  const std::int64_t len = g.row_length, run = g.end - g.begin, at = g.begin;
  const auto taps = static_cast<std::int64_t>(g.taps.size());
  double *k = w.k.data(), *tk = w.theta_kdot.data(), *sigma = w.sigma.data(), *theta = w.theta.data();
  kern.gram(in.x1, len, in.x2, len, g.channels, true, k, g.gram_length);
  kern.tap_sum(k + at, g.taps.data(), taps, s.first, nullptr, s.bias, sigma + at, run);
  const double* theta_now = sigma;
  for (std::int64_t h = 1; h < layers; ++h) {
    const double *d1 = in.self1 + (h - 1) * len + at, *d2 = in.self2 + (h - 1) * len + at;
    kern.relu_step(sigma + at, theta_now + at, d1, 1, d2, k + at, tk + at, run);
    if (g.circular) wrap_row(k, g), wrap_row(tk, g);
    kern.tap_sum(k + at, g.taps.data(), taps, s.next, nullptr, s.bias, sigma + at, run);
    kern.tap_sum(tk + at, g.taps.data(), taps, s.next, sigma + at, 0.0, theta + at, run);
    theta_now = theta;
  }
  double sums[2] = {0.0, 0.0};
  kern.relu_sums(sigma + at, theta_now + at, in.self1 + (layers - 1) * len + at, 1, in.self2 + (layers - 1) * len + at,
                 sums, run);
  const double pixels = static_cast<double>(g.pixels);
  const double nngp = s.w2 * (sums[0] / pixels) + s.bias;
  return {nngp, nngp + s.w2 * (sums[1] / pixels)};
}

void check_arguments(const Tensor& x1, const Tensor& x2, const CntkOptions& o) {
  THETA_CHECK(x1.dim() == 4 && x2.dim() == 4, ShapeError, kOp, ": inputs ", shape_str(x1.shape()), " and ",
              shape_str(x2.shape()), " must be images [n1, C, H, W] and [n2, C, H, W]");
  THETA_CHECK(x1.size(1) == x2.size(1) && x1.size(2) == x2.size(2) && x1.size(3) == x2.size(3), ShapeError, kOp,
              ": inputs ", shape_str(x1.shape()), " and ", shape_str(x2.shape()),
              " must have the same channels, height and width [., C, H, W]");
  THETA_CHECK(x1.size(1) >= 1 && x1.size(2) >= 1 && x1.size(3) >= 1, ShapeError, kOp, ": inputs ",
              shape_str(x1.shape()), " and ", shape_str(x2.shape()), " need C, H, W >= 1");
  THETA_CHECK(o.conv_layers >= 1, std::invalid_argument, kOp, ": conv_layers must be >= 1, got ", o.conv_layers);
  THETA_CHECK(o.kernel_size >= 1 && o.kernel_size % 2 == 1, std::invalid_argument, kOp,
              ": kernel_size must be odd and >= 1 (padding kernel_size / 2 keeps the image size), got ", o.kernel_size);
  THETA_CHECK(o.padding == Padding::zeros || o.padding == Padding::circular, std::invalid_argument, kOp,
              ": padding must be Padding::zeros or Padding::circular");
  THETA_CHECK(o.readout == CntkReadout::global_average || o.readout == CntkReadout::flatten, std::invalid_argument, kOp,
              ": readout must be CntkReadout::global_average or CntkReadout::flatten");
  detail::require_finite(o.sigma_w, kOp, "sigma_w");
  detail::require_finite(o.sigma_b, kOp, "sigma_b");
}

}  // namespace

AnalyticKernels analytic_cntk(const Tensor& x1_in, const Tensor& x2_in, const CntkOptions& options) {
  check_arguments(x1_in, x2_in, options);
  const bool same = detail::same_view(x1_in, x2_in);
  const Tensor x1 = x1_in.to(DType::f64), x2 = same ? x1 : x2_in.to(DType::f64);
  detail::require_finite(x1, kOp, "x1");
  if (!same) detail::require_finite(x2, kOp, "x2");
  const std::int64_t n1 = x1.size(0), n2 = x2.size(0), layers = options.conv_layers;
  Tensor nngp = zeros({n1, n2}, DType::f64), ntk = zeros({n1, n2}, DType::f64);
  if (n1 == 0 || n2 == 0) return {nngp, ntk};

  const detail::CntkKernelTable& kern = detail::cntk_kernels();
  const Grid g = make_grid(x1.shape(), options, kern.width);
  const double k2 = static_cast<double>(options.kernel_size * options.kernel_size);
  const double w2 = options.sigma_w * options.sigma_w;
  const Scales scales{w2 / (static_cast<double>(g.channels) * k2), w2 / k2, options.sigma_b * options.sigma_b, w2};
  const std::vector<double> images1 = padded_images(x1, g);
  const std::vector<double> images2 = same ? std::vector<double>{} : padded_images(x2, g);
  const std::vector<double>& im2 = same ? images1 : images2;
  const std::vector<double> self1 = self_covariances(images1, n1, g, layers, scales, kern);
  const std::vector<double> self2 = same ? std::vector<double>{} : self_covariances(im2, n2, g, layers, scales, kern);
  const std::vector<double>& sf2 = same ? self1 : self2;

  const bool gap = options.readout == CntkReadout::global_average;
  const std::int64_t len = g.row_length, feature = g.channels * len, self_len = layers * len;
  double *out_nngp = nngp.data<double>(), *out_ntk = ntk.data<double>();
  // Rows i are taken from a shared counter (row i of a symmetric kernel holds n - i pairs).
  // Note [Interrupt points]: only the calling thread polls, before each row it takes.
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::mutex failure_lock;
  const std::thread::id caller = std::this_thread::get_id();
  const auto rows = [&](Workspace& w) {
    while (!stop) {
      if (std::this_thread::get_id() == caller) check_interrupt();
      const std::int64_t i = next++;
      if (i >= n1) return;
      for (std::int64_t j = same ? i : 0; j < n2; ++j) {
        const PairInputs in{images1.data() + i * feature, im2.data() + j * feature, self1.data() + i * self_len,
                            sf2.data() + j * self_len};
        const PairKernels kij =
            gap ? gap_pair(in, g, layers, scales, kern, w) : flatten_pair(in, g, layers, scales, kern, w);
        out_nngp[i * n2 + j] = kij.nngp, out_ntk[i * n2 + j] = kij.ntk;
        if (same) out_nngp[j * n2 + i] = kij.nngp, out_ntk[j * n2 + i] = kij.ntk;
      }
    }
  };
  // A failure (an interrupt, a failed allocation) stops every worker and is rethrown here.
  const auto work = [&] {
    try {
      Workspace w(gap ? g.pair_length : g.row_length);
      rows(w);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(failure_lock);
      if (!failure) failure = std::current_exception();
      stop = true;
    }
  };
  const std::int64_t workers = std::min<std::int64_t>(get_num_threads(), n1);
  parallel_for(workers, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) work();
  });
  if (failure) std::rethrow_exception(failure);
  return {nngp, ntk};
}

}  // namespace theta::theory
