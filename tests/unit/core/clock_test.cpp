// The clock seam: SystemClock's timers on a real io_context (zero delays: nothing here waits), and
// ManualClock, which every timer-driven unit test stands on.
#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <string>

#include "core/clock.hpp"
#include "support/manual_clock.hpp"

using namespace citygate;
using namespace std::chrono_literals;

TEST_CASE("a system timer fires once on the executor, never inside start()") {
  boost::asio::io_context ioc;
  core::SystemClock clock(ioc.get_executor());
  auto t = clock.makeTimer();
  int fired = 0;
  t->start(0s, [&] { ++fired; });
  CHECK(t->armed());
  CHECK(fired == 0);
  ioc.run();
  CHECK(fired == 1);
  CHECK_FALSE(t->armed());
}

TEST_CASE("a cancelled or replaced system timer drops its handler uncalled") {
  boost::asio::io_context ioc;
  core::SystemClock clock(ioc.get_executor());
  auto t = clock.makeTimer();
  std::string log;
  t->start(0s, [&] { log += "a"; });
  t->start(0s, [&] { log += "b"; });
  auto u = clock.makeTimer();
  u->start(0s, [&] { log += "c"; });
  u->cancel();
  ioc.run();
  CHECK(log == "b");
}

TEST_CASE("a destroyed system timer drops its pending handler uncalled") {
  boost::asio::io_context ioc;
  core::SystemClock clock(ioc.get_executor());
  auto t = clock.makeTimer();
  auto kept = std::make_shared<int>(0);
  t->start(0s, [kept] { ++*kept; });
  CHECK(kept.use_count() == 2);
  t.reset();
  ioc.run();
  CHECK(*kept == 0);
  CHECK(kept.use_count() == 1);
}

TEST_CASE("the manual clock starts a minute after boot and moves only when told") {
  testing::ManualClock clock;
  CHECK(clock.steadyNow().time_since_epoch() == 60s);
  const WallTime wall = clock.wallNow();
  clock.advance(1500ms);
  CHECK(clock.steadyNow().time_since_epoch() == 61500ms);
  CHECK(clock.wallNow() - wall == 1500ms);
}

TEST_CASE("manual timers fire in due order, each at its own time, re-arming on the way") {
  testing::ManualClock clock;
  auto a = clock.makeTimer();
  auto b = clock.makeTimer();
  std::vector<std::pair<char, SteadyClock::duration>> seen;
  const SteadyTime t0 = clock.steadyNow();
  std::function<void()> tickA = [&] {
    seen.emplace_back('a', clock.steadyNow() - t0);
    a->start(1s, tickA);
  };
  a->start(1s, tickA);
  b->start(1500ms, [&] { seen.emplace_back('b', clock.steadyNow() - t0); });
  int settled = 0;
  clock.advance(3s, [&] { ++settled; });
  REQUIRE(seen.size() == 4);
  CHECK(seen[0] == std::pair{'a', SteadyClock::duration(1s)});
  CHECK(seen[1] == std::pair{'b', SteadyClock::duration(1500ms)});
  CHECK(seen[2] == std::pair{'a', SteadyClock::duration(2s)});
  CHECK(seen[3] == std::pair{'a', SteadyClock::duration(3s)});
  CHECK(settled == 4);
  CHECK(clock.armedTimers() == 1);
  CHECK(clock.nextDue() == t0 + 4s);
}

TEST_CASE("a cancelled or destroyed manual timer never fires") {
  testing::ManualClock clock;
  auto a = clock.makeTimer();
  auto b = clock.makeTimer();
  int fired = 0;
  a->start(1s, [&] { ++fired; });
  b->start(1s, [&] { ++fired; });
  a->cancel();
  b.reset();
  clock.advance(10s);
  CHECK(fired == 0);
  CHECK(clock.armedTimers() == 0);
}
