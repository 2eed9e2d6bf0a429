// theta.theory: representation similarity (linear CKA, canonical correlations).

#include <optional>
#include <vector>

#include "theory/similarity.hpp"
#include "theory_common.hpp"

namespace theta::python {

void bind_theory_similarity(py::module_& m) {
  m.def(
      "linear_cka", [](const Tensor& x, const Tensor& y) { return without_gil([&] { return theory::linear_cka(x, y); }); },
      py::arg("x"), py::arg("y"), R"doc(
Linear CKA (Kornblith et al. 2019) between two representations of the same n examples:
x [n, p], y [n, q], rows are examples. |Yc^T Xc|_F^2 / (|Xc^T Xc|_F |Yc^T Yc|_F) with Xc, Yc
centred over the examples; in [0, 1], float64. Raises ValueError for mismatched rows, fewer than 2
examples, NaN/Inf or a representation that is the same for every example.)doc");

  m.def(
      "gram_cka", [](const Tensor& k, const Tensor& l) { return without_gil([&] { return theory::gram_cka(k, l); }); },
      py::arg("k"), py::arg("l"), R"doc(
CKA from two kernel matrices k, l [n, n] over the same examples: HSIC(K, L) / sqrt(HSIC(K, K)
HSIC(L, L)) with the kernels centred. gram_cka(x x^T, y y^T) equals linear_cka(x, y).)doc");

  m.def(
      "linear_cka_matrix",
      [](const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
        return without_gil([&] { return theory::linear_cka_matrix(a, b); });
      },
      py::arg("a"), py::arg("b"),
      "[len(a), len(b)] float64: entry (i, j) is linear_cka(a[i], b[j]) (lists of [n, p_i] representations).");

  m.def(
      "canonical_correlations",
      [](const Tensor& x, const Tensor& y, std::optional<double> relative_tolerance) {
        return without_gil([&] { return theory::canonical_correlations(x, y, relative_tolerance.value_or(-1.0)); });
      },
      py::arg("x"), py::arg("y"), py::arg("relative_tolerance") = py::none(), R"doc(
The canonical correlations of x [n, p] and y [n, q], descending: the cosines of the principal angles
between the column spaces of the centred x and y, min(rank x, rank y) of them. A column space keeps
the singular directions above relative_tolerance times the largest singular value (default
max(n, p) times machine epsilon).)doc");

  m.def(
      "mean_cca",
      [](const Tensor& x, const Tensor& y, std::optional<double> relative_tolerance) {
        return without_gil([&] { return theory::mean_cca(x, y, relative_tolerance.value_or(-1.0)); });
      },
      py::arg("x"), py::arg("y"), py::arg("relative_tolerance") = py::none(),
      "The mean of canonical_correlations(x, y); 1 whenever both centred ranks reach n - 1.");

  m.def(
      "mean_cca_matrix",
      [](const std::vector<Tensor>& a, const std::vector<Tensor>& b, std::optional<double> relative_tolerance) {
        return without_gil([&] { return theory::mean_cca_matrix(a, b, relative_tolerance.value_or(-1.0)); });
      },
      py::arg("a"), py::arg("b"), py::arg("relative_tolerance") = py::none(),
      "[len(a), len(b)] float64: entry (i, j) is mean_cca(a[i], b[j]).");
}

}  // namespace theta::python
