// theta.nn convolutional layers (Conv2d, AvgPool2d, GlobalAvgPool2d, Unflatten, BatchNorm2d) as
// subclasses of theta.nn.Module, and the residual_conv_block / cnn builders.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conv_args.hpp"
#include "nn/conv.hpp"
#include "nn_common.hpp"

namespace theta::python {

namespace {

const char* parameterization_name(nn::Parameterization p) {
  return p == nn::Parameterization::ntk ? "ntk" : "standard";
}

nn::ConvNtkRoute parse_ntk_route(const std::string& name) {
  if (name == "automatic") return nn::ConvNtkRoute::automatic;
  if (name == "weight_gradients") return nn::ConvNtkRoute::weight_gradients;
  if (name == "pixel_pairs") return nn::ConvNtkRoute::pixel_pairs;
  throw py::value_error("ntk_route: expected \"automatic\", \"weight_gradients\" or \"pixel_pairs\", got \"" + name +
                        "\"");
}

const char* ntk_route_name(nn::ConvNtkRoute route) {
  switch (route) {
    case nn::ConvNtkRoute::weight_gradients:
      return "weight_gradients";
    case nn::ConvNtkRoute::pixel_pairs:
      return "pixel_pairs";
    case nn::ConvNtkRoute::automatic:
      break;
  }
  return "automatic";
}

nn::CnnReadout parse_readout(const std::string& name) {
  if (name == "global_average") return nn::CnnReadout::global_average;
  if (name == "flatten") return nn::CnnReadout::flatten;
  throw py::value_error("readout: expected \"global_average\" or \"flatten\", got \"" + name + "\"");
}

std::array<std::int64_t, 3> image_arg(const std::vector<std::int64_t>& image, const char* op) {
  if (image.size() != 3)
    throw py::value_error(std::string(op) + ": image must be (channels, height, width), got " +
                          std::to_string(image.size()) + " entries");
  return {image[0], image[1], image[2]};
}

void bind_conv2d(py::module_& m) {
  py::class_<nn::Conv2d, nn::Module, std::shared_ptr<nn::Conv2d>>(m, "Conv2d", R"doc(
2-D convolution on x:[n, in_channels, H, W] -> [n, out_channels, H_out, W_out] (as
theta.autograd.conv2d, square kernel): weight [out, in, k, k] (PyTorch's layout), bias [out].
parameterization "standard" initialises like PyTorch (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in =
in k^2); "ntk" computes sigma_w / sqrt(fan_in) conv(x, W) + sigma_b b with W, b ~ N(0, 1).
)doc")
      .def(py::init([](std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
                       std::int64_t stride, std::int64_t padding, std::int64_t dilation,
                       const std::string& padding_mode, bool bias, const std::string& parameterization, double sigma_w,
                       double sigma_b, const py::handle& dtype, std::uint64_t seed) {
             const nn::ConvOptions options{.stride = stride,
                                           .padding = padding,
                                           .dilation = dilation,
                                           .padding_mode = parse_padding_mode(padding_mode),
                                           .bias = bias,
                                           .parameterization = parse_parameterization(parameterization),
                                           .sigma_w = sigma_w,
                                           .sigma_b = sigma_b,
                                           .dtype = parse_dtype(dtype)};
             Rng rng(seed);
             return std::make_shared<nn::Conv2d>(in_channels, out_channels, kernel_size, rng, options);
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("stride") = 1,
           py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("padding_mode") = "zeros", py::arg("bias") = true,
           py::arg("parameterization") = "standard", py::arg("sigma_w") = 1.0, py::arg("sigma_b") = 0.0,
           py::arg("dtype") = "float64", py::arg("seed") = 0, "A Conv2d layer initialised from Rng(seed).")
      .def_property_readonly(
          "weight", [](const nn::Conv2d& self) { return array_from_tensor(self.weight().value()); },
          "The weight [out_channels, in_channels, k, k] (a view: writes change the layer).")
      .def_property_readonly(
          "bias",
          [](const nn::Conv2d& self) -> py::object {
            if (!self.options().bias) return py::none();
            return array_from_tensor(self.bias().value());
          },
          "The bias [out_channels] (a view), or None.")
      .def_property_readonly("in_channels", &nn::Conv2d::in_channels, "Input channels.")
      .def_property_readonly("out_channels", &nn::Conv2d::out_channels, "Output channels.")
      .def_property_readonly("kernel_size", &nn::Conv2d::kernel_size, "The kernel's height and width.")
      .def_property_readonly(
          "stride", [](const nn::Conv2d& self) { return self.options().stride; }, "Step between windows.")
      .def_property_readonly(
          "padding", [](const nn::Conv2d& self) { return self.options().padding; },
          "Padding on each side of both spatial axes.")
      .def_property_readonly(
          "dilation", [](const nn::Conv2d& self) { return self.options().dilation; }, "Spacing of kernel taps.")
      .def_property_readonly(
          "padding_mode", [](const nn::Conv2d& self) { return padding_mode_name(self.options().padding_mode); },
          "\"zeros\" or \"circular\".")
      .def_property_readonly(
          "parameterization",
          [](const nn::Conv2d& self) { return parameterization_name(self.options().parameterization); },
          "\"standard\" or \"ntk\".")
      .def_property_readonly("weight_scale", &nn::Conv2d::weight_scale,
                             "The factor multiplying conv(x, W) in forward (1 in standard parameterisation).")
      .def_property_readonly("bias_scale", &nn::Conv2d::bias_scale,
                             "The factor multiplying b in forward (1 in standard parameterisation).")
      .def_property(
          "ntk_route", [](const nn::Conv2d& self) { return ntk_route_name(self.ntk_route); },
          [](nn::Conv2d& self, const std::string& route) {
            const nn::ConvNtkRoute parsed = parse_ntk_route(route);
            with_module(self, true, [&] { self.ntk_route = parsed; });
          },
          "How the structured NTK evaluates this layer's block: \"automatic\" (the cheaper by operation "
          "count), \"weight_gradients\" or \"pixel_pairs\"; all give the same kernel.");
}

void bind_pooling(py::module_& m) {
  py::class_<nn::AvgPool2d, nn::Module, std::shared_ptr<nn::AvgPool2d>>(
      m, "AvgPool2d",
      "Mean over k x k windows of x:[n, C, H, W] (as theta.autograd.avg_pool2d; zero padding counts in the mean).")
      .def(py::init([](std::int64_t kernel_size, const std::optional<std::int64_t>& stride, std::int64_t padding) {
             if (stride && *stride <= 0)
               throw py::value_error("AvgPool2d: stride must be positive (None: the kernel size), got " +
                                     std::to_string(*stride));
             return std::make_shared<nn::AvgPool2d>(kernel_size, stride.value_or(0), padding);
           }),
           py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
           "Average pooling; stride None means the kernel size.");
  py::class_<nn::GlobalAvgPool2d, nn::Module, std::shared_ptr<nn::GlobalAvgPool2d>>(
      m, "GlobalAvgPool2d", "Mean over the image: x:[n, C, H, W] -> [n, C].")
      .def(py::init<>(), "The global average pooling layer.");
  py::class_<nn::Unflatten, nn::Module, std::shared_ptr<nn::Unflatten>>(
      m, "Unflatten", "Rows to images: x:[n, C*H*W] -> [n, C, H, W], so a CNN takes flat [n, d] inputs.")
      .def(py::init([](const std::vector<std::int64_t>& image) {
             return std::make_shared<nn::Unflatten>(image_arg(image, "Unflatten"));
           }),
           py::arg("image"), "Unflatten((C, H, W)).");
  py::class_<nn::BatchNorm2d, nn::Module, std::shared_ptr<nn::BatchNorm2d>>(m, "BatchNorm2d", R"doc(
BatchNorm per channel over the batch and spatial axes of x:[n, C, H, W], as PyTorch: batch statistics
in training (running estimates updated with `momentum`, unbiased variance), running statistics in
eval. Parameters weight/bias [channels] (when affine), buffers running_mean/running_var.
)doc")
      .def(py::init([](std::int64_t channels, double eps, double momentum, bool affine, const py::handle& dtype) {
             return std::make_shared<nn::BatchNorm2d>(
                 channels,
                 nn::NormOptions{.eps = eps, .momentum = momentum, .affine = affine, .dtype = parse_dtype(dtype)});
           }),
           py::arg("channels"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1, py::arg("affine") = true,
           py::arg("dtype") = "float64", "BatchNorm over `channels` channels.");
}

void bind_conv_builders(py::module_& m) {
  m.def(
      "residual_conv_block",
      [](std::int64_t channels, std::int64_t kernel_size, const std::string& activation, bool batch_norm,
         const std::string& padding_mode, bool bias, const std::string& parameterization, double sigma_w,
         double sigma_b, const py::handle& dtype, std::uint64_t seed) {
        const nn::ConvOptions conv{.padding_mode = parse_padding_mode(padding_mode),
                                   .bias = bias,
                                   .parameterization = parse_parameterization(parameterization),
                                   .sigma_w = sigma_w,
                                   .sigma_b = sigma_b,
                                   .dtype = parse_dtype(dtype)};
        const nn::ActivationKind act = parse_activation(activation);
        Rng rng(seed);
        return nn::residual_conv_block(channels, kernel_size, rng, conv, act, batch_norm);
      },
      py::arg("channels"), py::arg("kernel_size") = 3, py::arg("activation") = "relu", py::arg("batch_norm") = false,
      py::arg("padding_mode") = "zeros", py::arg("bias") = true, py::arg("parameterization") = "standard",
      py::arg("sigma_w") = 1.0, py::arg("sigma_b") = 0.0, py::arg("dtype") = "float64", py::arg("seed") = 0, R"doc(
A pre-activation residual block on [n, C, H, W]: Residual(Sequential(act, Conv2d, act, Conv2d)),
x + conv(act(conv(act(x)))), with k x k convolutions (k odd, padding k // 2, so the shape is kept).
With batch_norm, a BatchNorm2d precedes each activation.)doc");
  m.def(
      "cnn",
      [](const std::vector<std::int64_t>& image, const std::vector<std::int64_t>& channels, std::int64_t kernel_size,
         std::int64_t out_features, const std::string& readout, const std::string& activation,
         const std::string& padding_mode, bool bias, const std::string& parameterization, double sigma_w,
         double sigma_b, const py::handle& dtype, std::uint64_t seed) {
        const nn::CnnOptions options{.image = image_arg(image, "cnn"),
                                     .channels = channels,
                                     .kernel_size = kernel_size,
                                     .out_features = out_features,
                                     .readout = parse_readout(readout),
                                     .activation = parse_activation(activation),
                                     .padding_mode = parse_padding_mode(padding_mode),
                                     .bias = bias,
                                     .parameterization = parse_parameterization(parameterization),
                                     .sigma_w = sigma_w,
                                     .sigma_b = sigma_b,
                                     .dtype = parse_dtype(dtype)};
        Rng rng(seed);
        return nn::cnn(options, rng);
      },
      py::kw_only(), py::arg("image") = std::vector<std::int64_t>{1, 8, 8},
      py::arg("channels") = std::vector<std::int64_t>{32, 64}, py::arg("kernel_size") = 3, py::arg("out_features") = 10,
      py::arg("readout") = "global_average", py::arg("activation") = "relu", py::arg("padding_mode") = "zeros",
      py::arg("bias") = true, py::arg("parameterization") = "standard", py::arg("sigma_w") = 1.0,
      py::arg("sigma_b") = 0.0, py::arg("dtype") = "float64", py::arg("seed") = 0, R"doc(
A plain CNN on flat inputs x:[n, C*H*W] -> [n, out_features] for images image = (C, H, W):
Unflatten, then per entry of `channels` a k x k Conv2d (padding k // 2) and the activation, then the
readout: "global_average" (GlobalAvgPool2d, Linear(C_last -> out)) or "flatten" (Flatten,
Linear(C_last H W -> out)). A Sequential: "layers.0" Unflatten, Conv2d at "layers.1", "layers.3", ...,
the readout's Linear last (PyTorch's nn.Sequential layout, keyword arguments only).)doc");
}

}  // namespace

void bind_nn_conv(py::module_& m) {
  bind_conv2d(m);
  bind_pooling(m);
  bind_conv_builders(m);
}

}  // namespace theta::python
