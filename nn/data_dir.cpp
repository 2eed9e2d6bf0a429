#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "nn/data.hpp"
#include "nn/data_location.hpp"
#include "tensor/error.hpp"

namespace theta::nn {

// Note [Data directory]
// The data sets shipped in the source tree's data/ are found in this order:
//   1. a path given to the loader (load_digits(path)): used as given, no lookup;
//   2. $THETA_DATA_DIR when it is set and non-empty: used as given, with no fallback (an
//      explicit choice that silently fell back elsewhere would hide a typo);
//   3. the directory configured when theta was built. `cmake --install` copies data/ to
//      <CMAKE_INSTALL_PREFIX>/<CMAKE_INSTALL_DATADIR>/theta and the installed library looks
//      there; the build tree (tests, demos, add_subdirectory) looks in the source tree's data/.
// The two configured paths live in two small libraries built from nn/data_location.cpp, and
// theta_nn links one or the other through $<BUILD_INTERFACE> / $<INSTALL_INTERFACE>, so the
// installed library holds no path into a source tree that may be gone. The installed path is
// fixed at configure time: a tree installed under another prefix (`cmake --install --prefix`)
// or moved afterwards needs THETA_DATA_DIR (cmake --install warns about the first case).

namespace {

struct DataDir {
  std::string path;
  std::string origin;  // where the path came from, for error messages
};

DataDir data_dir() {
  const char* env = std::getenv("THETA_DATA_DIR");
  if (env != nullptr && *env != '\0') return {env, "$THETA_DATA_DIR"};
  return {detail::configured_data_dir(), detail::configured_data_dir_kind()};
}

}  // namespace

std::string default_data_dir() { return data_dir().path; }

namespace detail {

std::string find_data_file(const std::string& name, const char* op) {
  const DataDir dir = data_dir();
  const std::string path = (std::filesystem::path(dir.path) / name).string();
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return path;
  THETA_THROW(FormatError, op, ": ", name, " not found: looked for ", path, " (", dir.origin,
              "); set THETA_DATA_DIR to the folder that holds ", name,
              ", or pass the file's path to the loader");
}

}  // namespace detail

std::string data_file(const std::string& name) { return detail::find_data_file(name, "data_file"); }

}  // namespace theta::nn
