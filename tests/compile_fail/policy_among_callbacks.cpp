// Must not compile: a strategy is passed as a callback.
#include <lightning/lightning.hpp>
namespace L = lightning;
int main() {
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
             L::strategies::SingleDevice>
      trainer({}, L::strategies::SingleDevice{});
  (void)trainer;
}
