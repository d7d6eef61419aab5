#include "ports/host/traffic_scenario.hpp"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace citygate::fw::host {
namespace {

// An unsigned decimal of at most `decimals` fraction digits, scaled by 10^decimals.
bool number(const char*& p, const char* end, unsigned decimals, uint64_t max, uint64_t& out) {
  uint64_t v = 0;
  unsigned digits = 0;
  while (p < end && *p >= '0' && *p <= '9') {
    v = v * 10 + static_cast<uint64_t>(*p++ - '0');
    if (++digits > 12) return false;
  }
  if (digits == 0) return false;
  unsigned frac = 0;
  if (p < end && *p == '.' && decimals > 0) {
    ++p;
    while (p < end && *p >= '0' && *p <= '9') {
      if (frac == decimals) return false;
      v = v * 10 + static_cast<uint64_t>(*p++ - '0');
      ++frac;
    }
    if (frac == 0) return false;
  }
  for (; frac < decimals; ++frac) v *= 10;
  if (v > max) return false;
  if (p < end && *p != ' ' && *p != '\t' && *p != '#' && *p != '\r') return false;
  out = v;
  return true;
}

void skipBlanks(const char*& p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
}

}  // namespace

ScenarioDetectors::~ScenarioDetectors() {
  free(passages_);
}

bool ScenarioDetectors::load(const char* path, char* error, size_t errorSize) {
  FILE* f = fopen(path, "rb");
  if (f == nullptr) {
    snprintf(error, errorSize, "%s: %s", path, strerror(errno));
    return false;
  }
  char* text = nullptr;
  size_t size = 0;
  size_t cap = 0;
  for (;;) {
    if (size == cap) {
      cap = cap == 0 ? 65536 : cap * 2;
      char* grown = static_cast<char*>(realloc(text, cap));
      if (grown == nullptr) {
        free(text);
        fclose(f);
        snprintf(error, errorSize, "%s: out of memory", path);
        return false;
      }
      text = grown;
    }
    const size_t n = fread(text + size, 1, cap - size, f);
    if (n == 0) break;
    size += n;
  }
  const bool readError = ferror(f) != 0;
  fclose(f);
  if (readError) {
    free(text);
    snprintf(error, errorSize, "%s: read error", path);
    return false;
  }
  const bool ok = parse(path, text, size, error, errorSize);
  free(text);
  return ok;
}

bool ScenarioDetectors::parse(const char* name, const char* text, size_t size, char* error, size_t errorSize) {
  free(passages_);
  passages_ = nullptr;
  size_ = next_ = 0;
  size_t lines = 1;
  for (size_t i = 0; i < size; ++i) lines += text[i] == '\n';
  if (lines > kMaxPassages) lines = kMaxPassages;
  passages_ = static_cast<hal::Passage*>(calloc(lines, sizeof(hal::Passage)));
  if (passages_ == nullptr) {
    snprintf(error, errorSize, "%s: out of memory", name);
    return false;
  }
  const char* p = text;
  const char* end = text + size;
  size_t line = 0;
  while (p < end) {
    ++line;
    const char* eol = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
    if (eol == nullptr) eol = end;
    const char* q = p;
    p = eol < end ? eol + 1 : end;
    skipBlanks(q, eol);
    if (q == eol || *q == '#') continue;
    if (size_ >= kMaxPassages) {
      snprintf(error, errorSize, "%s:%zu: more than %zu passages", name, line, kMaxPassages);
      return false;
    }
    static const char* const kWhat[] = {"AT_MS (ms after the start)", "LANE (1..8)",
                                        "SPEED_KMH (0..6553.5, one decimal at most)", "LENGTH_CM (0..65535)",
                                        "OCCUPIED_MS"};
    static const unsigned kDecimals[] = {0, 0, 1, 0, 0};
    static const uint64_t kMax[] = {0x7FFFFFFF, 8, 65535, 65535, 0x7FFFFFFF};
    uint64_t v[5] = {};
    for (int k = 0; k < 5; ++k) {
      skipBlanks(q, eol);
      if (q == eol || *q == '#') {
        snprintf(error, errorSize, "%s:%zu: missing %s (AT_MS LANE SPEED_KMH LENGTH_CM OCCUPIED_MS)", name, line,
                 kWhat[k]);
        return false;
      }
      if (!number(q, eol, kDecimals[k], kMax[k], v[k]) || (k == 1 && v[k] == 0)) {
        snprintf(error, errorSize, "%s:%zu: bad %s", name, line, kWhat[k]);
        return false;
      }
    }
    skipBlanks(q, eol);
    if (q != eol && *q != '#') {
      snprintf(error, errorSize, "%s:%zu: unexpected text after OCCUPIED_MS", name, line);
      return false;
    }
    hal::Passage& out = passages_[size_];
    out.atMs = static_cast<uint32_t>(v[0]);
    out.lane = static_cast<uint8_t>(v[1]);
    out.speedDecikmh = static_cast<uint16_t>(v[2]);
    out.lengthCm = static_cast<uint16_t>(v[3]);
    out.occupiedMs = static_cast<uint32_t>(v[4]);
    if (size_ > 0 && out.atMs < passages_[size_ - 1].atMs) {
      snprintf(error, errorSize, "%s:%zu: AT_MS %u is before the previous line's %u", name, line, out.atMs,
               passages_[size_ - 1].atMs);
      return false;
    }
    ++size_;
  }
  return true;
}

bool ScenarioDetectors::next(hal::Passage& out) {
  if (next_ >= size_) return false;
  if (static_cast<int32_t>(passages_[next_].atMs - clock_.nowMs()) > 0) return false;
  out = passages_[next_++];
  return true;
}

uint32_t ScenarioDetectors::msUntilNext(uint32_t nowMs) const {
  if (next_ >= size_) return 0xFFFFFFFFu;
  const int32_t d = static_cast<int32_t>(passages_[next_].atMs - nowMs);
  return d <= 0 ? 0 : static_cast<uint32_t>(d);
}

}  // namespace citygate::fw::host
