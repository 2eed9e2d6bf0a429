#pragma once
// Internal to theta_theory: a kernel .npy on disk filled tile by tile, with the log of finished
// tiles that makes a run restartable (Note [Tile log] in tile_file.cpp).

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.hpp"

namespace theta::theory::detail {

/// Tiles of `tile` rows needed to cover n rows (the last may be smaller).
inline std::int64_t tiles_along(std::int64_t n, std::int64_t tile) { return (n + tile - 1) / tile; }

/// What a tiled kernel run computes; a log written for another problem is refused.
struct TileProblem {
  Shape shape;                    // the kernel: [n1, n2] or [n1, n2, O, O], float64
  std::string form;               // "trace" or "full"
  std::int64_t tile = 0;          // rows and columns per tile
  std::uint32_t fingerprint = 0;  // of the inputs and the model's parameters
};

/// The log of part `part` of a run split over processes: `path + ".tiles"` for part 0, which
/// owns the file, and `path + ".tiles.<part>"` for the others (Note [Tile log]).
std::string tile_log_path(const std::string& path, std::int64_t part);

class TileFile {
 public:
  /// Opens `path` and its log for `problem` as part `part` of the run. Part 0 owns the file:
  /// without a log, it creates both (the log first, then the data, every element NaN, under a
  /// temporary name renamed into place); with a log, it checks that the log and the data belong
  /// to `problem`, reads the finished tiles and folds in the other parts' logs. Any other part
  /// opens the file part 0 made, reads the finished tiles from the main log and records its own
  /// in its part log. Throws FormatError for a foreign, truncated, mismatched or (for part > 0)
  /// missing log or data file, and refuses to replace a file at `path` that has no log.
  TileFile(std::string path, TileProblem problem, std::int64_t part = 0);
  ~TileFile();
  TileFile(const TileFile&) = delete;
  TileFile& operator=(const TileFile&) = delete;

  bool finished(std::int64_t row_tile, std::int64_t col_tile) const {
    return finished_.count({row_tile, col_tile}) > 0;
  }
  std::int64_t finished_count() const { return static_cast<std::int64_t>(finished_.size()); }
  bool complete() const { return complete_; }

  /// Writes `block` (contiguous float64 [rows, cols, ...] matching the kernel's trailing axes) at
  /// kernel rows [row0, row0 + rows) and columns [col0, col0 + cols).
  void write_block(std::int64_t row0, std::int64_t col0, const Tensor& block);
  /// Records a tile as finished. Its log line is written with the next flush, which happens at
  /// most a second later (or at flush(), finish()): then the data is fsync'ed first, the pending
  /// lines appended in one write, the log fsync'ed.
  void mark_finished(std::int64_t row_tile, std::int64_t col_tile);
  /// Writes the pending log lines now (data fsync, log append, log fsync).
  void flush();
  /// Part 0 only, while no other part writes: appends the tiles recorded in the other parts'
  /// logs to the main log (fsync'ed), then removes those logs.
  void fold_part_logs();
  /// Part 0 only: reads the data back and marks the log complete; throws InternalError naming the first NaN
  /// element when a region was never written.
  void finish();

 private:
  void create();
  void open_existing();
  void open_as_part();
  void open_data();
  void open_log_for_append(const std::string& text);
  std::vector<std::string> part_logs() const;  // the other parts' logs next to the file, sorted
  // Reads a log of this problem: its finished tiles into finished_; returns whether it says
  // complete. Throws FormatError for a foreign or mismatched log.
  bool read_log(const std::string& log_path, const std::string& text);

  std::string path_, log_path_;
  TileProblem problem_;
  std::int64_t part_ = 0;
  int data_fd_ = -1, log_fd_ = -1;
  std::uint64_t data_offset_ = 0;
  std::set<std::pair<std::int64_t, std::int64_t>> finished_;
  std::string pending_;  // log lines of finished tiles not yet on disk
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
  bool complete_ = false;
};

}  // namespace theta::theory::detail
