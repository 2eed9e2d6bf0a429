#include "tensor/npy.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "tensor/block_pool.hpp"
#include "tensor/npy_header.hpp"

namespace theta {

// Note [npy layout]
// A .npy file is: the 6-byte magic "\x93NUMPY", a major and a minor version byte, the header
// length (uint16 little-endian for version 1.0, uint32 for 2.0 and 3.0), then the header: a
// Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } padded with
// spaces and ending in '\n', then the raw elements. Version 3.0 differs from 2.0 only in the
// header's encoding (utf-8 instead of latin-1); every header theta accepts is ASCII.
//
// The writer reproduces NumPy 1.24's np.save byte for byte: keys sorted, the tuple printed as
// Python's repr does ("()", "(5,)", "(3, 4)"), 21 minus the digit count of the first size extra
// spaces after the dict (room for the first axis to grow in place), then spaces up to a
// preamble length that is a multiple of 64 (a whole 64 bytes when it is already one), then '\n'.
// Version 1.0 is used unless the header does not fit its 16-bit length, then 2.0.
//
// The reader is strict: exactly the three keys, sizes that are non-negative decimal integers,
// only little-endian float32/float64/int64, and a data section of exactly the size the shape
// needs. Every size is checked before anything is allocated, and every product before it is
// formed, so no input can make the parser read out of bounds, overflow or allocate more than
// the input's own size. A header longer than kMaxHeaderBytes is refused before it is read
// (NumPy's own reader stops at 10000 bytes; theta allows what its writer can produce for any
// sane rank), and the writer refuses to produce one. load_npy reads a regular file only (Note
// [Regular files only] in tensor/file_io.cpp) and in steps, each bounded by what is known by
// then: the fixed prefix, the header of the declared length, then exactly the data the header
// declares, straight into the tensor's storage, after the file's size was checked against it.
static_assert(std::endian::native == std::endian::little,
              "npy I/O copies elements verbatim and assumes a little-endian host");

namespace {

constexpr std::string_view kMagic{"\x93NUMPY", 6};
constexpr std::size_t kAlignment = 64;
constexpr std::size_t kGrowthDigits = 21;
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t kMaxHeaderBytes = std::size_t{1} << 20;
constexpr std::size_t kMaxPrefixBytes = 12;  // magic, version and a 4-byte header length

[[noreturn]] void fail(const std::string& what, const std::string& problem) { detail::npy_fail(what, problem); }

// a * b, or false when the product does not fit int64 (a, b >= 0).
bool checked_mul(std::int64_t a, std::int64_t b, std::int64_t& out) {
  if (b != 0 && a > kInt64Max / b) return false;
  out = a * b;
  return true;
}

// The shape as Python prints a tuple: "()", "(5,)", "(3, 4)".
std::string py_tuple(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

const char* descr_of(DType dtype) {
  switch (dtype) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i64: return "<i8";
  }
  return "<f8";
}

DType dtype_from_descr(const std::string& descr, const std::string& what) {
  if (descr == "<f4") return DType::f32;
  if (descr == "<f8") return DType::f64;
  if (descr == "<i8") return DType::i64;
  fail(what, "unsupported dtype '" + descr + "' (theta reads <f4, <f8, <i8)");
}

std::uint64_t read_le(std::string_view bytes, std::size_t pos, std::size_t width) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
  return v;
}

// Magic, version and header length; Note [npy layout].
std::string wrap_header(const std::string& dict) {
  for (int major = 1; major <= 2; ++major) {
    const std::size_t width = major == 1 ? 2 : 4;
    const std::size_t prefix = kMagic.size() + 2 + width;
    const std::size_t with_newline = dict.size() + 1;
    const std::size_t pad = kAlignment - (prefix + with_newline) % kAlignment;
    const std::uint64_t length = with_newline + pad;
    if (length > kMaxHeaderBytes) break;
    if (length >= (std::uint64_t{1} << (8 * width))) continue;
    std::string out(kMagic);
    out += static_cast<char>(major);
    out += '\0';
    for (std::size_t i = 0; i < width; ++i) out += static_cast<char>((length >> (8 * i)) & 0xFF);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  }
  THETA_THROW(FormatError, "npy: header of ", dict.size(), " bytes exceeds the ", kMaxHeaderBytes,
              " bytes a .npy header may have");
}

// Where the header sits: after the magic, the version and the header length.
struct HeaderSpan {
  std::size_t begin = 0;
  std::size_t length = 0;
};

// Checks the magic, the version and the header length of a file of `file_size` bytes whose
// first min(file_size, kMaxPrefixBytes) bytes are `head` (Note [npy layout]).
HeaderSpan header_span(std::string_view head, std::uint64_t file_size, const std::string& what) {
  const std::size_t fixed = kMagic.size() + 2;
  if (head.size() < fixed)
    fail(what, "too short for a .npy file (" + std::to_string(file_size) + " bytes)");
  if (head.substr(0, kMagic.size()) != kMagic) fail(what, "bad magic: not a .npy file");
  const int major = static_cast<unsigned char>(head[6]);
  const int minor = static_cast<unsigned char>(head[7]);
  if (minor != 0 || major < 1 || major > 3)
    fail(what, "unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (theta reads 1.0, 2.0, 3.0)");
  const std::size_t width = major == 1 ? 2 : 4;
  if (head.size() < fixed + width)
    fail(what, "too short for a .npy file (truncated header length)");
  const std::uint64_t header_len = read_le(head, fixed, width);
  const std::size_t header_begin = fixed + width;
  if (header_len > file_size - header_begin)
    fail(what, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes)");
  if (header_len > kMaxHeaderBytes)
    fail(what, "header length " + std::to_string(header_len) + " exceeds the " +
                   std::to_string(kMaxHeaderBytes) + " bytes a .npy header may have");
  return {header_begin, static_cast<std::size_t>(header_len)};
}

// What the header says about the data, checked against a file of `file_size` bytes whose data
// starts at `data_begin`.
struct Layout {
  detail::NpyHeaderDict header;
  DType dtype = DType::f64;
  std::int64_t nbytes = 0;
};

Layout parse_layout(std::string_view text, std::size_t data_begin, std::uint64_t file_size,
                    const std::string& what) {
  if (text.empty() || text.back() != '\n') fail(what, "header does not end in a newline");
  Layout l;
  l.header = detail::parse_npy_header_dict(text, what);
  const detail::NpyHeaderDict& h = l.header;
  l.dtype = dtype_from_descr(h.descr, what);
  std::int64_t numel = 0;
  switch (detail::check_shape(h.shape, numel)) {
    case detail::ShapeProblem::none: break;
    case detail::ShapeProblem::too_many_elements:
      fail(what, "element count of shape " + py_tuple(h.shape) + " overflows int64");
    default: fail(what, "shape " + py_tuple(h.shape) + " is too large for int64 strides");
  }
  if (!checked_mul(numel, static_cast<std::int64_t>(dtype_size(l.dtype)), l.nbytes))
    fail(what, "byte count of shape " + py_tuple(h.shape) + " with dtype '" + h.descr + "' overflows int64");

  const std::uint64_t have = file_size - data_begin;
  const auto need = static_cast<std::uint64_t>(l.nbytes);
  if (have < need)
    fail(what, "truncated data: shape " + py_tuple(h.shape) + " of '" + h.descr + "' needs " +
                   std::to_string(need) + " bytes, the file has " + std::to_string(have));
  if (have > need)
    fail(what, "trailing data after the elements of shape " + py_tuple(h.shape) + ": " +
                   std::to_string(have - need) + " bytes");
  return l;
}

// The tensor over `storage`, which holds the data in the file's order.
Tensor make_tensor(const Layout& l, std::shared_ptr<Storage> storage) {
  const Shape& shape = l.header.shape;
  Strides strides = contiguous_strides(shape);
  if (l.header.fortran_order) {
    std::int64_t stride = 1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      strides[i] = stride;
      stride *= std::max<std::int64_t>(shape[i], 1);
    }
  }
  Tensor t(std::move(storage), shape, std::move(strides), 0, l.dtype);
  return l.header.fortran_order ? t.contiguous() : t;
}

}  // namespace

