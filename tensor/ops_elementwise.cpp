// Elementwise ops: unary math, broadcasting binary ops, comparisons and where. Each op is one
// entry in the kernel families of tensor/kernels; this file only walks layouts.

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "tensor/blas_runtime.hpp"
#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/overlap.hpp"
#include "tensor/parallel.hpp"
#include "tensor/strided_loop.hpp"

namespace theta {

using detail::BinaryOp;
using detail::UnaryOp;

namespace {

constexpr std::int64_t kGatherChunk = 256;

void check_floating(const Tensor& x, const char* op) {
  THETA_CHECK(x.defined(), std::invalid_argument, op, ": tensor is undefined");
  THETA_CHECK(is_floating(x.dtype()), DTypeError, op, ": expected a floating tensor, got ",
              dtype_name(x.dtype()), " ", shape_str(x.shape()));
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  THETA_CHECK(a.defined() && b.defined(), std::invalid_argument, op, ": tensor is undefined");
  THETA_CHECK(a.dtype() == b.dtype(), DTypeError, op, ": dtype mismatch: ", dtype_name(a.dtype()),
              " ", shape_str(a.shape()), " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}

// Pointer to a run of `len` elements with stride `step`, gathered into `buf` unless the stride is
// 0 or 1 (which the kernels take directly). Returns the stride the kernel should use.
template <class T>
const T* run_operand(const T* p, std::int64_t step, std::int64_t len, T* buf, std::int64_t& kstep) {
  if (step == 0 || step == 1) {
    kstep = step;
    return p;
  }
  for (std::int64_t i = 0; i < len; ++i) buf[i] = p[i * step];
  kstep = 1;
  return buf;
}

// Note [Output layout]
// An elementwise op whose operands share one dense layout (contiguous, or e.g. all transposed)
// writes its output in that layout too, and then runs as one flat pass over memory. A contiguous
// output would make every element of a transposed operand a strided gather. Results therefore
// are not always contiguous; everything in theta reads tensors through their strides.
bool same_dense_layout(const Tensor& t, const Tensor& out) {
  if (t.shape() != out.shape()) return false;
  if (t.is_contiguous() && out.is_contiguous()) return true;
  return t.strides() == out.strides() && t.is_dense();
}

// y[i] = op(a[i * sa], b[i * sb]) for i < n, split over the pool; sa, sb in {0, 1}.
template <class T>
void flat_binary(BinaryOp op, const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y, std::int64_t n) {
  const auto& k = detail::typed_kernels<T>(detail::kernels());
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    k.binary(op, a + begin * sa, sa, b + begin * sb, sb, y + begin, end - begin);
  });
}

template <class T>
void unary_into(UnaryOp op, const Tensor& x, const Tensor& out, detail::UnaryParams params) {
  const auto& k = detail::typed_kernels<T>(detail::kernels());
  const T* xp = x.data<T>();
  T* yp = out.data<T>();
  if (same_dense_layout(x, out)) {
    parallel_for(out.numel(), kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
      k.unary(op, xp + begin, yp + begin, end - begin, params);
    });
    return;
  }
  THETA_ASSERT(out.is_contiguous());  // the runs below write the output contiguously
  const auto layout = detail::coalesce<2>(out.shape(), {out.strides(), x.strides()});
  parallel_for(out.numel(), kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    T buf[kGatherChunk];
    detail::for_each_run(layout, begin, end, [&](auto off, auto step, std::int64_t len) {
      if (step[1] == 1) return k.unary(op, xp + off[1], yp + off[0], len, params);
      if (step[1] == 0) {  // a broadcast input: compute once, then fill
        T v;
        k.unary(op, xp + off[1], &v, 1, params);
        return std::fill(yp + off[0], yp + off[0] + len, v);
      }
      for (std::int64_t i = 0; i < len; i += kGatherChunk) {
        const std::int64_t n = std::min(kGatherChunk, len - i);
        std::int64_t ks;
        const T* src = run_operand(xp + off[1] + i * step[1], step[1], n, buf, ks);
        k.unary(op, src, yp + off[0] + i, n, params);
      }
    });
  });
}

Tensor unary(UnaryOp op, const Tensor& x, const char* name, detail::UnaryParams params = {}) {
  check_floating(x, name);
  Tensor out = Tensor::empty_like(x);
  visit_float_dtype(x.dtype(), [&](auto v) { unary_into<decltype(v)>(op, x, out, params); });
  return out;
}

