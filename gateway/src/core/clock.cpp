#include "core/clock.hpp"

#include <boost/asio/steady_timer.hpp>

namespace citygate::core {
namespace {

class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(const boost::asio::any_io_executor& executor) : timer_(executor) {}
  ~AsioTimer() override { cancel(); }

  void start(SteadyClock::duration after, Handler handler) override {
    cancel();
    state_->armed = true;
    timer_.expires_after(after);
    // The handler lives in the wait: a cancelled wait completes with operation_aborted and drops
    // it uncalled. A wait that had already completed when it was cancelled or replaced (its
    // completion queued on the executor) finds the generation moved on; the state outlives this
    // object for that case.
    timer_.async_wait([state = state_, generation = state_->generation,
                       handler = std::move(handler)](const boost::system::error_code& ec) {
      if (ec || generation != state->generation) return;
      state->armed = false;
      handler();
    });
  }

  void cancel() override {
    ++state_->generation;
    state_->armed = false;
    timer_.cancel();
  }

  bool armed() const override { return state_->armed; }

 private:
  struct State {
    std::uint64_t generation = 0;
    bool armed = false;
  };
  boost::asio::steady_timer timer_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace

std::unique_ptr<Timer> SystemClock::makeTimer() {
  return std::make_unique<AsioTimer>(executor_);
}

}  // namespace citygate::core
