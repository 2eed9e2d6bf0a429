#include "nn/data.hpp"

#include <zlib.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <system_error>

#include "nn/data_location.hpp"
#include "tensor/file_io.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"

namespace theta::nn {

namespace {

void check_dataset(const Dataset& data, const char* op) {
  THETA_CHECK(data.x.defined() && data.y.defined(), std::invalid_argument, op,
              ": the data set's x or y is undefined");
  THETA_CHECK(data.x.dim() >= 1 && data.y.dim() >= 1, ShapeError, op,
              ": x and y need a sample axis, got x ", shape_str(data.x.shape()), ", y ",
              shape_str(data.y.shape()));
  THETA_CHECK(data.x.size(0) == data.y.size(0), ShapeError, op, ": x has ", data.x.size(0),
              " samples but y has ", data.y.size(0), " (x ", shape_str(data.x.shape()), ", y ",
              shape_str(data.y.shape()), ")");
}

// The splitmix64 finaliser: a bijective 64-bit mix whose outputs for nearby inputs look unrelated.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::int64_t Dataset::size() const {
  THETA_CHECK(x.defined() && x.dim() >= 1, std::invalid_argument,
              "Dataset::size: x is undefined or has no sample axis");
  return x.size(0);
}

Dataset subset(const Dataset& data, const Tensor& indices) {
  check_dataset(data, "subset");
  THETA_CHECK(indices.defined(), std::invalid_argument, "subset: indices are undefined");
  THETA_CHECK(indices.dtype() == DType::i64, DTypeError, "subset: indices must be int64, got ",
              dtype_name(indices.dtype()));
  THETA_CHECK(indices.dim() == 1, ShapeError, "subset: indices must be 1-D, got ", shape_str(indices.shape()));
  return Dataset{index_select(data.x, 0, indices), index_select(data.y, 0, indices)};
}

Split train_test_split(const Dataset& data, double test_fraction, std::uint64_t seed) {
  check_dataset(data, "train_test_split");
  THETA_CHECK(test_fraction >= 0.0 && test_fraction <= 1.0, std::invalid_argument,
              "train_test_split: test_fraction must lie in [0, 1], got ", test_fraction);
  const std::int64_t n = data.size();
  const auto n_test = static_cast<std::int64_t>(std::llround(test_fraction * static_cast<double>(n)));
  const Tensor order = Rng(seed).permutation(n);
  return Split{subset(data, order.slice(0, n_test, n)), subset(data, order.slice(0, 0, n_test))};
}

// Note [Constant features]
// A feature that is constant over the data has standard deviation 0, but the computed mean of n
// copies of c can be off by up to about n * eps * |c| (sequential summation), which the computed
// standard deviation then inherits. Dividing by it would magnify rounding noise to order one, so a
// feature whose std is at most n * eps * |mean| counts as constant and is divided by 1 instead: it
// becomes x - mean, which is zero up to rounding. (A genuine feature that varies by less than that
// relative amount cannot be told apart from rounding noise anyway.)
Standardizer Standardizer::fit(const Tensor& x) {
  THETA_CHECK(x.defined() && x.dim() >= 1 && x.size(0) >= 1, ShapeError,
              "Standardizer::fit: need x:[n, ...] with n >= 1, got ",
              x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  THETA_CHECK(x.dtype() != DType::i64, DTypeError, "Standardizer::fit: x must be floating, got ",
              dtype_name(x.dtype()));
  const double eps = x.dtype() == DType::f32 ? std::numeric_limits<float>::epsilon()
                                              : std::numeric_limits<double>::epsilon();
  const double n = static_cast<double>(x.size(0));
  Standardizer s;
  s.mean = theta::mean(x, {0});
  const Tensor sd = theta::sqrt(theta::var(x, {0}, 0));
  const Tensor constant = le(sd, theta::abs(s.mean) * (n * eps));
  s.std = where(constant, ones(sd.shape(), sd.dtype()), sd);
  return s;
}

Tensor Standardizer::apply(const Tensor& x) const {
  THETA_CHECK(mean.defined() && std.defined(), std::logic_error,
              "Standardizer::apply: not fitted (use Standardizer::fit)");
  THETA_CHECK(x.defined(), std::invalid_argument, "Standardizer::apply: x is undefined");
  const Shape feature(x.shape().begin() + std::min<std::int64_t>(x.dim(), 1), x.shape().end());
  THETA_CHECK(x.dim() >= 1 && feature == mean.shape(), ShapeError, "Standardizer::apply: x ",
              shape_str(x.shape()), " does not have the fitted feature shape ", shape_str(mean.shape()));
  THETA_CHECK(x.dtype() == mean.dtype(), DTypeError, "Standardizer::apply: x is ", dtype_name(x.dtype()),
              ", fitted on ", dtype_name(mean.dtype()));
  return div(sub(x, mean), std);
}

// Note [Epoch order]
// Epoch e visits the samples in the order Rng(mix64(mix64(seed) + e)).permutation(n). No random
// state is carried from one epoch to the next, so a run resumed at epoch e needs only the seed and
// e to reproduce the batches of an uninterrupted run. Hashing (rather than seeding Rng with
// seed + e) matters: Rng expands its seed with splitmix64, whose streams for seeds that differ by a
// multiple of its increment are shifted copies of each other.
DataLoader::DataLoader(Dataset data, LoaderOptions options) : data_(std::move(data)), options_(options) {
  check_dataset(data_, "DataLoader");
  THETA_CHECK(options_.batch_size >= 1, std::invalid_argument, "DataLoader: batch_size must be >= 1, got ",
              options_.batch_size);
}

std::int64_t DataLoader::batches_per_epoch() const {
  const std::int64_t n = data_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

Tensor DataLoader::epoch_order(std::int64_t epoch_index) const {
  THETA_CHECK(epoch_index >= 0, IndexError, "DataLoader: epoch index must be >= 0, got ", epoch_index);
  const std::int64_t n = data_.size();
  if (!options_.shuffle) return arange(0.0, static_cast<double>(n), 1.0, DType::i64);
  return Rng(mix64(mix64(options_.seed) + static_cast<std::uint64_t>(epoch_index))).permutation(n);
}

std::vector<std::pair<Tensor, Tensor>> DataLoader::epoch(std::int64_t epoch_index) const {
  const Tensor order = epoch_order(epoch_index);
  const std::int64_t n = data_.size(), b = options_.batch_size;
  std::vector<std::pair<Tensor, Tensor>> batches;
  batches.reserve(static_cast<std::size_t>(batches_per_epoch()));
  for (std::int64_t i = 0, count = batches_per_epoch(); i < count; ++i) {
    const Tensor idx = order.slice(0, i * b, std::min(n, (i + 1) * b));
    batches.emplace_back(index_select(data_.x, 0, idx), index_select(data_.y, 0, idx));
  }
  return batches;
}

namespace {

// Data files decompress to at most this much text (the bundled ones to under 1 MB): a bound on
// what a corrupt or hostile .gz file can make us allocate.
constexpr std::size_t kMaxTextBytes = std::size_t{1} << 30;

// Reads a whole gzip file (or a plain file: zlib passes those through unchanged). Only regular
// files are opened (a FIFO would block, /dev/zero never end: Note [Regular files only]).
std::string read_text(const std::string& path, const char* op) {
  { const InputFile check(path, op); }
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr)
    THETA_THROW(FormatError, op, ": cannot open '", path, "': ",
                errno != 0 ? std::generic_category().message(errno) : std::string("out of memory"));
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      THETA_THROW(FormatError, op, ": cannot read '", path, "': ", message);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxTextBytes) {
      gzclose(file);
      THETA_THROW(FormatError, op, ": '", path, "' decompresses to more than ", kMaxTextBytes, " bytes");
    }
  }
  // gzclose reports a gzip stream that ended early (a truncated .gz file) as Z_BUF_ERROR.
  const int status = gzclose(file);
  THETA_CHECK(status == Z_OK, FormatError, op, ": '", path, "' is truncated or not a valid gzip file");
  return text;
}

// A CSV file being parsed line by line; errors name the op, the file and the line.
class CsvReader {
 public:
  CsvReader(std::string text, const char* op, std::string path)
      : text_(std::move(text)), op_(op), path_(std::move(path)) {}

