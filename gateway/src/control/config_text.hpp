// Configuration texts as the control socket shows them (pure functions): secrets redacted, and
// the line diff between the running configuration and a proposed one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::control {

// Replaces the quoted value of every secret field (nwk_s_key, app_s_key, password, and any
// other field whose name ends in "_key" or "secret") with "<redacted>". File names (…_file) are
// kept: they are not secrets. Comments and layout are kept.
std::string redactSecrets(std::string_view text);

// `config show` output applied back (`config apply`, `config diff`): a secret whose value is
// "<redacted>" stands for the running configuration's value of that secret at the same place. The
// place is the chain of enclosing blocks, each named by its `id` (or `name`) field where it has
// one (a LoRa device by its id, so reordering devices cannot hand one device another's key), by
// its position among its like-named siblings otherwise, and the secret's field name. Where the
// running text has no real value there, the "<redacted>" stays and an error says so.
struct SecretMerge {
  std::string text;                 // `text` with the running secrets' literals in place
  std::size_t kept = 0;             // "<redacted>" values replaced
  std::vector<std::string> errors;  // FILE:LINE:COL: message (no secret in any of them)
};
SecretMerge keepRedactedSecrets(std::string_view file, std::string_view text, std::string_view running);

// A unified diff (3 lines of context) from `before` to `after`; empty when they are equal. Lines
// are compared exactly. Large rewrites (more than ~1M line pairs to compare after trimming the
// common head and tail) are shown as one hunk replacing the differing middle.
std::string unifiedDiff(std::string_view before, std::string_view after, std::string_view beforeName,
                        std::string_view afterName);

}  // namespace citygate::control
