#include "theory/plot.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "tensor/error.hpp"
#include "tensor/npy.hpp"

namespace theta::theory {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

// Text for SVG element content or a single-quoted attribute.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '\'') out += "&apos;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string number(double v) {
  std::ostringstream out;
  out << std::setprecision(4) << v;
  return out.str();
}

// Evenly spaced "nice" tick values covering [lo, hi] (about five). Computed by index, so a range
// far from 0 (1e17 to 1e17 + 10, where t += step would not move) still ends.
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5.0;
  std::vector<double> out;
  if (!(raw > 0) || !std::isfinite(raw)) return out;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  const double first = std::ceil(lo / step) * step;
  for (int k = 0; k <= 12; ++k) {
    const double t = first + k * step;
    if (t > hi + step * 1e-9) break;
    if (out.empty() || t > out.back()) out.push_back(t);
  }
  return out;
}

}  // namespace

void write_svg_plot(const std::string& path, const std::vector<Series>& series, const PlotOptions& o) {
  auto tx = [&](double v) { return o.log_x ? std::log10(v) : v; };
  auto ty = [&](double v) { return o.log_y ? std::log10(v) : v; };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    THETA_CHECK(s.x.size() == s.y.size(), std::invalid_argument, "write_svg_plot: series '", s.label,
                "' has ", s.x.size(), " x values and ", s.y.size(), " y values");
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const double a = tx(s.x[i]), b = ty(s.y[i]);
      if (!std::isfinite(a) || !std::isfinite(b)) continue;
      x0 = std::min(x0, a), x1 = std::max(x1, a), y0 = std::min(y0, b), y1 = std::max(y1, b);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  // A flat range gets some width (relative, so that it also shows far from 0).
  const auto widen = [](double& lo, double& hi) {
    if (hi > lo) return;
    const double half = std::max(0.5, std::abs(lo) * 1e-6);
    lo -= half, hi += half;
  };
  widen(x0, x1);
  widen(y0, y1);
  const double pad_y = 0.05 * (y1 - y0);
  y0 -= pad_y, y1 += pad_y;
  std::size_t longest_label = 0;
  for (const auto& s : series) longest_label = std::max(longest_label, s.label.size());
  const double left = 70, top = 40, bottom = 55;
  const double right = 60 + 7.0 * static_cast<double>(longest_label);  // room for the legend
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  auto px = [&](double v) { return left + (tx(v) - x0) / (x1 - x0) * pw; };
  auto py = [&](double v) { return top + (1.0 - (ty(v) - y0) / (y1 - y0)) * ph; };

  std::ostringstream svg;
  svg << std::setprecision(6);
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << o.width << "' height='" << o.height
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  svg << "<text x='" << o.width / 2 << "' y='22' text-anchor='middle' font-size='15'>" << escape(o.title) << "</text>\n";
  for (double t : ticks(x0, x1)) {
    const double x = left + (t - x0) / (x1 - x0) * pw;
    svg << "<line x1='" << x << "' y1='" << top << "' x2='" << x << "' y2='" << top + ph
        << "' stroke='#eee'/><text x='" << x << "' y='" << top + ph + 16 << "' text-anchor='middle'>"
        << number(o.log_x ? std::pow(10.0, t) : t) << "</text>\n";
  }
  for (double t : ticks(y0, y1)) {
    const double y = top + (1.0 - (t - y0) / (y1 - y0)) * ph;
    svg << "<line x1='" << left << "' y1='" << y << "' x2='" << left + pw << "' y2='" << y
        << "' stroke='#eee'/><text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end'>"
        << number(o.log_y ? std::pow(10.0, t) : t) << "</text>\n";
  }
  svg << "<rect x='" << left << "' y='" << top << "' width='" << pw << "' height='" << ph
      << "' fill='none' stroke='#333'/>\n";
  svg << "<text x='" << left + pw / 2 << "' y='" << o.height - 12 << "' text-anchor='middle'>" << escape(o.x_label) << "</text>\n";
  svg << "<text transform='translate(16," << top + ph / 2 << ") rotate(-90)' text-anchor='middle'>" << escape(o.y_label) << "</text>\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const std::string color = escape(s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color);
    if (s.markers) {
      for (std::size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(tx(s.x[i])) && std::isfinite(ty(s.y[i])))
          svg << "<circle cx='" << px(s.x[i]) << "' cy='" << py(s.y[i]) << "' r='3' fill='" << color << "'/>\n";
    } else {
      svg << "<polyline fill='none' stroke='" << color << "' stroke-width='1.8'"
          << (s.dashed ? " stroke-dasharray='6,4'" : "") << " points='";
      for (std::size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(tx(s.x[i])) && std::isfinite(ty(s.y[i]))) svg << px(s.x[i]) << ',' << py(s.y[i]) << ' ';
      svg << "'/>\n";
    }
    const double ly = top + 14 + 18.0 * static_cast<double>(k);
    svg << "<line x1='" << left + pw + 10 << "' y1='" << ly - 4 << "' x2='" << left + pw + 34 << "' y2='" << ly - 4
        << "' stroke='" << color << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='6,4'" : "")
        << "/><text x='" << left + pw + 40 << "' y='" << ly << "'>" << escape(s.label) << "</text>\n";
  }
  svg << "</svg>\n";
  write_file_atomic(path, svg.str());
}

void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<double>>& columns) {
  THETA_CHECK(header.size() == columns.size(), std::invalid_argument, "write_csv: ", header.size(),
              " names for ", columns.size(), " columns");
  const std::size_t rows = columns.empty() ? 0 : columns.front().size();
  for (const auto& c : columns)
    THETA_CHECK(c.size() == rows, std::invalid_argument, "write_csv: columns differ in length");
  std::ostringstream out;
  out << std::setprecision(17);
  for (std::size_t j = 0; j < header.size(); ++j) out << (j ? "," : "") << csv_field(header[j]);
  out << '\n';
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < columns.size(); ++j) out << (j ? "," : "") << columns[j][i];
    out << '\n';
  }
  write_file_atomic(path, out.str());
}

}  // namespace theta::theory
