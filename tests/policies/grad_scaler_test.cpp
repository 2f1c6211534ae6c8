// GradScaler is torch.amp.GradScaler: Python's scaler runs a scripted sequence of 240
// steps with injected infinities and NaNs, and ours, given the same weights and data,
// has the same scale, growth tracker, skipped steps and parameters after every step.
#include <gtest/gtest.h>

#include "support/python.hpp"

#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/policies/grad_scaler.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace L = lightning;

namespace {

// Python's side: draws the weights and data, runs its scaler, and saves both the inputs
// and what it saw after each step.
constexpr const char* kPythonScaler = R"(
import torch
torch.manual_seed(3)
steps = 240
model = torch.nn.Linear(4, 3)
w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
X, Y = torch.randn(steps, 8, 4), torch.randn(steps, 8, 3)
inf_steps, nan_steps = [5, 6, 40, 41, 42, 97, 150, 151, 199], [12, 70, 71, 120, 180]
clip_steps = list(range(0, steps, 7))  # unscale_ by hand, then clip, then step
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=13)
scales, trackers, params = [], [], []
for k in range(steps):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X[k]), Y[k])
    scaler.scale(loss).backward()
    if k in inf_steps:
        model.weight.grad[1, 2] = float("inf")
    if k in nan_steps:
        model.bias.grad[0] = float("nan")
    if k in clip_steps:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    scaler.step(opt)
    scaler.update()
    scales.append(scaler.get_scale())
    trackers.append(scaler._get_growth_tracker())
    params.append(torch.cat([model.weight.detach().flatten(), model.bias.detach()]).clone())
torch.save({"w0": w0, "b0": b0, "X": X, "Y": Y,
            "inf_steps": torch.tensor(inf_steps), "nan_steps": torch.tensor(nan_steps),
            "clip_steps": torch.tensor(clip_steps),
            "scales": torch.tensor(scales, dtype=torch.float64),
            "trackers": torch.tensor(trackers), "params": torch.stack(params),
            "state": scaler.state_dict()}, "scaler_trace.pt")
)";

c10::IValue read_pickle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes);
}

std::set<std::int64_t> as_set(const torch::Tensor& t) {
  std::set<std::int64_t> out;
  for (std::int64_t i = 0; i < t.numel(); ++i) out.insert(t[i].item<std::int64_t>());
  return out;
}

}  // namespace

TEST(GradScaler, EqualsPythonsStepByStepWithInfinitiesAndNans) {
  const auto result = lightning::testing::run_python_program(kPythonScaler);
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto trace = read_pickle("scaler_trace.pt").toGenericDict();
  const auto X = trace.at("X").toTensor(), Y = trace.at("Y").toTensor();
  const auto scales = trace.at("scales").toTensor(), trackers = trace.at("trackers").toTensor();
  const auto params = trace.at("params").toTensor();
  const auto inf_steps = as_set(trace.at("inf_steps").toTensor());
  const auto nan_steps = as_set(trace.at("nan_steps").toTensor());
  const auto clip_steps = as_set(trace.at("clip_steps").toTensor());

  torch::nn::Linear model(4, 3);
  {
    torch::NoGradGuard no_grad;
    model->weight.copy_(trace.at("w0").toTensor());
    model->bias.copy_(trace.at("b0").toTensor());
  }
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  L::GradScaler scaler({.init_scale = 1024.0, .growth_interval = 13});
  const auto steps = X.size(0);
  ASSERT_EQ(steps, 240);
  std::int64_t skipped = 0, grew = 0;
  double previous_scale = 1024.0;
  for (std::int64_t k = 0; k < steps; ++k) {
    opt.zero_grad();
    auto loss = torch::mse_loss(model(X[k]), Y[k]);
    scaler.scale(loss).backward();
    {
      torch::NoGradGuard no_grad;
      if (inf_steps.count(k)) model->weight.grad()[1][2] = std::numeric_limits<float>::infinity();
      if (nan_steps.count(k)) model->bias.grad()[0] = std::numeric_limits<float>::quiet_NaN();
    }
    if (clip_steps.count(k)) {
      scaler.unscale_(opt);
      torch::nn::utils::clip_grad_norm_(model->parameters(), 0.5);
    }
    const bool stepped = scaler.step(opt);
    scaler.update();
    EXPECT_EQ(stepped, !inf_steps.count(k) && !nan_steps.count(k)) << "step " << k;
    skipped += !stepped;
    grew += scaler.get_scale() > previous_scale;
    previous_scale = scaler.get_scale();
    ASSERT_EQ(scaler.get_scale(), scales[k].item<double>()) << "scale after step " << k;
    ASSERT_EQ(scaler.growth_tracker(), trackers[k].item<std::int64_t>()) << "tracker, step " << k;
    const auto ours = torch::cat({model->weight.detach().flatten(), model->bias.detach()});
    ASSERT_TRUE(torch::allclose(ours, params[k], 1e-6, 1e-7))
        << "parameters after step " << k << ":\n"
        << ours << "\nPython:\n"
        << params[k];
  }
  EXPECT_EQ(skipped, 14);
  EXPECT_GT(grew, 3);  // the sequence grows the scale as well as backing it off

  // The state dict has Python's keys and values.
  const auto python_state = trace.at("state").toGenericDict();
  const auto ours = scaler.state_dict();
  for (const char* key : {"scale", "growth_factor", "backoff_factor"})
    EXPECT_EQ(ours.at(key).toDouble(), python_state.at(key).toDouble()) << key;
  for (const char* key : {"growth_interval", "_growth_tracker"})
    EXPECT_EQ(ours.at(key).toInt(), python_state.at(key).toInt()) << key;
}

