#pragma once
// Deep linear network dynamics (Saxe, McClelland and Ganguli 2014): the input-output modes of a
// product of linear layers trained by full-batch gradient descent on whitened inputs, against
// Saxe's closed form (depth 2) and the integrated mode ODE (any depth).
//
// Conventions (Note [Deep linear time convention] in deep_linear.cpp derives them):
// - data: rows are samples, x:[n, d_in], y:[n, d_out]; inputs are whitened, x^T x / n = I.
// - Sigma_yx = y^T x / n = U diag(s) V^T with U:[d_out, m], V:[d_in, m] orthonormal columns.
// - network: y_hat = W_D ... W_1 x, weights in PyTorch layout W_l:[h_l, h_{l-1}] (bias-free
//   nn::Linear layers), h_0 = d_in, h_D = d_out.
// - loss: L = 1/(2n) sum_i |y_i - W_D ... W_1 x_i|^2 (sum over outputs, mean over samples).
// - time: t = eta k after k full-batch GD steps of size eta (Saxe's t / tau = eta k).
// Then the mode strength u_a = U_a^T W_D ... W_1 V_a obeys du/dt = D u^{2 - 2/D} (s - u); for
// D = 2, u(t) = s e^{2st} / (e^{2st} - 1 + s/u0).

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/layers.hpp"
#include "tensor/rng.hpp"

