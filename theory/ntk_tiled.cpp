#include "theory/ntk_tiled.hpp"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "tensor/blas_runtime.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/parallel.hpp"
#include "theory/ntk_blocks.hpp"
#include "theory/tile_file.hpp"

namespace theta::theory {

using namespace detail;

// Note [Tiled kernels]
// Tile (I, J) is the structured kernel between row block I of x1 and column block J of x2
// (structured_block_kernel): a pure function of the two blocks, computed by the same calls
// whatever else runs, so a tile has the same bits in every schedule. The run walks the plan row
// by row and forms row block I's factors once for the row; a column block's factors are formed
// for its tile (holding every column block's factors would cost n times the model's widths,
// which is what the tiling avoids). For x with itself, tile (I, I) uses the symmetric product
// (syrk) and tile (I, J > I) also fills (J, I) with its transpose. With several threads, each
// worker runs its own copy of the model (the forward hooks that capture a block live on the
// modules) and OpenBLAS runs one thread per worker; the tiles are the same calls, so the same
// bits, as on one thread.

// Note [Split runs]
// A run into a file can be split over processes (options.part of options.parts): plan tile t
// goes to part t % parts, block-cyclic over the plan, so every part gets about the same number
// of tiles of every row (the rows of a symmetric plan shrink; cutting the plan into contiguous
// runs would give the first part the long rows and the last the short ones) and a row's
// factors are formed by every part that has a tile in it. As tiles are pure functions of their
// blocks, the file has the same bytes for any number of parts, and each tile is computed by
// exactly one part. The file and its log are opened in a fixed order around two calls of
// options.barrier (Note [Tile log] for the part logs):
//   part 0 opens or creates the file and folds in earlier part logs | barrier | the others open
//   it; every part computes its unfinished tiles, its log on disk | barrier | part 0 folds the
//   part logs and, if every tile of the plan is in, checks the file and marks it complete.
// Every part calls the barrier twice on every path that does not throw, one process (parts 1,
// no barrier) included: the single-process run is this same sequence.

namespace {

// Where tiles go: a tensor in memory or a file on disk.
class TileSink {
 public:
  virtual ~TileSink() = default;
  virtual bool finished(std::int64_t, std::int64_t) const { return false; }
  virtual void write(std::int64_t row0, std::int64_t col0, const Tensor& block) = 0;
  virtual void tile_done(std::int64_t, std::int64_t) {}
};

class MemorySink : public TileSink {
 public:
  explicit MemorySink(Tensor k) : k_(std::move(k)) {}
  void write(std::int64_t row0, std::int64_t col0, const Tensor& block) override {
    k_.slice(0, row0, row0 + block.size(0)).slice(1, col0, col0 + block.size(1)).copy_(block);
  }

 private:
  Tensor k_;
};

class FileSink : public TileSink {
 public:
  explicit FileSink(TileFile& file) : file_(file) {}
  bool finished(std::int64_t i, std::int64_t j) const override { return file_.finished(i, j); }
  void write(std::int64_t row0, std::int64_t col0, const Tensor& block) override {
    file_.write_block(row0, col0, block.to(DType::f64).contiguous());
  }
  void tile_done(std::int64_t i, std::int64_t j) override { file_.mark_finished(i, j); }

 private:
  TileFile& file_;
};

struct Problem {
  const char* op = "";
  bool symmetric = false;
  KernelForm form = KernelForm::trace;
  std::int64_t output = 0;  // for KernelForm::output
  std::int64_t n1 = 0, n2 = 0, tile = 1;

