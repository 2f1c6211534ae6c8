// Must not compile: the precision policy is given where the accelerator goes.
#include <lightning/lightning.hpp>
namespace L = lightning;
int main() {
  L::Trainer<L::precision::F64, L::strategies::SingleDevice, L::precision::F32> trainer;
  (void)trainer;
}