template <class T>
void binary_into(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const auto& k = detail::typed_kernels<T>(detail::kernels());
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* yp = out.data<T>();
  // The common case skips the layout walk: a dense output whose operands are each either laid
  // out like it or a single element (a scalar operand).
  const auto flat_stride = [&](const Tensor& t) -> std::int64_t {
    if (t.numel() == 1) return 0;
    return same_dense_layout(t, out) ? 1 : -1;
  };
  const std::int64_t fa = flat_stride(a), fb = flat_stride(b);
  if (fa >= 0 && fb >= 0 && out.is_dense()) return flat_binary(op, ap, fa, bp, fb, yp, out.numel());
  THETA_ASSERT(out.is_contiguous());  // the runs below write the output contiguously
  const auto layout = detail::coalesce<3>(
      out.shape(), {out.strides(), detail::broadcast_strides(a.shape(), a.strides(), out.shape()),
                    detail::broadcast_strides(b.shape(), b.strides(), out.shape())});
  parallel_for(out.numel(), kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    T abuf[kGatherChunk], bbuf[kGatherChunk];
    detail::for_each_run(layout, begin, end, [&](auto off, auto step, std::int64_t len) {
      if ((step[1] == 0 || step[1] == 1) && (step[2] == 0 || step[2] == 1))
        return k.binary(op, ap + off[1], step[1], bp + off[2], step[2], yp + off[0], len);
      for (std::int64_t i = 0; i < len; i += kGatherChunk) {
        const std::int64_t n = std::min(kGatherChunk, len - i);
        std::int64_t sa, sb;
        const T* pa = run_operand(ap + off[1] + i * step[1], step[1], n, abuf, sa);
        const T* pb = run_operand(bp + off[2] + i * step[2], step[2], n, bbuf, sb);
        k.binary(op, pa, sa, pb, sb, yp + off[0] + i, n);
      }
    });
  });
}

// int64 operands: plain loops (labels and indices are small; no SIMD family needed).
std::int64_t int_binary(BinaryOp op, std::int64_t a, std::int64_t b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::maximum: return std::max(a, b);
    case BinaryOp::minimum: return std::min(a, b);
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    case BinaryOp::relu_grad: return b > 0 ? a : 0;
    case BinaryOp::div:
    case BinaryOp::pow: break;
  }
  THETA_THROW(InternalError, "int_binary: unsupported op");
}

void int_binary_into(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const auto* ap = a.data<std::int64_t>();
  const auto* bp = b.data<std::int64_t>();
  auto* yp = out.data<std::int64_t>();
  const auto layout = detail::coalesce<3>(
      out.shape(), {out.strides(), detail::broadcast_strides(a.shape(), a.strides(), out.shape()),
                    detail::broadcast_strides(b.shape(), b.strides(), out.shape())});
  detail::for_each_run(layout, 0, out.numel(), [&](auto off, auto step, std::int64_t len) {
    for (std::int64_t i = 0; i < len; ++i)
      yp[off[0] + i * step[0]] = int_binary(op, ap[off[1] + i * step[1]], bp[off[2] + i * step[2]]);
  });
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_same_dtype(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  // Keep the operands' layout when they share one (Note [Output layout]).
  const bool a_leads = a.shape() == shape && (b.numel() == 1 || same_dense_layout(b, a));
  const bool b_leads = !a_leads && b.shape() == shape && a.numel() == 1;
  Tensor out = a_leads ? Tensor::empty_like(a) : b_leads ? Tensor::empty_like(b) : Tensor::empty(shape, a.dtype());
  if (a.dtype() == DType::i64) {
    THETA_CHECK(op != BinaryOp::div && op != BinaryOp::pow, DTypeError, name,
                ": not defined for int64 tensors; convert with to(DType::f64) first");
    int_binary_into(op, a, b, out);
    return out;
  }
  visit_float_dtype(a.dtype(), [&](auto v) { binary_into<decltype(v)>(op, a, b, out); });
  return out;
}

Tensor scalar_like(double value, const Tensor& like) {
  THETA_CHECK(like.defined(), std::invalid_argument, "scalar operand: tensor is undefined");
  return scalar_tensor(value, like.dtype());
}

// x op s (or s op x when scalar_first). A dense float x goes straight to the kernel with the scalar
// as a stride-0 operand, its output laid out like x; anything else through a 0-d tensor and the
// general path.
Tensor binary_with_scalar(BinaryOp op, const Tensor& x, double s, bool scalar_first, const char* name) {
  if (!x.defined() || !is_floating(x.dtype()) || !x.is_dense())
    return scalar_first ? binary(op, scalar_like(s, x), x, name) : binary(op, x, scalar_like(s, x), name);
  Tensor out = Tensor::empty_like(x);
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T scalar = static_cast<T>(s);
    if (scalar_first) flat_binary(op, &scalar, 0, x.data<T>(), 1, out.data<T>(), out.numel());
    else flat_binary(op, x.data<T>(), 1, &scalar, 0, out.data<T>(), out.numel());
  });
  return out;
}

}  // namespace

