// An optimizer's state in PyTorch's layout, that of torch.optim.Optimizer.state_dict():
//   {"state": {index: {"step": tensor(float), "exp_avg": tensor, ...}},
//    "param_groups": [{"lr": ..., <the other options>, "params": [index, ...]}]}
// with the parameters numbered in param_groups order. Python's optimizer.load_state_dict
// reads it, and pickling it is a dict of tensors: no LibTorch archive to build. For
// LibTorch's Adam, AdamW, SGD, RMSprop and Adagrad, which share Python's names and
// update rules; anything else (LBFGS, a custom or derived optimizer) keeps LibTorch's
// own archive (checkpoint_state.hpp).
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/fabric/checkpoint_io.hpp>

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace lightning {

namespace detail {

// A number as Python may have saved it: an int, a float or a 0-d tensor.
inline double number_of(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor().item<double>();
  if (v.isInt()) return static_cast<double>(v.toInt());
  return v.toDouble();
}

// The key under which LibTorch keeps a parameter's state: the TensorImpl's address
// (LibTorch 2.x), or that address printed (1.13).
template <class Key>
Key optimizer_state_key(const at::Tensor& p) {
  if constexpr (std::is_pointer_v<Key>) {
    return p.unsafeGetTensorImpl();
  } else {
    std::ostringstream out;
    out << static_cast<const void*>(p.unsafeGetTensorImpl());
    return out.str();
  }
}

inline at::Tensor step_tensor(std::int64_t step) {
  return torch::scalar_tensor(static_cast<double>(step), torch::kFloat32);  // Python's dtype
}
inline std::int64_t step_of(const CheckpointDict& d) {
  return static_cast<std::int64_t>(number_of(d.at("step")));
}
inline void put_defined(CheckpointDict& d, const char* key, const at::Tensor& t) {
  if (t.defined()) d.insert(key, t);
}
inline at::Tensor tensor_or_none(const CheckpointDict& d, const char* key) {
  return d.contains(key) && d.at(key).isTensor() ? d.at(key).toTensor() : at::Tensor();
}

// What differs between optimizers: their options and per-parameter state, by Python's
// names.
template <class Opt, class Options, class State>
struct AdamLayout {
  using optimizer = Opt;
  using options = Options;
  using state = State;
  static void options_to(const Options& o, CheckpointDict& g) {
    g.insert("lr", o.lr());
    g.insert("betas", c10::ivalue::Tuple::create(std::get<0>(o.betas()), std::get<1>(o.betas())));
    g.insert("eps", o.eps());
    g.insert("weight_decay", o.weight_decay());
    g.insert("amsgrad", o.amsgrad());
  }
  static void options_from(Options& o, const CheckpointDict& g) {
    o.lr(number_of(g.at("lr")));
    const auto& b = g.at("betas").toTupleRef().elements();
    o.betas({number_of(b.at(0)), number_of(b.at(1))});
    o.eps(number_of(g.at("eps")));
    o.weight_decay(number_of(g.at("weight_decay")));
    o.amsgrad(g.at("amsgrad").toBool());
  }
  static void state_to(const State& s, CheckpointDict& d) {
    d.insert("step", step_tensor(s.step()));
    put_defined(d, "exp_avg", s.exp_avg());
    put_defined(d, "exp_avg_sq", s.exp_avg_sq());
    put_defined(d, "max_exp_avg_sq", s.max_exp_avg_sq());
  }
  static void state_from(State& s, const CheckpointDict& d) {
    s.step(step_of(d));
    s.exp_avg(tensor_or_none(d, "exp_avg"));
    s.exp_avg_sq(tensor_or_none(d, "exp_avg_sq"));
    s.max_exp_avg_sq(tensor_or_none(d, "max_exp_avg_sq"));
  }
};

struct SGDLayout {
  using optimizer = torch::optim::SGD;
  using options = torch::optim::SGDOptions;
  using state = torch::optim::SGDParamState;
  static void options_to(const options& o, CheckpointDict& g) {
    g.insert("lr", o.lr());
    g.insert("momentum", o.momentum());
    g.insert("dampening", o.dampening());
    g.insert("weight_decay", o.weight_decay());
    g.insert("nesterov", o.nesterov());
  }
  static void options_from(options& o, const CheckpointDict& g) {
    o.lr(number_of(g.at("lr")));
    o.momentum(number_of(g.at("momentum")));
    o.dampening(number_of(g.at("dampening")));
    o.weight_decay(number_of(g.at("weight_decay")));
    o.nesterov(g.at("nesterov").toBool());
  }
  static void state_to(const state& s, CheckpointDict& d) {
    put_defined(d, "momentum_buffer", s.momentum_buffer());
  }
  static void state_from(state& s, const CheckpointDict& d) {
    s.momentum_buffer(tensor_or_none(d, "momentum_buffer"));
  }
};

struct RMSpropLayout {
  using optimizer = torch::optim::RMSprop;
  using options = torch::optim::RMSpropOptions;
  using state = torch::optim::RMSpropParamState;
  static void options_to(const options& o, CheckpointDict& g) {
    g.insert("lr", o.lr());
    g.insert("alpha", o.alpha());
    g.insert("eps", o.eps());
    g.insert("weight_decay", o.weight_decay());
    g.insert("momentum", o.momentum());
    g.insert("centered", o.centered());
  }
  static void options_from(options& o, const CheckpointDict& g) {
    o.lr(number_of(g.at("lr")));
    o.alpha(number_of(g.at("alpha")));
    o.eps(number_of(g.at("eps")));
    o.weight_decay(number_of(g.at("weight_decay")));
    o.momentum(number_of(g.at("momentum")));
    o.centered(g.at("centered").toBool());
  }
  static void state_to(const state& s, CheckpointDict& d) {
    d.insert("step", step_tensor(s.step()));
    put_defined(d, "square_avg", s.square_avg());
    put_defined(d, "momentum_buffer", s.momentum_buffer());
    put_defined(d, "grad_avg", s.grad_avg());
  }
  static void state_from(state& s, const CheckpointDict& d) {
    s.step(step_of(d));
    s.square_avg(tensor_or_none(d, "square_avg"));
    s.momentum_buffer(tensor_or_none(d, "momentum_buffer"));
    s.grad_avg(tensor_or_none(d, "grad_avg"));
  }
};

struct AdagradLayout {
  using optimizer = torch::optim::Adagrad;
  using options = torch::optim::AdagradOptions;
  using state = torch::optim::AdagradParamState;
  static void options_to(const options& o, CheckpointDict& g) {
    g.insert("lr", o.lr());
    g.insert("lr_decay", o.lr_decay());
    g.insert("weight_decay", o.weight_decay());
    g.insert("initial_accumulator_value", o.initial_accumulator_value());
    g.insert("eps", o.eps());
  }
  static void options_from(options& o, const CheckpointDict& g) {
    o.lr(number_of(g.at("lr")));
    o.lr_decay(number_of(g.at("lr_decay")));
    o.weight_decay(number_of(g.at("weight_decay")));
    o.initial_accumulator_value(number_of(g.at("initial_accumulator_value")));
    o.eps(number_of(g.at("eps")));
  }
  static void state_to(const state& s, CheckpointDict& d) {
    d.insert("step", step_tensor(s.step()));
    put_defined(d, "sum", s.sum());
  }
  static void state_from(state& s, const CheckpointDict& d) {
    s.step(step_of(d));
    s.sum(tensor_or_none(d, "sum"));
  }
};

template <class F>
bool with_pytorch_layout(const torch::optim::Optimizer& optimizer, F&& f) {
  namespace O = torch::optim;
  const auto is = [&]<class Layout>(Layout) {
    if (typeid(optimizer) != typeid(typename Layout::optimizer)) return false;
    f(Layout{});
    return true;
  };
  return is(AdamLayout<O::Adam, O::AdamOptions, O::AdamParamState>{}) ||
         is(AdamLayout<O::AdamW, O::AdamWOptions, O::AdamWParamState>{}) || is(SGDLayout{}) ||
         is(RMSpropLayout{}) || is(AdagradLayout{});
}

}  // namespace detail

// Whether optimizer_state_dict can write this optimizer (exactly one of the five types).
inline bool has_pytorch_layout(const torch::optim::Optimizer& optimizer) {
  return detail::with_pytorch_layout(optimizer, [](auto) {});
}

// The optimizer's state in PyTorch's layout. Its tensors are the optimizer's own (copy
// them, as checkpoint_snapshot does, to keep them past the next step). Precondition:
// has_pytorch_layout(optimizer).
inline CheckpointDict optimizer_state_dict(const torch::optim::Optimizer& optimizer) {
  CheckpointDict out = make_checkpoint();
  detail::with_pytorch_layout(optimizer, [&]<class Layout>(Layout) {
    using Map = std::remove_cvref_t<decltype(optimizer.state())>;
    CheckpointDict state(c10::IntType::get(), c10::AnyType::get());
    c10::impl::GenericList groups(c10::AnyType::get());
    std::int64_t index = 0;
    for (const auto& group : optimizer.param_groups()) {
      CheckpointDict g = make_checkpoint();
      Layout::options_to(static_cast<const typename Layout::options&>(group.options()), g);
      // Generic, not c10::List<int64_t>: a typed list pickles as torch.jit's
      // build_intlist, which torch.load(weights_only=True) refuses.
      c10::impl::GenericList params(c10::AnyType::get());
      for (const auto& p : group.params()) {
        const auto found =
            optimizer.state().find(detail::optimizer_state_key<typename Map::key_type>(p));
        if (found != optimizer.state().end()) {
          CheckpointDict s = make_checkpoint();
          Layout::state_to(static_cast<const typename Layout::state&>(*found->second), s);
          state.insert(index, s);
        }
        params.push_back(index++);
      }
      g.insert("params", params);
      groups.push_back(g);
    }
    out.insert("state", state);
    out.insert("param_groups", groups);
  });
  return out;
}

// Loads a state written by optimizer_state_dict or by Python's optimizer.state_dict():
// the options of every param group and each parameter's state. The groups and the
// number of parameters in each must match; a state tensor's shape must be its
// parameter's. `source` names the checkpoint in errors; on an error the optimizer is
// left as it was.
inline void load_optimizer_state_dict(torch::optim::Optimizer& optimizer,
                                      const CheckpointDict& state_dict, const std::string& source) {
  const auto groups = state_dict.at("param_groups").toListRef();
  const auto states = state_dict.at("state").toGenericDict();
  auto& own = optimizer.param_groups();
  if (groups.size() != own.size())
    throw CheckpointError("lightning: " + source + ": the optimizer state has " +
                          std::to_string(groups.size()) + " param groups, this optimizer has " +
                          std::to_string(own.size()));
  // All or nothing: options and states are built aside and put in place only when every
  // group and parameter has been read.
  const auto load = [&]<class Layout>(Layout) {
    using Map = std::remove_cvref_t<decltype(optimizer.state())>;
    Map loaded;
    std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> options;
    for (std::size_t i = 0; i < own.size(); ++i) {
      const auto g = checkpoint_dict(groups[i]);
      const auto indices = g.at("params").toListRef();
      const auto& params = own[i].params();
      if (indices.size() != params.size())
        throw CheckpointError("lightning: " + source + ": param group " + std::to_string(i) +
                              " of the optimizer state has " + std::to_string(indices.size()) +
                              " parameters, this optimizer's has " + std::to_string(params.size()));
      options.push_back(own[i].options().clone());
      Layout::options_from(static_cast<typename Layout::options&>(*options.back()), g);
      for (std::size_t k = 0; k < params.size(); ++k) {
        const auto key = c10::IValue(indices[k].toInt());
        if (!states.contains(key)) continue;
        // Python's rule: state tensors take the parameter's device, floating ones its
        // dtype too; "step" stays as it is. Copies: the loaded dict may be loaded again.
        CheckpointDict entry = make_checkpoint();
        for (const auto& kv : states.at(key).toGenericDict()) {
          if (!kv.value().isTensor() || kv.key().toStringRef() == "step") {
            entry.insert(kv.key(), kv.value());
            continue;
          }
          const auto& t = kv.value().toTensor();
          const auto& p = params[k];
          if (t.sizes() != p.sizes())
            throw CheckpointError(
                "lightning: " + source + ": the optimizer state \"" + kv.key().toStringRef() +
                "\" of parameter " + std::to_string(indices[k].toInt()) + " has shape " +
                c10::str(t.sizes()) + ", the parameter has " + c10::str(p.sizes()));
          entry.insert(kv.key(),
                       t.to(p.device(), t.is_floating_point() ? p.scalar_type() : t.scalar_type(),
                            /*non_blocking=*/false, /*copy=*/true));
        }
        auto loaded_state = std::make_unique<typename Layout::state>();
        Layout::state_from(*loaded_state, entry);
        loaded[detail::optimizer_state_key<typename Map::key_type>(params[k])] =
            std::move(loaded_state);
      }
    }
    for (std::size_t i = 0; i < own.size(); ++i) own[i].set_options(std::move(options[i]));
    optimizer.state() = std::move(loaded);
  };
  // An entry this optimizer needs that is missing or of another type.
  const auto does_not_fit = [&](const std::string& what) {
    return CheckpointError("lightning: " + source + ": the optimizer state does not fit " +
                           c10::demangle(typeid(optimizer).name()) + " (" + what + ")");
  };
  bool known = false;
  try {
    known = detail::with_pytorch_layout(optimizer, load);
  } catch (const CheckpointError&) {
    throw;
  } catch (const c10::Error& e) {
    throw does_not_fit(e.what_without_backtrace());
  } catch (const std::out_of_range& e) {
    throw does_not_fit(e.what());
  }
  if (!known)
    throw CheckpointError("lightning: " + source +
                          ": the optimizer state is in PyTorch's layout, which only LibTorch's "
                          "Adam, AdamW, SGD, RMSprop and Adagrad read; this optimizer is " +
                          c10::demangle(typeid(optimizer).name()));
}

}  // namespace lightning
