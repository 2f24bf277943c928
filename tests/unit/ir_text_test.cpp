// IR text form: exact round trips (all dtypes, bit patterns, names, attributes) and parse errors.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "ir/graph_diff.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

/// print -> parse -> structural equality -> print again byte-identical.
void expectRoundTrip(const Graph& g) {
  std::string t1 = printGraph(g);
  std::unique_ptr<Graph> h;
  try {
    h = parseGraph(t1, "rt");
  } catch (const Error& e) {
    FAIL() << e.what() << "\n" << t1;
  }
  EXPECT_EQ(graphDiff(g, *h), "") << t1;
  EXPECT_EQ(printGraph(*h), t1);
  EXPECT_TRUE(verifyGraph(*h, {.check_schemas = false}).empty());
}

std::string parseError(const std::string& text) {
  try {
    parseGraph(text, "t.gsir");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(IrText, CanonicalTextPrintsBackIdentically) {
  const std::string text =
      "graph \"main\" {\n"
      "  opset \"\" 17\n"
      "  opset \"com.microsoft\" 1\n"
      "  input %x: f32[N,1,28,28]\n"
      "  input %\"odd name\": i64[?,\"2*N\",3]\n"
      "  input %any: f16[*]\n"
      "  input %untyped\n"
      "  param %conv1.weight: f32[2,1,1,1] = tensor<f32[2,1,1,1]>[0.1, -2.5]\n"
      "  param frozen %table: i64[3] = tensor<i64[3]>[1, -2, 9223372036854775807]\n"
      "  param %s: f64[] = tensor<f64[]>[0.30000000000000004]\n"
      "  %y: f32[N,2,28,28] = Conv(%x, %conv1.weight, _) @conv1 {dilations=[1,1], "
      "kernel_shape=[1,1], pads=[0,0,0,0], strides=[1,1]}\n"
      "  %a: f32[?], %b, _ = Split(%y) @split {axis=1}\n"
      "  %q = com.microsoft::MatMulNBits(%a, %b) @mm {bits=4, f=1.0, g=-0.0, h=1e-05, i=inf, "
      "j=-inf, k=nan, l=floats[], m=ints[], n=strings[], o=[\"a\",\"b\\n\\\"c\\x01\"], "
      "p=[0.5,1.0], t=tensor<bf16[2]>[1.5, -3]}\n"
      "  %y:1: undef[2] = \"my op\"::\"Op Type\"(_, %q, _) @\"node with space\"\n"
      "  () = Print(%y:1) @sink\n"
      "  output %y\n"
      "  output %q\n"
      "  output %y\n"
      "}\n";
  auto g = parseGraph(text);
  EXPECT_EQ(printGraph(*g), text);
  // Spot checks of what was parsed.
  Value* odd = g->findValue("odd name");
  ASSERT_TRUE(odd);
  EXPECT_EQ((*odd->shape())[0], Dim());
  EXPECT_EQ((*odd->shape())[1], Dim("2*N"));
  EXPECT_FALSE(g->findValue("any")->shape().has_value());
  EXPECT_EQ(g->findValue("untyped")->dtype(), DType::Undefined);
  EXPECT_FALSE(g->findValue("table")->trainable());
  EXPECT_EQ(g->findValue("table")->data()[2].item<int64_t>(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(g->findValue("s")->data().item<double>(), 0.1 + 0.2);
  Node* mm = g->findNode("mm");
  EXPECT_EQ(mm->domain(), "com.microsoft");
  EXPECT_EQ(mm->attr("o").strings()[1], std::string("b\n\"c\x01"));
  EXPECT_TRUE(std::signbit(mm->attr("g").f()));
  EXPECT_TRUE(std::isnan(mm->attr("k").f()));
  EXPECT_EQ(mm->attr("t").t().scalar_type(), at::kBFloat16);
  EXPECT_EQ(mm->attr("h").f(), 1e-05f);
  Node* weird = g->findNode("node with space");
  EXPECT_EQ(weird->domain(), "my op");
  EXPECT_EQ(weird->opType(), "Op Type");
  EXPECT_EQ(weird->numInputs(), 3u);
  EXPECT_FALSE(weird->hasInput(0));
  EXPECT_EQ(g->findNode("split")->numOutputs(), 3u);
  EXPECT_EQ(g->findNode("split")->output(2), nullptr);
  EXPECT_EQ(g->findNode("sink")->numOutputs(), 0u);
  EXPECT_EQ(g->findValue("b")->dtype(), DType::Undefined);
  EXPECT_FALSE(g->findValue("b")->shape().has_value());
  EXPECT_EQ(g->outputs().size(), 3u);
  expectRoundTrip(*g);
}

TEST(IrText, LenientInputNormalises) {
  // Comments, blank lines, newlines inside brackets, quoted bare names, missing @name,
  // mixed int/float lists are accepted and print canonically.
  auto g = parseGraph(
      "# leading comment\n\n graph main {   # trailing\n"
      "  input %\"x\": f32[ 2 , 3 ]\n"
      "  %y = Relu(%x)\n"
      "  %z = Relu(\n    %y\n  ) {alpha = [1, 2.5],\n beta=floats[1, 2]}\n"
      "  output %z\n}\n\n# done\n");
  EXPECT_EQ(printGraph(*g),
            "graph \"main\" {\n  input %x: f32[2,3]\n  %y = Relu(%x) @Relu\n"
            "  %z = Relu(%y) @Relu_1 {alpha=[1.0,2.5], beta=[1.0,2.0]}\n  output %z\n}\n");
  EXPECT_TRUE(g->opsets.empty());
}

/// Every dtype ATen holds, with values that stress exactness.
TEST(IrText, AllDTypesRoundTripBitExact) {
  Graph g;
  g.opsets["gs"] = 1;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  // f32 / f64 from random bit patterns (every exponent incl. denormals, NaNs, infs).
  at::Tensor f32bits = at::randint(std::numeric_limits<int32_t>::min(),
                                   std::numeric_limits<int32_t>::max(), {4000}, gen, at::kInt);
  at::Tensor f64bits = at::randint(std::numeric_limits<int64_t>::min(),
                                   std::numeric_limits<int64_t>::max(), {4000}, gen, at::kLong);
  g.addParam("f32", f32bits.view(at::kFloat));
  g.addParam("f64", f64bits.view(at::kDouble));
  // Every f16 and bf16 bit pattern.
  at::Tensor all16 = at::arange(-32768, 32768, at::kInt).to(at::kShort);
  g.addParam("f16", all16.view(at::kHalf).reshape({256, 256}));
  g.addParam("bf16", all16.view(at::kBFloat16), false);
  g.addParam(
      "special",
      at::tensor({0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::lowest(), 0.1f, 1e-5f}));
  g.addParam("d", at::tensor({std::numeric_limits<double>::denorm_min(),
                              std::numeric_limits<double>::max(), 0.1, -1e300}));
  g.addParam("i8", at::tensor({-128, 0, 127}, at::kChar));
  g.addParam("u8", at::tensor({0, 1, 255}, at::kByte));
  g.addParam("i16", at::tensor({-32768, 32767}, at::kShort));
  g.addParam("i32", at::tensor({std::numeric_limits<int32_t>::min(), 0,
                                std::numeric_limits<int32_t>::max()},
                               at::kInt));
  g.addParam("i64", at::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1},
                                std::numeric_limits<int64_t>::max()},
                               at::kLong));
  g.addParam("b", at::tensor({1, 0, 1}).to(at::kBool).reshape({3, 1}));
  g.addParam("c64", at::randn({3}, gen, at::kComplexFloat));
  g.addParam("c128", at::randn({2, 2}, gen, at::kComplexDouble));
  g.addParam("empty", at::zeros({0, 5}));
  g.addParam("scalar_i", at::scalar_tensor(42, at::kLong));
  Value* p = g.findValue("f32");
  // A param whose declared shape is symbolic while data is concrete.
  Value* sym = g.addParam("sym", at::zeros({2, 3}));
  sym->setShape(std::vector<Dim>{Dim("B"), 3});
  Node* n = g.addNode("Identity", {p}, 1, "id", {{"t", at::tensor({1.5, -0.0}).to(at::kHalf)}});
  n->output(0)->setDType(DType::UInt16);  // a dtype ATen cannot hold is fine on a value
  n->output(0)->setShape(std::vector<Dim>{4000});
  g.addOutput(n->output(0));
  expectRoundTrip(g);
  // And explicitly bit-exact (apart from NaN payloads) for the floating types.
  auto h = parseGraph(printGraph(g));
  for (const char* name : {"f32", "f64", "f16", "bf16"}) {
    at::Tensor a = g.findValue(name)->data(), b = h->findValue(name)->data();
    at::Tensor ia = a.view(a.element_size() == 2   ? at::kShort
                           : a.element_size() == 4 ? at::kInt
                                                   : at::kLong);
    at::Tensor ib = b.view(ia.scalar_type());
    at::Tensor same = (ia == ib).logical_or(a.isnan().logical_and(b.isnan()));
    EXPECT_TRUE(same.all().item<bool>()) << name;
  }
}

TEST(IrText, NamesNeedingQuotesRoundTrip) {
  Graph g;
  Value* a = g.addInput("a:", DType::Float32, std::vector<Dim>{Dim("a b"), Dim("?"), Dim("3x")});
  Value* b = g.addInput("with \"quote\" and \\ and \xe2\x82\xac", DType::Float32, Shape());
  Value* c = g.addInput("_", DType::Bool, std::vector<Dim>{});
  Node* n = g.addNodeNamedOutputs("Add", {a, b}, {"x::y", "1.5", "-"}, "n:", {{"a b", "c"}});
  g.addNode("Where", {c, n->output(0), n->output(1)}, 1, "@{}", {}, nullptr, "dom:ain");
  g.addOutput(n->output(2));
  g.name = "graph\tname";
  g.opsets["we\"ird"] = -3;
  expectRoundTrip(g);
}

TEST(IrText, ElidedTensorsArePrintedButNotParseable) {
  Graph g;
  g.addParam("big", at::zeros({4, 5}));
  g.addParam("small", at::ones({2}));
  g.addOutput(g.addNode("Add", {g.params()[0], g.params()[1]}, 1, "add")->output(0));
  std::string t = printGraph(g, {.tensor_data = false});
  EXPECT_NE(t.find("param %big: f32[4,5] = tensor<f32[4,5]>...\n"), std::string::npos) << t;
  EXPECT_NE(t.find("param %small: f32[2] = tensor<f32[2]>[1, 1]\n"), std::string::npos) << t;
  EXPECT_NE(parseError(t).find("t.gsir:3:"), std::string::npos);
  EXPECT_NE(parseError(t).find("tensor data was elided"), std::string::npos) << parseError(t);
}

struct ErrCase {
  const char* text;
  const char* expected;  // substring of the message, including the location
};

TEST(IrText, ErrorsCarryLocationAndReason) {
  const ErrCase cases[] = {
      {"", "t.gsir:1:1: expected 'graph'"},
      {"graph \"g\" {\n  input %x: f32[2]\n", "t.gsir:3:1: missing '}'"},
      {"graph \"g\" {\n}\nx", "t.gsir:3:1: unexpected text after the end of the graph"},
      {"graph \"g\" {\n  %y = Relu(%x) @r\n}\n", "t.gsir:2:13: unknown value %x"},
      {"graph \"g\" {\n  output %nope\n}\n", "t.gsir:2:10: unknown value %nope"},
      {"graph \"g\" {\n  input %x: f32[2]\n  input %x: f32[2]\n}\n",
       "t.gsir:3:9: duplicate value name %x"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %x = Relu(%x) @r\n}\n",
       "t.gsir:3:3: duplicate value name %x"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %a, %a = Split(%x) @s\n}\n",
       "t.gsir:3:7: duplicate value name %a"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %a = Relu(%x) @r\n  %b = Relu(%x) @r\n}\n",
       "t.gsir:4:17: duplicate node name @r"},
      {"graph \"g\" {\n  input %x: f33[2]\n}\n", "t.gsir:2:13: unknown dtype 'f33'"},
      {"graph \"g\" {\n  input %x: f32[-2]\n}\n", "t.gsir:2:17: dimension must be >= 0"},
      {"graph \"g\" {\n  param %w: f32[3] = tensor<f32[3]>[1, 2]\n}\n",
       "t.gsir:2:29: tensor literal of shape f32[3] needs 3 elements, got 2"},
      {"graph \"g\" {\n  param %w: f32[1] = tensor<f32[1]>[1, 2]\n}\n",
       "t.gsir:2:40: tensor literal has more than the 1 elements"},
      {"graph \"g\" {\n  param %w: i64[1] = tensor<f32[1]>[1]\n}\n",
       "t.gsir:2:13: parameter %w is declared i64 but its tensor is f32"},
      {"graph \"g\" {\n  param %w: f32[2] = tensor<f32[1]>[1]\n}\n",
       "t.gsir:2:13: parameter %w is declared f32[2] but its tensor has shape f32[1]"},
      {"graph \"g\" {\n  param %w: u8[1] = tensor<u8[1]>[256]\n}\n",
       "t.gsir:2:35: value 256 out of range for u8"},
      {"graph \"g\" {\n  param %w: f32[1] = tensor<f32[1]>[1e99]\n}\n",
       "t.gsir:2:37: value '1e99' out of range for f32"},
      {"graph \"g\" {\n  param %w: f32[1] = tensor<f32[1]>[x]\n}\n",
       "t.gsir:2:37: bad f32 value 'x'"},
      {"graph \"g\" {\n  param %w: bool[1] = tensor<bool[1]>[2]\n}\n",
       "t.gsir:2:39: bad bool value '2'"},
      {"graph \"g\" {\n  param %w: u16[1] = tensor<u16[1]>[2]\n}\n",
       "t.gsir:2:29: tensor literals of element type u16 are not supported"},
      {"graph \"g\" {\n  param %w: f32[N] = tensor<f32[N]>[2]\n}\n",
       "t.gsir:2:29: tensor literal dimensions must be static"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=\"abc}\n}\n",
       "t.gsir:3:23: unterminated string"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=\"\\q\"}\n}\n",
       "t.gsir:3:24: unknown escape sequence '\\q'"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=1, a=2}\n}\n",
       "t.gsir:3:26: duplicate attribute 'a'"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=[]}\n}\n",
       "t.gsir:3:23: an empty list needs its kind"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=[1, \"s\"]}\n}\n",
       "t.gsir:3:27: list mixes strings and numbers"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=99999999999999999999}\n}\n",
       "t.gsir:3:23: value '99999999999999999999' out of range for int"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {a=ints[1.5]}\n}\n",
       "t.gsir:3:27: ints[] list holds a non-integer"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r extra\n}\n",
       "t.gsir:3:20: expected end of line, found 'e'"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x @r\n}\n",
       "t.gsir:3:16: expected ',' or ')' after node input, found '@'"},
      {"graph \"g\" {\n  bogus\n}\n", "t.gsir:2:3: expected a statement"},
      {"graph \"g\" {\n  opset \"\" 17\n  opset \"\" 18\n}\n", "t.gsir:3:9: duplicate opset"},
      {"graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r {t=tensor<f32[2]>[1,2,]}\n}\n",
       "t.gsir:3:42: expected a tensor element, found ']'"},
      {"graph \"g\" {\n  input %\n}\n", "t.gsir:2:10: expected a value name"},
  };
  for (const auto& c : cases) {
    std::string msg = parseError(c.text);
    EXPECT_NE(msg.find(c.expected), std::string::npos)
        << "input:\n"
        << c.text << "\nmessage: " << msg << "\nexpected: " << c.expected;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(IrText, AbsurdTensorSizesAreRefusedBeforeAllocating) {
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(
      parseError("graph g {\n param %w: f32[1000000000000] = tensor<f32[1000000000000]>[1]\n}")
          .find("declares 1000000000000 elements but the text is too short"),
      std::string::npos);
  EXPECT_NE(parseError("graph g {\n param %w: f32[2] = tensor<f32[2199023255552]>[1]\n}")
                .find("is too large"),
            std::string::npos);
  EXPECT_NE(
      parseError("graph g {\n param %w: f32[2] = tensor<f32[1099511627776,1099511627776]>[1]\n}")
          .find("too many elements"),
      std::string::npos);
  // Zero-element tensors with big (but bounded) dims are fine.
  auto g = parseGraph("graph g {\n param %w: f32[0,1000000] = tensor<f32[0,1000000]>[]\n}");
  EXPECT_EQ(g->params()[0]->data().numel(), 0);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 1.0);
}

