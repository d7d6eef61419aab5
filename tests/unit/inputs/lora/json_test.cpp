#include <doctest/doctest.h>

#include <string>

#include "inputs/lora/json.hpp"

using namespace citygate::lora::json;

TEST_CASE("json: an rxpk object parses with types, numbers and strings") {
  Document d;
  const std::string text =
      R"({"rxpk":[{"tmst":3512348611,"chan":2,"rfch":0,"freq":868.1,"stat":1,"modu":"LORA",)"
      R"("datr":"SF7BW125","codr":"4/5","rssi":-35,"lsnr":5.1,"size":17,"data":"QPF9vkkAAgABlUN4disR/w0="}]})";
  REQUIRE(d.parse(text) == Error::None);
  const Value root = d.root();
  REQUIRE(root.isObject());
  CHECK(root.size() == 1);
  const Value rxpk = root.get("rxpk");
  REQUIRE(rxpk.isArray());
  CHECK(rxpk.size() == 1);
  int n = 0;
  for (Value p : rxpk) {
    ++n;
    CHECK(p.get("tmst").number() == 3512348611.0);
    CHECK(p.get("freq").number() == doctest::Approx(868.1));
    CHECK(p.get("rssi").number() == -35);
    CHECK(p.get("datr").string() == "SF7BW125");
    CHECK(p.get("data").string() == "QPF9vkkAAgABlUN4disR/w0=");
    CHECK_FALSE(p.get("missing").valid());
  }
  CHECK(n == 1);
}

TEST_CASE("json: object iteration yields keys and values in order, nested containers skipped") {
  Document d;
  REQUIRE(d.parse(R"({"a":[1,[2,3],{"x":4}],"b":{"c":{}},"d":"e","f":true,"g":null,"h":[]})") == Error::None);
  std::string keys;
  for (auto it = d.root().begin(); it != d.root().end(); ++it) keys += std::string(it.key()) + ",";
  CHECK(keys == "a,b,d,f,g,h,");
  CHECK(d.root().get("a").size() == 3);
  CHECK(d.root().get("d").string() == "e");
  CHECK(d.root().get("f").boolean());
  CHECK(d.root().get("g").isNull());
  CHECK(d.root().get("h").size() == 0);
  CHECK_FALSE(d.root().get("h").begin() != d.root().get("h").end());
  double sum = 0;
  for (Value v : d.root().get("a")) {
    if (v.isNumber()) sum += v.number();
  }
  CHECK(sum == 1);
}

TEST_CASE("json: escapes and UTF-8 decode") {
  Document d;
  REQUIRE(d.parse(R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u20ac\ud83d\ude00", "é€😀"])") == Error::None);
  auto it = d.root().begin();
  CHECK((*it).string() == "a\"b\\c/d\b\f\n\r\t");
  ++it;
  CHECK((*it).string() == "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  ++it;
  CHECK((*it).string() == "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST_CASE("json: numbers follow the grammar exactly") {
  Document d;
  for (const char* ok : {"0", "-0", "1.5", "-12.25e3", "1E-2", "1e+2", "123456789012", "1e-400"}) {
    INFO(ok);
    CHECK(d.parse(ok) == Error::None);
  }
  CHECK(d.parse("1e-400") == Error::None);
  CHECK(d.root().number() == 0.0);
  for (const char* bad :
       {"01", "-", "1.", ".5", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "1e400", "--1"}) {
    INFO(bad);
    CHECK(d.parse(bad) != Error::None);
  }
  CHECK(d.parse(std::string(70, '1')) == Error::BadNumber);  // longer than any number we take
}

TEST_CASE("json: strictness, one error per kind") {
  Document d;
  CHECK(d.parse("") == Error::Empty);
  CHECK(d.parse("  \n ") == Error::Empty);
  CHECK(d.parse("[1,]") == Error::Syntax);
  CHECK(d.parse("{\"a\":1,}") == Error::Syntax);
  CHECK(d.parse("{a:1}") == Error::Syntax);
  CHECK(d.parse("{\"a\" 1}") == Error::Syntax);
  CHECK(d.parse("[1 2]") == Error::Syntax);
  CHECK(d.parse("// c\n{}") == Error::Syntax);
  CHECK(d.parse("{} x") == Error::TrailingData);
  CHECK(d.parse(std::string("{}\0", 3)) == Error::TrailingData);
  CHECK(d.parse("tru") == Error::Syntax);
  CHECK(d.parse("\"abc") == Error::Syntax);
  CHECK(d.parse("\"a\x01\"") == Error::ControlChar);
  CHECK(d.parse("\"a\\x\"") == Error::BadEscape);
  CHECK(d.parse("\"\\u12g4\"") == Error::BadEscape);
  CHECK(d.parse("\"\\ud800\"") == Error::BadEscape);
  CHECK(d.parse("\"\\udc00\"") == Error::BadEscape);
  CHECK(d.parse("\"\\ud800\\u0041\"") == Error::BadEscape);
  CHECK(d.parse("\"\xC0\xAF\"") == Error::BadUtf8);          // overlong '/'
  CHECK(d.parse("\"\xED\xA0\x80\"") == Error::BadUtf8);      // encoded surrogate
  CHECK(d.parse("\"\xF4\x90\x80\x80\"") == Error::BadUtf8);  // above U+10FFFF
  CHECK(d.parse("\"\xE2\x82\"") == Error::BadUtf8);          // truncated sequence
  CHECK(d.parse(R"({"a":1,"b":2,"a":3})") == Error::DuplicateKey);
  CHECK(d.errorOffset() > 0);
  CHECK_FALSE(d.root().valid());
}

TEST_CASE("json: limits bound depth, values, members and strings") {
  Limits lim;
  lim.maxDepth = 4;
  lim.maxNodes = 16;
  lim.maxMembers = 5;
  lim.maxStringBytes = 8;
  Document d(lim);
  CHECK(d.parse("[[[1]]]") == Error::None);
  CHECK(d.parse("[[[[1]]]]") == Error::Depth);
  CHECK(d.parse("[1,2,3,4,5]") == Error::None);
  CHECK(d.parse("[1,2,3,4,5,6]") == Error::TooManyMembers);
  CHECK(d.parse("[[1,2,3],[1,2,3],[1,2,3]]") == Error::None);  // 13 values
  CHECK(d.parse("[[1,2,3,4],[1,2,3,4],[1,2,3,4],[1,2,3,4]]") == Error::TooManyNodes);
  CHECK(d.parse("\"12345678\"") == Error::None);
  CHECK(d.parse("\"123456789\"") == Error::StringTooLong);
  // A deeply nested hostile input fails fast at the depth limit, without recursion beyond it.
  Document big;
  CHECK(big.parse(std::string(100000, '[')) == Error::Depth);
}

TEST_CASE("json: a document is reusable and a failed parse leaves it empty") {
  Document d;
  REQUIRE(d.parse(R"({"a":"x"})") == Error::None);
  CHECK(d.root().get("a").string() == "x");
  CHECK(d.parse("{") != Error::None);
  CHECK_FALSE(d.root().valid());
  REQUIRE(d.parse(R"({"b":"y"})") == Error::None);
  CHECK(d.root().get("b").string() == "y");
  CHECK_FALSE(d.root().get("a").valid());
}
