#pragma once
// Similarity of two representations of the same examples: linear CKA (Kornblith, Norouzi, Lee and
// Hinton 2019), in its feature form and its Gram (HSIC) form, and canonical correlation analysis.
// A representation is a matrix [n, p]: row i holds the p features of example i (a layer's
// activations on n probe inputs). Both representations must describe the same n examples in the
// same order; their widths may differ. Everything is computed in float64.

#include <cstdint>
#include <vector>

#include "tensor/tensor.hpp"

namespace theta::theory {

// Note [Linear CKA]
// With X, Y centred over the examples (each column has mean 0),
//   CKA(X, Y) = |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F)                       (feature form)
//             = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),  K = X X^T, L = Y Y^T,
// where HSIC(K, L) = <H K H, H L H>_F up to a factor and H = I - 1 1^T / n centres (Gram form: it
// only needs the kernels, so any positive semi-definite kernel can replace X X^T). CKA lies in
// [0, 1]; it equals 1 for Y = s X Q with s != 0 and Q orthogonal, but not for a general invertible
// map Y = X A. It is not 0 for unrelated features: for independent isotropic Gaussian X, Y of
// width p it is about p / (n + p), so compare against a baseline (rows shuffled).
// CCA's canonical correlations are the cosines of the principal angles between the column spaces
// of the centred X and Y. They are invariant to every invertible map of the features, which makes
// them degenerate once a width reaches n - 1: the centred column space is then all of the
// (n - 1)-dimensional centred space and every correlation is 1, whatever the other representation.

/// Linear CKA between x:[n, p] and y:[n, q] (n >= 2), in the feature form (Note [Linear CKA]).
/// Throws ShapeError when x or y is not a matrix or their row counts differ, and
/// std::invalid_argument when n < 2, an entry is NaN or infinite, or a representation is the same
/// for every example (CKA is undefined without variance).
double linear_cka(const Tensor& x, const Tensor& y);

/// CKA from two kernel matrices k, l:[n, n] over the same n >= 2 examples (the Gram form of Note
/// [Linear CKA]; k = x x^T, l = y y^T gives linear_cka(x, y)). The kernels are centred here.
/// Throws ShapeError for non-square or mismatched matrices and std::invalid_argument when n < 2,
/// an entry is not finite, or a kernel is zero after centring.
double gram_cka(const Tensor& k, const Tensor& l);

/// linear_cka for every pair: entry (i, j) compares a[i] with b[j], all over the same n examples.
/// Returns float64 [a.size(), b.size()]. Throws as linear_cka does, naming the pair.
Tensor linear_cka_matrix(const std::vector<Tensor>& a, const std::vector<Tensor>& b);

/// The canonical correlations between x:[n, p] and y:[n, q], descending, in [0, 1]: the singular
/// values of Ux^T Uy, where Ux, Uy are orthonormal bases of the column spaces of the centred x and y.
/// A basis keeps the singular directions above relative_tolerance times the largest singular value
/// (by default, max(n, p) times machine epsilon, as numerical rank usually is), so the result has
/// min(rank x, rank y) entries. Throws as linear_cka does.
Tensor canonical_correlations(const Tensor& x, const Tensor& y, double relative_tolerance = -1.0);

/// The mean canonical correlation (rho bar of Kornblith et al.): the mean of
/// canonical_correlations(x, y). It is 1 for any x, y whose centred ranks both reach n - 1.
double mean_cca(const Tensor& x, const Tensor& y, double relative_tolerance = -1.0);

/// mean_cca for every pair: entry (i, j) compares a[i] with b[j], all over the same n examples
/// (each representation's column space is found once). Returns float64 [a.size(), b.size()].
/// Throws as linear_cka does, naming the pair.
Tensor mean_cca_matrix(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double relative_tolerance = -1.0);

}  // namespace theta::theory
