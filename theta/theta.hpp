#pragma once
// The whole public API of theta in one include: #include "theta/theta.hpp".
//
// The same path works against an install tree (include/theta/theta/theta.hpp, with include/theta
// on the include path, as theta::theta provides) and against the source tree (the repository
// root is the include root). The per-module headers below stay available for builds that want
// less; internal headers (kernels, strided loops, theory's model probes) are left out.

#include "tensor/blas_runtime.hpp"
#include "tensor/conv.hpp"
#include "tensor/dtype.hpp"
#include "tensor/error.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tensor/pool.hpp"
#include "tensor/rng.hpp"
#include "tensor/shape.hpp"
#include "tensor/storage.hpp"
#include "tensor/tensor.hpp"

#include "autograd/engine.hpp"
#include "autograd/forward.hpp"
#include "autograd/ops.hpp"
#include "autograd/transforms.hpp"
#include "autograd/var.hpp"

#include "nn/checkpoint.hpp"
#include "nn/conv.hpp"
#include "nn/cotangents.hpp"
#include "nn/data.hpp"
#include "nn/eval.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/linearized.hpp"
#include "nn/module.hpp"
#include "nn/npz.hpp"
#include "nn/optim.hpp"
#include "nn/residual.hpp"
#include "nn/structured.hpp"
#include "nn/train.hpp"

#include "theory/cntk.hpp"
#include "theory/deep_linear.hpp"
#include "theory/diagonal_net.hpp"
#include "theory/hessian.hpp"
#include "theory/least_squares.hpp"
#include "theory/linalg.hpp"
#include "theory/max_margin.hpp"
#include "theory/model_spec.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_operator.hpp"
#include "theory/ntk_tiled.hpp"
#include "theory/sphere_spectrum.hpp"
#include "theory/symmetry.hpp"
