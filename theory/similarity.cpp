#include "theory/similarity.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/linalg.hpp"

namespace theta::theory {
namespace {

double squared_norm(const Tensor& t) { return sum(square(t)).item<double>(); }

// A representation checked and centred over its examples, with |Xc^T Xc|_F (CKA's normaliser).
struct CentredFeatures {
  Tensor centred;
  double self_similarity = 0.0;
};

CentredFeatures centre_features(const Tensor& x, const char* op, const std::string& name) {
  THETA_CHECK(x.defined() && x.dim() == 2, ShapeError, op, ": ", name,
              " must be a matrix [examples, features], got ", x.defined() ? shape_str(x.shape()) : "undefined");
  THETA_CHECK(x.size(0) >= 2, std::invalid_argument, op, ": ", name, " ", shape_str(x.shape()),
              " has fewer than 2 examples");
  THETA_CHECK(x.size(1) >= 1, std::invalid_argument, op, ": ", name, " ", shape_str(x.shape()), " has no features");
  detail::require_finite(x, op, name.c_str());
  const Tensor x64 = x.to(DType::f64);
  // Decided on the input, not on the centred values: the mean of n equal numbers need not round
  // back to that number, so a constant column can leave residues of order epsilon after centring.
  const bool constant = allclose(max(x64, {0}), min(x64, {0}), 0.0, 0.0);
  THETA_CHECK(!constant, std::invalid_argument, op, ": ", name, " ", shape_str(x.shape()),
              " is the same for every example (no variance to compare)");
  CentredFeatures f;
  f.centred = sub(x64, mean(x64, {0}, true));
  f.self_similarity = std::sqrt(squared_norm(matmul(f.centred.t(), f.centred)));
  return f;
}

void require_same_examples(const Tensor& x, const Tensor& y, const char* op, const std::string& pair) {
  THETA_CHECK(x.size(0) == y.size(0), ShapeError, op, ": ", pair, " describe different numbers of examples: ",
              shape_str(x.shape()), " and ", shape_str(y.shape()));
}

double cka(const CentredFeatures& x, const CentredFeatures& y) {
  const double cross = squared_norm(matmul(y.centred.t(), x.centred));
  return cross / (x.self_similarity * y.self_similarity);
}

// H k H with H = I - 1 1^T / n.
Tensor centre_kernel(const Tensor& k, const char* op, const char* name) {
  THETA_CHECK(k.defined() && k.dim() == 2 && k.size(0) == k.size(1), ShapeError, op, ": ", name,
              " must be a square kernel matrix [n, n], got ", k.defined() ? shape_str(k.shape()) : "undefined");
  THETA_CHECK(k.size(0) >= 2, std::invalid_argument, op, ": ", name, " ", shape_str(k.shape()),
              " has fewer than 2 examples");
  detail::require_finite(k, op, name);
  const Tensor k64 = k.to(DType::f64);
  const Tensor centred = add(sub(sub(k64, mean(k64, {0}, true)), mean(k64, {1}, true)), mean(k64));
  // A kernel of the form a 1^T + 1 b^T (a constant feature) centres to rounding residues only.
  const double residue_limit = 64.0 * std::numeric_limits<double>::epsilon() * std::sqrt(squared_norm(k64));
  THETA_CHECK(std::sqrt(squared_norm(centred)) > residue_limit, std::invalid_argument, op, ": ", name, " ",
              shape_str(k.shape()), " is zero after centring (the kernel of a constant representation)");
  return centred;
}

// Orthonormal basis [n, rank] of the column space of a centred matrix.
Tensor column_space(const Tensor& centred, double relative_tolerance) {
  const Svd d = svd(centred);
  const double largest = d.s.at({0});
  const double tolerance =
      relative_tolerance >= 0.0
          ? relative_tolerance
          : static_cast<double>(std::max(centred.size(0), centred.size(1))) * std::numeric_limits<double>::epsilon();
  std::int64_t rank = 0;
  while (rank < d.s.size(0) && d.s.at({rank}) > tolerance * largest) ++rank;
  return d.u.slice(1, 0, rank);
}

// Cosines of the principal angles between the spans of two orthonormal bases, descending.
Tensor principal_cosines(const Tensor& ux, const Tensor& uy) {
  // Rounding can push the largest a few ulps past 1.
  return clamp(singular_values(matmul(ux.t(), uy)), 0.0, 1.0);
}

}  // namespace

double linear_cka(const Tensor& x, const Tensor& y) {
  constexpr const char* kOp = "linear_cka";
  const CentredFeatures cx = centre_features(x, kOp, "x");
  const CentredFeatures cy = centre_features(y, kOp, "y");
  require_same_examples(x, y, kOp, "x and y");
  return cka(cx, cy);
}

double gram_cka(const Tensor& k, const Tensor& l) {
  constexpr const char* kOp = "gram_cka";
  const Tensor kc = centre_kernel(k, kOp, "k");
  const Tensor lc = centre_kernel(l, kOp, "l");
  THETA_CHECK(k.size(0) == l.size(0), ShapeError, kOp, ": k and l describe different numbers of examples: ",
              shape_str(k.shape()), " and ", shape_str(l.shape()));
  const double cross = sum(mul(kc, lc)).item<double>();
  return cross / std::sqrt(squared_norm(kc) * squared_norm(lc));
}

Tensor linear_cka_matrix(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  constexpr const char* kOp = "linear_cka_matrix";
  std::vector<CentredFeatures> ca, cb;
  for (std::size_t i = 0; i < a.size(); ++i) ca.push_back(centre_features(a[i], kOp, "a[" + std::to_string(i) + "]"));
  for (std::size_t j = 0; j < b.size(); ++j) cb.push_back(centre_features(b[j], kOp, "b[" + std::to_string(j) + "]"));
  const auto rows = static_cast<std::int64_t>(a.size()), cols = static_cast<std::int64_t>(b.size());
  Tensor out = zeros({rows, cols}, DType::f64);
  auto* entries = out.data<double>();
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      const auto ui = static_cast<std::size_t>(i), uj = static_cast<std::size_t>(j);
      require_same_examples(a[ui], b[uj], kOp, "a[" + std::to_string(i) + "] and b[" + std::to_string(j) + "]");
      entries[i * cols + j] = cka(ca[ui], cb[uj]);
    }
  return out;
}

