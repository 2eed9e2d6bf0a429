#pragma once
// Checkpoints: a model's parameters and buffers, and optionally its optimizer's state, in one
// NumPy .npz archive (np.load reads it). Members are "param/<name>.npy", "buffer/<name>.npy" and
// "optim/<key>.npy", named as Module::named_parameters(), Module::named_buffers() and
// Optimizer::state() name them.

#include <string>

#include "nn/module.hpp"
#include "nn/optim.hpp"

namespace theta::nn {

/// Writes `model`'s parameters and buffers, and `optimizer`'s state when given, to `path`
/// atomically (a crash never leaves a partial checkpoint behind).
void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer = nullptr);

/// Restores what save_checkpoint wrote into a model of the same structure (and an optimizer over
/// its parameters, when given). Every tensor is checked (present, same shape and dtype, intact
/// CRC-32; no unexpected parameter or buffer) before anything changes: on error the model and the
/// optimizer are untouched and a FormatError names the file and the tensor. Optimizer state in
/// the file is ignored when `optimizer` is null.
void load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer = nullptr);

}  // namespace theta::nn
