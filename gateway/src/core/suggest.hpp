// "Did you mean ...?": the closest of a set of names to a mistyped one, by edit distance
// (optimal string alignment: insertions, deletions, substitutions and swaps of two neighbours
// each cost 1). Pure, header-only: citygatectl (commands, subcommands, options) and the control
// socket's handlers (device ids, buses) share it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace citygate::core {

inline std::size_t editDistance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic-programming table: names are short.
  std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    prev2.swap(prev);
    prev.swap(cur);
  }
  return prev[b.size()];
}

// The candidate closest to `word`, when it is close enough to be what was meant: at most a third
// of the word's length away (at least 1, at most 3), or `word` is a prefix of exactly one
// candidate. Ties go to the first candidate.
template <typename Range>
std::optional<std::string> closest(std::string_view word, const Range& candidates) {
  if (word.empty()) return std::nullopt;
  const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  std::optional<std::string> best;
  std::size_t bestDistance = limit + 1;
  std::optional<std::string> prefixed;
  std::size_t prefixes = 0;
  for (const auto& c : candidates) {
    const std::string_view candidate(c);
    if (candidate == word) return std::string(candidate);
    if (candidate.substr(0, word.size()) == word) {
      ++prefixes;
      prefixed = std::string(candidate);
    }
    const std::size_t d = editDistance(word, candidate);
    if (d < bestDistance) {
      bestDistance = d;
      best = std::string(candidate);
    }
  }
  if (best) return best;
  if (prefixes == 1) return prefixed;
  return std::nullopt;
}

// "; did you mean 'X'?" or "".
template <typename Range>
std::string didYouMean(std::string_view word, const Range& candidates) {
  const auto c = closest(word, candidates);
  return c ? "; did you mean '" + *c + "'?" : std::string();
}

}  // namespace citygate::core
