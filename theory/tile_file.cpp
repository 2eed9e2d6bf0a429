#include "theory/tile_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <system_error>
#include <vector>

#include "tensor/file_io.hpp"
#include "tensor/npy.hpp"

namespace theta::theory::detail {

// Note [Tile log]
// The kernel file is an ordinary C-order .npy whose elements are written in place (pwrite at
// each tile's byte offsets), so it never has to fit in memory. Next to it, `<path>.tiles` is a
// text log: a header naming the problem (kernel shape, form, tile size and a CRC-32 fingerprint
// of the inputs and parameters), then one `done I J` line per finished tile, then `complete`.
// Order of events, so that a crash at any point leaves a state the next run understands:
//  - a new run writes the log header atomically first, then the data file (header + NaN) under
//    a temporary name, fsync'ed and renamed into place: a log without data and without tiles
//    means "start the data again";
//  - a tile's bytes are written and the data file fsync'ed before its `done` line is appended
//    and the log fsync'ed: a tile in the log is on disk; a tile whose line was torn by the crash
//    (no final newline) is simply computed again. Lines are appended in batches at most a
//    second apart (an fsync per tile made a 16k-point kernel twice as slow), so a crash loses
//    at most a second of tiles;
//  - `complete` is appended only after the whole file was read back without a NaN.
// A data file with no log is never overwritten: nothing says it is ours.
// A run split over processes (parts) shares the one data file, each part writing its own tiles'
// bytes, and only part 0 writes the main log. Part p > 0 records its tiles, by the same rules, in
// `<path>.tiles.<p>` (the same header, then `done` lines). Part 0 folds those logs into the main
// log and removes them when it opens the file (before any other part opens it: tiles of a killed
// run count, whatever the number of parts then) and after every part has finished (then the
// main log names every tile and the check above runs). A new file removes part logs that have no
// main log: the tiles they name belong to a data file that is gone.

namespace {

constexpr const char* kMagic = "theta tiled kernel log 1";

[[noreturn]] void throw_errno(int err, const std::string& message) {
  throw IoError(err, "tiled_ntk_to_npy: " + message);
}

void write_all(int fd, const char* data, std::size_t n, std::uint64_t offset, bool positioned,
               const std::string& what) {
  while (n > 0) {
    const ssize_t w = positioned ? ::pwrite(fd, data, n, static_cast<off_t>(offset)) : ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw_errno(errno, "cannot write '" + what + "'");
    data += w;
    n -= static_cast<std::size_t>(w);
    offset += static_cast<std::uint64_t>(w);
  }
}

void sync_fd(int fd, const std::string& what) {
  if (::fsync(fd) != 0) throw_errno(errno, "cannot fsync '" + what + "'");
}

void sync_directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw_errno(errno, "cannot open directory '" + dir + "'");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw_errno(err, "cannot fsync directory '" + dir + "'");
}

std::string header_text(const TileProblem& p) {
  std::ostringstream out;
  out << kMagic << "\nshape";
  for (std::int64_t d : p.shape) out << ' ' << d;
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", p.fingerprint);
  out << "\nform " << p.form << "\ntile " << p.tile << "\nfingerprint " << crc << '\n';
  return out.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;  // a last line without its newline is a torn append: dropped
}

}  // namespace

std::string tile_log_path(const std::string& path, std::int64_t part) {
  return part == 0 ? path + ".tiles" : path + ".tiles." + std::to_string(part);
}

TileFile::TileFile(std::string path, TileProblem problem, std::int64_t part)
    : path_(std::move(path)), log_path_(tile_log_path(path_, part)), problem_(std::move(problem)), part_(part) {
  THETA_CHECK(problem_.shape.size() >= 2 && problem_.tile >= 1 && part_ >= 0, std::invalid_argument,
              "tile file: bad problem for '", path_, "'");
  std::error_code ec;
  if (part_ > 0)
    open_as_part();
  else if (std::filesystem::exists(log_path_, ec))
    open_existing();
  else
    create();
}

TileFile::~TileFile() {
  try {
    if (data_fd_ >= 0 && log_fd_ >= 0) flush();  // an error elsewhere: keep what is finished
  } catch (const std::exception&) {              // the tiles not logged are computed again by the next run
  }
  if (data_fd_ >= 0) ::close(data_fd_);
  if (log_fd_ >= 0) ::close(log_fd_);
}

