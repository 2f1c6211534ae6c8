// Optimizer states in PyTorch's layout: a checkpoint's optimizer state resumes exactly,
// Python's torch.optim loads it and takes the same step, and bad states are clear errors.
#include <gtest/gtest.h>

#include "support/python.hpp"

#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/fabric/checkpoint_state.hpp>
#include <lightning/fabric/checkpoint_writer.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace L = lightning;
namespace O = torch::optim;

namespace {

struct StateNet : torch::nn::Module {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(4, 3))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(3, 1))};
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::tanh(fc1(x))); }
};

// A net and its optimizer, trained on batches that depend only on the step's number.
struct TrainedNet {
  std::shared_ptr<StateNet> net = std::make_shared<StateNet>();
  std::unique_ptr<O::Optimizer> optimizer;
  void step(std::int64_t i) {
    torch::manual_seed(100 + i);
    const auto x = torch::randn({8, 4}), y = torch::randn({8, 1});
    optimizer->zero_grad();
    torch::mse_loss(net->forward(x), y).backward();
    optimizer->step();
  }
};

using MakeOptimizer = std::function<std::unique_ptr<O::Optimizer>(std::vector<at::Tensor>)>;

TrainedNet make_run(const MakeOptimizer& make) {
  torch::manual_seed(7);
  TrainedNet r;
  r.optimizer = make(r.net->parameters());
  return r;
}

void expect_same_parameters(const StateNet& a, const StateNet& b, const std::string& what) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  for (const auto& p : pa)
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << what << ": " << p.key();
}

struct Case {
  std::string name;
  MakeOptimizer make;
  std::string python;  // the same optimizer in Python, over `params`
};

std::vector<Case> pytorch_layout_optimizers() {
  return {
      {"Adam amsgrad",
       [](auto p) { return std::make_unique<O::Adam>(p, O::AdamOptions(0.01).amsgrad(true)); },
       "torch.optim.Adam(params, lr=0.5)"},
      {"AdamW", [](auto p) { return std::make_unique<O::AdamW>(p, O::AdamWOptions(0.01)); },
       "torch.optim.AdamW(params, lr=0.5)"},
      {"SGD momentum",
       [](auto p) {
         return std::make_unique<O::SGD>(p, O::SGDOptions(0.05).momentum(0.9).nesterov(true));
       },
       "torch.optim.SGD(params, lr=0.5, momentum=0.1)"},
      {"RMSprop centered",
       [](auto p) {
         return std::make_unique<O::RMSprop>(p,
                                             O::RMSpropOptions(0.01).momentum(0.5).centered(true));
       },
       "torch.optim.RMSprop(params, lr=0.5)"},
      {"Adagrad", [](auto p) { return std::make_unique<O::Adagrad>(p, O::AdagradOptions(0.1)); },
       "torch.optim.Adagrad(params, lr=0.5)"},
  };
}