TEST(GradScaler, DefaultsArePythons) {
  L::GradScaler scaler;
  EXPECT_EQ(scaler.get_scale(), 65536.0);
  EXPECT_EQ(scaler.options().growth_factor, 2.0);
  EXPECT_EQ(scaler.options().backoff_factor, 0.5);
  EXPECT_EQ(scaler.options().growth_interval, 2000);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(GradScaler, PythonLoadsItsStateAndItLoadsPythons) {
  L::GradScaler scaler({.init_scale = 256.0, .growth_interval = 3});
  torch::nn::Linear model(2, 1);
  torch::optim::SGD opt(model->parameters(), 0.1);
  for (int k = 0; k < 4; ++k) {  // 4 good steps: grows once (after 3), tracker 1
    opt.zero_grad();
    scaler.scale(model(torch::ones({1, 2})).sum()).backward();
    scaler.step(opt);
    scaler.update();
  }
  ASSERT_EQ(scaler.get_scale(), 512.0);
  ASSERT_EQ(scaler.growth_tracker(), 1);
  const auto bytes = L::detail::pickle_without_type_tags(scaler.state_dict());
  std::ofstream("ours.pt", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  const auto result = lightning::testing::run_python_program(R"(
import torch
s = torch.amp.GradScaler("cpu")
with open("ours.pt", "rb") as f:
    state = torch.load(f, weights_only=True)
s.load_state_dict(state)
print(s.get_scale(), s._get_growth_tracker(), s.get_growth_interval())
p = torch.amp.GradScaler("cpu", init_scale=8.0, growth_factor=4.0, backoff_factor=0.25,
                         growth_interval=5)
torch.save(p.state_dict(), "theirs.pt")
)");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  EXPECT_EQ(result.output, "512.0 1 3\n");
  L::GradScaler loaded;
  loaded.load_state_dict(L::checkpoint_dict(read_pickle("theirs.pt")));
  EXPECT_EQ(loaded.get_scale(), 8.0);
  EXPECT_EQ(loaded.options().growth_factor, 4.0);
  EXPECT_EQ(loaded.options().backoff_factor, 0.25);
  EXPECT_EQ(loaded.options().growth_interval, 5);
}

// LibTorch 1.13 has no CPU kernels for the scaler; its tensor-operation stand-in must do
// what the kernels do, bit for bit (checked here against 2.x's kernels).
TEST(GradScaler, TheTensorOperationStandInEqualsAtensKernels) {
  torch::manual_seed(11);
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
    for (int trial = 0; trial < 4; ++trial) {
      std::vector<torch::Tensor> a{(torch::randn({5, 3}) * 1e4).to(dtype),
                                   torch::randn({7}).to(dtype)};
      if (trial % 2) a[1][3] = trial == 1 ? INFINITY : NAN;
      std::vector<torch::Tensor> b{a[0].clone(), a[1].clone()};
      auto found_a = torch::zeros({}), found_b = torch::zeros({});
      const auto inv = torch::full({}, 1.0f / 3.0f);
      at::_amp_foreach_non_finite_check_and_unscale_(a, found_a, inv);
      L::detail::unscale_with_tensor_ops(b, found_b, inv);
      EXPECT_TRUE(torch::equal(found_a, found_b)) << dtype << " " << trial;
      for (int i = 0; i < 2; ++i)
        EXPECT_TRUE(torch::equal(a[i].nan_to_num(), b[i].nan_to_num())) << dtype << " " << trial;
    }
  }
  // Factors that are not powers of two round; near float's max the scale must not grow
  // to infinity.
  for (auto [start, growth, backoff] :
       {std::tuple(3.0e38f, 2.0, 0.5), std::tuple(1000.3f, 1.7, 0.3), std::tuple(7.1f, 3.3, 0.9)}) {
    auto scale_a = torch::full({}, start), scale_b = scale_a.clone();
    auto tracker_a = torch::zeros({}, torch::kInt), tracker_b = tracker_a.clone();
    for (int k = 0; k < 40; ++k) {
      const auto found = torch::full({}, k % 9 == 4 ? 1.0f : 0.0f);
      at::_amp_update_scale_(scale_a, tracker_a, found, growth, backoff, 3);
      L::detail::update_scale_with_tensor_ops(scale_b, tracker_b, found, growth, backoff, 3);
      ASSERT_TRUE(torch::equal(scale_a, scale_b)) << start << " step " << k;
      ASSERT_TRUE(torch::equal(tracker_a, tracker_b)) << start << " step " << k;
    }
  }
}

// Gradients of two dtypes are unscaled as two groups (Python groups by device and
// dtype); a non-finite value in either skips the step.
TEST(GradScaler, GradientsOfSeveralDtypesAreUnscaledAndCheckedPerGroup) {
  auto w32 = torch::ones({3}, torch::requires_grad()),
       w64 = torch::ones({2}, torch::dtype(torch::kDouble).requires_grad(true));
  torch::optim::SGD opt({w32, w64}, 0.5);
  for (bool poison : {false, true}) {
    L::GradScaler scaler({.init_scale = 4.0});
    opt.zero_grad();
    scaler.scale(w32.sum() + w64.sum().to(torch::kFloat) * 2).backward();
    if (poison) w64.mutable_grad()[1] = INFINITY;
    scaler.unscale_(opt);
    EXPECT_TRUE(torch::equal(w32.grad(), torch::ones({3})));
    if (!poison) {
      EXPECT_TRUE(torch::equal(w64.grad(), torch::full({2}, 2.0, torch::kDouble)));
    }
    EXPECT_EQ(scaler.step(opt), !poison);
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), poison ? 2.0 : 4.0);
  }
}

