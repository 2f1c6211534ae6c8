// LightningCLI's optimizer and scheduler shorthand: `--optimizer Adam --optimizer.lr 0.01`,
// `--lr_scheduler StepLR --lr_scheduler.step_size 10` (or `optimizer: {class_path:
// torch.optim.Adam, init_args: {...}}` in a config). LibTorch's optimizers and the
// library's schedulers by their PyTorch names and arguments, with PyTorch's defaults.
//
// The choice is made at run time, so the module the Trainer sees is ConfiguredModule<M>:
// M with a configure_optimizers that returns a run-time chosen optimizer (a
// std::unique_ptr<torch::optim::Optimizer>; stepping an optimizer is a virtual call in
// LibTorch anyway) and at most one scheduler: the one chosen, else the module's own.
#pragma once

#include <lightning/cli/config.hpp>
#include <lightning/cli/fields.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/lr_schedulers.hpp>
#include <lightning/core/optimizers.hpp>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace lightning::cli {

// torch.optim's arguments, with its defaults.
struct SGDArgs {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};
struct AdamArgs {
  double lr = 1e-3;
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
};
struct AdamWArgs {
  double lr = 1e-3;
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
};
struct RMSpropArgs {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};
struct AdagradArgs {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

}  // namespace lightning::cli

BOOST_HANA_ADAPT_STRUCT(lightning::cli::SGDArgs, lr, momentum, dampening, weight_decay, nesterov);
BOOST_HANA_ADAPT_STRUCT(lightning::cli::AdamArgs, lr, betas, eps, weight_decay, amsgrad);
BOOST_HANA_ADAPT_STRUCT(lightning::cli::AdamWArgs, lr, betas, eps, weight_decay, amsgrad);
BOOST_HANA_ADAPT_STRUCT(lightning::cli::RMSpropArgs, lr, alpha, eps, weight_decay, momentum,
                        centered);
BOOST_HANA_ADAPT_STRUCT(lightning::cli::AdagradArgs, lr, lr_decay, weight_decay,
                        initial_accumulator_value, eps);
BOOST_HANA_ADAPT_STRUCT(lightning::lr::StepLR, step_size, gamma);
BOOST_HANA_ADAPT_STRUCT(lightning::lr::MultiStepLR, milestones, gamma);
BOOST_HANA_ADAPT_STRUCT(lightning::lr::ExponentialLR, gamma);
BOOST_HANA_ADAPT_STRUCT(lightning::lr::CosineAnnealingLR, t_max, eta_min);
BOOST_HANA_ADAPT_STRUCT(lightning::lr::LinearLR, start_factor, end_factor, total_iters);
BOOST_HANA_ADAPT_STRUCT(lightning::lr::OneCycleLR, max_lr, total_steps, pct_start, anneal_strategy,
                        div_factor, final_div_factor, three_phase);

namespace lightning {
template <>
struct EnumNames<lr::OneCycleLR::Anneal> {
  static constexpr std::array<std::pair<lr::OneCycleLR::Anneal, std::string_view>, 2> values{
      {{lr::OneCycleLR::Anneal::cos, "cos"}, {lr::OneCycleLR::Anneal::linear, "linear"}}};
};
}  // namespace lightning

