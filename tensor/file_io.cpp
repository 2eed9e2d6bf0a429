#include "tensor/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include "tensor/error.hpp"

namespace theta {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& message) {
  throw std::system_error(err, std::generic_category(), message);
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
void write_file_atomic(const std::string& path, std::string_view bytes) {
  std::string tmp;
  FdCloser file;
  for (int attempt = 0; attempt < 100 && file.fd < 0; ++attempt) {
    tmp = path + ".tmp." + random_suffix();
    file.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (file.fd < 0 && errno != EEXIST)
      throw_errno(errno, "write_file_atomic: cannot create temporary file '" + tmp + "'");
  }
  if (file.fd < 0)
    throw_errno(EEXIST, "write_file_atomic: no free temporary name for '" + path + "'");

  bool renamed = false;
  try {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const std::size_t chunk = std::min<std::size_t>(bytes.size() - done, std::size_t{1} << 30);
      const ssize_t n = ::write(file.fd, bytes.data() + done, chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(errno, "write_file_atomic: cannot write '" + tmp + "'");
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(file.fd) != 0) throw_errno(errno, "write_file_atomic: cannot fsync '" + tmp + "'");
    const int fd = file.fd;
    file.fd = -1;
    if (::close(fd) != 0) throw_errno(errno, "write_file_atomic: cannot close '" + tmp + "'");
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw_errno(errno, "write_file_atomic: cannot rename '" + tmp + "' to '" + path + "'");
    renamed = true;
  } catch (...) {
    if (!renamed) ::unlink(tmp.c_str());
    throw;
  }

  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  FdCloser dir_fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd < 0)
    throw_errno(errno, "write_file_atomic: wrote '" + path + "' but cannot open its directory");
  if (::fsync(dir_fd.fd) != 0 && errno != EINVAL)
    throw_errno(errno, "write_file_atomic: wrote '" + path + "' but cannot fsync its directory");
}

std::string read_file(const std::string& path) {
  FdCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0)
    THETA_THROW(FormatError, "read_file: cannot open '", path,
                "': ", std::generic_category().message(errno));
  std::string out;
  struct stat info {};
  if (::fstat(file.fd, &info) == 0 && info.st_size > 0)
    out.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(file.fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      THETA_THROW(FormatError, "read_file: cannot read '", path,
                  "': ", std::generic_category().message(errno));
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace theta
