// StopTracker: the threads that were told to stop and have not ended yet (a bus worker finishing
// its transaction), so that shutdown waits for them without blocking the executor: whenIdle()
// runs its callback once the last one has ended. Executor only.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

namespace citygate::core {

class StopTracker {
 public:
  // One more thread to wait for; the returned callback says it ended (call it once, on the
  // executor).
  std::function<void()> add() {
    ++running_;
    return [this] { ended(); };
  }
  std::size_t running() const { return running_; }
  void whenIdle(std::function<void()> cb) {
    if (running_ == 0) {
      cb();
      return;
    }
    waiting_.push_back(std::move(cb));
  }

 private:
  void ended() {
    if (running_ > 0) --running_;
    if (running_ != 0) return;
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& cb : waiting) cb();
  }

  std::size_t running_ = 0;
  std::vector<std::function<void()>> waiting_;
};

}  // namespace citygate::core
