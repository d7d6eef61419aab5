// Configuration texts as the control socket shows them (pure functions): secrets redacted, and
// the line diff between the running configuration and a proposed one.
#pragma once

#include <string>
#include <string_view>

namespace citygate::control {

// Replaces the quoted value of every secret field (nwk_s_key, app_s_key, password, and any
// other field whose name ends in "_key" or "secret") with "<redacted>". File names (…_file) are
// kept: they are not secrets. Comments and layout are kept.
std::string redactSecrets(std::string_view text);

// A unified diff (3 lines of context) from `before` to `after`; empty when they are equal. Lines
// are compared exactly. Large rewrites (more than ~1M line pairs to compare after trimming the
// common head and tail) are shown as one hunk replacing the differing middle.
std::string unifiedDiff(std::string_view before, std::string_view after, std::string_view beforeName,
                        std::string_view afterName);

}  // namespace citygate::control
