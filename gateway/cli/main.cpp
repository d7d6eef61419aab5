// citygatectl: the field technician's tool. Talks to citygated over its control socket; works
// without the daemon where that makes sense (config validate; modbus read/probe/scan on the port).
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/cli.hpp"

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
  std::fprintf(stderr, "(see: citygatectl %s --help)\n", command.c_str());
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
const std::set<std::string> kValueOptions{"socket",    "device",       "count",   "config", "tcp",
                                          "rtu",       "rtu-over-tcp", "baud",    "parity", "data-bits",
                                          "stop-bits", "table",        "timeout", "logger"};
const std::set<std::string> kGlobalOptions{"socket", "json", "no-color", "help", "version"};

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
    if (arg.rfind("--", 0) != 0) {
      error = "unknown option '" + arg + "'";
      return false;
    }
    std::string name = arg.substr(2);
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

  // `help [COMMAND...]`
  if (!a.positional.empty() && a.positional[0] == "help") {
    std::vector<std::string> rest(a.positional.begin() + 1, a.positional.end());
    if (rest.empty()) {
      std::fputs(generalHelp().c_str(), stdout);
      return 0;
    }
    std::size_t used = 0;
    const auto* c = resolve(rest, used);
    if (c == nullptr) return usageError(ctx, "help", "no command '" + rest[0] + "'");
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
    // "config" or "modbus" alone: list their subcommands.
    std::string group = a.positional[0];
    std::string subs;
    for (const auto& cmd : commands()) {
      if (std::string(cmd.name).rfind(group + " ", 0) == 0) subs += std::string(subs.empty() ? "" : ", ") + cmd.name;
    }
    if (!subs.empty()) {
      if (a.help) {
        for (const auto& cmd : commands()) {
          if (std::string(cmd.name).rfind(group + " ", 0) == 0) std::fputs((commandHelp(cmd) + "\n").c_str(), stdout);
        }
        return 0;
      }
      return usageError(ctx, group, group + " wants a subcommand: " + subs);
    }
    return usageError(ctx, "", "unknown command '" + group + "'");
  }
  if (a.help) {
    std::fputs(commandHelp(*c).c_str(), stdout);
    return 0;
  }
  for (const auto& [name, v] : a.values) {
    if (!kGlobalOptions.contains(name) && std::find(c->options.begin(), c->options.end(), name) == c->options.end()) {
      return usageError(ctx, c->name, std::string(c->name) + " has no option --" + name);
    }
  }
  for (const auto& name : a.flags) {
    if (!kGlobalOptions.contains(name) && std::find(c->options.begin(), c->options.end(), name) == c->options.end()) {
      return usageError(ctx, c->name, std::string(c->name) + " has no option --" + name);
    }
  }
  const std::size_t operands = a.positional.size() - used;
  if (operands < c->minOperands || operands > c->maxOperands) {
    return usageError(ctx, c->name, std::string("usage: citygatectl ") + c->name + " " + c->usage);
  }
  installInterruptHandlers();
  return c->run(ctx, a);
}
