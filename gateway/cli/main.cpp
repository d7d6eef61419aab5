// citygatectl: the field technician's tool. Talks to citygated over its control socket; works
// without the daemon where that makes sense (config validate; modbus read/probe/scan on the port).
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/cli.hpp"
#include "cli/terminal.hpp"
#include "core/suggest.hpp"

#ifndef CITYGATE_VERSION
#define CITYGATE_VERSION "0.0.0"
#endif

namespace citygate::cli {

// ---- shared helpers -----------------------------------------------------------------------------

int fail(const Ctx& ctx, int code, const std::string& message) {
  std::fprintf(stderr, "%s %s\n", ctx.err.paint("citygatectl:", Colour::Bold).c_str(), message.c_str());
  return code;
}

int usageError(const Ctx& ctx, const std::string& command, const std::string& message) {
  fail(ctx, kExitUsage, message);
  std::fprintf(stderr, "(see: citygatectl %s%s--help)\n", command.c_str(), command.empty() ? "" : " ");
  return kExitUsage;
}

int reportError(const Ctx& ctx, const pb::ControlResponse& response) {
  const auto& e = response.error();
  if (ctx.json) std::printf("%s\n", toJson(response, true).c_str());
  for (const auto& d : e.diagnostics()) std::fprintf(stderr, "%s\n", d.c_str());
  return fail(ctx, exitCodeFor(e), e.message().empty() ? pb::ControlError::Code_Name(e.code()) : e.message());
}

int roundTrip(const Ctx& ctx, Client& client, const pb::ControlRequest& request, pb::ControlResponse& response,
              std::chrono::milliseconds timeout) {
  ClientError err;
  if (!client.connect(err) || !client.send(request, err) || !client.receive(response, timeout, err)) {
    return fail(ctx, err.exitCode, err.message);
  }
  if (response.has_error() && response.error().code() != pb::ControlError::CODE_UNSPECIFIED) {
    return reportError(ctx, response);
  }
  return 0;
}

int roundTrip(const Ctx& ctx, const pb::ControlRequest& request, pb::ControlResponse& response,
              std::chrono::milliseconds timeout) {
  Client client(ctx.socket);
  return roundTrip(ctx, client, request, response, timeout);
}

std::optional<std::uint32_t> parseUint(const std::string& s, std::uint32_t max) {
  std::uint64_t v = 0;
  int base = 10;
  std::string_view digits = s;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || v > max) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

std::optional<pb::RegisterTable> parseTable(const std::string& s) {
  if (s == "holding" || s == "hr" || s == "HOLDING_REGISTER" || s == "4") return pb::HOLDING_REGISTER;
  if (s == "input" || s == "ir" || s == "INPUT_REGISTER" || s == "3") return pb::INPUT_REGISTER;
  if (s == "coil" || s == "coils" || s == "co" || s == "COIL" || s == "1") return pb::COIL;
  if (s == "discrete" || s == "di" || s == "DISCRETE_INPUT" || s == "2") return pb::DISCRETE_INPUT;
  return std::nullopt;
}

std::string tableName(pb::RegisterTable t) {
  switch (t) {
    case pb::COIL:
      return "coil";
    case pb::DISCRETE_INPUT:
      return "discrete";
    case pb::INPUT_REGISTER:
      return "input";
    default:
      return "holding";
  }
}

}  // namespace citygate::cli

namespace {

using namespace citygate::cli;

// Options that take a value; everything else starting with -- is a flag.
const std::set<std::string> kValueOptions{"socket",       "device", "count",  "config",    "tcp",       "rtu",
                                          "rtu-over-tcp", "baud",   "parity", "data-bits", "stop-bits", "table",
                                          "timeout",      "logger", "port",   "type",      "order"};
const std::set<std::string> kGlobalOptions{"socket", "json", "no-color", "help", "version"};
// The short forms of the options a technician types most.
const std::map<std::string, std::string> kShortOptions{{"-c", "count"},  {"-d", "device"},  {"-j", "json"},
                                                       {"-s", "socket"}, {"-t", "timeout"}, {"-V", "version"}};

// Every command's first word, and the groups ("config", "modbus", "lora").
std::vector<std::string> commandWords() {
  std::vector<std::string> words{"help"};
  for (const auto& c : commands()) {
    const std::string name = c.name;
    const std::string first = name.substr(0, name.find(' '));
    if (std::find(words.begin(), words.end(), first) == words.end()) words.push_back(first);
  }
  return words;
}

// The subcommands of `group` ("validate", "show" ... for "config"); empty when it is no group.
std::vector<std::string> subcommands(const std::string& group) {
  std::vector<std::string> subs;
  for (const auto& c : commands()) {
    const std::string name = c.name;
    if (name.rfind(group + " ", 0) == 0) subs.push_back(name.substr(group.size() + 1));
  }
  return subs;
}

// `help GROUP` and `GROUP --help`: every subcommand's help.
int groupHelp(const std::string& group) {
  for (const auto& cmd : commands()) {
    if (std::string(cmd.name).rfind(group + " ", 0) == 0) std::fputs((commandHelp(cmd) + "\n").c_str(), stdout);
  }
  return 0;
}

// The message for words that name no command: a group without (or with a wrong) subcommand, or
// an unknown command, with the closest name.
std::string unknownCommand(const std::vector<std::string>& words) {
  const std::string& group = words[0];
  const auto subs = subcommands(group);
  if (!subs.empty()) {
    std::string list;
    for (const auto& s : subs) list += (list.empty() ? "" : ", ") + group + " " + s;
    if (words.size() < 2) return group + " wants a subcommand: " + list;
    const auto sub = citygate::core::closest(words[1], subs);
    return group + " has no subcommand '" + words[1] + "'" +
           (sub ? "; did you mean '" + group + " " + *sub + "'?" : " (" + list + ")");
  }
  return "unknown command '" + group + "'" + citygate::core::didYouMean(group, commandWords());
}

bool parse(int argc, char** argv, Args& a, std::string& error) {
  bool operandsOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (operandsOnly || arg.size() < 2 || arg[0] != '-') {
      a.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      operandsOnly = true;
      continue;
    }
    if (arg == "-h") {
      a.help = true;
      continue;
    }
    if (arg.find_first_not_of("0123456789.", 1) == std::string::npos) {  // -5, -0.5: an operand
      a.positional.push_back(arg);
      continue;
    }
    std::string name;
    if (arg.rfind("--", 0) == 0) {
      name = arg.substr(2);
    } else if (const auto it = kShortOptions.find(arg); it != kShortOptions.end()) {
      name = it->second;
    } else {
      std::vector<std::string> shorts;
      for (const auto& [s, longName] : kShortOptions) shorts.push_back(s);
      error = "unknown option '" + arg + "'" + citygate::core::didYouMean(arg, shorts);
      return false;
    }
    std::optional<std::string> value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "help") {
      a.help = true;
      continue;
    }
    if (kValueOptions.contains(name)) {
      if (!value) {
        if (i + 1 >= argc) {
          error = "--" + name + " needs a value";
          return false;
        }
        value = argv[++i];
      }
      a.values[name] = *value;
    } else {
      if (value) {
        error = "--" + name + " takes no value";
        return false;
      }
      a.flags.insert(name);
    }
  }
  return true;
}

