// The state of modules, optimizers, schedulers and random generators as checkpoint
// entries, and back. Module state uses the names of named_parameters()/named_buffers(),
// so Python's torch.load finds a state_dict it can compare with a PyTorch model's.
#pragma once

#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/lr_schedulers.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/fabric/optimizer_state_dict.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lightning {

// Parameters and buffers by their dotted names, detached copies on the CPU.
inline c10::Dict<std::string, at::Tensor> module_state_dict(const torch::nn::Module& module) {
  c10::Dict<std::string, at::Tensor> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    out.insert(p.key(), p.value().detach().to(torch::kCPU).clone());
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    out.insert(b.key(), b.value().detach().to(torch::kCPU).clone());
  return out;
}

// Copies a state_dict into the module (strict: every name must match, with its shape).
inline void load_module_state_dict(torch::nn::Module& module,
                                   const c10::Dict<std::string, at::Tensor>& state,
                                   const std::string& source) {
  torch::NoGradGuard no_grad;
  std::size_t used = 0;
  const auto load = [&](const std::string& name, torch::Tensor& target) {
    if (!state.contains(name))
      throw CheckpointError("lightning: " + source + " has no entry \"" + name +
                            "\" for the module's parameter or buffer of that name");
    const auto& value = state.at(name);
    if (value.sizes() != target.sizes())
      throw CheckpointError("lightning: " + source + ": \"" + name + "\" has shape " +
                            c10::str(value.sizes()) + ", the module's has " +
                            c10::str(target.sizes()));
    target.copy_(value);
    ++used;
  };
  for (auto& p : module.named_parameters(true)) load(p.key(), p.value());
  for (auto& b : module.named_buffers(true)) load(b.key(), b.value());
  if (used != state.size()) {
    std::string extra;
    const auto params = module.named_parameters(true);
    const auto buffers = module.named_buffers(true);
    for (const auto& kv : state)
      if (!params.contains(kv.key()) && !buffers.contains(kv.key()))
        extra += (extra.empty() ? "" : ", ") + kv.key();
    throw CheckpointError("lightning: " + source +
                          " has entries the module does not have: " + extra);
  }
}

namespace detail {
// LibTorch's LBFGS keeps `al` as history_size tensors of which only those in use are
// defined, and LibTorch's serializer cannot write an undefined tensor. LBFGS writes
// each entry before it reads it, so empty tensors can stand in for the unused ones.
inline void make_lbfgs_state_serializable(torch::optim::Optimizer& optimizer) {
  if (dynamic_cast<torch::optim::LBFGS*>(&optimizer) == nullptr) return;
  for (auto& entry : optimizer.state()) {
    auto& state = static_cast<torch::optim::LBFGSParamState&>(*entry.second);
    if (!state.al()) continue;
    auto al = *state.al();
    bool changed = false;
    for (auto& t : al)
      if (!t.defined()) {
        t = torch::empty({0});
        changed = true;
      }
    if (changed) state.al(std::move(al));
  }
}
}  // namespace detail

namespace detail {

inline torch::Tensor archive_bytes(torch::serialize::OutputArchive& archive) {
  std::vector<char> bytes;
  archive.save_to([&](const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    bytes.insert(bytes.end(), p, p + size);
    return size;
  });
  return torch::from_blob(bytes.data(), {static_cast<std::int64_t>(bytes.size())}, torch::kUInt8)
      .clone();
}

}  // namespace detail

// An optimizer's state. LibTorch's Adam, AdamW, SGD, RMSprop and Adagrad are written in
// PyTorch's layout (optimizer_state_dict.hpp), which Python's optimizer.load_state_dict
// reads; its tensors are the optimizer's own, so a background save copies them
// (checkpoint_snapshot). Any other optimizer is written as LibTorch's own archive (per-
// parameter state such as LBFGS's history) as bytes, plus each param group's lr, which
// Optimizer::load does not restore.
inline CheckpointDict optimizer_state(torch::optim::Optimizer& optimizer) {
  if (has_pytorch_layout(optimizer)) return optimizer_state_dict(optimizer);
  detail::make_lbfgs_state_serializable(optimizer);
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  CheckpointDict out = make_checkpoint();
  out.insert("archive", detail::archive_bytes(archive));
  out.insert("lrs", torch::tensor(lr::group_lrs(optimizer), torch::kDouble));
  return out;
}