std::filesystem::path scratch_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("lightning_optstate_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace

TEST(OptimizerStateDict, ResumesExactlyThroughAFileAndRestoresTheOptions) {
  for (const auto& c : pytorch_layout_optimizers()) {
    SCOPED_TRACE(c.name);
    auto saved = make_run(c.make), resumed = make_run(c.make);
    for (std::int64_t i = 0; i < 3; ++i) {
      saved.step(i);
      resumed.step(i);  // the parameters as they were at the save
    }
    ASSERT_TRUE(L::has_pytorch_layout(*saved.optimizer));
    const auto file = scratch_file("resume.ckpt");
    auto content = L::make_checkpoint();
    content.insert("optimizer", L::optimizer_state(*saved.optimizer));
    L::save_checkpoint_file(file, content);  // int keys, tuples and the checksum survive

    resumed.optimizer->param_groups()[0].options().set_lr(123.0);  // overwritten by the load
    resumed.optimizer->state().clear();
    L::load_optimizer_state(*resumed.optimizer,
                            L::checkpoint_dict(L::load_checkpoint_file(file).at("optimizer")));
    std::filesystem::remove(file);
    EXPECT_EQ(resumed.optimizer->param_groups()[0].options().get_lr(),
              saved.optimizer->param_groups()[0].options().get_lr());
    for (std::int64_t i = 3; i < 6; ++i) {
      saved.step(i);
      resumed.step(i);
    }
    expect_same_parameters(*resumed.net, *saved.net, "resumed against uninterrupted");
  }
}

TEST(OptimizerStateDict, ABackgroundSaveKeepsTheStateOfItsStep) {
  for (const auto& c : pytorch_layout_optimizers()) {
    SCOPED_TRACE(c.name);
    auto saved = make_run(c.make), reference = make_run(c.make);
    for (std::int64_t i = 0; i < 3; ++i) {
      saved.step(i);
      reference.step(i);
    }
    auto content = L::make_checkpoint();
    content.insert("optimizer", L::optimizer_state(*saved.optimizer));
    const auto snapshot = L::checkpoint_snapshot(content).toGenericDict();
    for (std::int64_t i = 3; i < 6; ++i) saved.step(i);  // training goes on, in place

    L::load_optimizer_state(*reference.optimizer, L::checkpoint_dict(snapshot.at("optimizer")));
    auto again = make_run(c.make);
    for (std::int64_t i = 0; i < 6; ++i) again.step(i);
    for (std::int64_t i = 3; i < 6; ++i) reference.step(i);
    expect_same_parameters(*reference.net, *again.net, "resumed from the snapshot");
  }
}

TEST(OptimizerStateDict, PythonsOptimizerLoadsItAndTakesTheSameStep) {
  // One checkpoint per optimizer, each after 3 steps; then one more step here and, from
  // the checkpoint, in Python (one interpreter for all: importing torch takes seconds).
  const auto cases = pytorch_layout_optimizers();
  torch::manual_seed(100 + 3);
  const auto x = torch::randn({8, 4}), y = torch::randn({8, 1});
  auto batch = L::make_checkpoint();
  batch.insert("x", x);
  batch.insert("y", y);
  const auto batch_file = scratch_file("batch.ckpt");
  L::save_checkpoint_file(batch_file, batch);
  std::vector<TrainedNet> runs;
  std::string program =
      "import torch\n"
      "b = torch.load('" +
      batch_file.string() +
      "', weights_only=True)\n"
      "def step(path, make):\n"
      "    d = torch.load(path, weights_only=True)\n"
      "    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), "
      "torch.nn.Linear(3, 1))\n"
      "    sd = d['state_dict']\n"
      "    net[0].weight.data = sd['fc1.weight']; net[0].bias.data = sd['fc1.bias']\n"
      "    net[2].weight.data = sd['fc2.weight']; net[2].bias.data = sd['fc2.bias']\n"
      "    params = [net[0].weight, net[0].bias, net[2].weight, net[2].bias]\n"
      "    opt = make(params)\n"
      "    opt.load_state_dict(d['optimizer'])\n"
      "    opt.zero_grad()\n"
      "    torch.nn.functional.mse_loss(net(b['x']), b['y']).backward()\n"
      "    opt.step()\n"
      "    for p in params: print(' '.join('%.9e' % v for v in p.detach().flatten().tolist()))\n";
  for (std::size_t k = 0; k < cases.size(); ++k) {
    auto r = make_run(cases[k].make);
    for (std::int64_t i = 0; i < 3; ++i) r.step(i);
    const auto file = scratch_file("python" + std::to_string(k) + ".ckpt");
    auto content = L::make_checkpoint();
    content.insert("state_dict", L::module_state_dict(*r.net));
    content.insert("optimizer", L::optimizer_state(*r.optimizer));
    L::save_checkpoint_file(file, content);
    r.step(3);
    runs.push_back(std::move(r));
    program += "step('" + file.string() + "', lambda params: " + cases[k].python + ")\n";
  }
  const auto result = lightning::testing::run_python_program(program);
  for (std::size_t k = 0; k < cases.size(); ++k)
    std::filesystem::remove(scratch_file("python" + std::to_string(k) + ".ckpt"));
  std::filesystem::remove(batch_file);
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto lines = lightning::testing::lines_of(result.output);
  ASSERT_EQ(lines.size(), 4 * cases.size()) << result.output;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE(cases[k].name);
    const auto& net = *runs[k].net;
    const std::vector<at::Tensor> ours = {net.fc1->weight, net.fc1->bias, net.fc2->weight,
                                          net.fc2->bias};
    for (std::size_t j = 0; j < ours.size(); ++j) {
      std::vector<double> theirs;
      std::istringstream in(lines[4 * k + j]);
      for (double v; in >> v;) theirs.push_back(v);
      const auto t = torch::tensor(theirs, torch::kDouble).view_as(ours[j]);
      // The update rules are the same; the arithmetic differs in the last bits.
      EXPECT_TRUE(torch::allclose(ours[j].to(torch::kDouble), t, 1e-5, 1e-6))
          << "parameter " << j << ": ours " << ours[j] << " Python's " << t;
    }
  }
}

