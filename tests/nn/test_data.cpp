#include <catch2/catch.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "nn/data.hpp"
#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/support/scoped_env.hpp"
#include "tests/support/temp_dir.hpp"

using namespace theta;
using namespace theta::nn;
using theta::test::ScopedEnv;
using theta::test::TempDir;

namespace {

// A data set whose feature row i is [i, -i] and whose label is i % 3, so every row can be traced.
Dataset traceable(std::int64_t n) {
  std::vector<double> x;
  std::vector<std::int64_t> y;
  for (std::int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<double>(i));
    x.push_back(-static_cast<double>(i));
    y.push_back(i % 3);
  }
  return Dataset{from_vector(x, {n, 2}), from_indices(y)};
}

// The sample ids (first feature) of the rows of x, checking that each row is consistent.
std::vector<std::int64_t> ids_of(const Tensor& x, const Tensor& y) {
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < x.size(0); ++i) {
    const auto id = static_cast<std::int64_t>(x.at({i, 0}));
    CHECK(x.at({i, 1}) == -static_cast<double>(id));
    CHECK(y.at({i}) == static_cast<double>(id % 3));
    ids.push_back(id);
  }
  return ids;
}

// Writes `text` gzip-compressed.
std::string write_gz(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.file(name);
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  REQUIRE(gzclose(f) == Z_OK);
  return path;
}

// A valid digits line: 64 pixels (pixel j of row r is (r + j) % 17), then the label.
std::string digits_line(int r, const std::string& label) {
  std::string s;
  for (int j = 0; j < 64; ++j) s += std::to_string((r + j) % 17) + ",";
  return s + label + "\n";
}

// Asserts that `load` throws a FormatError whose message contains every one of `needles`.
template <class Load> void check_format_error(Load&& load, const std::vector<std::string>& needles) {
  try {
    load();
    FAIL("the file was accepted");
  } catch (const FormatError& e) {
    for (const auto& needle : needles) CHECK_THAT(std::string(e.what()), Catch::Contains(needle));
  }
}

}  // namespace

