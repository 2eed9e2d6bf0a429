// theta.theory.analytic_cntk: the infinite-width kernels of ReLU convolutional networks.

#include <optional>
#include <string>

#include "tensor/error.hpp"
#include "tensor/shape.hpp"
#include "theory/cntk.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

Padding cntk_padding(const std::string& name) {
  if (name == "zeros") return Padding::zeros;
  if (name == "circular") return Padding::circular;
  throw std::invalid_argument("analytic_cntk: unknown padding '" + name + "': expected \"zeros\" or \"circular\"");
}

theory::CntkReadout cntk_readout(const std::string& name) {
  if (name == "global_average") return theory::CntkReadout::global_average;
  if (name == "flatten") return theory::CntkReadout::flatten;
  throw std::invalid_argument("analytic_cntk: unknown readout '" + name +
                              "': expected \"global_average\" or \"flatten\"");
}

}  // namespace

void bind_theory_cntk(py::module_& m) {
  m.def(
      "analytic_cntk",
      [](const Tensor& x1, const std::optional<Tensor>& x2, std::int64_t conv_layers, std::int64_t kernel_size,
         const std::string& padding, const std::string& readout, double sigma_w, double sigma_b) {
        theory::CntkOptions options;
        options.conv_layers = conv_layers;
        options.kernel_size = kernel_size;
        options.padding = cntk_padding(padding);
        options.readout = cntk_readout(readout);
        options.sigma_w = sigma_w;
        options.sigma_b = sigma_b;
        // x2 = None: x1 with itself, one view, so only half of the symmetric kernels is computed.
        const Tensor y = x2 ? *x2 : x1;
        theory::AnalyticKernels k;
        {
          ReleaseGil released;
          k = theory::analytic_cntk(x1, y, options);
        }
        py::dict out;
        out["nngp"] = array_from_tensor(k.nngp);
        out["ntk"] = array_from_tensor(k.ntk);
        return out;
      },
      py::arg("x1"), py::arg("x2") = py::none(), py::kw_only(), py::arg("conv_layers") = 3, py::arg("kernel_size") = 3,
      py::arg("padding") = "zeros", py::arg("readout") = "global_average", py::arg("sigma_w") = 1.0,
      py::arg("sigma_b") = 0.0, R"doc(
The infinite-width kernels of a ReLU convolutional network in NTK parameterisation with N(0, 1)
weights and biases: `conv_layers` times (kernel_size x kernel_size convolution, stride 1, padding
kernel_size // 2 of zeros or "circular", y = sigma_w / sqrt(C_in k^2) conv(x, W) + sigma_b b, ReLU),
then a Linear readout after the pixel mean ("global_average") or after "flatten".
x1:[n1, C, H, W], x2:[n2, C, H, W] (None: x1 with itself) -> {"nngp": [n1, n2], "ntk": [n1, n2]}.)doc");
}

}  // namespace theta::python
