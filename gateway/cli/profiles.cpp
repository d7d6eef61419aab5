// `citygatectl profiles [show NAME]`: the device profiles a configuration can name (the library
// compiled into citygated, plus a config's profile_dir with --config FILE), and one profile's
// register map as a table. Offline: the same library and loader as the daemon, no socket.
#include <cstdio>

#include "cli/cli.hpp"
#include "config/loader.hpp"
#include "core/suggest.hpp"

namespace citygate::cli {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string kindName(pb::ObservationKind k) {
  switch (k) {
    case pb::AIR_QUALITY:
      return "air";
    case pb::TRAFFIC:
      return "traffic";
    case pb::PARKING:
      return "parking";
    case pb::GENERIC:
      return "generic";
    default:
      return "-";
  }
}

std::string orderName(pb::WordOrder o) {
  return o == pb::WORD_ORDER_UNSPECIFIED ? "ABCD" : pb::WordOrder_Name(o);
}

// The library: compiled-in, plus the profile_dir of --config FILE (loaded and checked as at
// start-up). Prints the diagnostics and sets `rc` when the file does not load.
bool loadLibrary(const Ctx& ctx, const Args& a, config::LoadedConfig& loaded, int& rc) {
  config::Diagnostics diags;
  const bool ok =
      a.has("config") ? config::loadConfigFile(a.value("config"), loaded, diags) : loaded.profiles.load("", diags);
  if (!ok) {
    for (const auto& d : diags.items()) std::fprintf(stderr, "%s\n", d.str().c_str());
    rc = fail(ctx, kExitConfig,
              (a.has("config") ? a.value("config") : std::string("profile library")) + ": " +
                  std::to_string(diags.size()) + " error(s)");
  }
  return ok;
}

// "lane 2 intensity", "bay A status", "no2".
std::string pointName(const pb::ProfilePoint& p) {
  std::string prefix;
  if (p.lane_id() != 0) prefix = "lane " + std::to_string(p.lane_id()) + " ";
  if (!p.bay().empty()) prefix = "bay " + p.bay() + " ";
  return prefix + p.field();
}

std::string typeName(const pb::ProfilePoint& p) {
  std::string t = lower(pb::DataType_Name(p.type()));
  if (p.type() == pb::BOOL && (p.table() == pb::HOLDING_REGISTER || p.table() == pb::INPUT_REGISTER)) {
    t += "." + std::to_string(p.bit());
  }
  if (p.type() == pb::STRING) t += "[" + std::to_string(p.string_registers()) + "]";
  return t;
}

}  // namespace

int cmdProfiles(const Ctx& ctx, const Args& a) {
  config::LoadedConfig loaded;
  int rc = 0;
  if (!loadLibrary(ctx, a, loaded, rc)) return rc;
  const auto& lib = loaded.profiles;
  if (ctx.json) {
    std::string out = "{\"profiles\":[";
    bool first = true;
    for (const auto& name : lib.names()) {
      const auto* e = lib.find(name);
      out += std::string(first ? "" : ",") + "{\"source\":" + jsonString(e->builtin ? "builtin" : e->file) +
             ",\"profile\":" + toJson(e->profile, false) + "}";
      first = false;
    }
    std::printf("%s]}\n", out.c_str());
    return 0;
  }
  // FROM only when a profile_dir adds some: the file, or "built in".
  bool extra = false;
  for (const auto& name : lib.names()) extra = extra || !lib.find(name)->builtin;
  Table t = extra ? Table({"NAME", "KIND", "POINTS", "FROM", "DEVICE"}) : Table({"NAME", "KIND", "POINTS", "DEVICE"});
  t.dropWhenNarrow({"KIND", "POINTS"});
  for (const auto& name : lib.names()) {
    const auto* e = lib.find(name);
    const std::string device = e->profile.vendor() + (e->profile.model().empty() ? "" : " " + e->profile.model());
    std::vector<std::string> row{name, kindName(e->profile.kind()), std::to_string(e->profile.point_size())};
    if (extra) row.push_back(e->builtin ? "built in" : e->file);
    row.push_back(device);
    t.add(std::move(row));
  }
  std::fputs(t.render(ctx.out).c_str(), stdout);
  if (!a.has("config")) {
    std::printf("%s\n",
                ctx.out.paint("(built in only; --config FILE adds that config's profile_dir)", Colour::Dim).c_str());
  }
  return 0;
}

int cmdProfileShow(const Ctx& ctx, const Args& a) {
  config::LoadedConfig loaded;
  int rc = 0;
  if (!loadLibrary(ctx, a, loaded, rc)) return rc;
  const std::string& name = a.positional[2];
  const auto* e = loaded.profiles.find(name);
  if (e == nullptr) {
    return fail(ctx, kExitNotFound,
                "no profile '" + name + "'" + core::didYouMean(name, loaded.profiles.names()) +
                    " (citygatectl profiles lists them)");
  }
  const auto& p = e->profile;
  if (ctx.json) {
    std::printf("%s\n", toJson(p, true).c_str());
    return 0;
  }
  auto row = [&](const char* label, const std::string& v) {
    if (!v.empty()) std::printf("%s  %s\n", ctx.out.paint(label, Colour::Bold).c_str(), v.c_str());
  };
  row("Profile     ", p.name() + (e->builtin ? " (built in)" : " (" + e->file + ")"));
  row("Device      ", p.vendor() + (p.model().empty() ? "" : " " + p.model()));
  row("About       ", p.description());
  row("Observation ", kindName(p.kind()) + " (" + pb::ObservationKind_Name(p.kind()) + ")");
  row("Word order  ", orderName(p.default_order()) + " (32/64-bit values, unless a point says otherwise)");
  std::printf("\n");
  // The register map: PDU addresses (0-based), as `modbus read` takes them.
  Table t({"POINT", "TABLE", "ADDR", "TYPE", "SCALE", "UNIT", "PLAUSIBLE"});
  for (const auto& pt : p.point()) {
    std::string type = typeName(pt);
    if (pt.order() != pb::WORD_ORDER_UNSPECIFIED && pt.order() != p.default_order())
      type += " " + orderName(pt.order());
    std::string scale = pt.scale() == 0 || pt.scale() == 1 ? "" : number(pt.scale());
    if (pt.offset() != 0) scale += (pt.offset() > 0 ? "+" : "") + number(pt.offset());
    const std::string plausible =
        pt.has_plausible() ? number(pt.plausible().min()) + ".." + number(pt.plausible().max()) : "";
    t.add({pointName(pt), tableName(pt.table()), std::to_string(pt.address()), type, scale, pt.unit(), plausible});
  }
  std::fputs(t.render(ctx.out).c_str(), stdout);
  return 0;
}

}  // namespace citygate::cli