namespace lightning::cli {

namespace detail {

inline std::pair<double, double> two_betas(const std::vector<double>& betas) {
  if (betas.size() != 2)
    throw UsageError("lightning: optimizer.init_args.betas must hold two values, not " +
                     std::to_string(betas.size()));
  return {betas[0], betas[1]};
}

inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> p,
                                                               const SGDArgs& a) {
  return std::make_unique<torch::optim::SGD>(std::move(p), torch::optim::SGDOptions(a.lr)
                                                               .momentum(a.momentum)
                                                               .dampening(a.dampening)
                                                               .weight_decay(a.weight_decay)
                                                               .nesterov(a.nesterov));
}
inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> p,
                                                               const AdamArgs& a) {
  const auto [b1, b2] = two_betas(a.betas);
  return std::make_unique<torch::optim::Adam>(std::move(p), torch::optim::AdamOptions(a.lr)
                                                                .betas({b1, b2})
                                                                .eps(a.eps)
                                                                .weight_decay(a.weight_decay)
                                                                .amsgrad(a.amsgrad));
}
inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> p,
                                                               const AdamWArgs& a) {
  const auto [b1, b2] = two_betas(a.betas);
  return std::make_unique<torch::optim::AdamW>(std::move(p), torch::optim::AdamWOptions(a.lr)
                                                                 .betas({b1, b2})
                                                                 .eps(a.eps)
                                                                 .weight_decay(a.weight_decay)
                                                                 .amsgrad(a.amsgrad));
}
inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> p,
                                                               const RMSpropArgs& a) {
  return std::make_unique<torch::optim::RMSprop>(std::move(p), torch::optim::RMSpropOptions(a.lr)
                                                                   .alpha(a.alpha)
                                                                   .eps(a.eps)
                                                                   .weight_decay(a.weight_decay)
                                                                   .momentum(a.momentum)
                                                                   .centered(a.centered));
}
inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> p,
                                                               const AdagradArgs& a) {
  return std::make_unique<torch::optim::Adagrad>(
      std::move(p), torch::optim::AdagradOptions(a.lr)
                        .lr_decay(a.lr_decay)
                        .weight_decay(a.weight_decay)
                        .initial_accumulator_value(a.initial_accumulator_value)
                        .eps(a.eps));
}

template <class Args>
struct Named {
  using type = Args;
  std::string_view name;
  std::string_view class_path;
};

inline constexpr auto optimizer_classes = boost::hana::make_tuple(
    Named<SGDArgs>{"SGD", "torch.optim.SGD"}, Named<AdamArgs>{"Adam", "torch.optim.Adam"},
    Named<AdamWArgs>{"AdamW", "torch.optim.AdamW"},
    Named<RMSpropArgs>{"RMSprop", "torch.optim.RMSprop"},
    Named<AdagradArgs>{"Adagrad", "torch.optim.Adagrad"});

inline constexpr auto scheduler_classes = boost::hana::make_tuple(
    Named<lr::StepLR>{"StepLR", "torch.optim.lr_scheduler.StepLR"},
    Named<lr::MultiStepLR>{"MultiStepLR", "torch.optim.lr_scheduler.MultiStepLR"},
    Named<lr::ExponentialLR>{"ExponentialLR", "torch.optim.lr_scheduler.ExponentialLR"},
    Named<lr::CosineAnnealingLR>{"CosineAnnealingLR", "torch.optim.lr_scheduler.CosineAnnealingLR"},
    Named<lr::LinearLR>{"LinearLR", "torch.optim.lr_scheduler.LinearLR"},
    Named<lr::OneCycleLR>{"OneCycleLR", "torch.optim.lr_scheduler.OneCycleLR"});

// PyTorch's spelling of a field where ours differs.
inline std::string python_field(std::string_view field) {
  return field == "t_max" ? "T_max" : std::string(field);
}
inline std::string cpp_field(std::string_view field) {
  return field == "T_max" ? "t_max" : std::string(field);
}

template <class Classes>
std::string class_names(Classes classes) {
  std::string out;
  boost::hana::for_each(classes,
                        [&](auto c) { out += (out.empty() ? "" : ", ") + std::string(c.name); });
  return out;
}

}  // namespace detail

// A scheduler chosen at run time: one of the library's formula schedulers.
using FormulaScheduler =
    std::variant<lr::Scheduler<lr::StepLR>, lr::Scheduler<lr::MultiStepLR>,
                 lr::Scheduler<lr::ExponentialLR>, lr::Scheduler<lr::CosineAnnealingLR>,
                 lr::Scheduler<lr::LinearLR>, lr::Scheduler<lr::OneCycleLR>>;

