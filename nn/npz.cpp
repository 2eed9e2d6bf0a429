#include "nn/npz.hpp"

#include <zlib.h>

#include <cstdint>
#include <iomanip>
#include <set>
#include <sstream>

#include "tensor/npy.hpp"

namespace theta::nn {

// Note [ZIP layout]
// An archive is a sequence of members, each a 30-byte local file header, the member's name and
// its bytes, followed by the central directory (one 46-byte header plus the name per member, with
// the member's CRC-32, sizes and the offset of its local header) and the 22-byte
// end-of-central-directory record (EOCD: member count, size and offset of the central directory,
// length of a trailing comment). All integers are little-endian.
//
// The writer stores members uncompressed (method 0), with no extra fields, no comment and a fixed
// timestamp (1980-01-01 00:00, the earliest DOS date), so equal tensors give byte-identical files.
// Fields that would not fit their 16 or 32 bits are refused: ZIP64 is not written.
//
// The reader trusts nothing: it finds the EOCD by scanning back from the end for its signature
// with a comment length that reaches exactly the end of the file, then walks the central
// directory, checking every offset and size against the bytes actually present before using it.
// Each local header must agree with its central entry (name, method, CRC-32), and each member's
// bytes must lie before the central directory and match the recorded CRC-32. Sizes are added in
// 64 bits, so no sum can wrap. Timestamps, version and attribute fields are not interpreted.

namespace {

constexpr std::uint32_t kLocalSignature = 0x04034b50;
constexpr std::uint32_t kCentralSignature = 0x02014b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22;
constexpr std::uint16_t kVersion = 20;          // 2.0: the version numpy's zipfile writes
constexpr std::uint16_t kUtf8Flag = 1u << 11;  // the name is UTF-8
constexpr std::uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01
constexpr std::uint64_t kMax32 = 0xFFFFFFFFu;   // reserved as the ZIP64 marker
constexpr std::uint64_t kMax16 = 0xFFFFu;

void put16(std::string& out, std::uint64_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
}

void put32(std::string& out, std::uint64_t v) {
  put16(out, v & 0xFFFF);
  put16(out, (v >> 16) & 0xFFFF);
}

// Little-endian integers at `pos`; the caller has checked that the bytes are present.
std::uint32_t get16(std::string_view b, std::uint64_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + pos);
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8);
}

std::uint32_t get32(std::string_view b, std::uint64_t pos) { return get16(b, pos) | (get16(b, pos + 2) << 16); }

