#pragma once
// Whole-file reads and crash-safe whole-file writes (used by .npy, checkpoints and the demos).

#include <string>
#include <string_view>

namespace theta {

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
/// A crash or error never leaves a partially written `path` behind.
void write_file_atomic(const std::string& path, std::string_view bytes);

/// Reads a whole file into memory (throws FormatError when it cannot be read).
std::string read_file(const std::string& path);

}  // namespace theta