Tensor neg(const Tensor& x) {
  if (x.defined() && x.dtype() == DType::i64) return sub(zeros({}, DType::i64), x);
  return unary(UnaryOp::neg, x, "neg");
}
Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x, "abs"); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x, "exp"); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x, "log"); }
Tensor log1p(const Tensor& x) { return unary(UnaryOp::log1p, x, "log1p"); }
Tensor expm1(const Tensor& x) { return unary(UnaryOp::expm1, x, "expm1"); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x, "sqrt"); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::rsqrt, x, "rsqrt"); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x, "tanh"); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x, "sigmoid"); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x, "relu"); }
Tensor sin(const Tensor& x) { return unary(UnaryOp::sin, x, "sin"); }
Tensor cos(const Tensor& x) { return unary(UnaryOp::cos, x, "cos"); }
Tensor square(const Tensor& x) { return unary(UnaryOp::square, x, "square"); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::sign, x, "sign"); }
Tensor erf(const Tensor& x) { return unary(UnaryOp::erf, x, "erf"); }
Tensor reciprocal(const Tensor& x) { return unary(UnaryOp::reciprocal, x, "reciprocal"); }
Tensor pow(const Tensor& x, double p) { return unary(UnaryOp::pow_scalar, x, "pow", {p, 0.0}); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  THETA_CHECK(!(lo > hi), std::invalid_argument, "clamp: lower bound ", lo, " exceeds upper bound ", hi);
  return unary(UnaryOp::clamp, x, "clamp", {lo, hi});
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b, "add"); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b, "mul"); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b, "div"); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::pow, a, b, "pow"); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::maximum, a, b, "maximum"); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::minimum, a, b, "minimum"); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ge, a, b, "ge"); }
Tensor relu_grad(const Tensor& grad, const Tensor& x) { return binary(BinaryOp::relu_grad, grad, x, "relu_grad"); }