// "modbus probe" from the operands (the longest command name that matches).
const CommandInfo* resolve(const std::vector<std::string>& words, std::size_t& used) {
  const CommandInfo* best = nullptr;
  used = 0;
  for (std::size_t n = 1; n <= std::min<std::size_t>(2, words.size()); ++n) {
    std::string name;
    for (std::size_t i = 0; i < n; ++i) name += (i ? " " : "") + words[i];
    if (const auto* c = findCommand(name)) {
      best = c;
      used = n;
    }
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::string error;
  Ctx ctx;
  ctx.stdoutTty = ::isatty(STDOUT_FILENO) == 1;
  ctx.stderrTty = ::isatty(STDERR_FILENO) == 1;
  const bool parsed = parse(argc, argv, a, error);
  ctx.out = Style::detect(STDOUT_FILENO, a.flags.contains("no-color"));
  ctx.err = Style::detect(STDERR_FILENO, a.flags.contains("no-color"));
  if (!parsed) {
    fail(ctx, kExitUsage, error);
    std::fprintf(stderr, "(see: citygatectl --help)\n");
    return kExitUsage;
  }
  if (a.flags.contains("version")) {
    std::printf("citygatectl %s\n", CITYGATE_VERSION);
    return 0;
  }
  ctx.json = a.flags.contains("json");
  if (a.has("socket")) ctx.socket = a.value("socket");
  // Human output fits the terminal (80 columns when piped); JSON is left whole.
  if (!ctx.json) {
    const std::size_t width = outputWidth(STDOUT_FILENO);
    ctx.out.width = width;
    ctx.err.width = width;
    wrapStandardStreams(width);
  }

  // `help [COMMAND...]`
  if (!a.positional.empty() && a.positional[0] == "help") {
    std::vector<std::string> rest(a.positional.begin() + 1, a.positional.end());
    if (rest.empty()) {
      std::fputs(generalHelp().c_str(), stdout);
      return 0;
    }
    std::size_t used = 0;
    const auto* c = resolve(rest, used);
    if (c == nullptr && rest.size() == 1 && !subcommands(rest[0]).empty()) return groupHelp(rest[0]);
    if (c == nullptr) return usageError(ctx, "help", unknownCommand(rest));
    std::fputs(commandHelp(*c).c_str(), stdout);
    return 0;
  }
  if (a.positional.empty()) {
    if (a.help) {
      std::fputs(generalHelp().c_str(), stdout);
      return 0;
    }
    std::fputs(generalHelp().c_str(), stderr);
    return kExitUsage;
  }
  std::size_t used = 0;
  const auto* c = resolve(a.positional, used);
  if (c == nullptr) {
    // "config" or "modbus" alone lists their subcommands; anything else gets the closest name.
    const std::string& group = a.positional[0];
    if (a.help && !subcommands(group).empty()) return groupHelp(group);
    return usageError(ctx, subcommands(group).empty() ? "" : group, unknownCommand(a.positional));
  }
  if (a.help) {
    std::fputs(commandHelp(*c).c_str(), stdout);
    return 0;
  }
  std::vector<std::string> accepted(kGlobalOptions.begin(), kGlobalOptions.end());
  accepted.insert(accepted.end(), c->options.begin(), c->options.end());
  std::vector<std::string> given;
  for (const auto& [name, v] : a.values) given.push_back(name);
  given.insert(given.end(), a.flags.begin(), a.flags.end());
  for (const auto& name : given) {
    if (std::find(accepted.begin(), accepted.end(), name) == accepted.end()) {
      const auto near = citygate::core::closest(name, accepted);
      return usageError(
          ctx, c->name,
          std::string(c->name) + " has no option --" + name + (near ? "; did you mean --" + *near + "?" : ""));
    }
  }
  const std::size_t operands = a.positional.size() - used;
  if (operands < c->minOperands || operands > c->maxOperands) {
    return usageError(ctx, c->name, std::string("usage: citygatectl ") + c->name + " " + c->usage);
  }
  installInterruptHandlers();
  return c->run(ctx, a);
}