void TileFile::create() {
  std::error_code ec;
  THETA_CHECK(!std::filesystem::exists(path_, ec), FormatError, "tiled_ntk_to_npy: '", path_,
              "' exists but has no tile log '", log_path_,
              "': it is not a kernel this run can resume; remove it or write elsewhere");
  // Part logs left without a main log name tiles of a data file that is gone.
  for (const std::string& log : part_logs()) std::filesystem::remove(log);
  write_file_atomic(log_path_, header_text(problem_));
  log_fd_ = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (log_fd_ < 0) throw_errno(errno, "cannot open '" + log_path_ + "'");

  // The data: header, then every element NaN, under a temporary name until it is all on disk.
  const std::string tmp = path_ + ".partial";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno(errno, "cannot create '" + path_ + "' (writing it as '" + tmp + "' first)");
  try {
    const std::string header = npy_header(problem_.shape, DType::f64);
    write_all(fd, header.data(), header.size(), 0, false, tmp);
    std::int64_t left = shape_numel(problem_.shape);
    const std::vector<double> nan_chunk(std::size_t{1} << 17, std::numeric_limits<double>::quiet_NaN());
    while (left > 0) {
      const auto count =
          static_cast<std::size_t>(std::min<std::int64_t>(left, static_cast<std::int64_t>(nan_chunk.size())));
      write_all(fd, reinterpret_cast<const char*>(nan_chunk.data()), count * sizeof(double), 0, false, tmp);
      left -= static_cast<std::int64_t>(count);
    }
    sync_fd(fd, tmp);
    ::close(fd);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) throw_errno(errno, "cannot rename '" + tmp + "' to '" + path_ + "'");
  sync_directory_of(path_);
  data_offset_ = read_npy_info(path_).data_offset;
  data_fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (data_fd_ < 0) throw_errno(errno, "cannot open '" + path_ + "'");
}

bool TileFile::read_log(const std::string& log_path, const std::string& text) {
  const std::vector<std::string> lines = split_lines(text);
  const std::vector<std::string> expected = split_lines(header_text(problem_));
  THETA_CHECK(!lines.empty() && lines[0] == kMagic, FormatError, "tiled_ntk_to_npy: '", log_path,
              "' is not a theta tile log (first line '", lines.empty() ? std::string() : lines[0], "')");
  for (std::size_t i = 1; i < expected.size(); ++i)
    THETA_CHECK(i < lines.size() && lines[i] == expected[i], FormatError, "tiled_ntk_to_npy: '", log_path,
                "' belongs to another kernel: it says '", i < lines.size() ? lines[i] : std::string("(nothing)"),
                "' where this run has '", expected[i], "'; remove '", path_,
                "' and its logs to start over, or write elsewhere");
  const std::int64_t rows = tiles_along(problem_.shape[0], problem_.tile);
  const std::int64_t cols = tiles_along(problem_.shape[1], problem_.tile);
  for (std::size_t i = expected.size(); i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line == "complete" && i + 1 == lines.size()) return true;
    std::istringstream in(line);
    std::string word;
    std::int64_t r = -1, c = -1;
    char extra = 0;
    const bool ok =
        (in >> word >> r >> c) && word == "done" && !(in >> extra) && r >= 0 && r < rows && c >= 0 && c < cols;
    THETA_CHECK(ok, FormatError, "tiled_ntk_to_npy: '", log_path, "' line ", i + 1,
                " is not a finished tile of this kernel: '", line, "'");
    finished_.insert({r, c});
  }
  return false;
}

void TileFile::open_data() {
  std::error_code ec;
  THETA_CHECK(std::filesystem::exists(path_, ec), FormatError, "tiled_ntk_to_npy: '", path_,
              "' is missing but its log '", tile_log_path(path_, 0), "' exists; remove the log to start over");
  const NpyInfo info = read_npy_info(path_);
  THETA_CHECK(info.shape == problem_.shape && info.dtype == DType::f64 && !info.fortran_order, FormatError,
              "tiled_ntk_to_npy: '", path_, "' holds ", shape_str(info.shape), " ", dtype_name(info.dtype),
              info.fortran_order ? " (Fortran order)" : "", ", not the C-order float64 ", shape_str(problem_.shape),
              " kernel its log describes");
  data_offset_ = info.data_offset;
  data_fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (data_fd_ < 0) throw_errno(errno, "cannot open '" + path_ + "'");
}

// Opens this part's log for appending, dropping a torn last line of `text` (its contents) so the
// next record starts on a line of its own.
void TileFile::open_log_for_append(const std::string& text) {
  log_fd_ = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (log_fd_ < 0) throw_errno(errno, "cannot open '" + log_path_ + "'");
  const std::size_t kept = text.rfind('\n') + 1;
  if (kept != text.size() && ::ftruncate(log_fd_, static_cast<off_t>(kept)) != 0)
    throw_errno(errno, "cannot truncate '" + log_path_ + "'");
}

void TileFile::open_existing() {
  const std::string text = read_file(log_path_);
  complete_ = read_log(log_path_, text);
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec) && finished_.empty() && !complete_) {
    std::filesystem::remove(log_path_);
    create();
    return;
  }
  open_data();
  open_log_for_append(text);
  if (!complete_) fold_part_logs();
}

void TileFile::open_as_part() {
  const std::string main_log = tile_log_path(path_, 0);
  std::error_code ec;
  THETA_CHECK(std::filesystem::exists(main_log, ec), FormatError, "tiled_ntk_to_npy: '", main_log,
              "' does not exist: part 0 of the run", " creates the kernel file and its log before part ", part_,
              " opens them");
  complete_ = read_log(main_log, read_file(main_log));
  open_data();
  if (complete_) return;  // nothing left to record
  // Part 0 folded and removed every earlier part log before this part opened the file.
  const std::string text = header_text(problem_);
  write_file_atomic(log_path_, text);
  open_log_for_append(text);
}