  bool square_tiles() const { return form != KernelForm::full; }  // [b1, b2], not [b1, b2, O, O]
};

KernelForm kernel_form(NtkForm form) {
  switch (form) {
    case NtkForm::full: return KernelForm::full;
    case NtkForm::trace: return KernelForm::trace;
    case NtkForm::output: return KernelForm::output;
  }
  THETA_THROW(std::invalid_argument, "tiled NTK: unknown form ", static_cast<int>(form));
}

Problem check_problem(const Tensor& x1, const Tensor& x2, const TiledNtkOptions& options, const char* op) {
  THETA_CHECK(x1.dim() == 2 && x2.dim() == 2 && x1.size(1) == x2.size(1), ShapeError, op, ": inputs ",
              shape_str(x1.shape()), " and ", shape_str(x2.shape()), " must be [n1, d] and [n2, d]");
  THETA_CHECK(x1.size(0) > 0 && x2.size(0) > 0, ShapeError, op, ": empty input batch ", shape_str(x1.shape()), " or ",
              shape_str(x2.shape()));
  THETA_CHECK(options.tile >= 1, std::invalid_argument, op, ": tile must be >= 1, got ", options.tile);
  THETA_CHECK(options.parts >= 1 && options.part >= 0 && options.part < options.parts, std::invalid_argument, op,
              ": need 0 <= part < parts, got part ", options.part, " of ", options.parts);
  return {.op = op,
          .symmetric = same_view(x1, x2),
          .form = kernel_form(options.form),
          .output = options.output,
          .n1 = x1.size(0),
          .n2 = x2.size(0),
          .tile = options.tile};
}

// The tile's transpose as the kernel's block (J, I): rows and columns swapped, and for the full
// kernel the two output axes too (Theta(x_j, x_i)[o2, o1] = Theta(x_i, x_j)[o1, o2]).
Tensor transposed_tile(const Tensor& tile, KernelForm form) {
  return (form == KernelForm::full ? tile.permute({1, 0, 3, 2}) : tile.t()).contiguous();
}

// The output of NtkForm::output must exist.
void check_output_index(const Problem& p, std::int64_t outputs) {
  THETA_CHECK(p.form != KernelForm::output || (p.output >= 0 && p.output < outputs), IndexError, p.op, ": output ",
              p.output, " is out of range for a model with ", outputs, " outputs");
}

// One tile: the structured kernel between row block i (whose factors `row` the caller keeps
// for the row) and column block j. The model's sample independence is checked on the worker's
// first block only (`checked`): a property of the model, whose check costs a forward pass of two
// samples per block.
Tensor compute_tile(nn::Module& model, const Tensor& x1, const Tensor& x2, const Problem& p, std::int64_t i,
                    std::int64_t j, std::optional<BlockFactors>& row, std::int64_t& row_block, bool& checked,
                    std::int64_t max_bytes) {
  const auto rows_of = [&](const Tensor& x, std::int64_t block, std::int64_t n) {
    return x.slice(0, block * p.tile, std::min(n, (block + 1) * p.tile));
  };
  if (i != row_block) {
    row.emplace(block_factors(model, rows_of(x1, i, p.n1), p.op, !checked));
    row_block = i;
    checked = true;
  }
  if (p.symmetric && i == j) return structured_block_kernel(model, *row, *row, true, p.form, max_bytes, p.output);
  BlockFactors column = block_factors(model, rows_of(x2, j, p.n2), p.op, !checked);
  checked = true;
  return structured_block_kernel(model, *row, column, false, p.form, max_bytes, p.output);
}

// Runs the unfinished tiles of this part's share (all of the plan for one part) into `sink` on
// up to get_num_threads() workers, each with its own copy of the model (forward hooks are per
// module), taking tiles in plan order from a shared counter. Results are recorded in the order tiles finish; after
// on_tile asks to stop, tiles still in flight are dropped. Returns (tiles recorded, stopped early).
std::pair<std::int64_t, bool> run_tiles(nn::Module& model, const Tensor& x1, const Tensor& x2, const Problem& p,
                                        const TiledNtkOptions& options, TileSink& sink) {
  std::vector<std::pair<std::int64_t, std::int64_t>> todo;
  for (const auto& ij : tile_share(p.n1, p.n2, p.tile, p.symmetric, options.part, options.parts))
    if (!sink.finished(ij.first, ij.second)) todo.push_back(ij);
  const auto total = static_cast<std::int64_t>(todo.size());
  const auto workers = static_cast<std::int64_t>(std::min<std::int64_t>(get_num_threads(), total));
  std::vector<std::unique_ptr<nn::Module>> copies;
  for (std::int64_t w = 1; w < workers; ++w) copies.push_back(model.clone());

  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex record;
  std::int64_t done = 0;
  std::exception_ptr failure;
  const std::thread::id caller = std::this_thread::get_id();
  const auto work = [&](nn::Module& m) {
    std::optional<BlockFactors> row;
    std::int64_t row_block = -1;
    bool checked = false;
    for (std::size_t t; !stop && (t = next++) < todo.size();) {
      const auto [i, j] = todo[t];
      try {
        // Note [Interrupt points]: only the calling thread polls (it runs the first worker's share
        // too), outside the record lock; a stop request ends every worker like a failed tile.
        if (std::this_thread::get_id() == caller) check_interrupt();
        const Tensor tile = compute_tile(m, x1, x2, p, i, j, row, row_block, checked, options.max_bytes);
        const std::lock_guard<std::mutex> lock(record);
        if (stop) return;
        sink.write(i * p.tile, j * p.tile, tile);
        if (p.symmetric && i != j) sink.write(j * p.tile, i * p.tile, transposed_tile(tile, p.form));
        sink.tile_done(i, j);
        ++done;
        if (options.on_tile && !options.on_tile(done, total) && done < total) stop = true;
      } catch (...) {
        const std::lock_guard<std::mutex> lock(record);
        if (!failure) failure = std::current_exception();
        stop = true;
      }
    }
  };
  if (workers <= 1) {
    work(model);
  } else {
    const theta::detail::SingleThreadedBlas blas;  // tiles run on theta's threads
    parallel_for(workers, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t w = begin; w < end; ++w) work(w == 0 ? model : *copies[static_cast<std::size_t>(w - 1)]);
    });
  }
  if (failure) std::rethrow_exception(failure);
  return {done, done < total};
}

