// Must not compile: a profiler without setup() and describe().
#include <lightning/lightning.hpp>
#include <string_view>
namespace L = lightning;
struct HalfProfiler {
  static constexpr bool is_profiler = true;
  void start(std::string_view) {}
  void stop(std::string_view) {}
};
int main() {
  L::Trainer trainer({}, HalfProfiler{});
  (void)trainer;
}
