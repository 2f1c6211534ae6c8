// An optimizer's state saved by a background checkpoint: taken at the save, written
// later, equal to what a synchronous save would have written, and training unchanged.
#include <gtest/gtest.h>

#include <lightning/fabric/checkpoint_state.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace L = lightning;
namespace O = torch::optim;

namespace {

struct DeferNet : torch::nn::Module {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(4, 3))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(3, 1))};
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::tanh(fc1(x))); }
};

// Two identical nets with an optimizer each, built by `make`, trained on the same data.
struct Run {
  std::shared_ptr<DeferNet> net = std::make_shared<DeferNet>();
  std::unique_ptr<O::Optimizer> optimizer;
  void step(int64_t i) {
    torch::manual_seed(100 + i);
    const auto x = torch::randn({8, 4}), y = torch::randn({8, 1});
    optimizer->zero_grad();
    torch::mse_loss(net->forward(x), y).backward();
    optimizer->step();
  }
};

using MakeOptimizer = std::function<std::unique_ptr<O::Optimizer>(std::vector<at::Tensor>)>;

Run make_run(const MakeOptimizer& make) {
  torch::manual_seed(7);
  Run r;
  r.optimizer = make(r.net->parameters());
  return r;
}

void expect_same_parameters(const DeferNet& a, const DeferNet& b, const std::string& what) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  for (const auto& p : pa)
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << what << ": " << p.key();
}

struct Case {
  std::string name;
  MakeOptimizer make;
};

std::vector<Case> optimizers() {
  return {
      {"Adam amsgrad",
       [](auto p) { return std::make_unique<O::Adam>(p, O::AdamOptions(0.01).amsgrad(true)); }},
      {"AdamW", [](auto p) { return std::make_unique<O::AdamW>(p, O::AdamWOptions(0.01)); }},
      {"SGD momentum",
       [](auto p) { return std::make_unique<O::SGD>(p, O::SGDOptions(0.05).momentum(0.9)); }},
      {"RMSprop centered",
       [](auto p) {
         return std::make_unique<O::RMSprop>(p,
                                             O::RMSpropOptions(0.01).momentum(0.5).centered(true));
       }},
      {"Adagrad", [](auto p) { return std::make_unique<O::Adagrad>(p, O::AdagradOptions(0.1)); }},
  };
}

}  // namespace

TEST(CheckpointState, ADeferredOptimizerStateIsTheStateAtTheSaveAndLeavesTrainingAlone) {
  for (const auto& c : optimizers()) {
    SCOPED_TRACE(c.name);
    auto saved = make_run(c.make), reference = make_run(c.make);
    for (int64_t i = 0; i < 3; ++i) {
      saved.step(i);
      reference.step(i);
    }
    const auto at_save = L::optimizer_state(*reference.optimizer);  // synchronous
    std::function<torch::Tensor()> archive_later;
    auto deferred = L::optimizer_state_deferred(*saved.optimizer, archive_later);
    ASSERT_TRUE(archive_later) << "a known optimizer's archive is left for later";
    EXPECT_TRUE(deferred.at("archive").isNone());

    // Training goes on before the archive is written, as it does with the writer thread.
    for (int64_t i = 3; i < 6; ++i) {
      saved.step(i);
      reference.step(i);
    }
    expect_same_parameters(*saved.net, *reference.net, "training after the save");
    deferred.insert_or_assign("archive", archive_later());

    // Both entries resume the same: the state of step 3, not of step 6.
    auto from_deferred = make_run(c.make), from_sync = make_run(c.make);
    for (auto* r : {&from_deferred, &from_sync})
      for (int64_t i = 0; i < 3; ++i) r->step(i);  // the parameters as they were at the save
    L::load_optimizer_state(*from_deferred.optimizer, deferred);
    L::load_optimizer_state(*from_sync.optimizer, at_save);
    for (int64_t i = 3; i < 6; ++i) {
      from_deferred.step(i);
      from_sync.step(i);
    }
    expect_same_parameters(*from_deferred.net, *from_sync.net, "resumed");
    expect_same_parameters(*from_deferred.net, *reference.net, "resumed against uninterrupted");
  }
}

namespace {
// A user's optimizer built on Adam: it may save more than Adam does, so it is not
// stood in for by a plain Adam.
struct MyAdam : O::Adam {
  using O::Adam::Adam;
};
}  // namespace

TEST(CheckpointState, AnOptimizerWhoseStateCannotBeCopiedIsSerialisedAtOnce) {
  const std::vector<Case> cases = {
      {"LBFGS", [](auto p) { return std::make_unique<O::LBFGS>(p, O::LBFGSOptions(0.1)); }},
      {"derived from Adam",
       [](auto p) { return std::make_unique<MyAdam>(p, O::AdamOptions(0.01)); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = make_run(c.make);
    std::function<torch::Tensor()> archive_later;
    const auto entry = L::optimizer_state_deferred(*r.optimizer, archive_later);
    EXPECT_FALSE(archive_later);
    EXPECT_TRUE(entry.at("archive").isTensor());
  }
}