// CRC-32 of what the kernel depends on: the inputs and every parameter, with names and shapes.
std::uint32_t fingerprint(const nn::Module& model, const Tensor& x1, const Tensor& x2, bool symmetric) {
  uLong crc = crc32_z(0, nullptr, 0);
  const auto add_bytes = [&](const void* data, std::size_t n) {
    crc = crc32_z(crc, static_cast<const Bytef*>(data), n);
  };
  const auto add_text = [&](const std::string& s) { add_bytes(s.data(), s.size() + 1); };
  const auto add_tensor = [&](const Tensor& t) {
    const Tensor c = t.contiguous();
    add_text(std::string(dtype_name(c.dtype())) + shape_str(c.shape()));
    add_bytes(c.raw_data(), static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype()));
  };
  add_tensor(x1);
  if (!symmetric) add_tensor(x2);
  for (const auto& [name, p] : unique_parameters(model)) {
    add_text(name);
    add_tensor(p.value());
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace

std::vector<std::pair<std::int64_t, std::int64_t>> tile_plan(std::int64_t n1, std::int64_t n2, std::int64_t tile,
                                                             bool symmetric) {
  THETA_CHECK(n1 >= 0 && n2 >= 0 && tile >= 1, std::invalid_argument, "tile_plan: need n1, n2 >= 0 and tile >= 1, got ",
              n1, ", ", n2, ", ", tile);
  THETA_CHECK(!symmetric || n1 == n2, std::invalid_argument, "tile_plan: a symmetric kernel is square, got ", n1, " x ",
              n2);
  std::vector<std::pair<std::int64_t, std::int64_t>> plan;
  const std::int64_t rows = tiles_along(n1, tile), cols = tiles_along(n2, tile);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = symmetric ? i : 0; j < cols; ++j) plan.emplace_back(i, j);
  return plan;
}

