#include "nn/conv.hpp"

#include <cmath>
#include <sstream>

#include "nn/layer_support.hpp"
#include "tensor/ops.hpp"

namespace theta::nn {

// ---- Conv2d ---------------------------------------------------------------------------------

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, Rng& rng,
               ConvOptions options)
    : in_(in_channels), out_(out_channels), kernel_(kernel_size), options_(options) {
  THETA_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0, ShapeError,
              "Conv2d: channels and kernel size must be positive, got ", in_channels, " -> ", out_channels,
              ", kernel ", kernel_size);
  THETA_CHECK(options.stride >= 1 && options.dilation >= 1 && options.padding >= 0, ShapeError,
              "Conv2d: need stride >= 1, dilation >= 1 and padding >= 0, got stride ", options.stride, ", dilation ",
              options.dilation, ", padding ", options.padding);
  THETA_CHECK(is_floating(options.dtype), DTypeError, "Conv2d: dtype must be floating");
  const Shape w_shape{out_, in_, kernel_, kernel_};
  if (options.parameterization == Parameterization::ntk) {
    register_parameter("weight", rng.normal(w_shape, 0.0, 1.0, options.dtype));
    if (options.bias) register_parameter("bias", rng.normal({out_}, 0.0, 1.0, options.dtype));
  } else {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_ * kernel_ * kernel_));
    register_parameter("weight", rng.uniform(w_shape, -bound, bound, options.dtype));
    if (options.bias) register_parameter("bias", rng.uniform({out_}, -bound, bound, options.dtype));
  }
}

Conv2dOptions Conv2d::geometry() const {
  return {.stride = {options_.stride, options_.stride},
          .padding = {options_.padding, options_.padding},
          .dilation = {options_.dilation, options_.dilation},
          .padding_mode = options_.padding_mode};
}

double Conv2d::weight_scale() const {
  return options_.parameterization == Parameterization::ntk
             ? options_.sigma_w / std::sqrt(static_cast<double>(in_ * kernel_ * kernel_))
             : 1.0;
}

double Conv2d::bias_scale() const {
  return options_.parameterization == Parameterization::ntk ? options_.sigma_b : 1.0;
}

Var Conv2d::forward(const Var& x) {
  THETA_CHECK(x.dim() == 4 && x.size(1) == in_, ShapeError, describe(), ": expected input [n, ", in_,
              ", H, W], got ", shape_str(x.shape()));
  detail::check_input_dtype(*this, x, options_.dtype);
  // The NTK scale multiplies the weight, not the output: a pass over [C_out, C_in, k, k] instead
  // of one over the output, forward and in every backward pass.
  const bool ntk = options_.parameterization == Parameterization::ntk;
  Var y = autograd::conv2d(x, ntk ? weight() * weight_scale() : weight(), geometry());
  if (options_.bias) {
    const Var b = autograd::reshape(bias(), {out_, 1, 1});
    y = y + (ntk ? b * bias_scale() : b);
  }
  return y;
}

std::string Conv2d::describe() const {
  std::ostringstream out;
  out << "Conv2d(" << in_ << " -> " << out_ << ", kernel " << kernel_;
  if (options_.stride != 1) out << ", stride " << options_.stride;
  if (options_.padding != 0)
    out << ", padding " << options_.padding << (options_.padding_mode == Padding::circular ? " circular" : "");
  if (options_.dilation != 1) out << ", dilation " << options_.dilation;
  out << (options_.bias ? ", bias" : ", no bias") << (options_.parameterization == Parameterization::ntk ? ", ntk" : "")
      << ")";
  return out.str();
}

// ---- pooling and reshaping ------------------------------------------------------------------

AvgPool2d::AvgPool2d(std::int64_t kernel_size, std::int64_t stride, std::int64_t padding)
    : kernel_(kernel_size), stride_(stride == 0 ? kernel_size : stride), padding_(padding) {
  THETA_CHECK(kernel_size >= 1 && stride >= 0 && padding >= 0 && 2 * padding <= kernel_size, ShapeError,
              "AvgPool2d: need kernel >= 1, stride >= 0 (0: the kernel size) and 0 <= padding <= kernel / 2, got "
              "kernel ",
              kernel_size, ", stride ", stride, ", padding ", padding);
}

Var AvgPool2d::forward(const Var& x) {
  THETA_CHECK(x.dim() == 4, ShapeError, describe(), ": expected input [n, C, H, W], got ", shape_str(x.shape()));
  return autograd::avg_pool2d(x, {kernel_, kernel_}, {stride_, stride_}, {padding_, padding_});
}

