#pragma once
// Exceptions thrown on user mistakes, and the internal assertion macro.
//
// User errors derive from std::invalid_argument (bad shapes, dtypes, arguments, files) or
// std::logic_error (misuse of an object's state); a file that cannot be written is an IoError
// (std::system_error). Messages name the op and show the operands, e.g.
// "matmul: inner dimensions differ: [2, 3] @ [4, 5]".

#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace theta {

/// Shapes that do not fit the op (broadcasting, matmul, reshape, concat, ...).
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// An operand of the wrong element type.
class DTypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// An axis or element index out of range.
class IndexError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A malformed or unreadable file (.npy, checkpoint).
class FormatError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A file that cannot be written (a missing directory, no permission, a full disk); code() is the
/// operating system's error. The message names the op and the path the caller gave.
class IoError : public std::system_error {
 public:
  IoError(int error, const std::string& message) : std::system_error(error, std::generic_category(), message) {}
};

/// An internal invariant failed: a bug in theta, never a user mistake.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
template <class... Parts> std::string concat_message(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace theta

/// Throws `ErrorType` with the streamed parts concatenated: THETA_THROW(ShapeError, "op: ", shape).
#define THETA_THROW(ErrorType, ...) throw ErrorType(::theta::detail::concat_message(__VA_ARGS__))

/// Checks a user-facing precondition.
#define THETA_CHECK(cond, ErrorType, ...) \
  do {                                    \
    if (!(cond)) THETA_THROW(ErrorType, __VA_ARGS__); \
  } while (0)

/// Checks an internal invariant; failing it is a bug in theta.
#define THETA_ASSERT(cond)                                                                       \
  do {                                                                                           \
    if (!(cond))                                                                                 \
      THETA_THROW(::theta::InternalError, "internal error: ", #cond, " at ", __FILE__, ":", __LINE__); \
  } while (0)