TEST_CASE("load_digits reads the shipped UCI digits", "[nn][data]") {
  const Dataset d = load_digits();
  REQUIRE(d.x.shape() == Shape{1797, 64});
  REQUIRE(d.y.shape() == Shape{1797});
  CHECK(d.x.dtype() == DType::f64);
  CHECK(d.y.dtype() == DType::i64);
  CHECK(d.size() == 1797);

  const std::vector<double> first_row = to_vector(d.x.select(0, 0));
  const std::vector<double> expected_start{0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0};
  CHECK(std::vector<double>(first_row.begin(), first_row.begin() + 16) == expected_start);
  CHECK(first_row[63] == 0.0);
  CHECK(d.y.at({0}) == 0.0);
  CHECK(d.x.at({1796, 2}) == 10.0);
  CHECK(d.y.at({1796}) == 8.0);

  // The class counts of the UCI test set.
  const std::vector<std::int64_t> counts{178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
  for (std::int64_t c = 0; c < 10; ++c) {
    INFO("class " << c);
    CHECK(sum(eq(d.y, full({}, static_cast<double>(c), DType::i64))).item<std::int64_t>() == counts[c]);
  }
  CHECK(min(d.x).item() == 0.0);
  CHECK(max(d.x).item() == 16.0);
}

TEST_CASE("load_iris reads the shipped iris data", "[nn][data]") {
  const Dataset d = load_iris();
  REQUIRE(d.x.shape() == Shape{150, 4});
  REQUIRE(d.y.shape() == Shape{150});
  CHECK(to_vector(d.x.select(0, 0)) == std::vector<double>{5.1, 3.5, 1.4, 0.2});
  CHECK(to_vector(d.x.select(0, 149)) == std::vector<double>{5.9, 3.0, 5.1, 1.8});
  for (std::int64_t c = 0; c < 3; ++c)
    CHECK(sum(eq(d.y, full({}, static_cast<double>(c), DType::i64))).item<std::int64_t>() == 50);
}

TEST_CASE("default_data_dir honours THETA_DATA_DIR", "[nn][data]") {
  TempDir dir;
  write_gz(dir, "digits.csv.gz", digits_line(0, "3") + digits_line(1, "9"));
  const char* old = std::getenv("THETA_DATA_DIR");
  const std::string saved = old ? old : "";
  ::setenv("THETA_DATA_DIR", dir.file("").c_str(), 1);
  const std::string chosen = default_data_dir();
  Dataset d;
  CHECK_NOTHROW(d = load_digits());
  if (old) ::setenv("THETA_DATA_DIR", saved.c_str(), 1);
  else ::unsetenv("THETA_DATA_DIR");

  CHECK(chosen == dir.file(""));
  REQUIRE(d.x.shape() == Shape{2, 64});
  CHECK(to_vector(d.y) == std::vector<double>{3, 9});
  CHECK(d.x.at({1, 16}) == 0.0);  // (1 + 16) % 17
  CHECK(default_data_dir() != dir.file(""));
}

TEST_CASE("the build tree finds the data sets in the source tree's data folder", "[nn][data]") {
  const ScopedEnv unset("THETA_DATA_DIR", nullptr);
  namespace fs = std::filesystem;
  CHECK(fs::equivalent(default_data_dir(), fs::path(THETA_SOURCE_DIR) / "data"));
  CHECK(fs::equivalent(data_file("iris.csv"), fs::path(THETA_SOURCE_DIR) / "data" / "iris.csv"));
  CHECK(load_iris().size() == 150);
}

TEST_CASE("a missing data file names the path it looked for and the override", "[nn][data]") {
  TempDir dir;
  const ScopedEnv data_dir("THETA_DATA_DIR", dir.file("").c_str());
  check_format_error([] { load_digits(); },
                     {"load_digits: digits.csv.gz not found: looked for " + dir.file("digits.csv.gz"),
                      "($THETA_DATA_DIR)", "set THETA_DATA_DIR", "pass the file's path"});
  check_format_error([] { load_iris(); }, {"load_iris: iris.csv not found: looked for " + dir.file("iris.csv")});
  check_format_error([] { data_file("digits.csv.gz"); }, {"data_file: digits.csv.gz not found"});
  // An explicit path bypasses the lookup.
  CHECK(to_vector(load_digits(dir.write("mine.csv", digits_line(4, "5"))).y) == std::vector<double>{5});
}

TEST_CASE("load_digits accepts plain CSV, CRLF line ends and trailing blank lines", "[nn][data]") {
  TempDir dir;
  std::string crlf = digits_line(0, "1");
  crlf.insert(crlf.size() - 1, "\r");
  const Dataset d = load_digits(dir.write("d.csv", crlf + digits_line(2, " 7 ") + "\n\n"));
  REQUIRE(d.x.shape() == Shape{2, 64});
  CHECK(to_vector(d.y) == std::vector<double>{1, 7});
  CHECK(d.x.at({1, 63}) == static_cast<double>((2 + 63) % 17));
}

TEST_CASE("load_digits rejects malformed files naming the file and line", "[nn][data]") {
  TempDir dir;
  const std::string good = digits_line(0, "0");
  std::string short_line = digits_line(1, "4");
  short_line.erase(0, short_line.find(',') + 1);  // 63 pixels + label

  SECTION("wrong column count") {
    const std::string p = write_gz(dir, "a.csv.gz", good + short_line);
    check_format_error([&] { load_digits(p); }, {"load_digits: ", p, "line 2", "expected 65 columns, found 64"});
  }
  SECTION("non-numeric pixel") {
    std::string bad = good;
    bad.replace(0, 1, "x1");
    const std::string p = dir.write("b.csv", good + good + bad);
    check_format_error([&] { load_digits(p); }, {p, "line 3", "column 1", "'x1' is not a finite number"});
  }
  SECTION("empty field and non-finite pixel") {
    std::string empty_field = good;
    empty_field.replace(0, 1, "");
    const std::string p = dir.write("c.csv", empty_field);
    check_format_error([&] { load_digits(p); }, {p, "line 1", "'' is not a finite number"});
    std::string nan_pixel = good;
    nan_pixel.replace(0, 1, "nan");
    const std::string q = dir.write("c2.csv", nan_pixel);
    check_format_error([&] { load_digits(q); }, {q, "line 1", "'nan' is not a finite number"});
  }
  SECTION("label out of range or not an integer") {
    const std::string p = dir.write("d.csv", good + digits_line(1, "10"));
    check_format_error([&] { load_digits(p); }, {p, "line 2", "column 65", "label 10 is out of range [0, 9]"});
    const std::string q = dir.write("e.csv", digits_line(1, "-1"));
    check_format_error([&] { load_digits(q); }, {q, "line 1", "label -1 is out of range"});
    const std::string r = dir.write("f.csv", digits_line(1, "2.5"));
    check_format_error([&] { load_digits(r); }, {r, "line 1", "label '2.5' is not an integer"});
  }
  SECTION("blank line inside the data") {
    const std::string p = dir.write("g.csv", good + "\n" + good);
    check_format_error([&] { load_digits(p); }, {p, "line 2", "empty line"});
  }
  SECTION("missing, empty and truncated files") {
    const std::string missing = dir.file("nope.csv.gz");
    check_format_error([&] { load_digits(missing); }, {"load_digits: cannot open '" + missing + "'"});
    const std::string empty = dir.write("empty.csv", "");
    check_format_error([&] { load_digits(empty); }, {empty, "no data rows"});
    std::string text;
    for (int r = 0; r < 50; ++r) text += digits_line(r, std::to_string(r % 10));
    const std::string gz = read_file(write_gz(dir, "full.csv.gz", text));
    const std::string cut = dir.write("cut.csv.gz", gz.substr(0, gz.size() / 2));
    check_format_error([&] { load_digits(cut); }, {"load_digits: ", cut});
  }
}

TEST_CASE("data loaders read regular files only", "[nn][data]") {
  // A directory, and (where present) a device that never ends: refused before any read.
  const std::string directory = std::filesystem::temp_directory_path().string();
  check_format_error([&] { load_digits(directory); }, {"load_digits: ", "not a regular file"});
  if (std::filesystem::exists("/dev/zero"))
    check_format_error([&] { load_iris("/dev/zero"); }, {"load_iris: ", "/dev/zero", "not a regular file"});
}

TEST_CASE("load_iris rejects malformed files naming the file and line", "[nn][data]") {
  TempDir dir;
  const std::string header = "2,4,a,b,c\n";
  const std::string row = "5.1,3.5,1.4,0.2,0\n";
  SECTION("valid small file") {
    const Dataset d = load_iris(dir.write("ok.csv", header + row + "1,2,3,4,2\n"));
    CHECK(d.x.shape() == Shape{2, 4});
    CHECK(to_vector(d.y) == std::vector<double>{0, 2});
  }
  SECTION("label beyond the named classes") {
    const std::string p = dir.write("a.csv", header + row + "1,2,3,4,3\n");
    check_format_error([&] { load_iris(p); }, {"load_iris: ", p, "line 3", "label 3 is out of range [0, 2]"});
  }
  SECTION("fewer or more rows than the header announces") {
    const std::string p = dir.write("b.csv", header + row);
    check_format_error([&] { load_iris(p); }, {p, "ends after 1 data rows, the header announces 2"});
    const std::string q = dir.write("c.csv", header + row + row + row);
    check_format_error([&] { load_iris(q); }, {q, "line 4", "more data rows than the 2"});
  }
  SECTION("bad header") {
    const std::string p = dir.write("d.csv", "two,4,a,b\n" + row);
    check_format_error([&] { load_iris(p); }, {p, "line 1", "row count 'two' is not an integer"});
    const std::string q = dir.write("e.csv", "1,4\n" + row);
    check_format_error([&] { load_iris(q); }, {q, "line 1", "header must be"});
    const std::string r = dir.write("f.csv", "");
    check_format_error([&] { load_iris(r); }, {r, "no header line"});
  }
  SECTION("wrong column count") {
    const std::string p = dir.write("g.csv", header + row + "1,2,3,0\n");
    check_format_error([&] { load_iris(p); }, {p, "line 3", "expected 5 columns, found 4"});
  }
}

TEST_CASE("subset picks rows of x and y", "[nn][data]") {
  const Dataset d = traceable(6);
  const Dataset s = subset(d, from_indices({4, 1, 4}));
  CHECK(ids_of(s.x, s.y) == std::vector<std::int64_t>{4, 1, 4});
  CHECK_THROWS_AS(subset(d, from_vector({1.0})), std::invalid_argument);
  CHECK_THROWS_AS(subset(Dataset{d.x, from_indices({0, 1})}, from_indices({0})), ShapeError);
}

TEST_CASE("train_test_split partitions the data deterministically", "[nn][data]") {
  const Dataset d = traceable(101);
  const Split a = train_test_split(d, 0.2, 7);
  CHECK(a.test.size() == 20);  // round(20.2)
  CHECK(a.train.size() == 81);
  const auto train_ids = ids_of(a.train.x, a.train.y);
  const auto test_ids = ids_of(a.test.x, a.test.y);
  std::vector<std::int64_t> all = train_ids;
  all.insert(all.end(), test_ids.begin(), test_ids.end());
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(101);
  for (std::int64_t i = 0; i < 101; ++i) expected[static_cast<std::size_t>(i)] = i;
  CHECK(all == expected);

  const Split again = train_test_split(d, 0.2, 7);
  CHECK(to_vector(again.test.x) == to_vector(a.test.x));
  CHECK(to_vector(again.train.y) == to_vector(a.train.y));
  const Split other = train_test_split(d, 0.2, 8);
  CHECK(to_vector(other.test.x) != to_vector(a.test.x));
  CHECK(ids_of(a.test.x, a.test.y) != std::vector<std::int64_t>(expected.begin(), expected.begin() + 20));

  const Dataset digits = load_digits();
  const Split ds = train_test_split(digits, 0.2, 0);
  CHECK(ds.test.size() == 359);
  CHECK(ds.train.size() == 1438);
  CHECK(train_test_split(d, 0.0, 1).test.size() == 0);
  CHECK(train_test_split(d, 1.0, 1).train.size() == 0);
  CHECK_THROWS_AS(train_test_split(d, 1.5, 1), std::invalid_argument);
  CHECK_THROWS_AS(train_test_split(d, std::nan(""), 1), std::invalid_argument);
}

TEST_CASE("DataLoader covers every sample once per epoch in an order fixed by (seed, epoch)", "[nn][data]") {
  const Dataset d = traceable(10);
  const DataLoader loader(d, {.batch_size = 3, .shuffle = true, .seed = 42});
  REQUIRE(loader.batches_per_epoch() == 4);

  std::vector<std::vector<std::int64_t>> orders;
  for (std::int64_t e = 0; e < 6; ++e) {
    const auto batches = loader.epoch(e);
    REQUIRE(batches.size() == 4);
    std::vector<std::int64_t> order;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      CHECK(batches[b].first.size(0) == (b < 3 ? 3 : 1));
      CHECK(batches[b].first.shape()[1] == 2);
      const auto ids = ids_of(batches[b].first, batches[b].second);
      order.insert(order.end(), ids.begin(), ids.end());
    }
    std::vector<std::int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(to_vector(loader.epoch_order(e)) == std::vector<double>(order.begin(), order.end()));
    orders.push_back(order);
  }
  // Different epochs differ (10! orders: a coincidence is practically impossible).
  for (std::size_t i = 0; i < orders.size(); ++i)
    for (std::size_t j = i + 1; j < orders.size(); ++j) CHECK(orders[i] != orders[j]);

  // A new loader with the same seed reproduces any epoch without replaying the earlier ones.
  const DataLoader resumed(d, {.batch_size = 3, .shuffle = true, .seed = 42});
  CHECK(to_vector(resumed.epoch_order(4)) == to_vector(loader.epoch_order(4)));
  const DataLoader other_seed(d, {.batch_size = 3, .shuffle = true, .seed = 43});
  CHECK(to_vector(other_seed.epoch_order(4)) != to_vector(loader.epoch_order(4)));
}