std::string AvgPool2d::describe() const {
  std::ostringstream out;
  out << "AvgPool2d(" << kernel_ << ", stride " << stride_;
  if (padding_) out << ", padding " << padding_;
  out << ")";
  return out.str();
}

Var GlobalAvgPool2d::forward(const Var& x) {
  THETA_CHECK(x.dim() == 4, ShapeError, "GlobalAvgPool2d: expected input [n, C, H, W], got ", shape_str(x.shape()));
  return autograd::global_avg_pool2d(x);
}

Unflatten::Unflatten(std::array<std::int64_t, 3> image) : image_(image) {
  std::int64_t size = 0;
  THETA_CHECK(image[0] > 0 && image[1] > 0 && image[2] > 0 && !__builtin_mul_overflow(image[0], image[1], &size) &&
                  !__builtin_mul_overflow(size, image[2], &size),
              ShapeError, "Unflatten: image sizes must be positive with a product below 2^63, got [", image[0], ", ",
              image[1], ", ", image[2], "]");
}

Var Unflatten::forward(const Var& x) {
  const std::int64_t d = image_[0] * image_[1] * image_[2];
  THETA_CHECK(x.dim() == 2 && x.size(1) == d, ShapeError, describe(), ": expected input [n, ", d, "], got ",
              shape_str(x.shape()));
  return autograd::reshape(x, {x.size(0), image_[0], image_[1], image_[2]});
}

std::string Unflatten::describe() const {
  std::ostringstream out;
  out << "Unflatten([" << image_[0] << ", " << image_[1] << ", " << image_[2] << "])";
  return out.str();
}

// ---- builders -------------------------------------------------------------------------------

std::shared_ptr<Residual> residual_conv_block(std::int64_t channels, std::int64_t kernel_size, Rng& rng,
                                              ConvOptions conv, ActivationKind activation, bool batch_norm) {
  THETA_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, ShapeError,
              "residual_conv_block: the kernel size must be odd (padding k / 2 keeps the shape), got ", kernel_size);
  THETA_CHECK(conv.stride == 1 && conv.dilation == 1, ShapeError,
              "residual_conv_block: stride and dilation must be 1 to keep the shape, got stride ", conv.stride,
              ", dilation ", conv.dilation);
  conv.padding = kernel_size / 2;
  auto body = std::make_shared<Sequential>();
  for (int i = 0; i < 2; ++i) {
    if (batch_norm) body->add(std::make_shared<BatchNorm2d>(channels, NormOptions{.dtype = conv.dtype}));
    body->add(std::make_shared<Activation>(activation));
    body->add(std::make_shared<Conv2d>(channels, channels, kernel_size, rng, conv));
  }
  return std::make_shared<Residual>(body);
}

std::shared_ptr<Sequential> cnn(const CnnOptions& o, Rng& rng) {
  THETA_CHECK(!o.channels.empty(), std::invalid_argument, "cnn: need at least one convolution (channels is empty)");
  THETA_CHECK(o.kernel_size >= 1 && o.kernel_size % 2 == 1, ShapeError, "cnn: the kernel size must be odd, got ",
              o.kernel_size);
  THETA_CHECK(o.out_features > 0, ShapeError, "cnn: out_features must be positive, got ", o.out_features);
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Unflatten>(o.image));
  const ConvOptions conv{.padding = o.kernel_size / 2,
                        .padding_mode = o.padding_mode,
                        .bias = o.bias,
                        .parameterization = o.parameterization,
                        .sigma_w = o.sigma_w,
                        .sigma_b = o.sigma_b,
                        .dtype = o.dtype};
  std::int64_t in = o.image[0];
  for (const std::int64_t c : o.channels) {
    net->add(std::make_shared<Conv2d>(in, c, o.kernel_size, rng, conv));
    net->add(std::make_shared<Activation>(o.activation));
    in = c;
  }
  std::int64_t features = in;
  if (o.readout == CnnReadout::global_average) {
    net->add(std::make_shared<GlobalAvgPool2d>());
  } else {
    net->add(std::make_shared<Flatten>());
    features *= o.image[1] * o.image[2];
  }
  net->add(std::make_shared<Linear>(features, o.out_features, rng,
                                    LinearOptions{.bias = o.bias,
                                                  .parameterization = o.parameterization,
                                                  .sigma_w = o.sigma_w,
                                                  .sigma_b = o.sigma_b,
                                                  .dtype = o.dtype}));
  return net;
}

}  // namespace theta::nn
