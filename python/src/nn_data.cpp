// theta.nn data sets: the shipped digits and iris, where they are looked for, deterministic
// train/test splits and feature standardisation.

#include <cstdint>
#include <string>

#include "nn/data.hpp"
#include "nn_common.hpp"

namespace theta::python {

namespace {

py::tuple dataset_tuple(const nn::Dataset& data) {
  return py::make_tuple(array_from_tensor(data.x), array_from_tensor(data.y));
}

template <class Load, class LoadPath>
py::tuple load(const py::object& path, Load load_default, LoadPath load_path, const char* what) {
  nn::Dataset data;
  if (path.is_none()) {
    ReleaseGil released;
    data = load_default();
  } else {
    const std::string file = path_arg(path, what);
    ReleaseGil released;
    data = load_path(file);
  }
  return dataset_tuple(data);
}

}  // namespace

void bind_nn_data(py::module_& m) {
  // The Python layer (theta/nn.py) wraps these two to also look next to an installed package.
  m.def(
      "load_digits",
      [](const py::object& path) {
        return load(
            path, [] { return nn::load_digits(); }, [](const std::string& p) { return nn::load_digits(p); },
            "load_digits: path");
      },
      py::arg("path") = py::none(),
      "The UCI optical digits: (x [1797, 64] float64 pixels 0..16, y [1797] int64 labels 0..9), from `path` "
      "(gzip or plain CSV) or the shipped digits.csv.gz (see default_data_dir).");
  m.def(
      "load_iris",
      [](const py::object& path) {
        return load(
            path, [] { return nn::load_iris(); }, [](const std::string& p) { return nn::load_iris(p); },
            "load_iris: path");
      },
      py::arg("path") = py::none(),
      "Fisher's iris: (x [150, 4] float64, y [150] int64 labels 0..2), from `path` (scikit-learn's CSV "
      "layout) or the shipped iris.csv.");
  m.def("default_data_dir", &nn::default_data_dir,
        "The folder the loaders read: $THETA_DATA_DIR when set, else the one theta was configured with "
        "(<prefix>/share/theta when installed, the source tree's data/ in a build tree).");
  m.def("data_file", &nn::data_file, py::arg("name"),
        "The path of a shipped data file in default_data_dir(); ValueError naming where it looked if missing.");
  m.def(
      "train_test_split",
      [](const Tensor& x, const Tensor& y, double test_fraction, std::uint64_t seed) {
        if (x.dim() == 0 || y.dim() == 0 || x.size(0) != y.size(0))
          throw py::value_error("train_test_split: x and y need the same number of samples (first axis), got x " +
                                shape_str(x.shape()) + " and y " + shape_str(y.shape()));
        nn::Split split;
        {
          ReleaseGil released;
          split = nn::train_test_split(nn::Dataset{x, y}, test_fraction, seed);
        }
        return py::make_tuple(array_from_tensor(split.train.x), array_from_tensor(split.test.x),
                              array_from_tensor(split.train.y), array_from_tensor(split.test.y));
      },
      py::arg("x"), py::arg("y"), py::arg("test_fraction") = 0.25, py::arg("seed") = 0,
      "Shuffles the samples with Rng(seed) and puts round(test_fraction n) of them in the test set: returns "
      "(x_train, x_test, y_train, y_test) (scikit-learn's order), copies. Same inputs, same split.");
  py::class_<nn::Standardizer>(m, "Standardizer",
                               "Per-feature standardisation (x - mean) / std fitted on training data.")
      .def_static(
          "fit",
          [](const Tensor& x) {
            ReleaseGil released;
            return nn::Standardizer::fit(x);
          },
          py::arg("x"), "Fits mean and population std over the first axis of x:[n, ...] (std 1 for constant features).")
      .def(
          "apply",
          [](const nn::Standardizer& self, const Tensor& x) {
            ReleaseGil released;
            return self.apply(x);
          },
          py::arg("x"), "(x - mean) / std for x:[m, ...] of the fitted feature shape.")
      .def_property_readonly(
          "mean", [](const nn::Standardizer& self) { return array_from_tensor(self.mean); },
          "The fitted per-feature mean (feature shape x.shape[1:]).")
      .def_property_readonly(
          "std", [](const nn::Standardizer& self) { return array_from_tensor(self.std); },
          "The fitted per-feature population std (1 where a feature is constant).");
}

}  // namespace theta::python