namespace theta::theory {

/// A regression task with whitened inputs and a known mode structure.
struct DeepLinearProblem {
  Tensor x{};  // [n, d_in], x^T x / n = I
  Tensor y{};  // [n, d_out], y = x Sigma_yx^T
  Tensor u{};  // [d_out, m], output singular vectors of Sigma_yx (columns)
  Tensor s{};  // [m], singular values (mode strengths at convergence)
  Tensor v{};  // [d_in, m], input singular vectors of Sigma_yx (columns)
};

struct SaxeProblemOptions {
  std::int64_t samples = 16;             // n >= d_in
  std::int64_t input_dim = 8;            // d_in
  std::int64_t output_dim = 6;           // d_out
  std::vector<double> strengths = {2.0, 1.5, 1.0, 0.5};  // s_a, m <= min(d_in, d_out)
};

/// A random problem: x = sqrt(n) Q with orthonormal columns Q:[n, d_in], random orthonormal U, V,
/// and y = x (U diag(s) V^T)^T, so Sigma_yx = U diag(s) V^T exactly up to rounding.
DeepLinearProblem make_saxe_problem(const SaxeProblemOptions& options, Rng& rng);

/// The mode structure of data x:[n, d_in], y:[n, d_out] with whitened x (checked to 1e-8): the
/// `modes` leading singular triplets of Sigma_yx = y^T x / n.
DeepLinearProblem problem_from_data(const Tensor& x, const Tensor& y, std::int64_t modes);

/// Sigma_yx = y^T x / n: x:[n, d_in], y:[n, d_out] -> [d_out, d_in].
Tensor input_output_correlation(const Tensor& x, const Tensor& y);

// ---- theory ------------------------------------------------------------------------------------

/// Saxe's depth-2 mode strength u(t) = s e^{2st} / (e^{2st} - 1 + s/u0) for s, u0 > 0, t >= 0.
double saxe_mode_strength(double s, double u0, double t);

/// The time at which the depth-2 mode reaches s/2: (1 / (2s)) ln(s/u0 - 1), for 0 < u0 < s/2.
double saxe_half_time(double s, double u0);

/// The depth-D mode ODE's right-hand side D u^{2 - 2/D} (s - u), for u >= 0 and depth >= 1.
double depth_d_rate(int depth, double s, double u);

/// u(t) of du/dt = D u^{2 - 2/D} (s - u), u(0) = u0, by classical RK4 with steps of at most dt,
/// at each of `times` (non-decreasing, >= 0) -> one value per time.
std::vector<double> integrate_depth_d(int depth, double s, double u0, const std::vector<double>& times,
                                      double dt = 1e-4);

// ---- networks and measurements -----------------------------------------------------------------

/// Balanced weights aligned with the modes: widths = {d_in, h_1, ..., h_{D-1}, d_out} (every
/// h_l >= m), u:[d_out, m], v:[d_in, m], u0:[m] > 0. Returns W_l:[h_l, h_{l-1}] with
/// W_D ... W_1 = U diag(u0) V^T and W_{l+1}^T W_{l+1} = W_l W_l^T (random orthonormal hidden bases).
std::vector<Tensor> balanced_aligned_init(const std::vector<std::int64_t>& widths, const Tensor& u,
                                          const Tensor& v, const Tensor& u0, Rng& rng);

/// Independent N(0, sigma^2) weights W_l:[h_l, h_{l-1}] for widths = {d_in, h_1, ..., d_out}.
std::vector<Tensor> random_init(const std::vector<std::int64_t>& widths, double sigma, Rng& rng);

/// A bias-free identity-activation nn::mlp whose Linear layers hold copies of `weights`
/// (W_l:[h_l, h_{l-1}], applied first to last).
std::shared_ptr<nn::Sequential> make_deep_linear_net(const std::vector<Tensor>& weights);

/// The weights W_1..W_D of the Linear layers of `net`, in order (views of the parameters).
std::vector<Tensor> linear_weights(const nn::Sequential& net);

/// W_D ... W_1: weights W_l:[h_l, h_{l-1}] -> [h_D, h_0].
Tensor end_to_end(const std::vector<Tensor>& weights);

/// u_a = u[:, a]^T W_D ... W_1 v[:, a]: u:[d_out, m], v:[d_in, m] -> [m].
Tensor mode_strengths(const std::vector<Tensor>& weights, const Tensor& u, const Tensor& v);

/// The balancedness matrices B_l = W_{l+1}^T W_{l+1} - W_l W_l^T:[h_l, h_l], l = 1..D-1.
std::vector<Tensor> balancedness(const std::vector<Tensor>& weights);

/// Depth 2: the initial strength a small random init behaves as, |W_1 v_a + W_2^T u_a|^2 / 4
/// (Note [Effective initial strength]): weights {W_1, W_2}, u:[d_out, m], v:[d_in, m] -> [m].
Tensor effective_initial_strength(const std::vector<Tensor>& weights, const Tensor& u, const Tensor& v);

/// L = 1/(2n) sum_i |y_i - pred_i|^2: pred:[n, d_out] (differentiable), y:[n, d_out] -> [].
nn::Var deep_linear_loss(const nn::Var& pred, const Tensor& y);

// ---- training ----------------------------------------------------------------------------------

struct GdOptions {
  double eta = 1e-3;                 // step size; time t = eta k
  std::int64_t steps = 1000;         // number of full-batch steps K
  std::int64_t record_every = 10;    // records at k = 0, record_every, 2 record_every, ..., K
  bool check_balancedness = false;   // check the exact eta^2 law of every step (Note [Balancedness])
};

struct GdTrace {
  std::vector<double> times{};   // t = eta k of each record
  Tensor strengths{};            // [records, m]: mode strengths u_a at each record
  std::vector<double> losses{};  // L at each record
  // With check_balancedness, max-abs over the pairs l and the matrix entries:
  double max_step_law_error = 0.0;   // max_k |B(k+1) - B(k) - eta^2 (G_{l+1}^T G_{l+1} - G_l G_l^T)|
  double max_total_law_error = 0.0;  // |B(K) - B(0) - sum_k eta^2 (...)|
  std::vector<double> drift{};            // per record: max |B(k) - B(0)|
  std::vector<double> predicted_drift{};  // per record: max |sum_{j<k} eta^2 (...)|
  std::vector<double> law_residual{};     // per record: max |B(k) - B(0) - sum_{j<k} eta^2 (...)|
};

/// Full-batch GD (nn::Sgd with lr = eta) on deep_linear_loss of `net` (built by
/// make_deep_linear_net) for problem.x, problem.y, recording the strengths of problem's modes.
GdTrace train_deep_linear(nn::Sequential& net, const DeepLinearProblem& problem, const GdOptions& options);

/// The first time (linear interpolation between records) at which column a of strengths
/// [records, m] reaches fraction * s_a, or NaN when it never does: times:[records], s:[m] -> [m].
std::vector<double> crossing_times(const std::vector<double>& times, const Tensor& strengths,
                                   const Tensor& s, double fraction = 0.5);

}  // namespace theta::theory
