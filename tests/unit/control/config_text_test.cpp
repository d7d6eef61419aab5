// Config texts for the control socket: secrets never leave the daemon, diffs read like diff -u.
#include <doctest/doctest.h>

#include "control/config_text.hpp"

using namespace citygate::control;

TEST_CASE("session keys and passwords are redacted, file names and comments are kept") {
  const std::string text =
      "lora {\n"
      "  device {\n"
      "    id: \"bay-42\"\n"
      "    nwk_s_key: \"44024241ed4ce9a68c6a8bc055233fd3\"   # inline key\n"
      "    app_s_key:'ec925802ae430ca77fd3dd73cb2cc588'\n"
      "    app_s_key_file: \"/etc/citygate/bay.key\"\n"
      "  }\n"
      "}\n"
      "mqtt { password: \"hunter2\" tls { key_file: \"/etc/gw.key\" } }\n"
      "# nwk_s_key: \"in a comment\" stays\n"
      "x { id: \"nwk_s_key: \\\"not a field\\\"\" }\n";
  const std::string out = redactSecrets(text);
  CHECK(out.find("44024241") == std::string::npos);
  CHECK(out.find("ec925802") == std::string::npos);
  CHECK(out.find("hunter2") == std::string::npos);
  CHECK(out.find("nwk_s_key: \"<redacted>\"   # inline key") != std::string::npos);
  CHECK(out.find("app_s_key:'<redacted>'") != std::string::npos);
  CHECK(out.find("app_s_key_file: \"/etc/citygate/bay.key\"") != std::string::npos);
  CHECK(out.find("key_file: \"/etc/gw.key\"") != std::string::npos);
  CHECK(out.find("# nwk_s_key: \"in a comment\" stays") != std::string::npos);
  CHECK(out.find("id: \"nwk_s_key: \\\"not a field\\\"\"") != std::string::npos);
  CHECK(out.find("id: \"bay-42\"") != std::string::npos);
}

TEST_CASE("redaction survives an unterminated string") {
  CHECK(redactSecrets("nwk_s_key: \"abc") == "nwk_s_key: \"<redacted>");
  CHECK(redactSecrets("nwk_s_key") == "nwk_s_key");
  CHECK(redactSecrets("") == "");
}

TEST_CASE("equal texts have no diff") {
  CHECK(unifiedDiff("a\nb\n", "a\nb\n", "x", "y").empty());
}

TEST_CASE("a changed line in the middle, with three lines of context") {
  const std::string a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
  const std::string b = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
  CHECK(unifiedDiff(a, b, "running", "proposed") ==
        "--- running\n+++ proposed\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n");
}

TEST_CASE("an added device at the end, and two distant changes make two hunks") {
  CHECK(unifiedDiff("a\nb\n", "a\nb\nc\n", "x", "y") == "--- x\n+++ y\n@@ -1,2 +1,3 @@\n a\n b\n+c\n");
  std::string a;
  std::string b;
  for (int i = 0; i < 20; ++i) {
    a += std::to_string(i) + "\n";
    b += (i == 2 ? std::string("two") : i == 17 ? std::string("seventeen") : std::to_string(i)) + "\n";
  }
  const std::string d = unifiedDiff(a, b, "x", "y");
  CHECK(d.find("@@ -1,6 +1,6 @@") != std::string::npos);
  CHECK(d.find("@@ -15,6 +15,6 @@") != std::string::npos);
  CHECK(d.find("-2\n+two\n") != std::string::npos);
  CHECK(d.find("-17\n+seventeen\n") != std::string::npos);
}

TEST_CASE("from nothing and to nothing") {
  CHECK(unifiedDiff("", "a\n", "x", "y") == "--- x\n+++ y\n@@ -0,0 +1,1 @@\n+a\n");
  CHECK(unifiedDiff("a\n", "", "x", "y") == "--- x\n+++ y\n@@ -1,1 +0,0 @@\n-a\n");
}

// ---- `config show` output applied back (keepRedactedSecrets) ----

namespace {

constexpr const char* kRunning =
    "gateway_id: \"gw\"\n"
    "lora {\n"
    "  device {\n"
    "    id: \"bay-1\"\n"
    "    nwk_s_key: \"11111111111111111111111111111111\"\n"
    "    app_s_key: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"
    "  }\n"
    "  device { app_s_key: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' id: \"bay-2\"\n"
    "    nwk_s_key: \"22222222222222222222222222222222\" }\n"
    "}\n";

}  // namespace

