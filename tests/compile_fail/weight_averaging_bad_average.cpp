// Must not compile: an averaging rule that does not take (averaged, current, n_averaged).
#include <lightning/lightning.hpp>
namespace L = lightning;
struct TwoArgumentAverage {
  torch::Tensor operator()(const torch::Tensor& averaged, const torch::Tensor& current) const {
    return (averaged + current) / 2;
  }
};
int main() {
  L::callbacks::WeightAveraging<TwoArgumentAverage> averaging;
  (void)averaging;
}