TEST(OptimizerStateDict, AStateThatPythonSavedLoadsAndStepsAsPythonDoes) {
  const auto file = scratch_file("from_python.pt");
  const auto result = lightning::testing::run_python_program(
      "import torch\n"
      "torch.manual_seed(0)\n"
      "net = torch.nn.Linear(4, 1)\n"
      "opt = torch.optim.Adam(net.parameters(), lr=0.01, amsgrad=True, weight_decay=0)\n"
      "x, y = torch.randn(8, 4), torch.randn(8, 1)\n"
      "def step():\n"
      "    opt.zero_grad()\n"
      "    torch.nn.functional.mse_loss(net(x), y).backward()\n"
      "    opt.step()\n"
      "for _ in range(3): step()\n"
      "torch.save({'weight': net.weight.detach().clone(), 'bias': net.bias.detach().clone(), "
      "'x': x, 'y': y, 'optimizer': opt.state_dict()}, '" +
      file.string() +
      "')\n"
      "step()\n"
      "print(' '.join('%.9e' % v for v in torch.cat([net.weight.flatten(), "
      "net.bias]).tolist()))\n");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  std::ifstream in(file, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::filesystem::remove(file);
  const auto saved = torch::pickle_load(bytes).toGenericDict();

  torch::nn::Linear net(4, 1);
  {
    torch::NoGradGuard no_grad;
    net->weight.copy_(saved.at("weight").toTensor());
    net->bias.copy_(saved.at("bias").toTensor());
  }
  O::Adam optimizer(net->parameters(), O::AdamOptions(0.5));  // the load sets lr and amsgrad
  L::load_optimizer_state(optimizer, L::checkpoint_dict(saved.at("optimizer")), "from_python.pt");
  EXPECT_TRUE(static_cast<O::AdamOptions&>(optimizer.param_groups()[0].options()).amsgrad());
  optimizer.zero_grad();
  torch::mse_loss(net(saved.at("x").toTensor()), saved.at("y").toTensor()).backward();
  optimizer.step();

  std::vector<double> theirs;
  std::istringstream line(lightning::testing::lines_of(result.output).at(0));
  for (double v; line >> v;) theirs.push_back(v);
  const auto ours = torch::cat({net->weight.flatten(), net->bias}).to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(ours, torch::tensor(theirs, torch::kDouble), 1e-5, 1e-6))
      << "ours " << ours << " Python's " << theirs;
}

