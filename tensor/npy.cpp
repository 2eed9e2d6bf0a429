#include "tensor/npy.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "tensor/block_pool.hpp"

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

[[noreturn]] void fail(const std::string& what, const std::string& problem) {
  THETA_THROW(FormatError, "npy: ", what, ": ", problem);
}

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

struct Header {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// Parses the header dict (Note [npy layout]). Errors name the offset inside the header.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& what) : text_(text), what_(what) {}

  Header parse() {
    Header h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    skip_space();
    if (!consume('{')) error("header is not a dict (expected '{')");
    skip_space();
    while (!consume('}')) {
      const std::string key = parse_string("a key");
      skip_space();
      expect(':', "after key '" + key + "'");
      skip_space();
      if (key == "descr") {
        mark(seen_descr, key);
        if (peek() != '\'' && peek() != '"')
          error("'descr' is not a dtype string (structured dtypes are not supported)");
        h.descr = parse_string("the 'descr' value");
      } else if (key == "fortran_order") {
        mark(seen_order, key);
        h.fortran_order = parse_bool();
      } else if (key == "shape") {
        mark(seen_shape, key);
        h.shape = parse_shape();
      } else {
        error("unexpected key '" + key + "' in header");
      }
      skip_space();
      if (consume(',')) {
        skip_space();
      } else if (peek() != '}') {
        error("expected ',' or '}' after the value of '" + key + "'");
      }
    }
    skip_space();
    if (pos_ != text_.size()) error("unexpected characters after the header dict");
    if (!seen_descr) fail(what_, "header has no 'descr' key");
    if (!seen_order) fail(what_, "header has no 'fortran_order' key");
    if (!seen_shape) fail(what_, "header has no 'shape' key");
    return h;
  }

 private:
  [[noreturn]] void error(const std::string& problem) const {
    fail(what_, problem + " at header offset " + std::to_string(pos_));
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c, const std::string& context) {
    if (!consume(c)) error(std::string("expected '") + c + "' " + context);
  }
  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r'))
      ++pos_;
  }
  void mark(bool& seen, const std::string& key) {
    if (seen) error("duplicate key '" + key + "'");
    seen = true;
  }

  // A quoted string without escapes: '...' or "...".
  std::string parse_string(const std::string& expected) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') error("expected a quoted string for " + expected);
    const std::size_t begin = ++pos_;
    while (pos_ < text_.size() && text_[pos_] != quote && text_[pos_] != '\n') {
      if (text_[pos_] == '\\') error("escape sequences in strings are not supported");
      ++pos_;
    }
    if (pos_ >= text_.size() || text_[pos_] != quote) error("unterminated string");
    return std::string(text_.substr(begin, pos_++ - begin));
  }

  bool parse_bool() {
    for (const auto& [word, value] : {std::pair{std::string_view("True"), true},
                                      std::pair{std::string_view("False"), false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    error("'fortran_order' must be True or False");
  }

  Shape parse_shape() {
    if (!consume('(')) error("'shape' is not a tuple");
    Shape shape;
    bool trailing_comma = false;
    skip_space();
    while (!consume(')')) {
      shape.push_back(parse_size());
      skip_space();
      trailing_comma = consume(',');
      skip_space();
      if (!trailing_comma && peek() != ')') error("expected ',' or ')' in 'shape'");
    }
    if (shape.size() == 1 && !trailing_comma)
      error("'shape' is not a tuple (a 1-tuple needs a trailing comma)");
    return shape;
  }

  std::int64_t parse_size() {
    if (peek() == '-') error("negative size in 'shape'");
    if (peek() < '0' || peek() > '9') error("'shape' entries must be non-negative integers");
    const std::size_t begin = pos_;
    std::int64_t value = 0;
    for (; peek() >= '0' && peek() <= '9'; ++pos_) {
      const int digit = peek() - '0';
      if (value > (kInt64Max - digit) / 10) error("size in 'shape' does not fit int64");
      value = value * 10 + digit;
    }
    const char next = peek();
    if (next == '.' || next == 'e' || next == 'E' || next == 'j' || next == '_')
      error("'shape' entries must be non-negative integers");
    if (text_[begin] == '0' && pos_ - begin > 1) error("size with a leading zero in 'shape'");
    return value;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  const std::string& what_;
};

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
  Header header;
  DType dtype = DType::f64;
  std::int64_t nbytes = 0;
};

Layout parse_layout(std::string_view text, std::size_t data_begin, std::uint64_t file_size,
                    const std::string& what) {
  if (text.empty() || text.back() != '\n') fail(what, "header does not end in a newline");
  Layout l;
  l.header = HeaderParser(text, what).parse();
  const Header& h = l.header;
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