// Reads either form optimizer_state writes (and PyTorch's own state_dict); `source`
// names the checkpoint in errors.
inline void load_optimizer_state(torch::optim::Optimizer& optimizer, const CheckpointDict& state,
                                 const std::string& source = "the checkpoint") {
  if (state.contains("param_groups")) return load_optimizer_state_dict(optimizer, state, source);
  const auto bytes = state.at("archive").toTensor().contiguous();
  torch::serialize::InputArchive archive;
  archive.load_from(static_cast<const char*>(bytes.data_ptr()), bytes.numel());
  optimizer.load(archive);
  const auto lrs = state.at("lrs").toTensor();
  auto& groups = optimizer.param_groups();
  if (lrs.numel() != static_cast<std::int64_t>(groups.size()))
    throw CheckpointError("lightning: " + source + ": the optimizer state has " +
                          std::to_string(lrs.numel()) + " param groups, this one has " +
                          std::to_string(groups.size()));
  for (std::size_t i = 0; i < groups.size(); ++i)
    groups[i].options().set_lr(lrs[static_cast<std::int64_t>(i)].item<double>());
}

// A scheduler's state: the step and base lrs of a formula, the counters of a plateau.
template <class S>
CheckpointDict scheduler_state(const S& s) {
  CheckpointDict out = make_checkpoint();
  if constexpr (std::same_as<S, lr::ReduceLROnPlateau>) {
    const auto st = s.state();
    out.insert("best", st.best);
    out.insert("num_bad_epochs", st.num_bad_epochs);
    out.insert("cooldown_counter", st.cooldown_counter);
    out.insert("last_step", st.last_step);
  } else if constexpr (requires { s.last_step(); }) {
    out.insert("last_step", s.last_step());
    out.insert("base_lrs", torch::tensor(s.base_lrs(), torch::kDouble));
  }
  return out;
}

template <class S>
void load_scheduler_state(S& s, torch::optim::Optimizer& optimizer, const CheckpointDict& state) {
  if constexpr (std::same_as<S, lr::ReduceLROnPlateau>) {
    s.restore({state.at("best").toDouble(), state.at("num_bad_epochs").toInt(),
               state.at("cooldown_counter").toInt(), state.at("last_step").toInt()});
  } else if constexpr (requires { s.restore(optimizer, std::vector<double>{}, 0); }) {
    const auto t = state.at("base_lrs").toTensor().contiguous();
    std::vector<double> base(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    s.restore(optimizer, std::move(base), state.at("last_step").toInt());
  }
}

// Hyperparameters as a checkpoint entry (Lightning's "hyper_parameters"): a dict of
// bools, ints, floats and strings, in declaration order, which Python reads as such.
inline CheckpointDict hyperparameters_state(const HParams& hparams) {
  CheckpointDict out = make_checkpoint();
  for (const auto& [name, value] : hparams)
    std::visit([&, &key = name](const auto& v) { out.insert(key, v); }, value.value());
  return out;
}
inline HParams load_hyperparameters_state(const CheckpointDict& state, const std::string& source) {
  HParams out;
  for (const auto& kv : state) {
    const auto& name = kv.key().toStringRef();
    const auto& v = kv.value();
    if (v.isBool())
      out.set(name, v.toBool());
    else if (v.isInt())
      out.set(name, v.toInt());
    else if (v.isDouble())
      out.set(name, v.toDouble());
    else if (v.isString())
      out.set(name, v.toStringRef());
    else
      throw CheckpointError("lightning: " + source + ": hyperparameter \"" + name + "\" is a " +
                            v.tagKind() + "; hyperparameters are bools, ints, floats or strings");
  }
  return out;
}

// The hyperparameters a checkpoint file holds (empty if none): Lightning's
// load_from_checkpoint reads them to build the module before loading its weights.
inline HParams load_hyperparameters(const std::filesystem::path& path) {
  const auto c = load_checkpoint_file(path);
  if (!c.contains("hyper_parameters")) return {};
  return load_hyperparameters_state(checkpoint_dict(c.at("hyper_parameters")), path.string());
}

}  // namespace lightning