// What --optimizer / --lr_scheduler chose: the class, its arguments as given and resolved
// (for the printed config) and how to build it.
struct OptimizerChoice {
  std::string name;
  std::string class_path;
  YamlTree init_args = YamlTree::map();
  std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>)> make;
};
struct SchedulerChoice {
  std::string name;
  std::string class_path;
  YamlTree init_args = YamlTree::map();
  std::function<FormulaScheduler()> make;
};

namespace detail {

// Reads `section` ({class_path, init_args}) against `classes`; nullopt for null.
template <class Choice, class Classes, class Build>
std::optional<Choice> read_choice(const YAML::Node& node, const std::string& section,
                                  Classes classes, Build build) {
  if (is_null(node)) return std::nullopt;
  if (!node.IsMap() || !node["class_path"])
    throw UsageError("lightning: " + section + " = " + node_text(node) +
                     " is not a valid value: " + section + " takes a class name (--" + section +
                     " NAME) or {class_path: NAME, init_args: {...}}; the classes are " +
                     class_names(classes));
  for (const auto& entry : node) {
    const auto key = detail::key_text(entry.first);
    if (key != "class_path" && key != "init_args")
      throw UsageError("lightning: unknown option " + section + "." + key + " (" + section +
                       " takes class_path and init_args)");
  }
  const auto name = short_class_name(node["class_path"].as<std::string>());
  std::optional<Choice> out;
  boost::hana::for_each(classes, [&](auto c) {
    using Args = typename decltype(c)::type;
    if (out || c.name != name) return;
    Args args{};
    YAML::Node given(YAML::NodeType::Map);
    if (const auto init = node["init_args"]; init && !is_null(init)) {
      if (!init.IsMap())
        throw UsageError("lightning: " + section + ".init_args = " + node_text(init) +
                         " is not a valid value: a map of " + std::string(name) + "'s arguments");
      for (const auto& entry : init) given[cpp_field(detail::key_text(entry.first))] = entry.second;
    }
    std::vector<std::string> valid;
    for (const auto& o : [&] {
           std::vector<OptionHelp> h;
           describe(Args{}, section, h);
           return h;
         }())
      valid.push_back(o.key);
    decode(args, given, section, [&](const std::string& key) {
      const auto guess = closest_key(key, valid);
      throw UsageError("lightning: unknown option --" + key + " for " + std::string(name) +
                       (guess.empty() ? "" : "; did you mean --" + guess + "?") + " (" +
                       std::string(name) + " takes " +
                       [&] {
                         std::string fields;
                         for (const auto& v : valid)
                           fields += (fields.empty() ? "" : ", ") + v.substr(section.size() + 1);
                         return fields;
                       }() +
                       ")");
    });
    Choice choice;
    choice.name = std::string(c.name);
    choice.class_path = std::string(c.class_path);
    for (auto& [k, v] : encode(args).entries) choice.init_args.set(python_field(k), v);
    build(choice, args);
    out = std::move(choice);
  });
  if (!out) {
    const auto guess = closest_key(name, [&] {
      std::vector<std::string> names;
      boost::hana::for_each(classes, [&](auto c) { names.emplace_back(c.name); });
      return names;
    }());
    throw UsageError("lightning: " + section + " = '" + name + "' is not a class the " + section +
                     " shorthand knows" + (guess.empty() ? "" : " (did you mean " + guess + "?)") +
                     "; it knows " + class_names(classes));
  }
  return out;
}

}  // namespace detail

inline std::optional<OptimizerChoice> read_optimizer(const YAML::Node& node) {
  return detail::read_choice<OptimizerChoice>(
      node, "optimizer", detail::optimizer_classes, [](OptimizerChoice& c, const auto& args) {
        if (!(args.lr >= 0.0))
          throw UsageError(
              "lightning: optimizer.init_args.lr = " + loggers::detail::yaml_float(args.lr) +
              " is not a valid value: the learning rate must be >= 0");
        if constexpr (requires { args.betas; }) (void)detail::two_betas(args.betas);
        try {  // LibTorch's own checks of the arguments, now rather than once fit has started
          (void)detail::make_optimizer({torch::zeros({1}, torch::requires_grad())}, args);
        } catch (const c10::Error& e) {
          throw UsageError("lightning: optimizer " + c.name +
                           " refuses its init_args: " + e.what_without_backtrace());
        }
        c.make = [args](std::vector<torch::Tensor> params) {
          return detail::make_optimizer(std::move(params), args);
        };
      });
}

