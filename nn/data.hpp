#pragma once
// Data sets held in memory, deterministic splits and mini-batch loaders, feature standardisation,
// and readers for the small real data sets shipped in data/ (digits, iris).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.hpp"

namespace theta::nn {

/// Features and targets of n samples: x:[n, ...] (float64), y:[n] int64 labels or y:[n, ...]
/// float targets.
struct Dataset {
  Tensor x{};
  Tensor y{};
  /// Number of samples n (the first axis of x).
  std::int64_t size() const;
};

/// The samples at `indices` (1-D int64, any order, repeats allowed), copied.
Dataset subset(const Dataset& data, const Tensor& indices);

struct Split {
  Dataset train{};
  Dataset test{};
};

/// Shuffles the samples with Rng(seed) and puts round(test_fraction * n) of them in the test set
/// (test_fraction in [0, 1]). The same (data, test_fraction, seed) always gives the same split.
Split train_test_split(const Dataset& data, double test_fraction, std::uint64_t seed);

/// Per-feature affine standardisation fitted on training data: (x - mean) / std.
struct Standardizer {
  Tensor mean{};  // x.shape[1:]
  Tensor std{};   // x.shape[1:], 1 where the feature is constant (Note [Constant features])
  /// Fits mean and population standard deviation over the first axis. x:[n, ...] -> feature shape.
  static Standardizer fit(const Tensor& x);
  /// (x - mean) / std, x:[m, ...] with the fitted feature shape -> [m, ...].
  Tensor apply(const Tensor& x) const;
};

struct LoaderOptions {
  std::int64_t batch_size = 32;
  /// Visit the samples in a fresh random order each epoch (else in index order).
  bool shuffle = true;
  /// Drop the last batch when it is smaller than batch_size.
  bool drop_last = false;
  std::uint64_t seed = 0;
};

/// Mini-batches of a Dataset. The sample order of epoch e is a pure function of (seed, e)
/// (Note [Epoch order]), so a run resumed at epoch e sees the same batches as one that never
/// stopped.
class DataLoader {
 public:
  /// Keeps a reference-counted view of `data` (no copy).
  DataLoader(Dataset data, LoaderOptions options = {});

  const Dataset& dataset() const { return data_; }
  const LoaderOptions& options() const { return options_; }
  /// Number of batches in every epoch.
  std::int64_t batches_per_epoch() const;
  /// The order in which epoch `epoch_index` visits the samples: int64 [n].
  Tensor epoch_order(std::int64_t epoch_index) const;
  /// The (x, y) batches of epoch `epoch_index`: x:[b, ...], y:[b, ...] with b <= batch_size.
  std::vector<std::pair<Tensor, Tensor>> epoch(std::int64_t epoch_index) const;

 private:
  Dataset data_;
  LoaderOptions options_;
};

/// The folder holding the shipped data sets (digits.csv.gz, iris.csv and their README), in this
/// order (Note [Data directory] in nn/data_dir.cpp):
///   1. $THETA_DATA_DIR when set and non-empty (used as given, no fallback);
///   2. the installed library: <prefix>/share/theta (CMAKE_INSTALL_DATADIR/theta under the
///      CMAKE_INSTALL_PREFIX theta was configured with), where `cmake --install` puts them;
///      the build tree (tests, demos, add_subdirectory): the source tree's data/.
/// The loaders below also take an explicit path, which bypasses the lookup.
std::string default_data_dir();

/// The path of `name` in default_data_dir() when that file exists; otherwise throws FormatError
/// naming the path it looked for, where that folder came from, and how to override it.
std::string data_file(const std::string& name);

/// The UCI optical digits (8x8 images, pixels 0..16): gzip or plain CSV, 64 pixels then the label
/// 0..9 per line, no header. Returns x:[n, 64] float64, y:[n] int64 (n = 1797 for the shipped
/// file). Throws FormatError naming the file and line on a malformed file.
Dataset load_digits(const std::string& path);
/// The shipped digits.csv.gz, found as data_file() finds it: x:[1797, 64], y:[1797].
Dataset load_digits();

/// Fisher's iris in scikit-learn's CSV layout: a header "n,d,name0,name1,..." then n lines of d
/// features and a label in [0, number of names). Returns x:[n, d] float64, y:[n] int64.
/// Throws FormatError naming the file and line on a malformed file.
Dataset load_iris(const std::string& path);
/// The shipped iris.csv, found as data_file() finds it: x:[150, 4], y:[150].
Dataset load_iris();

}  // namespace theta::nn