Tensor canonical_correlations(const Tensor& x, const Tensor& y, double relative_tolerance) {
  constexpr const char* kOp = "canonical_correlations";
  detail::require_finite(relative_tolerance, kOp, "relative_tolerance");
  const CentredFeatures cx = centre_features(x, kOp, "x");
  const CentredFeatures cy = centre_features(y, kOp, "y");
  require_same_examples(x, y, kOp, "x and y");
  return principal_cosines(column_space(cx.centred, relative_tolerance), column_space(cy.centred, relative_tolerance));
}

double mean_cca(const Tensor& x, const Tensor& y, double relative_tolerance) {
  return mean(canonical_correlations(x, y, relative_tolerance)).item<double>();
}

Tensor mean_cca_matrix(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double relative_tolerance) {
  constexpr const char* kOp = "mean_cca_matrix";
  detail::require_finite(relative_tolerance, kOp, "relative_tolerance");
  auto bases = [&](const std::vector<Tensor>& reps, const char* side) {
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < reps.size(); ++i)
      out.push_back(column_space(centre_features(reps[i], kOp, side + ("[" + std::to_string(i) + "]")).centred,
                                 relative_tolerance));
    return out;
  };
  const std::vector<Tensor> ua = bases(a, "a"), ub = bases(b, "b");
  const auto rows = static_cast<std::int64_t>(a.size()), cols = static_cast<std::int64_t>(b.size());
  Tensor out = zeros({rows, cols}, DType::f64);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      const auto ui = static_cast<std::size_t>(i), uj = static_cast<std::size_t>(j);
      require_same_examples(a[ui], b[uj], kOp, "a[" + std::to_string(i) + "] and b[" + std::to_string(j) + "]");
      out.data<double>()[i * cols + j] = mean(principal_cosines(ua[ui], ub[uj])).item<double>();
    }
  return out;
}

}  // namespace theta::theory