inline std::optional<SchedulerChoice> read_scheduler(const YAML::Node& node) {
  return detail::read_choice<SchedulerChoice>(
      node, "lr_scheduler", detail::scheduler_classes, [](SchedulerChoice& c, const auto& args) {
        const auto at_least_one = [](const char* field, std::int64_t v) {
          if (v < 1)
            throw UsageError("lightning: lr_scheduler.init_args." + std::string(field) + " = " +
                             std::to_string(v) + " is not a valid value: must be >= 1");
        };
        if constexpr (requires { args.step_size; }) at_least_one("step_size", args.step_size);
        if constexpr (requires { args.t_max; }) at_least_one("T_max", args.t_max);
        if constexpr (requires { args.total_iters; }) at_least_one("total_iters", args.total_iters);
        if constexpr (requires { args.total_steps; }) at_least_one("total_steps", args.total_steps);
        if constexpr (requires { args.milestones; })
          if (!std::is_sorted(args.milestones.begin(), args.milestones.end()))
            throw UsageError(
                "lightning: lr_scheduler.init_args.milestones is not a valid value: the "
                "milestones must be in increasing order");
        c.make = [args]() -> FormulaScheduler { return lr::Scheduler(args); };
      });
}

// --help lines of the shorthand: each class with its arguments.
inline std::string shorthand_help() {
  std::string out;
  const auto list = [&](auto classes, const std::string& section) {
    boost::hana::for_each(classes, [&](auto c) {
      using Args = typename decltype(c)::type;
      std::vector<OptionHelp> h;
      describe(Args{}, section, h);
      out += "  --" + section + " " + std::string(c.name) + ":";
      for (const auto& o : h)
        out += " --" + section + "." + detail::python_field(o.key.substr(section.size() + 1)) +
               " " + o.type + " (" + o.default_value + ")";
      out += "\n";
    });
  };
  list(detail::optimizer_classes, "optimizer");
  list(detail::scheduler_classes, "lr_scheduler");
  return out;
}

// ---- The module the Trainer sees ----

namespace detail {

// The one scheduler of a configured module: none, the chosen one, or the module's own.
template <class Own>
class ChosenScheduler {
 public:
  ChosenScheduler() = default;
  explicit ChosenScheduler(FormulaScheduler s) : s_(std::move(s)) {}
  explicit ChosenScheduler(Own s) requires(!std::same_as<Own, std::monostate>) : s_(std::move(s)) {}

  // An empty slot: the Trainer neither steps it nor saves or expects its state.
  [[nodiscard]] bool active() const noexcept { return s_.index() != 0; }
  void attach(torch::optim::Optimizer& o) {
    each([&](auto& s) { s.attach(o); });
  }
  void step(torch::optim::Optimizer& o) {
    each([&](auto& s) { s.step(o); });
  }
  [[nodiscard]] std::int64_t last_step() const {
    std::int64_t out = 0;
    each([&](const auto& s) { out = s.last_step(); });
    return out;
  }
  [[nodiscard]] std::vector<double> base_lrs() const {
    std::vector<double> out;
    each([&](const auto& s) { out = s.base_lrs(); });
    return out;
  }
  void restore(torch::optim::Optimizer& o, std::vector<double> base, std::int64_t step) {
    each([&](auto& s) { s.restore(o, std::move(base), step); });
  }
  // The scheduler chosen, for what needs its type (the checkpoint's PyTorch state_dict).
  template <class F>
  void visit(F&& f) const {
    each(std::forward<F>(f));
  }