namespace {
template <class T>
void where_into(const Tensor& m, const Tensor& a, const Tensor& b, const Tensor& out) {
  const auto& k = detail::typed_kernels<T>(detail::kernels());
  const T* mp = m.data<T>();
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* yp = out.data<T>();
  const Shape& s = out.shape();
  const auto layout = detail::coalesce<4>(
      s, {out.strides(), detail::broadcast_strides(m.shape(), m.strides(), s),
          detail::broadcast_strides(a.shape(), a.strides(), s),
          detail::broadcast_strides(b.shape(), b.strides(), s)});
  parallel_for(out.numel(), kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    T mbuf[kGatherChunk], abuf[kGatherChunk], bbuf[kGatherChunk];
    detail::for_each_run(layout, begin, end, [&](auto off, auto step, std::int64_t len) {
      for (std::int64_t i = 0; i < len; i += kGatherChunk) {
        const std::int64_t n = std::min(kGatherChunk, len - i);
        std::int64_t sm, sa, sb;
        const T* pm = run_operand(mp + off[1] + i * step[1], step[1], n, mbuf, sm);
        const T* pa = run_operand(ap + off[2] + i * step[2], step[2], n, abuf, sa);
        const T* pb = run_operand(bp + off[3] + i * step[3], step[3], n, bbuf, sb);
        k.where(pm, sm, pa, sa, pb, sb, yp + off[0] + i, n);
      }
    });
  });
}
}  // namespace

Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "where");
  THETA_CHECK(mask.defined(), std::invalid_argument, "where: mask is undefined");
  const Shape s = broadcast_shapes(broadcast_shapes(mask.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(s, a.dtype());
  if (a.dtype() == DType::i64) {
    const Tensor m = mask.to(DType::f64).expand(s);
    const Tensor ae = a.expand(s), be = b.expand(s);
    const auto layout = detail::coalesce<4>(s, {out.strides(), m.strides(), ae.strides(), be.strides()});
    auto* yp = out.data<std::int64_t>();
    const auto* ap = ae.data<std::int64_t>();
    const auto* bp = be.data<std::int64_t>();
    const auto* mp = m.data<double>();
    detail::for_each_run(layout, 0, out.numel(), [&](auto off, auto step, std::int64_t len) {
      for (std::int64_t i = 0; i < len; ++i)
        yp[off[0] + i] = mp[off[1] + i * step[1]] != 0 ? ap[off[2] + i * step[2]] : bp[off[3] + i * step[3]];
    });
    return out;
  }
  // A mask of another dtype is tested for != 0 in its own dtype first: converting it directly
  // could round a tiny float64 value to a float32 zero.
  const Tensor m = mask.dtype() == a.dtype() ? mask : ne(mask, zeros({}, mask.dtype())).to(a.dtype());
  visit_float_dtype(a.dtype(), [&](auto v) { where_into<decltype(v)>(m, a, b, out); });
  return out;
}

void Tensor::add_(const Tensor& source, double alpha) const {
  THETA_CHECK(defined() && source.defined(), std::invalid_argument, "add_: tensor is undefined");
  check_same_dtype(*this, source, "add_");
  THETA_CHECK(broadcast_shapes(shape(), source.shape(), "add_") == shape(), ShapeError, "add_: cannot broadcast ",
              shape_str(source.shape()), " into ", shape_str(shape()));
  detail::check_no_internal_overlap(*this, "add_");
  // Note [Overlapping in-place operands]
  const Tensor other = detail::needs_source_copy(*this, source) ? source.clone() : source;
  if (is_floating(dtype()) && same_dense_layout(other, *this)) {
    // The optimizer update p += alpha * g: one fused pass (BLAS axpy) over the memory both share
    // the layout of, no scaled temporary. theta's threads split it, each range a single-threaded
    // axpy: OpenBLAS threading a level-1 call itself wakes its worker threads, which then spin
    // (sched_yield) for a long while after, taking a core from theta's threads (a fifth of the
    // samples of a two-thread CNN training step).
    THETA_CHECK(numel() < INT_MAX, ShapeError, "add_: ", shape_str(shape()), " exceeds the BLAS integer range");
    const auto axpy = [&](std::int64_t begin, std::int64_t end) {
      const auto n = static_cast<blasint>(end - begin);
      if (dtype() == DType::f32)
        cblas_saxpy(n, static_cast<float>(alpha), other.data<float>() + begin, 1, data<float>() + begin, 1);
      else
        cblas_daxpy(n, alpha, other.data<double>() + begin, 1, data<double>() + begin, 1);
    };
    // OpenBLAS runs an axpy of at most 10000 elements on the calling thread (interface/axpy.c), so
    // short ones, like most parameters' updates, skip the switching of its thread count.
    constexpr std::int64_t kSerialAxpy = 10000;
    if (numel() <= kSerialAxpy || detail::in_parallel_region()) {
      axpy(0, numel());  // inside a region, theta's caller has already made BLAS single-threaded
    } else {
      const detail::SingleThreadedBlas blas;
      parallel_for(numel(), kElementwiseGrain, axpy);
    }
    storage()->bump_version();
    return;
  }
  const Tensor scaled = alpha == 1.0 ? other : other * alpha;
  if (!is_contiguous() || dtype() == DType::i64) {
    copy_(add(*this, scaled));
    return;
  }
  // In place: the binary kernels accept an output that aliases an input.
  visit_float_dtype(dtype(), [&](auto v) { binary_into<decltype(v)>(BinaryOp::add, *this, scaled, *this); });
  storage()->bump_version();
}

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return binary_with_scalar(BinaryOp::add, a, b, false, "add"); }
Tensor operator-(const Tensor& a, double b) { return binary_with_scalar(BinaryOp::sub, a, b, false, "sub"); }
Tensor operator*(const Tensor& a, double b) { return binary_with_scalar(BinaryOp::mul, a, b, false, "mul"); }
Tensor operator/(const Tensor& a, double b) { return binary_with_scalar(BinaryOp::div, a, b, false, "div"); }
Tensor operator+(double a, const Tensor& b) { return binary_with_scalar(BinaryOp::add, b, a, true, "add"); }
Tensor operator-(double a, const Tensor& b) { return binary_with_scalar(BinaryOp::sub, b, a, true, "sub"); }
Tensor operator*(double a, const Tensor& b) { return binary_with_scalar(BinaryOp::mul, b, a, true, "mul"); }
Tensor operator/(double a, const Tensor& b) { return binary_with_scalar(BinaryOp::div, b, a, true, "div"); }

}  // namespace theta
