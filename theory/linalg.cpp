#include "theory/linalg.hpp"

#include <algorithm>
#include <vector>

#include "tensor/ops.hpp"

extern "C" {
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info);
void dgesv_(const int* n, const int* nrhs, double* a, const int* lda, int* ipiv, double* b,
            const int* ldb, int* info);
void dgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a, const int* lda,
             double* s, double* u, const int* ldu, double* vt, const int* ldvt, double* work,
             const int* lwork, int* info);
}

namespace theta::theory {

SymmetricEigen eigh(const Tensor& a) {
  THETA_CHECK(a.defined() && a.dim() == 2 && a.size(0) == a.size(1), ShapeError,
              "eigh: expected a square matrix, got ", a.defined() ? shape_str(a.shape()) : "undefined");
  const int n = static_cast<int>(a.size(0));
  // LAPACK is column-major: the row-major copy of a symmetric matrix is its own transpose.
  Tensor work_matrix = a.to(DType::f64).clone();
  Tensor values = Tensor::empty({n}, DType::f64);
  if (n == 0) return {values, work_matrix};
  const char jobz = 'V', uplo = 'U';  // 'U' of the column-major view = lower triangle row-major
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(&jobz, &uplo, &n, work_matrix.data<double>(), &n, values.data<double>(), &work_query, &lwork,
          &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<int> iwork(static_cast<std::size_t>(liwork));
  dsyevd_(&jobz, &uplo, &n, work_matrix.data<double>(), &n, values.data<double>(), work.data(), &lwork,
          iwork.data(), &liwork, &info);
  THETA_CHECK(info == 0, std::runtime_error, "eigh: LAPACK dsyevd failed with info ", info);
  // Column-major eigenvectors: row i of the buffer is eigenvector i; transpose to columns.
  return {values, work_matrix.t().contiguous()};
}

Tensor solve(const Tensor& a, const Tensor& b) {
  THETA_CHECK(a.defined() && a.dim() == 2 && a.size(0) == a.size(1), ShapeError,
              "solve: expected a square matrix, got ", shape_str(a.shape()));
  THETA_CHECK(b.defined() && (b.dim() == 1 || b.dim() == 2) && b.size(0) == a.size(0), ShapeError,
              "solve: right-hand side ", shape_str(b.shape()), " does not match ", shape_str(a.shape()));
  const int n = static_cast<int>(a.size(0));
  const int nrhs = b.dim() == 1 ? 1 : static_cast<int>(b.size(1));
  // LAPACK is column-major and overwrites both buffers, so a and b are copied transposed into fresh
  // buffers: clone(), never contiguous(), which returns the caller's own storage when the
  // transpose is already contiguous (a transposed view, a [n, 1] right-hand side, a 1 x 1 a).
  Tensor a_col = a.to(DType::f64).t().clone();
  Tensor b_col = (b.dim() == 1 ? b.to(DType::f64).unsqueeze(1) : b.to(DType::f64)).t().clone();
  std::vector<int> pivots(static_cast<std::size_t>(n));
  int info = 0;
  dgesv_(&n, &nrhs, a_col.data<double>(), &n, pivots.data(), b_col.data<double>(), &n, &info);
  THETA_CHECK(info == 0, std::invalid_argument, "solve: matrix ", shape_str(a.shape()),
              " is singular (LAPACK dgesv info ", info, ")");
  Tensor x = b_col.t().contiguous();
  return b.dim() == 1 ? x.reshape({n}) : x;
}

Tensor apply_spectral(const SymmetricEigen& eig, const Tensor& f_of_values) {
  const Tensor scaled = theta::mul(eig.vectors, f_of_values.unsqueeze(0));
  return matmul(scaled, eig.vectors.t());
}

Svd svd(const Tensor& a) {
  THETA_CHECK(a.defined() && a.dim() == 2, ShapeError, "svd: expected a matrix, got ",
              a.defined() ? shape_str(a.shape()) : "undefined");
  const int rows = static_cast<int>(a.size(0)), cols = static_cast<int>(a.size(1));
  const int k = std::min(rows, cols);
  // Note [Row-major SVD]
  // The row-major buffer of a:[rows, cols] is the column-major matrix a^T (cols x rows). LAPACK
  // factors a^T = P diag(s) Q^T with P:[cols, k] and Q^T:[k, rows], so a = Q diag(s) P^T. The
  // column-major Q^T buffer read row-major is Q:[rows, k] (our u), and the column-major P buffer
  // read row-major is P^T:[k, cols] (our v^T).
  Tensor work_matrix = a.to(DType::f64).contiguous().clone();
  Tensor values = Tensor::empty({k}, DType::f64);
  Tensor p_buffer = Tensor::empty({k, cols}, DType::f64);
  Tensor qt_buffer = Tensor::empty({rows, k}, DType::f64);
  if (k == 0) return {qt_buffer, values, p_buffer.t().contiguous()};
  const char job = 'S';
  const int lda = cols, ldu = cols, ldvt = k;
  int info = 0, lwork = -1;
  double work_query = 0;
  dgesvd_(&job, &job, &cols, &rows, work_matrix.data<double>(), &lda, values.data<double>(),
          p_buffer.data<double>(), &ldu, qt_buffer.data<double>(), &ldvt, &work_query, &lwork, &info);
  lwork = static_cast<int>(work_query);
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  dgesvd_(&job, &job, &cols, &rows, work_matrix.data<double>(), &lda, values.data<double>(),
          p_buffer.data<double>(), &ldu, qt_buffer.data<double>(), &ldvt, work.data(), &lwork, &info);
  THETA_CHECK(info == 0, std::runtime_error, "svd: LAPACK dgesvd failed with info ", info);
  return {qt_buffer, values, p_buffer.t().contiguous()};
}

Tensor singular_values(const Tensor& a) {
  THETA_CHECK(a.defined() && a.dim() == 2, ShapeError, "singular_values: expected a matrix, got ",
              a.defined() ? shape_str(a.shape()) : "undefined");
  const int rows = static_cast<int>(a.size(0)), cols = static_cast<int>(a.size(1));
  const int k = std::min(rows, cols);
  Tensor values = Tensor::empty({k}, DType::f64);
  if (k == 0) return values;
  // The singular values of the column-major a^T (Note [Row-major SVD]) are those of a.
  Tensor work_matrix = a.to(DType::f64).contiguous().clone();
  const char job = 'N';
  const int lda = cols, unused_ld = 1;
  int info = 0, lwork = -1;
  double work_query = 0, unused = 0;
  dgesvd_(&job, &job, &cols, &rows, work_matrix.data<double>(), &lda, values.data<double>(), &unused, &unused_ld,
          &unused, &unused_ld, &work_query, &lwork, &info);
  lwork = static_cast<int>(work_query);
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  dgesvd_(&job, &job, &cols, &rows, work_matrix.data<double>(), &lda, values.data<double>(), &unused, &unused_ld,
          &unused, &unused_ld, work.data(), &lwork, &info);
  THETA_CHECK(info == 0, std::runtime_error, "singular_values: LAPACK dgesvd failed with info ", info);
  return values;
}

}  // namespace theta::theory