 private:
  template <class F>
  void each(F&& f) {
    std::visit(
        [&](auto& s) {
          using S = std::remove_cvref_t<decltype(s)>;
          if constexpr (std::same_as<S, FormulaScheduler>)
            std::visit(f, s);
          else if constexpr (!std::same_as<S, std::monostate>)
            f(s);
        },
        s_);
  }
  template <class F>
  void each(F&& f) const {
    const_cast<ChosenScheduler*>(this)->each([&](const auto& s) { f(s); });
  }

  std::variant<std::monostate, FormulaScheduler, Own> s_;
};

// What M's configure_optimizers returns, as the shorthand sees it.
template <class R>
struct own_result {
  static constexpr bool simple = false;  // several optimizers or schedulers, a plateau one
  using scheduler = std::monostate;
};
template <class Opt>
requires std::derived_from<Opt, torch::optim::Optimizer>
struct own_result<Opt> {
  static constexpr bool simple = true;
  using scheduler = std::monostate;
};
template <class Opt>
struct own_result<OptimizerConfig<Opt>> {
  static constexpr bool simple = true;
  using scheduler = std::monostate;
};
template <class Opt, class S>
struct own_result<OptimizerConfig<Opt, S>> {
  static constexpr bool simple =
      !SchedulerConfig<S>::reduce_on_plateau && requires(S & s, torch::optim::Optimizer& o) {
    s.restore(o, std::vector<double>{}, 0);
  };
  using scheduler = S;
};
template <class M>
using own_configs = std::remove_cvref_t<decltype(std::declval<M&>().configure_optimizers())>;

}  // namespace detail

// Whether the shorthand can stand in for M's configure_optimizers: automatic optimization
// and one optimizer with at most one (formula) scheduler.
namespace detail {
template <class M>
constexpr bool shorthand_fits() {
  if constexpr (requires(M & m) { m.configure_optimizers(); })
    return own_result<own_configs<M>>::simple && !uses_manual_optimization<M>;
  else
    return false;
}
}  // namespace detail

template <class M>
inline constexpr bool supports_optimizer_shorthand = detail::shorthand_fits<M>();

// M whose configure_optimizers is the command line's choice when one was made, else M's own.
template <class M>
class ConfiguredModule : public M {
  using Own = typename detail::own_result<detail::own_configs<M>>::scheduler;

 public:
  using M::M;
  using Scheduler = detail::ChosenScheduler<Own>;

  void choose(const std::optional<OptimizerChoice>* optimizer,
              const std::optional<SchedulerChoice>* scheduler) {
    optimizer_ = optimizer;
    scheduler_ = scheduler;
  }

  OptimizerConfig<std::unique_ptr<torch::optim::Optimizer>, Scheduler> configure_optimizers() {
    OptimizerConfig<std::unique_ptr<torch::optim::Optimizer>, Scheduler> out;
    auto& slot = std::get<0>(out.lr_schedulers);
    if (optimizer_ && *optimizer_) {
      out.optimizer = (*optimizer_)->make(this->parameters());
      if (scheduler_ && *scheduler_) slot.scheduler = Scheduler((*scheduler_)->make());
      return out;
    }
    auto own = lightning::detail::to_optimizer_config(M::configure_optimizers());
    using OwnOpt = std::remove_cvref_t<decltype(own.optimizer)>;
    out.optimizer = std::make_unique<OwnOpt>(std::move(own.optimizer));
    if constexpr (!std::same_as<Own, std::monostate>) {
      auto& own_slot = std::get<0>(own.lr_schedulers);
      slot.scheduler = Scheduler(std::move(own_slot.scheduler));
      slot.options = std::move(own_slot.options);
    }
    return out;
  }

 private:
  const std::optional<OptimizerChoice>* optimizer_ = nullptr;
  const std::optional<SchedulerChoice>* scheduler_ = nullptr;
};

}  // namespace lightning::cli
