// The CSV and SVG writers report a write they cannot do with the path they were given, never the
// temporary file next to it (tensor/file_io.hpp).

#include <catch2/catch.hpp>

#include "tensor/error.hpp"
#include "tests/support/temp_dir.hpp"
#include "theory/plot.hpp"

using namespace theta;
using Catch::Contains;

TEST_CASE("write_csv names the path it was given when it cannot write it", "[theory][errors]") {
  test::TempDir dir;
  const std::string path = dir.file("missing") + "/table.csv";
  CHECK_THROWS_AS(theory::write_csv(path, {"x"}, {{1.0, 2.0}}), IoError);
  CHECK_THROWS_WITH(theory::write_csv(path, {"x"}, {{1.0, 2.0}}),
                    Contains("cannot write '" + path + "'") && Contains("does not exist") && !Contains(".tmp."));
  CHECK(dir.entries().empty());
}
