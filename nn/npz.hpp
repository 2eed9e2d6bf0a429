#pragma once
// NumPy .npz archives: an uncompressed ZIP file whose members are .npy files, one per named
// tensor ("w.npy" holds the tensor named "w"). np.load reads what npz_serialize writes, and
// npz_parse reads what np.savez writes. Compressed members (np.savez_compressed), encryption
// and ZIP64 (archives or members of 4 GiB and more, 65535 members and more) are not supported.

#include <string>
#include <string_view>
#include <vector>

#include "nn/module.hpp"

namespace theta::nn {

/// Serialises `tensors` as an .npz archive held in memory, in the given order. Names must be
/// non-empty and distinct. `what` names the destination in error messages.
std::string npz_serialize(const std::vector<NamedTensor>& tensors, const std::string& what = "npz");

/// Parses an .npz archive held in memory, checking every member's CRC-32; returns the tensors in
/// archive order, named without the ".npy" suffix. Throws FormatError prefixed by `what` on any
/// malformed, truncated or corrupted input, and never reads outside `bytes`.
std::vector<NamedTensor> npz_parse(std::string_view bytes, const std::string& what = "npz");

/// Writes an .npz file atomically (temporary file, fsync, rename).
void save_npz(const std::string& path, const std::vector<NamedTensor>& tensors);

/// Reads an .npz file.
std::vector<NamedTensor> load_npz(const std::string& path);

}  // namespace theta::nn