TEST_CASE("config show output applies back: every <redacted> gets the running value, the rest is kept") {
  const std::string shown = redactSecrets(kRunning);
  REQUIRE(shown.find("1111") == std::string::npos);
  const auto merged = keepRedactedSecrets("new.textproto", shown, kRunning);
  CHECK(merged.errors.empty());
  CHECK(merged.kept == 4);
  CHECK(merged.text == kRunning);  // byte for byte: layout, quotes and comments as they were
  CHECK(merged.text.find("<redacted>") == std::string::npos);
}

TEST_CASE("a redacted key follows its device by id, not by position") {
  // bay-2 moved first and gets a comment; bay-1's nwk_s_key is written out (a new key).
  const std::string edited =
      "gateway_id: \"gw\"  # edited\n"
      "lora {\n"
      "  device { id: \"bay-2\" nwk_s_key: \"<redacted>\" app_s_key: \"<redacted>\" }\n"
      "  device {\n"
      "    id: \"bay-1\"\n"
      "    nwk_s_key: \"33333333333333333333333333333333\"\n"
      "    app_s_key: \"<redacted>\"\n"
      "  }\n"
      "}\n";
  const auto merged = keepRedactedSecrets("new.textproto", edited, kRunning);
  REQUIRE(merged.errors.empty());
  CHECK(merged.kept == 3);
  CHECK(merged.text.find("id: \"bay-2\" nwk_s_key: \"22222222222222222222222222222222\" app_s_key: "
                         "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' }") != std::string::npos);
  CHECK(merged.text.find("nwk_s_key: \"33333333333333333333333333333333\"") != std::string::npos);
  CHECK(merged.text.find("app_s_key: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"") != std::string::npos);
  CHECK(merged.text.find("1111") == std::string::npos);  // bay-1's old nwk_s_key is not brought back
}

TEST_CASE("a <redacted> with no running secret at that place is a FILE:LINE:COL error, no secret in it") {
  const std::string text =
      "lora {\n"
      "  device { id: \"bay-9\" nwk_s_key: \"<redacted>\" }\n"  // no such device running
      "\tdevice { id: \"bay-1\" app_s_key: \"<redacted>\" }\n"  // this one is kept
      "}\n"
      "mqtt { password: \"<redacted>\" }\n";  // no password in the running text
  const auto merged = keepRedactedSecrets("new.textproto", text, kRunning);
  REQUIRE(merged.errors.size() == 2);
  CHECK(merged.errors[0].rfind("new.textproto:2:35: nwk_s_key is \"<redacted>\"", 0) == 0);
  CHECK(merged.errors[0].find("lora#1.device[\"bay-9\"]") != std::string::npos);
  CHECK(merged.errors[1].rfind("new.textproto:5:18: password", 0) == 0);
  CHECK(merged.kept == 1);
  for (const auto& e : merged.errors) {
    CHECK(e.find("1111") == std::string::npos);
    CHECK(e.find("aaaa") == std::string::npos);
  }
  // A tab counts to the next multiple of 8, as protobuf's own diagnostics count it.
  const auto tab = keepRedactedSecrets("f", "\tx { nwk_s_key: \"<redacted>\" }\n", kRunning);
  REQUIRE(tab.errors.size() == 1);
  CHECK(tab.errors[0].rfind("f:1:24: ", 0) == 0);
}

TEST_CASE("texts without <redacted> pass unchanged, a running <redacted> is never taken as a value") {
  const auto plain = keepRedactedSecrets("f", kRunning, "");
  CHECK(plain.errors.empty());
  CHECK(plain.kept == 0);
  CHECK(plain.text == kRunning);
  const auto odd = keepRedactedSecrets("f", "nwk_s_key: \"<redacted>\"\n", "nwk_s_key: \"<redacted>\"\n");
  CHECK(odd.errors.size() == 1);
  // Two running devices without ids at one place: ambiguous, refused rather than guessed.
  const std::string twins = "d { k_key: \"1\" }\nd { k_key: \"2\" }\n";
  const auto byPosition = keepRedactedSecrets("f", "d { k_key: \"<redacted>\" }\nd { k_key: \"<redacted>\" }\n", twins);
  CHECK(byPosition.errors.empty());
  CHECK(byPosition.text == twins);  // blocks without ids: by their position among their like
  // A running text that is not text format at all: nothing to keep, every <redacted> reported.
  CHECK(keepRedactedSecrets("f", "a_key: \"<redacted>\"", "{{{ \"").errors.size() == 1);
}
