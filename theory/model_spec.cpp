#include "theory/model_spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include "tensor/file_io.hpp"
#include "tensor/npy.hpp"

namespace theta::theory {

namespace {

// The JSON a model description uses: an object of numbers, strings, booleans, null and arrays
// of those (nested objects are parsed and ignored). Strict: anything else is a FormatError with
// the byte offset.
struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<JsonValue> items;
  std::map<std::string, JsonValue> members;
};

class JsonReader {
 public:
  JsonReader(std::string_view text, const std::string& what) : s_(text), what_(what) {}

  JsonValue document() {
    JsonValue v = value();
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    THETA_THROW(FormatError, what_, ": ", message, " at byte ", pos_);
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool take(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  bool take_word(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  JsonValue value() {
    if (++depth_ > 32) fail("nesting deeper than 32 levels");
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end of input");
    JsonValue v;
    const char c = s_[pos_];
    if (c == '{') {
      v.kind = JsonValue::Kind::object;
      ++pos_;
      if (!take('}')) {
        do {
          skip_space();
          const std::string key = string();
          expect(':');
          if (v.members.count(key)) fail("duplicate key '" + key + "'");
          v.members[key] = value();
        } while (take(','));
        expect('}');
      }
    } else if (c == '[') {
      v.kind = JsonValue::Kind::array;
      ++pos_;
      if (!take(']')) {
        do v.items.push_back(value());
        while (take(','));
        expect(']');
      }
    } else if (c == '"') {
      v.kind = JsonValue::Kind::string;
      v.text = string();
    } else if (take_word("true")) {
      v.kind = JsonValue::Kind::boolean;
      v.boolean = true;
    } else if (take_word("false")) {
      v.kind = JsonValue::Kind::boolean;
    } else if (take_word("null")) {
      v.kind = JsonValue::Kind::null;
    } else {
      v.kind = JsonValue::Kind::number;
      v.number = number();
    }
    --depth_;
    return v;
  }

  std::string string() {
    if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c == '\\') {
        if (pos_ >= s_.size()) break;
        const char e = s_[pos_++];
        const std::string_view plain = "\"\\/bfnrt", meaning = "\"\\/\b\f\n\r\t";
        const auto at = plain.find(e);
        if (at == std::string_view::npos) fail("unsupported escape '\\" + std::string(1, e) + "'");
        c = meaning[at];
      }
      out += c;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }

  double number() {
    const std::size_t start = pos_;
    while (pos_ < s_.size() && std::string_view("+-0123456789.eE").find(s_[pos_]) != std::string_view::npos) ++pos_;
    double v = 0;
    const auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (start == pos_ || ec != std::errc() || end != s_.data() + pos_ || !std::isfinite(v)) {
      pos_ = start;
      fail("expected a value");
    }
    return v;
  }

  std::string_view s_;
  std::string what_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

const JsonValue& member(const JsonValue& doc, const std::string& key, JsonValue::Kind kind, const char* kind_name,
                        const std::string& what) {
  const auto it = doc.members.find(key);
  THETA_CHECK(it != doc.members.end(), FormatError, what, ": missing \"", key, "\"");
  THETA_CHECK(it->second.kind == kind, FormatError, what, ": \"", key, "\" must be ", kind_name);
  return it->second;
}

// Where the k-th Linear layer's tensors sit in a state_dict: "<prefix><k>.weight" / ".bias".
struct LayerNames {
  std::int64_t index = 0;
  std::string weight, bias;
};

}  // namespace

MlpSpec parse_mlp_spec(std::string_view json, const std::string& what) {
  const JsonValue doc = JsonReader(json, what).document();
  THETA_CHECK(doc.kind == JsonValue::Kind::object, FormatError, what, ": expected a JSON object");
  using Kind = JsonValue::Kind;
  MlpSpec spec;
  for (const JsonValue& w : member(doc, "widths", Kind::array, "an array of layer widths", what).items) {
    THETA_CHECK(w.kind == Kind::number && w.number >= 1 && w.number <= 1e9 && w.number == std::floor(w.number),
                FormatError, what, ": \"widths\" must hold positive integers");
    spec.widths.push_back(static_cast<std::int64_t>(w.number));
  }
  THETA_CHECK(spec.widths.size() >= 2, FormatError, what,
              ": \"widths\" needs the input and output widths at least, got ", spec.widths.size(), " entries");
  const std::string activation = member(doc, "activation", Kind::string, "a string", what).text;
  try {
    spec.activation = nn::activation_from_name(activation);
  } catch (const std::invalid_argument& e) {
    THETA_THROW(FormatError, what, ": ", e.what());
  }
  if (doc.members.count("bias")) spec.bias = member(doc, "bias", Kind::boolean, "true or false", what).boolean;
  const std::string param = member(doc, "parameterisation", Kind::string, "\"ntk\" or \"standard\"", what).text;
  THETA_CHECK(param == "ntk" || param == "standard", FormatError, what,
              ": \"parameterisation\" must be \"ntk\" or \"standard\", got \"", param, "\"");
  spec.parameterization = param == "ntk" ? nn::Parameterization::ntk : nn::Parameterization::standard;
  spec.sigma_w = member(doc, "sigma_w", Kind::number, "a number", what).number;
  spec.sigma_b = member(doc, "sigma_b", Kind::number, "a number", what).number;
  return spec;
}

MlpSpec load_mlp_spec(const std::string& path) { return parse_mlp_spec(read_file(path), path); }

std::vector<nn::NamedTensor> load_named_tensors(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return nn::load_npz(path);
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(path))
    if (entry.path().extension() == ".npy") files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  std::vector<nn::NamedTensor> out;
  for (const auto& file : files) out.emplace_back(file.substr(0, file.size() - 4), load_npy(path + "/" + file));
  return out;
}

std::vector<StateDictLinear> mlp_layers_from_state_dict(const std::vector<std::int64_t>& widths, bool bias,
                                                        const std::vector<nn::NamedTensor>& weights,
                                                        const std::string& what) {
  THETA_CHECK(widths.size() >= 2, std::invalid_argument, what, ": an MLP needs the input and output widths at least");
  // Every "<prefix><k>.weight" with an integer k, grouped by prefix.
  std::map<std::string, std::vector<LayerNames>> by_prefix;
  for (const auto& [name, t] : weights) {
    const std::string suffix = ".weight";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string stem = name.substr(0, name.size() - suffix.size());
    const std::size_t dot = stem.find_last_of('.');
    const std::string prefix = dot == std::string::npos ? "" : stem.substr(0, dot + 1);
    const std::string index = stem.substr(prefix.size());
    if (index.empty() ||
        !std::all_of(index.begin(), index.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      continue;
    by_prefix[prefix].push_back({std::stoll(index), name, stem + ".bias"});
  }
  const std::size_t layers = widths.size() - 1;
  THETA_CHECK(by_prefix.size() == 1, FormatError, what,
              ": expected the Linear weights of one nn.Sequential, named "
              "\"<k>.weight\" under one common prefix; found ",
              by_prefix.size(), " groups");
  std::vector<LayerNames> names = by_prefix.begin()->second;
  std::sort(names.begin(), names.end(), [](const LayerNames& a, const LayerNames& b) { return a.index < b.index; });
  THETA_CHECK(names.size() == layers, FormatError, what, ": the model has ", layers, " Linear layers (widths) but ",
              names.size(), " weights are named \"", by_prefix.begin()->first, "<k>.weight\"");

  std::map<std::string, Tensor> lookup(weights.begin(), weights.end());
  std::size_t used = 0;
  std::vector<StateDictLinear> out;
  for (std::size_t l = 0; l < layers; ++l) {
    StateDictLinear layer;
    const Shape weight_shape{widths[l + 1], widths[l]};
    layer.weight_name = names[l].weight;
    layer.weight = lookup.at(names[l].weight);
    THETA_CHECK(layer.weight.shape() == weight_shape, ShapeError, what, ": \"", names[l].weight, "\" is ",
                shape_str(layer.weight.shape()), " but Linear layer ", l, " of the model is ", shape_str(weight_shape),
                " ([out, in])");
    ++used;
    const auto found = lookup.find(names[l].bias);
    if (bias) {
      THETA_CHECK(found != lookup.end(), FormatError, what, ": \"", names[l].bias,
                  "\" is missing (the model has biases)");
      THETA_CHECK(found->second.shape() == Shape{widths[l + 1]}, ShapeError, what, ": \"", names[l].bias, "\" is ",
                  shape_str(found->second.shape()), " but Linear layer ", l, " has ", widths[l + 1], " outputs");
      layer.bias_name = names[l].bias;
      layer.bias = found->second;
      ++used;
    } else {
      THETA_CHECK(found == lookup.end(), FormatError, what, ": \"", names[l].bias,
                  "\" is given but the model has no biases (\"bias\": false)");
    }
    out.push_back(std::move(layer));
  }
  if (used != weights.size()) {
    std::string unused;
    for (const auto& [name, t] : weights) {
      bool known = false;
      for (const auto& n : names) known |= name == n.weight || (bias && name == n.bias);
      if (!known) unused += (unused.empty() ? "" : ", ") + ("\"" + name + "\"");
    }
    THETA_THROW(FormatError, what, ": tensors that belong to no Linear layer of the model: ", unused);
  }
  return out;
}

std::shared_ptr<nn::Sequential> mlp_from_state_dict(const MlpSpec& spec, const std::vector<nn::NamedTensor>& weights,
                                                    const std::string& what) {
  const auto layers = mlp_layers_from_state_dict(spec.widths, spec.bias, weights, what);
  Rng rng(0);
  auto net = nn::mlp(spec.widths, rng,
                     {.activation = spec.activation,
                      .bias = spec.bias,
                      .parameterization = spec.parameterization,
                      .sigma_w = spec.sigma_w,
                      .sigma_b = spec.sigma_b,
                      .dtype = DType::f64});
  // nn::mlp puts Linear layer l at position 2 l.
  for (std::size_t l = 0; l < layers.size(); ++l) {
    auto& linear = dynamic_cast<nn::Linear&>(net->at(2 * l));
    linear.weight().value().copy_(layers[l].weight.to(DType::f64));
    if (spec.bias) linear.bias().value().copy_(layers[l].bias.to(DType::f64));
  }
  return net;
}

}  // namespace theta::theory
