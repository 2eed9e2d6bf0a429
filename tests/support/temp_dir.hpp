#pragma once
// A fresh temporary directory for one test, removed with everything in it at scope exit.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace theta::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("theta_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// The names of the files in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  /// The path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

  /// Writes `bytes` to `name` (plainly, not atomically) and returns its path. An existing file is
  /// removed first rather than truncated: ext4 flushes a truncated-and-rewritten file to disk on
  /// close, which makes tests that rewrite one file thousands of times slow.
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = file(name);
    std::filesystem::remove(p);
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace theta::test