TEST(IrText, LargeTensorRoundTripIsFast) {
  Graph g;
  g.addParam("w", test::randn({256, 256, 3, 3}, 11));  // 589,824 floats
  auto t0 = std::chrono::steady_clock::now();
  std::string t = printGraph(g);
  auto h = parseGraph(t);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(at::equal(g.params()[0]->data(), h->params()[0]->data()));
  EXPECT_LT(secs, 3.0);
  std::printf("print+parse of 589824 f32 (%zu bytes): %.3f s\n", t.size(), secs);
}

}  // namespace
}  // namespace gs

// ---- fuzz target replay: every corpus seed plus deterministic mutations ----
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

// The fuzz target's checker, without its libFuzzer entry point.
#define GS_FUZZ_NO_ENTRY_POINT
#include "../../fuzz/fuzz_ir_parser.cpp"

namespace gs {
namespace {

std::vector<std::string> corpusSeeds() {
  std::vector<std::string> seeds;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(GS_SOURCE_DIR) + "/fuzz/corpus/ir_parser")) {
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    seeds.push_back(ss.str());
  }
  return seeds;
}

std::string runFuzzOne(const std::string& s) {
  return fuzz::checkIrParserInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(IrTextFuzz, CorpusSeedsParseAndRoundTrip) {
  auto seeds = corpusSeeds();
  ASSERT_GE(seeds.size(), 3u);
  for (const auto& s : seeds) {
    EXPECT_NO_THROW(parseGraph(s)) << s;
    EXPECT_EQ(runFuzzOne(s), "") << s;
  }
}

TEST(IrTextFuzz, MutationsNeverCrashOrBreakRoundTrip) {
  std::mt19937 rng(1234);
  const std::string specials[] = {"\"",
                                  "%",
                                  "[",
                                  "]",
                                  "(",
                                  ")",
                                  "{",
                                  "}",
                                  ",",
                                  ":",
                                  "::",
                                  "_",
                                  "\n",
                                  "#",
                                  "\\",
                                  "\\x",
                                  "@",
                                  "=",
                                  "-",
                                  "1e999",
                                  "nan",
                                  "*",
                                  "?",
                                  std::string(1, '\0'),
                                  "\xff",
                                  " ",
                                  "tensor<f32[2]>[1,2]",
                                  "ints[]",
                                  "-9223372036854775808",
                                  "99999999999"};
  size_t runs = 0, parsed = 0;
  for (const auto& seed : corpusSeeds()) {
    for (int it = 0; it < 1500; ++it) {
      std::string m = seed;
      int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !m.empty(); ++e) {
        size_t pos = rng() % m.size();
        switch (rng() % 5) {
          case 0: m.insert(pos, specials[rng() % std::size(specials)]); break;
          case 1: m.erase(pos, 1 + rng() % 8); break;
          case 2: m[pos] = static_cast<char>(rng() % 256); break;
          case 3: m.resize(pos); break;
          case 4: {  // duplicate a line
            size_t b = m.rfind('\n', pos), en = m.find('\n', pos);
            b = b == std::string::npos ? 0 : b + 1;
            if (en != std::string::npos) m.insert(en + 1, m.substr(b, en - b + 1));
            break;
          }
        }
      }
      std::string why = runFuzzOne(m);
      ++runs;
      ASSERT_EQ(why, "") << "input:\n" << m;
      try {
        parseGraph(m);
        ++parsed;
      } catch (const Error&) {
      }
    }
  }
  std::printf("fuzz replay: %zu mutated inputs, %zu parsed\n", runs, parsed);
  EXPECT_GT(parsed, 0u);
}

}  // namespace
}  // namespace gs

namespace gs {
namespace {

TEST(IrText, ManyUnnamedNodesParseInLinearTime) {
  std::string t = "graph g {\n  input %v0: f32[2]\n";
  const int n = 20000;
  for (int i = 1; i <= n; ++i)
    t += "  %v" + std::to_string(i) + " = Relu(%v" + std::to_string(i - 1) + ")\n";
  t += "  %named = Relu(%v0) @Relu_5\n}\n";  // collides with a generated name: an error
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(parseError(t).find("duplicate node name @Relu_5"), std::string::npos);
  t.erase(t.rfind("  %named"));
  t += "}\n";
  auto g = parseGraph(t);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(g->numNodes(), static_cast<size_t>(n));
  EXPECT_EQ(g->nodes().back()->name(), "Relu_" + std::to_string(n - 1));
  EXPECT_LT(secs, 2.0);
}

}  // namespace
}  // namespace gs
