#pragma once
// Minimal CSV and SVG line-plot writers for the demos (no dependencies; files written atomically).

#include <string>
#include <vector>

namespace theta::theory {

struct Series {
  std::string label{};
  std::vector<double> x{}, y{};
  bool dashed = false;   // predictions are dashed, measurements solid
  bool markers = false;  // draw points instead of a line
  std::string color{};   // CSS color; empty picks from a palette by index
};

struct PlotOptions {
  std::string title{};
  std::string x_label{};
  std::string y_label{};
  bool log_x = false;
  bool log_y = false;
  int width = 720;
  int height = 440;
};

/// Writes a line plot of `series` as a standalone SVG file.
void write_svg_plot(const std::string& path, const std::vector<Series>& series, const PlotOptions& options);

/// Writes columns of equal length as CSV with a header line.
void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<double>>& columns);

}  // namespace theta::theory