TEST(GradScaler, MisuseIsAClearError) {
  EXPECT_THROW(L::GradScaler({.growth_factor = 1.0}), std::invalid_argument);
  EXPECT_THROW(L::GradScaler({.backoff_factor = 1.5}), std::invalid_argument);
  EXPECT_THROW(L::GradScaler({.growth_interval = 0}), std::invalid_argument);
  L::GradScaler scaler;
  torch::nn::Linear model(2, 1);
  torch::optim::SGD opt(model->parameters(), 0.1);
  EXPECT_THROW(scaler.update(), std::runtime_error);  // nothing scaled yet
  scaler.scale(model(torch::ones({1, 2})).sum()).backward();
  scaler.unscale_(opt);
  EXPECT_THROW(scaler.unscale_(opt), std::runtime_error);  // twice in one step
  scaler.step(opt);
  EXPECT_THROW(scaler.step(opt), std::runtime_error);
  scaler.update();
  EXPECT_THROW(scaler.load_state_dict(L::make_checkpoint()), std::runtime_error);
  torch::nn::Linear unused(2, 1);  // no gradient: nothing to check, Python asserts
  torch::optim::SGD unused_opt(unused->parameters(), 0.1);
  EXPECT_THROW(scaler.step(unused_opt), std::runtime_error);
  torch::nn::Linear half(2, 1);
  half->to(torch::kHalf);
  torch::optim::SGD half_opt(half->parameters(), 0.1);
  half->weight.mutable_grad() = torch::ones_like(half->weight);
  EXPECT_THROW(scaler.unscale_(half_opt), std::invalid_argument);
}