std::vector<std::pair<std::int64_t, std::int64_t>> tile_share(std::int64_t n1, std::int64_t n2, std::int64_t tile,
                                                              bool symmetric, std::int64_t part, std::int64_t parts) {
  THETA_CHECK(parts >= 1 && part >= 0 && part < parts, std::invalid_argument,
              "tile_share: need 0 <= part < parts, got part ", part, " of ", parts);
  const auto plan = tile_plan(n1, n2, tile, symmetric);
  std::vector<std::pair<std::int64_t, std::int64_t>> share;
  for (auto t = static_cast<std::size_t>(part); t < plan.size(); t += static_cast<std::size_t>(parts))
    share.push_back(plan[t]);
  return share;
}

Tensor tiled_ntk(nn::Module& model, const Tensor& x1, const Tensor& x2, TiledNtkOptions options) {
  const Problem p = check_problem(x1, x2, options, "tiled_ntk");
  THETA_CHECK(options.parts == 1, std::invalid_argument, "tiled_ntk: an in-memory kernel is computed whole, got ",
              options.parts, " parts (tiled_ntk_to_npy splits a run)");
  const nn::BufferSnapshot keep_buffers(model);
  // The model on the first tile row tells the output width and dtype (a forward pass without a
  // graph, gone before the tiles start).
  const OutputInfo probe = checked_output_info(model, x1.slice(0, 0, std::min(p.n1, p.tile)), p.op);
  const std::int64_t outputs = probe.outputs;
  check_output_index(p, outputs);
  Tensor k = p.square_tiles() ? zeros({p.n1, p.n2}, probe.dtype) : zeros({p.n1, p.n2, outputs, outputs}, probe.dtype);
  MemorySink sink(k);
  const auto [done, stopped] = run_tiles(model, x1, x2, p, options, sink);
  THETA_CHECK(!stopped, std::runtime_error, "tiled_ntk: stopped by on_tile after ", done,
              " tiles; an in-memory kernel has no partial result (tiled_ntk_to_npy can resume)");
  return k;
}

TiledNtkRun tiled_ntk_to_npy(nn::Module& model, const Tensor& x1, const Tensor& x2, const std::string& path,
                             TiledNtkOptions options) {
  const Problem p = check_problem(x1, x2, options, "tiled_ntk_to_npy");
  const nn::BufferSnapshot keep_buffers(model);
  const std::int64_t outputs = checked_output_info(model, x1.slice(0, 0, std::min(p.n1, p.tile)), p.op).outputs;
  TileProblem problem;
  check_output_index(p, outputs);
  problem.shape = p.square_tiles() ? Shape{p.n1, p.n2} : Shape{p.n1, p.n2, outputs, outputs};
  problem.form = p.form == KernelForm::trace  ? "trace"
                 : p.form == KernelForm::full ? "full"
                                              : "output " + std::to_string(p.output);
  problem.tile = p.tile;
  problem.fingerprint = fingerprint(model, x1, x2, p.symmetric);
  const auto barrier = [&] {
    if (options.barrier) options.barrier();
  };
  const bool owner = options.part == 0;
  const auto plan = tile_plan(p.n1, p.n2, p.tile, p.symmetric);
  std::optional<TileFile> file;
  if (owner) file.emplace(path, problem, 0);
  barrier();
  if (!owner) file.emplace(path, problem, options.part);
  TiledNtkRun run;
  run.tiles_total = static_cast<std::int64_t>(plan.size());
  run.tiles_reused = file->finished_count();
  run.share_done = true;
  if (!file->complete()) {
    FileSink sink(*file);
    const auto [done, stopped] = run_tiles(model, x1, x2, p, options, sink);
    run.tiles_computed = done;
    run.share_done = !stopped;
    file->flush();
  }
  barrier();
  if (owner && !file->complete()) {
    file->fold_part_logs();
    if (std::all_of(plan.begin(), plan.end(), [&](const auto& ij) { return file->finished(ij.first, ij.second); }))
      file->finish();
  }
  run.complete = owner && file->complete();
  return run;
}

}  // namespace theta::theory
