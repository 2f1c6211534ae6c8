// Must not compile: two profilers among the callbacks (Lightning's Trainer takes one).
#include <lightning/lightning.hpp>
namespace L = lightning;
int main() {
  L::Trainer trainer({}, L::SimpleProfiler(), L::SimpleProfiler({.extended = false}));
  (void)trainer;
}
