// The .npy header dict parser (Note [npy layout] in npy.cpp).

#include "tensor/npy_header.hpp"

#include <limits>

#include "tensor/error.hpp"

namespace theta::detail {

namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

// Parses the header dict (Note [npy layout]). Errors name the offset inside the header.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& what) : text_(text), what_(what) {}

  NpyHeaderDict parse() {
    NpyHeaderDict h;
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
    if (!seen_descr) npy_fail(what_, "header has no 'descr' key");
    if (!seen_order) npy_fail(what_, "header has no 'fortran_order' key");
    if (!seen_shape) npy_fail(what_, "header has no 'shape' key");
    return h;
  }

 private:
  [[noreturn]] void error(const std::string& problem) const {
    npy_fail(what_, problem + " at header offset " + std::to_string(pos_));
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

}  // namespace

void npy_fail(const std::string& what, const std::string& problem) {
  THETA_THROW(FormatError, "npy: ", what, ": ", problem);
}

NpyHeaderDict parse_npy_header_dict(std::string_view text, const std::string& what) {
  return HeaderParser(text, what).parse();
}

}  // namespace theta::detail