Tensor npy_parse(std::string_view bytes, const std::string& what) {
  const HeaderSpan span = header_span(bytes.substr(0, kMaxPrefixBytes), bytes.size(), what);
  const std::size_t data_begin = span.begin + span.length;
  const Layout l = parse_layout(bytes.substr(span.begin, span.length), data_begin, bytes.size(), what);
  auto storage = make_pooled<Storage>(static_cast<std::size_t>(l.nbytes));
  if (l.nbytes > 0) std::memcpy(storage->data(), bytes.data() + data_begin, static_cast<std::size_t>(l.nbytes));
  return make_tensor(l, std::move(storage));
}

std::string npy_header(const Shape& shape, DType dtype) {
  std::string dict = std::string("{'descr': '") + descr_of(dtype) + "', 'fortran_order': False, 'shape': " +
                     py_tuple(shape) + ", }";
  if (!shape.empty()) dict.append(kGrowthDigits - std::to_string(shape[0]).size(), ' ');
  return wrap_header(dict);
}

std::string npy_serialize(const Tensor& t) {
  THETA_CHECK(t.defined(), std::invalid_argument, "npy_serialize: tensor is undefined");
  std::string out = npy_header(t.shape(), t.dtype());
  const Tensor c = t.contiguous();
  const std::size_t nbytes = static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype());
  if (nbytes > 0) out.append(static_cast<const char*>(c.raw_data()), nbytes);
  return out;
}

