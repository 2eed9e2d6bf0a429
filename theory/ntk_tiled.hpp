#pragma once
// The empirical NTK computed tile by tile: in memory, or straight into a .npy file on disk that
// never has to fit in RAM and survives a killed run (Note [Tiled kernels] in ntk_tiled.cpp).
//
// An n1 x n2 kernel is cut into square tiles of `tile` rows and columns (the last row and column
// of tiles may be smaller). Each row of tiles forms its block's factors (the inputs of every
// structured layer and the output gradients, Note [Structured NTK]) once and reuses them across
// the row; for the kernel of x with itself only tiles I <= J are computed and the others are
// their transposes. A tile's values depend only on the inputs, the model and (I, J, tile), so
// every schedule gives the same bits. Models, inputs and errors are as for empirical_ntk.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.hpp"

namespace theta::theory {

/// Which kernel a tiled run produces.
enum class NtkForm {
  full,    ///< [n1, n2, O, O], as empirical_ntk
  trace,   ///< [n1, n2], the trace over outputs, as empirical_ntk_trace
  output,  ///< [n1, n2], one output's kernel Theta[:, :, o, o] for o = TiledNtkOptions::output
};

struct TiledNtkOptions {
  /// Rows and columns per tile (>= 1). Peak memory grows as tile^2 O^2 plus tile times the
  /// model's widths; multiples of 64 suit the BLAS kernels.
  std::int64_t tile = 256;
  NtkForm form = NtkForm::trace;
  /// The output o of NtkForm::output, in [0, O) (IndexError otherwise).
  std::int64_t output = 0;
  /// Bound on the bytes of Jacobian chunks for parameters outside structured layers.
  std::int64_t max_bytes = std::int64_t{1} << 30;
  /// Called after each tile this call computes with (tiles computed so far by this call, tiles
  /// this call has to compute); returning false stops the run after that tile (a file run stays
  /// restartable). Empty: no calls.
  std::function<bool(std::int64_t done, std::int64_t total)> on_tile = {};
  /// The share of the plan this process computes in a run split over `parts` processes (MPI
  /// ranks, batch jobs): plan tile t (tile_plan order) belongs to part t % parts. 0 <= part <
  /// parts; the default computes every tile. Only tiled_ntk_to_npy splits (Note [Split runs]).
  std::int64_t part = 0;
  std::int64_t parts = 1;
  /// For a split run of tiled_ntk_to_npy, called by every part exactly twice, and returning on
  /// each part only once every part has called it: once part 0 has opened or created the file
  /// (the other parts open it after the call) and once this part's tiles are on disk (part 0
  /// then checks the file). An MPI barrier, for instance; a part that fails must end the others
  /// (MPI_Abort), or they wait forever. Empty: nothing to wait for (one process).
  std::function<void()> barrier = {};
};

/// The plan tiles (tile_plan order) that part `part` of `parts` computes: every parts-th one,
/// starting at index `part`.
std::vector<std::pair<std::int64_t, std::int64_t>> tile_share(std::int64_t n1, std::int64_t n2, std::int64_t tile,
                                                              bool symmetric, std::int64_t part, std::int64_t parts);

/// The tiles of an n1 x n2 kernel in the order they are computed: row-major over tile rows I and
/// columns J, with only J >= I when `symmetric` (n1 == n2, the kernel of x with itself).
std::vector<std::pair<std::int64_t, std::int64_t>> tile_plan(std::int64_t n1, std::int64_t n2, std::int64_t tile,
                                                             bool symmetric);

/// The kernel of x1:[n1, d] and x2:[n2, d] computed tile by tile in memory: equal to
/// empirical_ntk (form full) or empirical_ntk_trace (form trace) up to rounding. A run stopped by
/// on_tile is refused with std::runtime_error (an in-memory kernel has no partial form).
Tensor tiled_ntk(nn::Module& model, const Tensor& x1, const Tensor& x2, TiledNtkOptions options = {});

/// What a run into a file did.
struct TiledNtkRun {
  std::int64_t tiles_total = 0;     ///< tiles in the plan
  std::int64_t tiles_computed = 0;  ///< computed and written by this call
  std::int64_t tiles_reused = 0;    ///< found finished by an earlier run and kept
  bool complete = false;            ///< every tile written, the file checked free of NaN (part 0)
  bool share_done = false;          ///< every tile of this call's part is written
};

/// The kernel written tile by tile into `path`, a C-order float64 .npy of shape [n1, n2] (trace)
/// or [n1, n2, O, O] (full) that numpy.load(path, mmap_mode="r") reads. Peak memory is one row of
/// tiles' factors plus a few tiles, not the kernel. A log next to it, `path + ".tiles"`, records
/// each finished tile once its bytes are on disk (fsync), so a killed or stopped run called
/// again with the same arguments computes only the missing tiles; unfinished regions hold NaN.
/// When every tile is in, the file is read back, checked free of NaN and the log marked
/// complete. A log or file that belongs to another problem (other inputs, model, form, tile
/// size), is truncated or is not theta's is refused with FormatError and left as it is.
/// With options.parts > 1, `parts` processes call it with the same arguments and their own
/// part: each computes its share into the one file, part 0 owns the file and its log and
/// reports `complete`; a later call with any number of parts resumes (Note [Split runs]).
TiledNtkRun tiled_ntk_to_npy(nn::Module& model, const Tensor& x1, const Tensor& x2, const std::string& path,
                             TiledNtkOptions options = {});

}  // namespace theta::theory