  // The next line without its terminator; false at the end (a final newline ends the last line).
  bool next_line() {
    if (pos_ >= text_.size()) return false;
    const std::size_t end = std::min(text_.find('\n', pos_), text_.size());
    std::string_view line(text_.data() + pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = end + 1;
    ++line_no_;
    fields_.clear();
    for (std::size_t start = 0;;) {
      const std::size_t comma = line.find(',', start);
      fields_.push_back(trim(line.substr(start, comma == std::string_view::npos ? line.npos : comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    if (line.empty()) {
      // Blank lines are allowed only at the end of the file.
      if (text_.find_first_not_of(" \t\r\n", pos_) == std::string::npos) {
        pos_ = text_.size();
        return false;
      }
      fail("empty line");
    }
    return true;
  }

  const std::vector<std::string_view>& fields() const { return fields_; }
  std::int64_t line_no() const { return line_no_; }

  void expect_columns(std::size_t count) const {
    if (fields_.size() != count)
      fail("expected " + std::to_string(count) + " columns, found " + std::to_string(fields_.size()));
  }

  double number(std::size_t column) const {
    const std::string_view f = fields_[column];
    double value = 0.0;
    const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
    if (f.empty() || ec != std::errc() || end != f.data() + f.size() || !std::isfinite(value))
      fail("column " + std::to_string(column + 1) + ": '" + std::string(f) + "' is not a finite number");
    return value;
  }

  std::int64_t integer(std::size_t column, std::int64_t lo, std::int64_t hi, const char* what) const {
    const std::string_view f = fields_[column];
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
    if (f.empty() || ec != std::errc() || end != f.data() + f.size())
      fail("column " + std::to_string(column + 1) + ": " + what + " '" + std::string(f) +
           "' is not an integer");
    if (value < lo || value > hi)
      fail("column " + std::to_string(column + 1) + ": " + what + " " + std::to_string(value) +
           " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return value;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    THETA_THROW(FormatError, op_, ": ", path_, ": line ", line_no_, ": ", problem);
  }

 private:
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  std::string text_;
  const char* op_;
  std::string path_;
  std::size_t pos_ = 0;
  std::int64_t line_no_ = 0;
  std::vector<std::string_view> fields_;
};

// Reads one "features..., label" row into x and y.
void read_row(const CsvReader& csv, std::int64_t n_features, std::int64_t n_classes,
              std::vector<double>& x, std::vector<std::int64_t>& y) {
  csv.expect_columns(static_cast<std::size_t>(n_features) + 1);
  for (std::int64_t j = 0; j < n_features; ++j) x.push_back(csv.number(static_cast<std::size_t>(j)));
  y.push_back(csv.integer(static_cast<std::size_t>(n_features), 0, n_classes - 1, "label"));
}

Dataset make_dataset(const std::vector<double>& x, const std::vector<std::int64_t>& y, std::int64_t n_features) {
  const auto n = static_cast<std::int64_t>(y.size());
  return Dataset{from_vector(x, {n, n_features}), from_indices(y)};
}

}  // namespace

Dataset load_digits(const std::string& path) {
  constexpr std::int64_t kPixels = 64, kClasses = 10;
  CsvReader csv(read_text(path, "load_digits"), "load_digits", path);
  std::vector<double> x;
  std::vector<std::int64_t> y;
  while (csv.next_line()) read_row(csv, kPixels, kClasses, x, y);
  if (y.empty()) THETA_THROW(FormatError, "load_digits: ", path, ": no data rows");
  return make_dataset(x, y, kPixels);
}

Dataset load_digits() { return load_digits(detail::find_data_file("digits.csv.gz", "load_digits")); }

Dataset load_iris(const std::string& path) {
  CsvReader csv(read_text(path, "load_iris"), "load_iris", path);
  if (!csv.next_line()) THETA_THROW(FormatError, "load_iris: ", path, ": empty file (no header line)");
  if (csv.fields().size() < 3) csv.fail("header must be 'rows,features,class names...'");
  constexpr std::int64_t kMaxCount = std::int64_t{1} << 40;
  const std::int64_t rows = csv.integer(0, 0, kMaxCount, "row count");
  const std::int64_t features = csv.integer(1, 1, kMaxCount, "feature count");
  const auto classes = static_cast<std::int64_t>(csv.fields().size()) - 2;
  std::vector<double> x;
  std::vector<std::int64_t> y;
  while (csv.next_line()) {
    if (static_cast<std::int64_t>(y.size()) == rows)
      csv.fail("more data rows than the " + std::to_string(rows) + " the header announces");
    read_row(csv, features, classes, x, y);
  }
  if (static_cast<std::int64_t>(y.size()) != rows)
    THETA_THROW(FormatError, "load_iris: ", path, ": line ", csv.line_no(), ": the file ends after ",
                y.size(), " data rows, the header announces ", rows);
  return make_dataset(x, y, features);
}

Dataset load_iris() { return load_iris(detail::find_data_file("iris.csv", "load_iris")); }

}  // namespace theta::nn