namespace {

// The start of a .npy file: its checked layout, where the data begins, and the data bytes the
// read of the header already took (only when the header is very short).
struct Preamble {
  Layout layout;
  std::size_t data_begin = 0;
  std::string first_data;
};

Preamble read_preamble(InputFile& file, const std::string& path) {
  const std::uint64_t size = file.size();
  std::string head(static_cast<std::size_t>(std::min<std::uint64_t>(size, kMaxPrefixBytes)), '\0');
  file.read_exact(head.data(), head.size());
  const HeaderSpan span = header_span(head, size, path);
  Preamble p;
  p.data_begin = span.begin + span.length;
  if (p.data_begin < head.size()) {
    p.first_data = head.substr(p.data_begin);
  } else {
    const std::size_t have = head.size();
    head.resize(p.data_begin);
    file.read_exact(head.data() + have, p.data_begin - have);
  }
  p.layout = parse_layout(std::string_view(head).substr(span.begin, span.length), p.data_begin, size, path);
  return p;
}

}  // namespace

NpyInfo read_npy_info(const std::string& path) {
  InputFile file(path, "read_npy_info");
  const Preamble p = read_preamble(file, path);
  return {p.layout.header.shape, p.layout.dtype, p.layout.header.fortran_order, p.data_begin};
}

Tensor load_npy(const std::string& path) {
  InputFile file(path, "load_npy");
  const Preamble p = read_preamble(file, path);
  const Layout& l = p.layout;
  const std::string& first_data = p.first_data;
  auto storage = make_pooled<Storage>(static_cast<std::size_t>(l.nbytes));
  auto* data = static_cast<char*>(storage->data());
  if (!first_data.empty()) std::memcpy(data, first_data.data(), first_data.size());
  file.read_exact(data + first_data.size(), static_cast<std::size_t>(l.nbytes) - first_data.size());
  return make_tensor(l, std::move(storage));
}

void save_npy(const std::string& path, const Tensor& t) {
  write_file_atomic(path, npy_serialize(t), "save_npy");
}

}  // namespace theta
