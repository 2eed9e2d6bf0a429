// Damaged or mismatched checkpoints: every truncation and byte flip, wrong names, shapes and
// dtypes, and archive features theta does not read. None may change the model.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tests/nn/checkpoint_test_support.hpp"
#include "tests/support/temp_dir.hpp"

using namespace theta;
using namespace theta::nn;
using namespace theta::checkpoint_test;
using theta::test::TempDir;
using theta::test::TinyNet;
TEST_CASE("every truncation of a checkpoint is rejected and leaves the model unchanged", "[nn][checkpoint]") {
  TempDir dir;
  TinyNet a(3, 2, 1, 1);
  Sgd opt_a(a.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(a, opt_a, 1);
  const std::string full = dir.file("full.npz");
  save_checkpoint(full, a, &opt_a);
  const std::string bytes = read_file(full);
  REQUIRE(parse_exact(bytes).size() == 12);

  TinyNet b(3, 2, 1, 2);
  Sgd opt_b(b.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  const auto model_before = snapshot(b);
  const std::string cut = dir.file("cut.npz");
  std::size_t rejected = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::string prefix = bytes.substr(0, n);
    bool parse_threw = false;
    try {
      parse_exact(prefix);
    } catch (const FormatError&) {
      parse_threw = true;
    }
    dir.write("cut.npz", prefix);
    bool load_threw = false;
    try {
      load_checkpoint(cut, b, &opt_b);
    } catch (const FormatError& e) {
      load_threw = std::string(e.what()).find(cut) != std::string::npos;
    }
    if (parse_threw && load_threw) ++rejected;
    else FAIL_CHECK("prefix of " << n << " bytes was accepted");
  }
  CHECK(rejected == bytes.size());
  check_bitwise(snapshot(b), model_before);
  CHECK(opt_b.steps_taken() == 0);
}

TEST_CASE("a flipped byte is detected or harmless, never silently loaded", "[nn][checkpoint]") {
  TempDir dir;
  TinyNet a(3, 2, 1, 1);
  Sgd opt_a(a.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(a, opt_a, 1);
  const std::string path = dir.file("ckpt.npz");
  save_checkpoint(path, a, &opt_a);
  const std::string bytes = read_file(path);
  const auto saved_model = snapshot(a);
  const auto saved_opt = snapshot(opt_a);

  SECTION("a byte of a member's data gives a CRC error naming the member") {
    const std::size_t name = bytes.find("param/hidden.weight.npy");
    const std::size_t next_member = bytes.find("PK\x03\x04", name);
    REQUIRE(next_member != std::string::npos);
    std::string corrupt = bytes;
    corrupt[next_member - 1] = static_cast<char>(corrupt[next_member - 1] ^ 0x10);
    TinyNet b(3, 2, 1, 2);
    check_load_fails(dir.write("bad.npz", corrupt), b, nullptr,
                     "load_checkpoint: " + dir.file("bad.npz") +
                         ": member 'param/hidden.weight.npy': CRC-32 mismatch");
  }
  SECTION("every single-byte corruption") {
    std::size_t detected = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const unsigned char mask : {0x01, 0xFF}) {
        std::string corrupt = bytes;
        corrupt[i] = static_cast<char>(static_cast<unsigned char>(corrupt[i]) ^ mask);
        TinyNet b(3, 2, 1, 2);
        Sgd opt_b(b.named_parameters(), {.lr = 0.1, .momentum = 0.9});
        const auto before = snapshot(b);
        const std::string p = dir.write("flip.npz", corrupt);
        try {
          parse_exact(corrupt);
          load_checkpoint(p, b, &opt_b);
          // Accepted: the byte was one the format does not check (a timestamp, a version), and
          // what was loaded is exactly what was saved.
          if (!bitwise_equal(snapshot(b), saved_model) || !bitwise_equal(snapshot(opt_b), saved_opt))
            FAIL_CHECK("byte " << i << " ^ " << int(mask) << " loaded different values");
        } catch (const FormatError&) {
          ++detected;
          if (!bitwise_equal(snapshot(b), before) || opt_b.steps_taken() != 0)
            FAIL_CHECK("byte " << i << " ^ " << int(mask) << " changed the model before failing");
        }
      }
    }
    // Only timestamps, versions and attributes (about 30 of the 76 header bytes per member) are
    // not interpreted; every other byte is data, a name, a size, an offset, a CRC or a signature.
    CHECK(detected > bytes.size() * 2 * 85 / 100);
  }
}

