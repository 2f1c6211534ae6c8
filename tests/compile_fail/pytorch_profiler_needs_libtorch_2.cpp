// Must not compile against LibTorch 1.13 (the compat build; the default build does not
// compile this case): PyTorchProfiler drives the Kineto API of LibTorch 2.x.
namespace L = lightning;
int main() {
  L::PyTorchProfiler profiler;
  (void)profiler;
}