std::vector<std::string> TileFile::part_logs() const {
  const std::filesystem::path self(path_);
  const std::filesystem::path dir = self.parent_path().empty() ? std::filesystem::path(".") : self.parent_path();
  const std::string prefix = self.filename().string() + ".tiles.";
  std::vector<std::string> logs;
  std::error_code ec;  // a directory that cannot be listed holds no part log (creating fails later)
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        name.find_first_not_of("0123456789", prefix.size()) == std::string::npos)
      logs.push_back(entry.path().string());
  }
  std::sort(logs.begin(), logs.end());
  return logs;
}

void TileFile::fold_part_logs() {
  THETA_ASSERT(part_ == 0 && log_fd_ >= 0);
  const std::vector<std::string> logs = part_logs();
  if (logs.empty()) return;
  const auto before = finished_;
  for (const std::string& log : logs) read_log(log, read_file(log));
  for (const auto& [r, c] : finished_)
    if (before.count({r, c}) == 0) pending_ += "done " + std::to_string(r) + " " + std::to_string(c) + "\n";
  flush();
  for (const std::string& log : logs) std::filesystem::remove(log);
  sync_directory_of(path_);
}

void TileFile::write_block(std::int64_t row0, std::int64_t col0, const Tensor& block) {
  THETA_ASSERT(block.is_contiguous() && block.dtype() == DType::f64 &&
               static_cast<std::size_t>(block.dim()) == problem_.shape.size());
  const std::int64_t rows = block.size(0), cols = block.size(1);
  const std::int64_t per_entry = rows * cols == 0 ? 0 : block.numel() / (rows * cols);
  const std::int64_t n2 = problem_.shape[1];
  THETA_ASSERT(row0 >= 0 && col0 >= 0 && row0 + rows <= problem_.shape[0] && col0 + cols <= n2);
  const auto* data = static_cast<const char*>(block.raw_data());
  const auto row_bytes = static_cast<std::size_t>(cols * per_entry) * sizeof(double);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t offset =
        data_offset_ + static_cast<std::uint64_t>(((row0 + r) * n2 + col0) * per_entry) * sizeof(double);
    write_all(data_fd_, data + static_cast<std::size_t>(r) * row_bytes, row_bytes, offset, true, path_);
  }
}

void TileFile::mark_finished(std::int64_t row_tile, std::int64_t col_tile) {
  pending_ += "done " + std::to_string(row_tile) + " " + std::to_string(col_tile) + "\n";
  finished_.insert({row_tile, col_tile});
  // Start writing the tile's pages back now, without waiting: the fsync of the next flush then
  // finds little left to write, and the disk works while the next tiles are computed.
  ::sync_file_range(data_fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
  if (std::chrono::steady_clock::now() - last_flush_ >= std::chrono::seconds(1)) flush();
}

void TileFile::flush() {
  last_flush_ = std::chrono::steady_clock::now();
  if (pending_.empty()) return;
  if (::fdatasync(data_fd_) != 0) throw_errno(errno, "cannot fsync '" + path_ + "'");
  write_all(log_fd_, pending_.data(), pending_.size(), 0, false, log_path_);
  sync_fd(log_fd_, log_path_);
  pending_.clear();
}

void TileFile::finish() {
  flush();
  const std::int64_t total = shape_numel(problem_.shape);
  std::vector<double> chunk(std::size_t{1} << 17);
  for (std::int64_t first = 0; first < total;) {
    const auto count =
        static_cast<std::size_t>(std::min<std::int64_t>(total - first, static_cast<std::int64_t>(chunk.size())));
    auto* dst = reinterpret_cast<char*>(chunk.data());
    std::size_t have = 0;
    const std::size_t want = count * sizeof(double);
    while (have < want) {
      const ssize_t r =
          ::pread(data_fd_, dst + have, want - have,
                  static_cast<off_t>(data_offset_ + static_cast<std::uint64_t>(first) * sizeof(double) + have));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw_errno(errno, "cannot read '" + path_ + "'");
      THETA_CHECK(r > 0, FormatError, "tiled_ntk_to_npy: '", path_, "' ended early while being checked");
      have += static_cast<std::size_t>(r);
    }
    for (std::size_t i = 0; i < count; ++i)
      THETA_CHECK(!std::isnan(chunk[i]), InternalError, "tiled_ntk_to_npy: '", path_, "': element ",
                  first + static_cast<std::int64_t>(i), " was never written although every tile is logged as finished");
    first += static_cast<std::int64_t>(count);
  }
  const std::string line = "complete\n";
  write_all(log_fd_, line.data(), line.size(), 0, false, log_path_);
  sync_fd(log_fd_, log_path_);
  complete_ = true;
}

}  // namespace theta::theory::detail
