// Must not compile: float16 autocast with a gradient scaler is CUDA's; the CPU has BF16Mixed.
// (The check is in Fabric, which the Trainer holds: a Fabric of these policies fails alike.)
#include <lightning/lightning.hpp>
namespace L = lightning;
int main() {
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F16Mixed> trainer;
  (void)trainer;
}
