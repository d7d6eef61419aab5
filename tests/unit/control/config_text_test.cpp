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
