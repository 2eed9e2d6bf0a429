#include "tensor/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include "tensor/error.hpp"

namespace theta {

namespace {

// The directory a file is written into ("." for a bare name).
std::string directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Why `path` could not be written, in the caller's terms: the temporary file next to it is an
// implementation detail and never named (Note [Atomic write]).
[[noreturn]] void throw_write_error(int err, const char* op, const std::string& path) {
  std::string message = std::string(op) + ": cannot write '" + path + "'";
  if (err == ENOENT) message += " (directory '" + directory_of(path) + "' does not exist)";
  if (err == EACCES) message += " (no permission to create files in '" + directory_of(path) + "')";
  throw IoError(err, message);
}

// Closes a file descriptor on scope exit unless released.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

std::string random_suffix() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device device;
  std::uniform_int_distribution<std::size_t> pick(0, sizeof(kChars) - 2);
  std::string s(6, 'x');
  for (char& c : s) c = kChars[pick(device)];
  return s;
}

}  // namespace

// Note [Atomic write]
// The bytes go to a fresh file next to the target (same directory, hence same file system, so
// rename() is atomic), which is fsync'ed before it is renamed over the target; the directory is
// then fsync'ed so the rename itself survives a crash. The temporary is created with open(O_EXCL)
// and mode 0666 rather than mkstemp's 0600, so the umask decides the final permissions exactly as
// for a file written in place. Any failure before the rename removes the temporary.
void write_file_atomic(const std::string& path, std::string_view bytes, const char* op) {
  std::string tmp;
  FdCloser file;
  for (int attempt = 0; attempt < 100 && file.fd < 0; ++attempt) {
    tmp = path + ".tmp." + random_suffix();
    file.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (file.fd < 0 && errno != EEXIST) throw_write_error(errno, op, path);
  }
  if (file.fd < 0) throw_write_error(EEXIST, op, path);

  bool renamed = false;
  try {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const std::size_t chunk = std::min<std::size_t>(bytes.size() - done, std::size_t{1} << 30);
      const ssize_t n = ::write(file.fd, bytes.data() + done, chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_write_error(errno, op, path);
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(file.fd) != 0) throw_write_error(errno, op, path);
    const int fd = file.fd;
    file.fd = -1;
    if (::close(fd) != 0) throw_write_error(errno, op, path);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_write_error(errno, op, path);
    renamed = true;
  } catch (...) {
    if (!renamed) ::unlink(tmp.c_str());
    throw;
  }

  const std::string dir = directory_of(path);
  FdCloser dir_fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd < 0)
    throw IoError(errno, std::string(op) + ": wrote '" + path + "' but cannot open its directory '" + dir + "'");
  if (::fsync(dir_fd.fd) != 0 && errno != EINVAL)
    throw IoError(errno, std::string(op) + ": wrote '" + path + "' but cannot fsync its directory '" + dir + "'");
}

// Note [Regular files only]
// Files are read until they end or up to a size their header declares, which only means
// something for regular files: /dev/zero or /dev/urandom never end (a whole-file read grows until
// std::bad_alloc), a FIFO or a terminal blocks, and a directory cannot be read at all. So
// InputFile stat()s the path and refuses anything but a regular file before opening it (opening
// some devices has effects of its own), then opens it with O_NONBLOCK (so a FIFO swapped in
// meanwhile cannot block the open) and checks the opened file again with fstat(). On a regular
// file O_NONBLOCK changes nothing.
namespace {
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}
}  // namespace

InputFile::InputFile(const std::string& path, const char* op) : path_(path), op_(op) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    THETA_THROW(FormatError, op_, ": cannot open '", path_, "': ", std::generic_category().message(errno));
  THETA_CHECK(S_ISREG(info.st_mode), FormatError, op_, ": '", path_, "' is ", file_kind(info.st_mode),
              ", not a regular file");
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0)
    THETA_THROW(FormatError, op_, ": cannot open '", path_, "': ", std::generic_category().message(errno));
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    THETA_THROW(FormatError, op_, ": '", path_, "' is not a regular file");
  }
  size_ = static_cast<std::uint64_t>(info.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t InputFile::read(void* dst, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const std::size_t chunk = std::min<std::size_t>(n - done, std::size_t{1} << 30);
    const ssize_t got = ::read(fd_, static_cast<char*>(dst) + done, chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      THETA_THROW(FormatError, op_, ": cannot read '", path_, "': ", std::generic_category().message(errno));
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

void InputFile::read_exact(void* dst, std::size_t n) {
  const std::size_t got = read(dst, n);
  THETA_CHECK(got == n, FormatError, op_, ": '", path_, "' ended after ", got, " of ", n,
              " bytes (was it truncated while being read?)");
}

std::string read_file(const std::string& path) {
  InputFile file(path, "read_file");
  std::string out;
  out.reserve(static_cast<std::size_t>(file.size()));
  char buffer[1 << 16];
  // Up to the end, not just size() bytes: some regular files (in /proc, say) report size 0.
  for (std::size_t n; (n = file.read(buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  return out;
}

}  // namespace theta