TEST_CASE("checkpoint mismatches name the tensor and leave model and optimizer unchanged", "[nn][checkpoint]") {
  TempDir dir;
  TinyNet model(4, 3, 2, 5);
  Sgd opt(model.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(model, opt, 1);
  std::vector<NamedTensor> good = snapshot(model);
  for (const auto& [key, t] : opt.state()) good.emplace_back("optim/" + key, t.clone());
  TinyNet target(4, 3, 2, 6);
  Sgd target_opt(target.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(target, target_opt, 2);

  const auto write = [&](const std::string& name, std::vector<NamedTensor> members) {
    return dir.write(name, npz_serialize(members));
  };
  const auto without = [&](const std::string& drop) {
    std::vector<NamedTensor> out;
    for (const auto& m : good)
      if (m.first != drop) out.push_back(m);
    return out;
  };
  const auto replaced = [&](const std::string& key, const Tensor& t) {
    std::vector<NamedTensor> out = good;
    for (auto& m : out)
      if (m.first == key) m.second = t;
    return out;
  };

  SECTION("the untouched archive loads") {
    load_checkpoint(write("good.npz", good), target, &target_opt);
    check_bitwise(snapshot(target), snapshot(model));
  }
  SECTION("missing parameter") {
    const std::string p = write("a.npz", without("param/out.bias"));
    check_load_fails(p, target, &target_opt,
                     "load_checkpoint: " + p + ": missing tensor 'param/out.bias' (model expects [2])");
  }
  SECTION("missing buffer") {
    const std::string p = write("b.npz", without("buffer/hidden.scale"));
    check_load_fails(p, target, nullptr, "missing tensor 'buffer/hidden.scale'");
  }
  SECTION("shape mismatch") {
    const std::string p = write("c.npz", replaced("param/hidden.weight", zeros({3, 5})));
    check_load_fails(p, target, &target_opt,
                     "load_checkpoint: " + p + ": tensor 'param/hidden.weight' has shape [3, 5], model expects [3, 4]");
  }
  SECTION("dtype mismatch") {
    const std::string p = write("d.npz", replaced("buffer/out.scale", zeros({2}, DType::f32)));
    check_load_fails(p, target, nullptr, "tensor 'buffer/out.scale' has dtype float32, model expects float64");
  }
  SECTION("unexpected tensors") {
    std::vector<NamedTensor> extra = good;
    extra.emplace_back("param/hidden.gain", zeros({3}));
    const std::string p = write("e.npz", extra);
    check_load_fails(p, target, nullptr, "unexpected tensor 'param/hidden.gain'");
    extra.back().first = "weights";
    const std::string q = write("f.npz", extra);
    check_load_fails(q, target, nullptr, "unexpected tensor 'weights'");
  }
  SECTION("optimizer state missing, misshapen or of the wrong dtype") {
    const std::string p = write("g.npz", snapshot(model));
    check_load_fails(p, target, &target_opt, "holds no optimizer state");
    load_checkpoint(p, target);  // fine without an optimizer

    TinyNet fresh(4, 3, 2, 6);
    const std::string q = write("h.npz", replaced("optim/momentum.out.weight", zeros({2, 2})));
    check_load_fails(q, target, &target_opt, "tensor 'optim/momentum.out.weight' has shape [2, 2]");
    const std::string r = write("i.npz", replaced("optim/step", zeros({})));
    check_load_fails(r, target, &target_opt, "tensor 'optim/step' has dtype float64");
    // A fresh optimizer has no momentum yet: its own load_state finds the bad shape.
    Sgd fresh_opt(fresh.named_parameters(), {.lr = 0.1, .momentum = 0.9});
    check_load_fails(q, fresh, &fresh_opt, "optimizer state: load_state: 'momentum.out.weight' has shape [2, 2]");
    const std::string s = write("j.npz", without("optim/momentum.hidden.bias"));
    check_load_fails(s, fresh, &fresh_opt, "missing optimizer state 'momentum.hidden.bias'");
  }
  SECTION("not a checkpoint at all") {
    check_load_fails(dir.write("text.npz", "just some text, definitely not a zip archive\n"), target, nullptr,
                     "not a zip archive");
    check_load_fails(dir.write("empty.npz", ""), target, nullptr, "not a zip archive");
    const std::string npy = dir.file("single.npy");
    save_npy(npy, zeros({3, 4}));
    check_load_fails(npy, target, nullptr, "not a zip archive");
    check_load_fails(dir.file("missing.npz"), target, nullptr, "cannot open");
  }
}

TEST_CASE("npz refuses what would need ZIP64 and unsupported archive features", "[nn][checkpoint]") {
  std::vector<NamedTensor> many;
  for (int i = 0; i < 65535; ++i) many.emplace_back("t" + std::to_string(i), Tensor());
  CHECK_THROWS_WITH(npz_serialize(many, "save"), Catch::Contains("need ZIP64"));

  const std::string bytes = npz_serialize({{"a", zeros({2})}, {"b", ones({3}, DType::i64)}});
  CHECK(parse_exact(bytes).size() == 2);
  const std::size_t eocd = bytes.size() - 22;
  REQUIRE(bytes.substr(eocd, 4) == "PK\x05\x06");

  std::string zip64 = bytes;
  zip64[eocd + 8] = zip64[eocd + 9] = zip64[eocd + 10] = zip64[eocd + 11] = '\xFF';
  CHECK_THROWS_WITH(parse_exact(zip64), Catch::Contains("ZIP64 archives are not supported"));

  const std::size_t central = bytes.find("PK\x01\x02");
  std::string deflated = bytes;
  deflated[central + 10] = 8;
  CHECK_THROWS_WITH(parse_exact(deflated), Catch::Contains("member 'a.npy': compression method 8"));

  std::string encrypted = bytes;
  encrypted[central + 8] = 1;
  CHECK_THROWS_WITH(parse_exact(encrypted), Catch::Contains("encrypted"));

  CHECK_THROWS_AS(npz_serialize({{"a", zeros({1})}, {"a", zeros({1})}}), std::invalid_argument);
  CHECK_THROWS_AS(npz_serialize({{"", zeros({1})}}), std::invalid_argument);

  // A comment after the end record is allowed (the record is found by scanning back).
  std::string commented = bytes;
  commented[eocd + 20] = 5;
  commented += "hello";
  CHECK(parse_exact(commented).size() == 2);
}