TEST_CASE("DataLoader without shuffling and with drop_last", "[nn][data]") {
  const Dataset d = traceable(10);
  const DataLoader ordered(d, {.batch_size = 4, .shuffle = false});
  const auto batches = ordered.epoch(3);
  REQUIRE(batches.size() == 3);
  CHECK(ids_of(batches[0].first, batches[0].second) == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK(ids_of(batches[2].first, batches[2].second) == std::vector<std::int64_t>{8, 9});

  const DataLoader dropping(d, {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 1});
  CHECK(dropping.batches_per_epoch() == 2);
  for (const auto& [x, y] : dropping.epoch(0)) CHECK(x.size(0) == 4);

  const DataLoader big(d, {.batch_size = 32});
  CHECK(big.batches_per_epoch() == 1);
  CHECK(big.epoch(0)[0].first.size(0) == 10);
  const DataLoader none(d, {.batch_size = 32, .drop_last = true});
  CHECK(none.epoch(0).empty());

  CHECK_THROWS_AS(DataLoader(d, {.batch_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(ordered.epoch(-1), IndexError);
}

TEST_CASE("Standardizer gives features mean 0 and std 1, constant features stay finite", "[nn][data]") {
  const Dataset digits = load_digits();
  const Standardizer s = Standardizer::fit(digits.x);
  REQUIRE(s.mean.shape() == Shape{64});
  CHECK(s.mean.at({10}) == Approx(10.382303839732888).epsilon(1e-14));
  CHECK(s.std.at({10}) == Approx(5.419946941963783).epsilon(1e-14));

  const Tensor z = s.apply(digits.x);
  REQUIRE(z.shape() == digits.x.shape());
  const std::vector<double> mu = to_vector(mean(z, {0}));
  const std::vector<double> sd = to_vector(sqrt(var(z, {0})));
  int constant = 0;
  for (std::size_t j = 0; j < 64; ++j) {
    INFO("feature " << j);
    CHECK(std::abs(mu[j]) < 1e-12);
    if (sd[j] == 0.0) {
      ++constant;  // an all-zero pixel: divided by 1, stays exactly 0
      CHECK(s.std.at({static_cast<std::int64_t>(j)}) == 1.0);
    } else {
      CHECK(sd[j] == Approx(1.0).epsilon(1e-12));
    }
  }
  CHECK(constant == 3);
  CHECK(std::isfinite(sum(z).item()));

  // A constant non-zero feature whose computed mean is off by rounding still maps to ~0.
  std::vector<double> values;
  for (int i = 0; i < 1000; ++i) {
    values.push_back(0.1);
    values.push_back(static_cast<double>(i));
  }
  const Tensor x = from_vector(values, {1000, 2});
  const Standardizer t = Standardizer::fit(x);
  CHECK(t.std.at({0}) == 1.0);
  const Tensor zx = t.apply(x);
  CHECK(max(abs(zx.select(1, 0))).item() < 1e-12);
  CHECK(std::sqrt(var(zx.select(1, 1)).item()) == Approx(1.0).epsilon(1e-12));

  CHECK_THROWS_AS(t.apply(zeros({3, 3})), ShapeError);
  CHECK_THROWS_AS(Standardizer::fit(zeros({0, 2})), ShapeError);
  CHECK_THROWS_AS(Standardizer{}.apply(x), std::logic_error);
}
