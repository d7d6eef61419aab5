// The schema on the wire: bytes written with an older schema (tests/data/proto/README.md) decode
// to the same messages today and re-serialise to the same bytes; the node-facing schema compiles
// alone.
#include <doctest/doctest.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <fstream>
#include <iterator>
#include <string>

#include "citygate/v1/config.pb.h"
#include "citygate/v1/control.pb.h"
#include "citygate/v1/node.pb.h"

namespace pb = citygate::v1;

namespace {

std::string slurp(const std::string& name) {
  std::ifstream in(std::string(CITYGATE_SOURCE_DIR) + "/tests/data/proto/" + name, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class Message>
void checkGolden(const std::string& stem) {
  INFO(stem);
  const std::string golden = slurp(stem + ".bin");
  Message fromWire;
  REQUIRE(fromWire.ParseFromString(golden));
  Message fromText;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(slurp(stem + ".textproto"), &fromText));
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  CHECK_MESSAGE(d.Compare(fromText, fromWire), diff);
  // No field of the old bytes is unknown to today's schema.
  CHECK(fromWire.GetReflection()->GetUnknownFields(fromWire).empty());
  CHECK(fromText.SerializeAsString() == golden);
}

}  // namespace

TEST_CASE("schema: messages written before node.proto split from config.proto decode the same") {
  checkGolden<pb::DeviceProfile>("device_profile");
  checkGolden<pb::ControlRequest>("control_request");
  checkGolden<pb::ControlResponse>("control_response");
  checkGolden<pb::GatewayConfig>("gateway_config");
}

TEST_CASE("schema: node.proto stands alone and keeps the names the gateway uses") {
  const auto* node = pb::DeviceProfile::descriptor()->file();
  CHECK(node->name() == "citygate/v1/node.proto");
  CHECK(node->package() == "citygate.v1");
  CHECK(node->dependency_count() == 0);
  CHECK(pb::ObservationKind_descriptor()->file() == node);
  CHECK(pb::RegisterTable_descriptor()->full_name() == "citygate.v1.RegisterTable");
  // config.proto re-exports it (import public), so config.pb.h users see the same types.
  const auto* config = pb::GatewayConfig::descriptor()->file();
  REQUIRE(config->public_dependency_count() == 1);
  CHECK(config->public_dependency(0) == node);
  // control.proto needs the node enums, not the gateway's configuration.
  const auto* control = pb::ControlRequest::descriptor()->file();
  for (int i = 0; i < control->dependency_count(); ++i) CHECK(control->dependency(i) != config);
}
