#pragma once
// Whole-file reads and crash-safe whole-file writes (used by .npy, checkpoints and the demos).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace theta {

/// A regular file opened for reading. Anything else (a directory, FIFO, device or socket) is
/// refused with a FormatError naming the path before a byte is read: reading it could block or
/// never end (Note [Regular files only]).
class InputFile {
 public:
  /// Opens `path`; `op` names the caller in error messages.
  InputFile(const std::string& path, const char* op);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// The file's size in bytes when it was opened.
  std::uint64_t size() const { return size_; }
  /// Reads up to `n` bytes into `dst`; fewer only at the end of the file. Returns the count.
  std::size_t read(void* dst, std::size_t n);
  /// Reads exactly `n` bytes into `dst`; throws FormatError when the file ends first.
  void read_exact(void* dst, std::size_t n);

 private:
  int fd_ = -1;
  std::string path_;
  const char* op_;
  std::uint64_t size_ = 0;
};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
/// A crash or error never leaves a partially written `path` behind. Failures throw IoError
/// naming `op` (the caller, e.g. "save_npy") and `path`, never the temporary file.
void write_file_atomic(const std::string& path, std::string_view bytes, const char* op = "write_file_atomic");

/// Reads a whole regular file into memory (throws FormatError when it cannot be read).
std::string read_file(const std::string& path);

}  // namespace theta
