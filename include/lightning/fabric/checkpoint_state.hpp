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
#include <limits>
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

namespace detail {

// A generic list: a typed c10::List<double> pickles as TorchScript's
// torch.jit._pickle.build_doublelist, which torch.load(weights_only=True) refuses.
inline c10::impl::GenericList double_list(const std::vector<double>& v) {
  c10::impl::GenericList out(c10::AnyType::get());
  for (const double x : v) out.push_back(x);
  return out;
}

// The hyperparameters PyTorch's scheduler of the same name keeps in its state_dict, so
// that Python's load_state_dict leaves it as it was configured here.
inline void formula_fields(const lr::StepLR& f, CheckpointDict& d) {
  d.insert("step_size", f.step_size);
  d.insert("gamma", f.gamma);
}
inline void formula_fields(const lr::MultiStepLR& f, CheckpointDict& d) {
  // PyTorch keeps a collections.Counter; a plain dict answers the same lookups.
  c10::impl::GenericDict counts(c10::IntType::get(), c10::AnyType::get());
  for (const auto m : f.milestones)
    counts.insert_or_assign(m, counts.contains(m) ? counts.at(m).toInt() + 1 : 1);
  d.insert("milestones", counts);
  d.insert("gamma", f.gamma);
}
inline void formula_fields(const lr::ExponentialLR& f, CheckpointDict& d) {
  d.insert("gamma", f.gamma);
}
inline void formula_fields(const lr::CosineAnnealingLR& f, CheckpointDict& d) {
  d.insert("T_max", f.t_max);
  d.insert("eta_min", f.eta_min);
}
inline void formula_fields(const lr::LinearLR& f, CheckpointDict& d) {
  d.insert("start_factor", f.start_factor);
  d.insert("end_factor", f.end_factor);
  d.insert("total_iters", f.total_iters);
}
inline void formula_fields(const lr::OneCycleLR& f, CheckpointDict& d) {
  const double total = static_cast<double>(f.total_steps);
  const auto phase = [](c10::IValue end, const char* from, const char* to, const char* m0,
                        const char* m1) {
    CheckpointDict p = make_checkpoint();
    p.insert("end_step", std::move(end));
    p.insert("start_lr", from);
    p.insert("end_lr", to);
    p.insert("start_momentum", m0);
    p.insert("end_momentum", m1);
    return p;
  };
  c10::impl::GenericList phases(c10::AnyType::get());
  if (f.three_phase) {
    phases.push_back(
        phase(f.pct_start * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"));
    phases.push_back(phase(2 * f.pct_start * total - 2, "max_lr", "initial_lr", "base_momentum",
                           "max_momentum"));
    phases.push_back(
        phase(f.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"));
  } else {
    phases.push_back(
        phase(f.pct_start * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"));
    phases.push_back(phase(f.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"));
  }
  d.insert("total_steps", f.total_steps);
  d.insert("_schedule_phases", phases);
  d.insert("_anneal_func_type",
           f.anneal_strategy == lr::OneCycleLR::Anneal::cos ? "cos" : "linear");
  d.insert("cycle_momentum", false);
}
// A function of the step (LambdaLR, and the schedules PyTorch has only as one): PyTorch
// stores None for a function it cannot pickle.
template <class F>
void formula_fields(const F&, CheckpointDict& d) {
  c10::impl::GenericList lambdas(c10::AnyType::get());
  lambdas.push_back(c10::IValue());
  d.insert("lr_lambdas", lambdas);
}

// The lr a formula's first step has for a param group (PyTorch's base_lrs: OneCycleLR's
// is its initial lr, not the optimizer's).
template <class F>
std::vector<double> pytorch_base_lrs(const F& f, const std::vector<double>& base) {
  if constexpr (std::same_as<F, lr::OneCycleLR>)
    return std::vector<double>(base.size(), f.max_lr / f.div_factor);
  else
    return base;
}

}  // namespace detail

// A scheduler's state as PyTorch's scheduler.state_dict() of the same kind:
// "last_epoch" (the steps taken), "base_lrs", "_step_count", "_last_lr", the flags
// PyTorch adds and its hyperparameters, so Python's scheduler.load_state_dict continues
// it (Lightning's lr_schedulers entry). ReduceLROnPlateau writes PyTorch's plateau state.
template <class S>
CheckpointDict scheduler_state(const S& s, const torch::optim::Optimizer& optimizer) {
  CheckpointDict out = make_checkpoint();
  const auto lrs = detail::double_list(lr::group_lrs(optimizer));
  if constexpr (std::same_as<S, lr::ReduceLROnPlateau>) {
    const auto st = s.state();
    const auto& o = s.options();
    const bool min = o.mode == lr::PlateauOptions::Mode::min;
    out.insert("factor", o.factor);
    out.insert("default_min_lr", o.min_lr);
    out.insert("min_lrs",
               detail::double_list(std::vector<double>(optimizer.param_groups().size(), o.min_lr)));
    out.insert("patience", o.patience);
    out.insert("cooldown", o.cooldown);
    out.insert("eps", o.eps);
    out.insert("last_epoch", st.last_step);
    out.insert("_last_lr", lrs);
    out.insert("mode_worse", min ? std::numeric_limits<double>::infinity()
                                 : -std::numeric_limits<double>::infinity());
    out.insert("mode", min ? "min" : "max");
    out.insert("threshold", o.threshold);
    out.insert("threshold_mode",
               o.threshold_mode == lr::PlateauOptions::ThresholdMode::rel ? "rel" : "abs");
    out.insert("best", st.best);
    out.insert("cooldown_counter", st.cooldown_counter);
    out.insert("num_bad_epochs", st.num_bad_epochs);
  } else if constexpr (std::same_as<S, lr::SWALR>) {
    const auto st = s.state();
    out.insert("_anneal_strategy", st.anneal_strategy == lr::SWALR::Anneal::cos ? "cos" : "linear");
    out.insert("anneal_epochs", st.anneal_epochs);
    out.insert("base_lrs", detail::double_list(st.base_lrs));
    out.insert("last_epoch", st.last_epoch);
    out.insert("_step_count", st.step_count);
    out.insert("_is_initial", false);
    out.insert("_get_lr_called_within_step", false);
    out.insert("_last_lr", lrs);
  } else if constexpr (requires { s.visit([](const auto&) {}); }) {
    s.visit([&](const auto& inner) { out = scheduler_state(inner, optimizer); });
  } else if constexpr (requires { s.last_step(); }) {
    auto base = s.base_lrs();
    if constexpr (requires { s.formula(); }) {
      detail::formula_fields(s.formula(), out);
      base = detail::pytorch_base_lrs(s.formula(), base);
    }
    out.insert("base_lrs", detail::double_list(base));
    out.insert("last_epoch", s.last_step());
    out.insert("_step_count", s.last_step() + 1);
    out.insert("_is_initial", false);
    out.insert("_get_lr_called_within_step", false);
    out.insert("_last_lr", lrs);
    // lightning-cpp's own base lrs (the optimizer's at attach: OneCycleLR's differ from
    // PyTorch's base_lrs), which Python ignores.
    out.insert("lightning_cpp_base_lrs", detail::double_list(s.base_lrs()));
  }
  return out;
}

// The steps a scheduler has taken (PyTorch's last_epoch).
template <class S>
std::int64_t scheduler_steps(const S& s) {
  if constexpr (std::same_as<S, lr::ReduceLROnPlateau>)
    return s.state().last_step;
  else if constexpr (std::same_as<S, lr::SWALR>)
    return s.state().step_count - 1;  // the constructor's step is not one
  else if constexpr (requires { s.last_step(); })
    return s.last_step();
  else
    return 0;
}

// The keys a PyTorch scheduler adds to its optimizer's param groups ("initial_lr";
// OneCycleLR's "max_lr" and "min_lr", which its get_lr reads from there), so that Python
// continues the schedule from an optimizer state written here.
template <class S>
void add_scheduler_group_keys(CheckpointDict& optimizer_state, const S& s) {
  if (!optimizer_state.contains("param_groups")) return;
  if constexpr (std::same_as<S, lr::SWALR>) {
    const auto groups = optimizer_state.at("param_groups").toList();
    for (std::size_t i = 0; i < groups.size() && i < s.swa_lrs().size(); ++i) {
      auto group = groups.get(i).toGenericDict();
      if (i < s.state().base_lrs.size())
        group.insert_or_assign("initial_lr", s.state().base_lrs[i]);
      group.insert_or_assign("swa_lr", s.swa_lrs()[i]);
    }
  } else if constexpr (requires { s.visit([](const auto&) {}); }) {
    s.visit([&](const auto& inner) { add_scheduler_group_keys(optimizer_state, inner); });
  } else if constexpr (requires { s.formula(); }) {
    const auto base = detail::pytorch_base_lrs(s.formula(), s.base_lrs());
    const auto groups = optimizer_state.at("param_groups").toList();
    for (std::size_t i = 0; i < groups.size() && i < base.size(); ++i) {
      auto group = groups.get(i).toGenericDict();
      group.insert_or_assign("initial_lr", base[i]);
      if constexpr (std::same_as<typename S::formula_type, lr::OneCycleLR>) {
        const auto& f = s.formula();
        group.insert_or_assign("max_lr", f.max_lr);
        group.insert_or_assign("min_lr", f.max_lr / f.div_factor / f.final_div_factor);
      }
    }
  }
}

namespace detail {
inline std::vector<double> doubles_of(const c10::IValue& v) {
  std::vector<double> out;
  if (v.isTensor()) {
    const auto t = v.toTensor().to(torch::kDouble).contiguous();
    out.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  } else {
    for (const auto& x : v.toListRef())
      out.push_back(x.isInt() ? static_cast<double>(x.toInt()) : x.toDouble());
  }
  return out;
}
}  // namespace detail

// Reads a scheduler's state: PyTorch's state_dict (written by Python or by
// scheduler_state) or lightning-cpp's layout before 0.2 ({"last_step", "base_lrs"}).
// Restoring a formula re-applies its lr; the optimizer's saved lrs are restored after.
template <class S>
void load_scheduler_state(S& s, torch::optim::Optimizer& optimizer, const CheckpointDict& state) {
  const auto number = [&](const char* key) {
    const auto& v = state.at(key);
    return v.isInt() ? static_cast<double>(v.toInt()) : v.toDouble();
  };
  if constexpr (std::same_as<S, lr::SWALR>) {
    if (!state.contains("anneal_epochs") || !state.contains("_step_count"))
      throw CheckpointError(
          "lightning: the checkpoint's scheduler state is not an SWALR's (it has no "
          "\"anneal_epochs\" and \"_step_count\"): the module configured another scheduler "
          "when it was saved");
    s.restore({.base_lrs = detail::doubles_of(state.at("base_lrs")),
               .step_count = state.at("_step_count").toInt(),
               .last_epoch = state.at("last_epoch").toInt(),
               .anneal_epochs = state.at("anneal_epochs").toInt(),
               .anneal_strategy = state.contains("_anneal_strategy") &&
                                          state.at("_anneal_strategy").toStringRef() == "linear"
                                      ? lr::SWALR::Anneal::linear
                                      : lr::SWALR::Anneal::cos});
  } else if (state.contains("_anneal_strategy")) {
    throw CheckpointError(
        "lightning: the checkpoint's scheduler state is an SWALR's: StochasticWeightAveraging "
        "put it in place of the module's scheduler when the checkpoint was saved; resume with "
        "lightning::callbacks::StochasticWeightAveraging among the Trainer's callbacks");
  } else if constexpr (std::same_as<S, lr::ReduceLROnPlateau>) {
    const bool pytorch = state.contains("last_epoch");
    s.restore({number("best"), state.at("num_bad_epochs").toInt(),
               state.at("cooldown_counter").toInt(),
               state.at(pytorch ? "last_epoch" : "last_step").toInt()});
  } else if constexpr (requires { s.restore(optimizer, std::vector<double>{}, 0); }) {
    if (state.contains("last_epoch")) {
      const char* base_key =
          state.contains("lightning_cpp_base_lrs") ? "lightning_cpp_base_lrs" : "base_lrs";
      s.restore(optimizer, detail::doubles_of(state.at(base_key)), state.at("last_epoch").toInt());
    } else {
      s.restore(optimizer, detail::doubles_of(state.at("base_lrs")), state.at("last_step").toInt());
    }
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
  const auto c = load_checkpoint_file(path, {.mmap = true});  // the weights are not copied
  if (!c.contains("hyper_parameters")) return {};
  return load_hyperparameters_state(checkpoint_dict(c.at("hyper_parameters")), path.string());
}

}  // namespace lightning