std::uint32_t crc_of(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

std::string hex32(std::uint32_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << std::setw(8) << std::setfill('0') << v;
  return s.str();
}

bool is_ascii(std::string_view s) {
  for (const char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

constexpr std::string_view kSuffix = ".npy";

}  // namespace

std::string npz_serialize(const std::vector<NamedTensor>& tensors, const std::string& what) {
  THETA_CHECK(tensors.size() < kMax16, FormatError, what, ": ", tensors.size(),
              " tensors need ZIP64, which theta does not write (at most 65534)");
  std::string out, central;
  std::set<std::string> seen;
  for (const auto& [key, tensor] : tensors) {
    THETA_CHECK(!key.empty(), std::invalid_argument, what, ": a tensor has an empty name");
    THETA_CHECK(tensor.defined(), std::invalid_argument, what, ": tensor '", key, "' is undefined");
    THETA_CHECK(seen.insert(key).second, std::invalid_argument, what, ": two tensors are named '", key, "'");
    const std::string name = key + std::string(kSuffix);
    THETA_CHECK(name.size() <= kMax16, FormatError, what, ": tensor name '", key, "' is too long");
    const std::string data = npy_serialize(tensor);
    const std::uint64_t offset = out.size();
    THETA_CHECK(data.size() < kMax32 && offset < kMax32, FormatError, what, ": tensor '", key,
                "' would need ZIP64 (4 GiB limit), which theta does not write");
    const std::uint32_t crc = crc_of(data);
    const std::uint16_t flags = is_ascii(name) ? 0 : kUtf8Flag;

    put32(out, kLocalSignature);
    put16(out, kVersion);
    put16(out, flags);
    put16(out, 0);  // method: stored
    put16(out, 0);  // time
    put16(out, kDosDate);
    put32(out, crc);
    put32(out, data.size());  // compressed size
    put32(out, data.size());  // uncompressed size
    put16(out, name.size());
    put16(out, 0);  // extra field length
    out += name;
    out += data;

    put32(central, kCentralSignature);
    put16(central, kVersion);  // made by (MS-DOS attribute conventions)
    put16(central, kVersion);  // needed to extract
    put16(central, flags);
    put16(central, 0);
    put16(central, 0);
    put16(central, kDosDate);
    put32(central, crc);
    put32(central, data.size());
    put32(central, data.size());
    put16(central, name.size());
    put16(central, 0);  // extra field length
    put16(central, 0);  // comment length
    put16(central, 0);  // disk number
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += name;
  }
  const std::uint64_t central_offset = out.size();
  THETA_CHECK(central_offset < kMax32 && central.size() < kMax32, FormatError, what,
              ": the archive would need ZIP64 (4 GiB limit), which theta does not write");
  out += central;
  put32(out, kEndSignature);
  put16(out, 0);  // this disk
  put16(out, 0);  // disk holding the central directory
  put16(out, tensors.size());
  put16(out, tensors.size());
  put32(out, central.size());
  put32(out, central_offset);
  put16(out, 0);  // comment length
  return out;
}

std::vector<NamedTensor> npz_parse(std::string_view bytes, const std::string& what) {
  const auto fail = [&](const std::string& problem) { THETA_THROW(FormatError, what, ": ", problem); };
  const std::uint64_t size = bytes.size();
  if (size < kEndSize)
    fail("not a zip archive (" + std::to_string(size) + " bytes, too short for the end record)");

  // Find the EOCD: the last signature whose comment reaches exactly the end of the file.
  std::uint64_t end = size;  // position of the EOCD, size when not found
  const std::uint64_t lowest = size - kEndSize > kMax16 ? size - kEndSize - kMax16 : 0;
  for (std::uint64_t pos = size - kEndSize + 1; pos-- > lowest;) {
    if (get32(bytes, pos) == kEndSignature && pos + kEndSize + get16(bytes, pos + 20) == size) {
      end = pos;
      break;
    }
  }
  if (end == size) fail("not a zip archive, or truncated (no end-of-central-directory record)");

  const std::uint32_t disk = get16(bytes, end + 4), cd_disk = get16(bytes, end + 6);
  const std::uint32_t entries_here = get16(bytes, end + 8), entries = get16(bytes, end + 10);
  const std::uint64_t cd_size = get32(bytes, end + 12), cd_offset = get32(bytes, end + 16);
  if (entries == kMax16 || entries_here == kMax16 || cd_size == kMax32 || cd_offset == kMax32)
    fail("ZIP64 archives are not supported");
  if (disk != 0 || cd_disk != 0 || entries_here != entries) fail("multi-part archives are not supported");
  if (cd_offset + cd_size > end)
    fail("central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
         " bytes) runs past the end record at " + std::to_string(end) + ": truncated or corrupted");

  std::vector<NamedTensor> out;
  std::set<std::string, std::less<>> seen;
  std::uint64_t pos = cd_offset;
  const std::uint64_t cd_end = cd_offset + cd_size;
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::string entry = "central directory entry " + std::to_string(i);
    if (pos + kCentralSize > cd_end || get32(bytes, pos) != kCentralSignature)
      fail(entry + ": missing or malformed (truncated or corrupted archive)");
    const std::uint32_t flags = get16(bytes, pos + 8), method = get16(bytes, pos + 10);
    const std::uint32_t crc = get32(bytes, pos + 16);
    const std::uint64_t packed = get32(bytes, pos + 20), unpacked = get32(bytes, pos + 24);
    const std::uint64_t name_len = get16(bytes, pos + 28), extra_len = get16(bytes, pos + 30);
    const std::uint64_t comment_len = get16(bytes, pos + 32), local = get32(bytes, pos + 42);
    const std::uint64_t next = pos + kCentralSize + name_len + extra_len + comment_len;
    if (next > cd_end) fail(entry + ": runs past the end of the central directory");
    const std::string_view name = bytes.substr(pos + kCentralSize, name_len);
    const std::string member = "member '" + std::string(name) + "'";
    if (packed == kMax32 || unpacked == kMax32 || local == kMax32) fail(member + ": ZIP64 is not supported");
    if (flags & 1u) fail(member + ": encrypted members are not supported");
    if (method != 0)
      fail(member + ": compression method " + std::to_string(method) +
           " is not supported (theta reads stored members: np.savez, not np.savez_compressed)");
    if (packed != unpacked) fail(member + ": stored member with different compressed and plain sizes");

    if (local + kLocalSize > cd_offset || get32(bytes, local) != kLocalSignature)
      fail(member + ": local header missing or malformed (truncated or corrupted archive)");
    // The local header repeats the method and (unless flag bit 3 defers them to a trailing data
    // descriptor) the CRC-32; sizes may be ZIP64 placeholders there, so they are not compared.
    const std::uint32_t local_flags = get16(bytes, local + 6);
    if (get16(bytes, local + 8) != method || ((local_flags & 8u) == 0 && get32(bytes, local + 14) != crc))
      fail(member + ": local header disagrees with the central directory (corrupted archive)");
    const std::uint64_t local_name_len = get16(bytes, local + 26), local_extra = get16(bytes, local + 28);
    const std::uint64_t data_begin = local + kLocalSize + local_name_len + local_extra;
    if (data_begin + packed > cd_offset) fail(member + ": data runs into the central directory (truncated?)");
    if (bytes.substr(local + kLocalSize, local_name_len) != name)
      fail(member + ": local header names '" +
           std::string(bytes.substr(local + kLocalSize, local_name_len)) + "'");
    const std::string_view data = bytes.substr(data_begin, packed);
    const std::uint32_t actual = crc_of(data);
    if (actual != crc)
      fail(member + ": CRC-32 mismatch (recorded " + hex32(crc) + ", computed " + hex32(actual) +
           "): the file is corrupted");

    if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix)
      fail(member + ": not a .npy member");
    std::string key(name.substr(0, name.size() - kSuffix.size()));
    if (!seen.insert(key).second) fail(member + ": appears twice");
    try {
      out.emplace_back(std::move(key), npy_parse(data, std::string(name)));
    } catch (const FormatError& e) {
      fail(e.what());
    }
    pos = next;
  }
  if (pos != cd_end)
    fail("central directory size " + std::to_string(cd_size) + " does not match its " +
         std::to_string(entries) + " entries");
  return out;
}

void save_npz(const std::string& path, const std::vector<NamedTensor>& tensors) {
  write_file_atomic(path, npz_serialize(tensors, "save_npz: " + path), "save_npz");
}

std::vector<NamedTensor> load_npz(const std::string& path) {
  return npz_parse(read_file(path), "load_npz: " + path);
}

}  // namespace theta::nn
