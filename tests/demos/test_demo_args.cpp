// The demos' command line: only the flags a demo takes, a flag is never a value, one-line errors,
// and output folders that cannot hold files.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tensor/file_io.hpp"
#include "tests/support/temp_dir.hpp"
#include "theory/demos/demo_args.hpp"

using namespace theta::demos;
using theta::test::TempDir;

namespace {
const DemoInfo kTrainer{.name = "trainer", .description = "trains", .flags = kFlagResume | kFlagStopAfter};
const DemoInfo kProbe{.name = "probe", .description = "probes", .flags = kFlagQuick | kFlagDump};

DemoArgs parse(const DemoInfo& info, std::vector<std::string> argv) {
  argv.insert(argv.begin(), info.name);
  return parse_demo_args(argv, info);
}
}  // namespace

TEST_CASE("parse_demo_args reads the flags a demo takes", "[demos]") {
  const DemoArgs defaults = parse(kProbe, {});
  CHECK(defaults.out == "out/probe");
  CHECK(defaults.dump.empty());
  CHECK_FALSE(defaults.quick);
  CHECK(defaults.stop_after == -1);
  CHECK(defaults.seed == 0);
  CHECK_FALSE(defaults.help);

  const DemoArgs probe = parse(kProbe, {"--out", "a b", "--quick", "--dump", "d", "--seed", "42"});
  CHECK(probe.out == "a b");
  CHECK(probe.dump == "d");
  CHECK(probe.quick);
  CHECK(probe.seed == 42);
  CHECK(probe.command_line == "probe --out 'a b' --quick --dump d --seed 42");

  const DemoArgs trainer = parse(kTrainer, {"--resume", "--stop-after", "3"});
  CHECK(trainer.resume);
  CHECK(trainer.stop_after == 3);
  CHECK(parse(kTrainer, {"-h"}).help);
  CHECK(parse(kTrainer, {"--help"}).help);
}

TEST_CASE("parse_demo_args rejects unknown and inapplicable flags and flags given as values", "[demos]") {
  CHECK_THROWS_WITH(parse(kProbe, {"--bogus"}), "unknown argument '--bogus' (see --help)");
  CHECK_THROWS_WITH(parse(kProbe, {"--resume"}), "--resume does not apply to probe (see --help)");
  CHECK_THROWS_WITH(parse(kTrainer, {"--quick"}), "--quick does not apply to trainer (see --help)");
  CHECK_THROWS_WITH(parse(kTrainer, {"--dump", "d"}), "--dump does not apply to trainer (see --help)");
  CHECK_THROWS_WITH(parse(kProbe, {"--out", "--quick"}), "--out needs a value DIR, got the option '--quick'");
  CHECK_THROWS_WITH(parse(kProbe, {"--dump", "-x"}), "--dump needs a value DIR, got the option '-x'");
  CHECK_THROWS_WITH(parse(kProbe, {"--out"}), "--out needs a value DIR");
  CHECK_THROWS_WITH(parse(kProbe, {"--out", ""}), "--out needs a value DIR, got an empty string");
  CHECK_THROWS_WITH(parse(kProbe, {"--seed", "-1"}), "--seed needs a value N, got the option '-1'");
  CHECK_THROWS_WITH(parse(kProbe, {"--seed", "1x"}), "--seed needs a non-negative integer, got '1x'");
  CHECK_THROWS_WITH(parse(kProbe, {"--seed", "99999999999999999999"}),
                    "--seed needs a non-negative integer, got '99999999999999999999'");
  CHECK_THROWS_WITH(parse(kTrainer, {"--stop-after", "9223372036854775808"}),
                    "--stop-after needs a non-negative integer, got '9223372036854775808'");
  CHECK_THROWS_AS(parse(kProbe, {"--bogus"}), UsageError);
}

TEST_CASE("usage_text lists exactly the flags a demo takes", "[demos]") {
  const std::string probe = usage_text(kProbe);
  CHECK(probe.find("--quick") != std::string::npos);
  CHECK(probe.find("--dump DIR") != std::string::npos);
  CHECK(probe.find("--resume") == std::string::npos);
  CHECK(probe.find("--stop-after") == std::string::npos);
  const std::string trainer = usage_text(kTrainer);
  CHECK(trainer.find("--resume") != std::string::npos);
  CHECK(trainer.find("--stop-after N") != std::string::npos);
  CHECK(trainer.find("--quick") == std::string::npos);
  CHECK(trainer.find("--dump") == std::string::npos);
  for (const std::string& text : {probe, trainer}) {
    CHECK(text.find("--out DIR") != std::string::npos);
    CHECK(text.find("--seed N") != std::string::npos);
  }
}

TEST_CASE("prepare_output_dirs creates folders and refuses ones that cannot hold files", "[demos]") {
  TempDir dir;
  DemoArgs args;
  args.out = dir.file("a/b");
  args.dump = dir.file("dump");
  prepare_output_dirs(args);
  CHECK(dir.entries() == std::vector<std::string>{"a", "dump"});

  theta::write_file_atomic(dir.file("file"), "x");
  args.dump.clear();
  args.out = dir.file("file");
  CHECK_THROWS_WITH(prepare_output_dirs(args), "--out: '" + dir.file("file") + "' exists: Not a directory");
  args.out = dir.file("file/sub");
  CHECK_THROWS_WITH(prepare_output_dirs(args),
                    "--out: cannot create directory '" + dir.file("file/sub") + "/': Not a directory");
  // A bad --dump leaves nothing behind of the --out folders it had to create.
  args.out = dir.file("new/ok");
  args.dump = dir.file("file/sub");
  CHECK_THROWS_AS(prepare_output_dirs(args), UsageError);
  CHECK(dir.entries() == std::vector<std::string>{"a", "dump", "file"});
}

TEST_CASE("shell_quote leaves plain words alone and quotes the rest", "[demos]") {
  CHECK(shell_quote("out/ntk_demo") == "out/ntk_demo");
  CHECK(shell_quote("--seed=3") == "--seed=3");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("it's") == "'it'\\''s'");
  CHECK(shell_quote("") == "''");
}
