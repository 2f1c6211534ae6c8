// What torch.save writes, read by the allow-list reader: the values PyTorch Lightning's
// checkpoints hold come back as they were; any other Python global is refused by name
// and nothing in the file runs.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/python.hpp"

#include <filesystem>
#include <string>

namespace {
namespace L = lightning;
namespace fs = std::filesystem;
using lightning::testing::run_python_program;

std::string forbidden_error(const fs::path& path) {
  try {
    (void)L::load_checkpoint_file(path);
  } catch (const L::ForbiddenGlobalError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("another error: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST(PickleReader, ReadsWhatLightningAndTorchSaveWrite) {
  const auto result = run_python_program(R"(
import collections, torch, numpy as np
from lightning_fabric.utilities.data import AttributeDict
base = torch.arange(12.0).reshape(3, 4)
content = {
    "pytorch-lightning_version": "2.6.0",
    "state_dict": collections.OrderedDict(w=base[:, 1:3], b=torch.nn.Parameter(torch.ones(2)),
                                          half=torch.tensor([1.5], dtype=torch.float16)),
    "shared": [base, base[1]],
    "hyper_parameters": AttributeDict(lr=np.float64(0.25), f32=np.float32(1.5), n=np.int64(-7),
                                      i8=np.int8(-3), flag=np.bool_(True), name="adam"),
    "size": torch.Size([2, 3]),
    "milestones": collections.Counter({2: 1, 5: 2}),
    "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.9, 0.999)}]},
    "big": 2**40, "neg": -5, "none": None, "inf": float("inf"),
}
sd = content["state_dict"]
sd._metadata = {"": {"version": 1}}   # as nn.Module.state_dict() sets it
torch.save(content, "p2.ckpt")
torch.save(content, "p4.ckpt", pickle_protocol=4)
)");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  for (const char* name : {"p2.ckpt", "p4.ckpt"}) {
    SCOPED_TRACE(name);
    const auto c = L::load_checkpoint_file(name);
    const auto sd = L::checkpoint_dict<at::Tensor>(c.at("state_dict"));
    EXPECT_EQ(sd.size(), 3u);  // `_metadata` is an attribute, not an entry
    const auto base = torch::arange(12.0).reshape({3, 4});
    EXPECT_TRUE(torch::equal(sd.at("w"), base.slice(1, 1, 3)));
    EXPECT_EQ(sd.at("w").storage_offset(), 1);
    EXPECT_TRUE(torch::equal(sd.at("b"), torch::ones({2})));
    EXPECT_EQ(sd.at("half").scalar_type(), torch::kHalf);
    const auto shared = c.at("shared").toList();
    EXPECT_TRUE(shared.get(0).toTensor().is_alias_of(shared.get(1).toTensor()));
    const auto hp = L::checkpoint_dict(c.at("hyper_parameters"));
    EXPECT_EQ(hp.at("lr").toDouble(), 0.25);
    EXPECT_EQ(hp.at("f32").toDouble(), 1.5);
    EXPECT_EQ(hp.at("n").toInt(), -7);
    EXPECT_EQ(hp.at("i8").toInt(), -3);
    EXPECT_TRUE(hp.at("flag").toBool());
    EXPECT_EQ(hp.at("name").toStringRef(), "adam");
    const auto size = c.at("size").toTupleRef().elements();
    ASSERT_EQ(size.size(), 2u);
    EXPECT_EQ(size[1].toInt(), 3);
    const auto milestones = c.at("milestones").toGenericDict();
    EXPECT_EQ(milestones.at(5).toInt(), 2);
    const auto opt = L::checkpoint_dict(c.at("optimizer"));
    EXPECT_EQ(
        opt.at("state").toGenericDict().at(0).toGenericDict().at("step").toTensor().item<double>(),
        3.0);
    EXPECT_EQ(c.at("big").toInt(), std::int64_t{1} << 40);
    EXPECT_EQ(c.at("neg").toInt(), -5);
    EXPECT_TRUE(c.at("none").isNone());
    EXPECT_TRUE(std::isinf(c.at("inf").toDouble()));
  }
}

// Anything beyond the allow-list is refused before it could run: a function to call
// (os.system), a whole module object (torch.save(model)), builtins.eval.
TEST(PickleReader, RefusesEveryOtherGlobalByNameWithoutRunningIt) {
  const auto result = run_python_program(R"(
import os, torch, builtins
class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))
class Eval:
    def __reduce__(self):
        return (builtins.eval, ("1+1",))
v = {"pytorch-lightning_version": "2.6.0"}
torch.save(dict(v, payload=Evil()), "system.ckpt")
torch.save(dict(v, payload=Eval()), "eval.ckpt")
torch.save(dict(v, model=torch.nn.Linear(2, 1)), "module.ckpt")
)");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  EXPECT_FALSE(fs::exists("pwned"));  // Python did not run it while saving either
  const auto system = forbidden_error("system.ckpt");
  EXPECT_NE(system.find("system.ckpt: the pickle refers to the Python global `posix.system`"),
            std::string::npos)
      << system;
  EXPECT_NE(system.find("nothing in it is run"), std::string::npos) << system;
  // torch.save pickles with protocol 2, which spells builtins as Python 2 did.
  EXPECT_NE(forbidden_error("eval.ckpt").find("`__builtin__.eval`"), std::string::npos);
  EXPECT_NE(forbidden_error("module.ckpt").find("`torch.nn.modules.linear.Linear`"),
            std::string::npos)
      << forbidden_error("module.ckpt");
  EXPECT_FALSE(fs::exists("pwned"));
}

// Shapes that would make a recursive reader loop, run for ever or overflow its stack are
// refused as the file is read: a list that contains itself, lists shared 2^64 times over
// in a few hundred bytes, containers nested 600 deep.
TEST(PickleReader, RefusesCyclesExponentialSharingAndDeepNesting) {
  const auto result = run_python_program(R"(
import sys, torch
sys.setrecursionlimit(100000)
v = {"pytorch-lightning_version": "2.6.0"}
cycle = []
cycle.append(cycle)
torch.save(dict(v, l=cycle), "cycle.ckpt")
shared = []
for _ in range(64):
    shared = [shared, shared]
torch.save(dict(v, l=shared), "shared.ckpt")
deep = []
for _ in range(600):
    deep = [deep]
torch.save(dict(v, l=deep), "deep.ckpt")
)");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto error = [](const char* name) {
    try {
      (void)L::load_checkpoint_file(name);
    } catch (const L::CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error("cycle.ckpt").find("holds a container that contains itself"), std::string::npos)
      << error("cycle.ckpt");
  EXPECT_NE(error("shared.ckpt").find("holds more than 50000000 values"), std::string::npos)
      << error("shared.ckpt");
  EXPECT_NE(error("deep.ckpt").find("nests containers deeper than 512"), std::string::npos)
      << error("deep.ckpt");
}