TEST(OptimizerStateDict, OtherOptimizersKeepLibTorchsArchive) {
  struct MyAdam : O::Adam {
    using O::Adam::Adam;
  };
  auto lbfgs = make_run([](auto p) { return std::make_unique<O::LBFGS>(p, O::LBFGSOptions(0.1)); });
  auto mine = make_run([](auto p) { return std::make_unique<MyAdam>(p, O::AdamOptions(0.01)); });
  EXPECT_FALSE(L::has_pytorch_layout(*lbfgs.optimizer));
  EXPECT_FALSE(L::has_pytorch_layout(*mine.optimizer));  // a derived class may save more
  EXPECT_TRUE(L::optimizer_state(*lbfgs.optimizer).contains("archive"));
  mine.step(0);
  // Another lr and no state of its own: only the load can make it step as `mine` does.
  auto copy = make_run([](auto p) { return std::make_unique<MyAdam>(p, O::AdamOptions(0.5)); });
  L::load_module_state_dict(*copy.net, L::module_state_dict(*mine.net), "test");
  L::load_optimizer_state(*copy.optimizer, L::optimizer_state(*mine.optimizer));
  mine.step(1);
  copy.step(1);
  expect_same_parameters(*copy.net, *mine.net, "through LibTorch's archive");
}

TEST(OptimizerStateDict, TheArchiveFormOfEarlierCheckpointsStillLoads) {
  auto a = make_run([](auto p) { return std::make_unique<O::Adam>(p, O::AdamOptions(0.01)); });
  a.step(0);
  torch::serialize::OutputArchive archive;  // what optimizer_state wrote for an Adam before
  a.optimizer->save(archive);
  auto earlier = L::make_checkpoint();
  earlier.insert("archive", L::detail::archive_bytes(archive));
  earlier.insert("lrs", torch::tensor(L::lr::group_lrs(*a.optimizer), torch::kDouble));
  auto b = make_run([](auto p) { return std::make_unique<O::Adam>(p, O::AdamOptions(0.5)); });
  L::load_module_state_dict(*b.net, L::module_state_dict(*a.net), "test");
  L::load_optimizer_state(*b.optimizer, earlier);
  a.step(1);
  b.step(1);
  expect_same_parameters(*b.net, *a.net, "from the archive form");
}

TEST(OptimizerStateDict, MismatchesAreClearErrors) {
  auto two = make_run([](auto p) { return std::make_unique<O::Adam>(p, O::AdamOptions(0.01)); });
  two.step(0);
  const auto state = L::optimizer_state(*two.optimizer);

  torch::nn::Linear other(4, 2);  // 2 parameters where the state has 4
  O::Adam fewer(other->parameters(), 0.01);
  try {
    L::load_optimizer_state(fewer, state, "x.ckpt");
    FAIL();
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("x.ckpt: param group 0 of the optimizer state has 4 "
                                         "parameters, this optimizer's has 2"),
              std::string::npos)
        << e.what();
  }
  torch::nn::Linear wide(5, 3), out(3, 1);  // 4 parameters, the first of another shape
  std::vector<at::Tensor> params = wide->parameters();
  for (const auto& p : out->parameters()) params.push_back(p);
  O::Adam shaped(params, 0.2);
  try {
    L::load_optimizer_state(shaped, state, "x.ckpt");
    FAIL();
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("x.ckpt: the optimizer state \"exp_avg\" of parameter 0 "
                                         "has shape [3, 4], the parameter has [3, 5]"),
              std::string::npos)
        << e.what();
  }
  // A failed load leaves the optimizer as it was: its lr is not the state's 0.01.
  EXPECT_EQ(shaped.param_groups()[0].options().get_lr(), 0.2);
  EXPECT_TRUE(shaped.state().empty());
  O::SGD sgd(two.net->parameters(), 0.1);
  try {
    L::load_optimizer_state(sgd, state, "x.ckpt");  // an Adam state into an SGD
    FAIL();
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("x.ckpt: the optimizer state does not fit "
                                         "torch::optim::SGD"),
              std::string::npos)
        << e.what();
  }
}
