// Must not compile: default_collate cannot batch these examples and no collate was given.
#include <lightning/data/data_loader.hpp>
struct Point {
  double x, y;
};
struct Points {
  std::int64_t size() const { return 4; }
  Point get(std::int64_t i) const { return {static_cast<double>(i), 0.0}; }
};
int main() {
  lightning::data::DataLoader loader(Points{}, {.batch_size = 2});
  (void)loader;
}
