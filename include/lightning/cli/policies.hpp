// The policy combinations a command-line program is compiled with, and the one dispatch
// from Lightning's strings (--trainer.accelerator/strategy/precision) to one of them.
//
//   cli.run();                                              // every valid combination
//   cli.run(L::cli::policy_product(L::cli::policies<L::accelerators::CPU>,
//                                  L::cli::policies<L::strategies::SingleDevice>,
//                                  L::cli::policies<L::precision::F32, L::precision::BF16Mixed>));
//
// The choice is made once, before the Trainer exists: each combination is its own static
// Trainer<A, S, P, ...>, so the loop has no virtual call. A combination that cannot exist
// (16-mixed on the CPU) is left out of a product at compile time.
#pragma once

#include <lightning/cli/fields.hpp>
#include <lightning/policies/accelerators.hpp>
#include <lightning/policies/ddp.hpp>
#include <lightning/policies/precision.hpp>
#include <lightning/policies/strategies.hpp>

#include <boost/hana/bool.hpp>
#include <boost/hana/cartesian_product.hpp>
#include <boost/hana/filter.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/front.hpp>
#include <boost/hana/transform.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lightning::cli {

// One axis of a product: a list of policy types.
template <class... Policies>
inline constexpr auto policies = boost::hana::tuple_t<Policies...>;

// A policy combination, as a compile-time value.
template <class A, class S, class P>
struct Combination {
  using accelerator = A;
  using strategy = S;
  using precision = P;
};

namespace detail {
// The precision runs on the accelerator's device, where that is known at compile time.
template <class A, class P>
constexpr bool can_exist() {
  if constexpr (A::device_type.has_value())
    return precision::supports_device<P>(*A::device_type);
  else
    return true;
}
}  // namespace detail

// Every combination of the three axes that can exist, as a hana tuple of Combination types.
template <class As, class Ss, class Ps>
constexpr auto policy_product(As accelerators, Ss strategies, Ps precisions) {
  namespace hana = boost::hana;
  auto all = hana::cartesian_product(hana::make_tuple(accelerators, strategies, precisions));
  auto valid = hana::filter(all, [](auto triple) {
    return hana::unpack(triple, [](auto a, auto, auto p) {
      using A = typename decltype(a)::type;
      using P = typename decltype(p)::type;
      return hana::bool_c<detail::can_exist<A, P>()>;
    });
  });
  return hana::transform(valid, [](auto triple) {
    return hana::unpack(triple, [](auto a, auto s, auto p) {
      return hana::type_c<Combination<typename decltype(a)::type, typename decltype(s)::type,
                                      typename decltype(p)::type>>;
    });
  });
}

// The default set: every valid combination of the library's accelerators (cpu, cuda),
// strategies (single_device, ddp) and precisions. "auto" is resolved at run time to one
// of these, as Lightning resolves it.
constexpr auto all_policies() {
  return policy_product(policies<accelerators::CPU, accelerators::CUDA>,
                        policies<strategies::SingleDevice, strategies::DDP>,
                        policies<precision::F32, precision::F64, precision::BF16Mixed,
                                 precision::F16Mixed, precision::BF16True, precision::F16True>);
}

// What the command line asked for, in Lightning's strings, resolved to policy names.
struct PolicyChoice {
  std::string accelerator = "auto";  // cpu | cuda | gpu | auto
  std::string strategy = "auto";     // auto | single_device | ddp
  std::string precision = "32-true";
};

// Lightning's precision strings, the legacy ones mapped to today's ("16" is 16-mixed).
inline std::string normalize_precision(const std::string& p) {
  if (p == "32") return "32-true";
  if (p == "64") return "64-true";
  if (p == "16") return "16-mixed";
  if (p == "bf16") return "bf16-mixed";
  return p;
}

inline constexpr std::array<std::string_view, 6> precision_names{
    "32-true", "64-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true"};

// The policy names the run uses: "auto" resolved (cuda when a GPU is there; ddp when more
// than one process takes part), aliases normalized. Unknown strings are UsageErrors.
inline PolicyChoice resolve(PolicyChoice choice, std::optional<std::int64_t> devices,
                            std::int64_t num_nodes) {
  auto& a = choice.accelerator;
  if (a == "gpu") a = "cuda";
  if (a == "auto") a = torch::cuda::is_available() ? "cuda" : "cpu";
  if (a != "cpu" && a != "cuda")
    throw UsageError("lightning: trainer.accelerator = '" + choice.accelerator +
                     "' is not a valid value: trainer.accelerator takes cpu | cuda | gpu | auto");
  if (a == "cuda" && !torch::cuda::is_available())
    throw UsageError(
        "lightning: trainer.accelerator = cuda, but no CUDA device is available here "
        "(torch::cuda::is_available() is false); use cpu or auto");
  auto& p = choice.precision;
  p = normalize_precision(p);
  bool known = false;
  for (auto name : precision_names) known = known || p == name;
  if (!known) {
    std::string names;
    for (auto name : precision_names) names += (names.empty() ? "" : " | ") + std::string(name);
    throw UsageError("lightning: trainer.precision = '" + choice.precision +
                     "' is not a valid value: trainer.precision takes " + names +
                     " (or the legacy 32 | 64 | 16 | bf16)");
  }
  auto& s = choice.strategy;
  if (s == "auto") {
    std::int64_t processes = devices.value_or(1) * num_nodes;
    if (!devices)  // "auto": what a launcher around the program started
      if (const char* world = std::getenv("WORLD_SIZE")) processes = std::atoll(world);
    s = processes > 1 ? "ddp" : "single_device";
  }
  if (s != "single_device" && s != "ddp")
    throw UsageError("lightning: trainer.strategy = '" + choice.strategy +
                     "' is not a valid value: trainer.strategy takes auto | single_device | ddp");
  return choice;
}

template <class Combos>
std::vector<std::string> combination_names(Combos combos) {
  std::vector<std::string> out;
  boost::hana::for_each(combos, [&](auto c) {
    using C = typename decltype(c)::type;
    out.push_back(std::string(C::accelerator::name) + "/" + std::string(C::strategy::name) + "/" +
                  std::string(C::precision::name));
  });
  return out;
}

template <class Combos>
bool compiled_with(Combos combos, const PolicyChoice& choice) {
  bool found = false;
  boost::hana::for_each(combos, [&](auto c) {
    using C = typename decltype(c)::type;
    found =
        found || (C::accelerator::name == choice.accelerator &&
                  C::strategy::name == choice.strategy && C::precision::name == choice.precision);
  });
  return found;
}

// A UsageError, listing the combinations the program was compiled with, unless `choice`
// (resolved) is one of them.
template <class Combos>
void check_combination(Combos combos, const PolicyChoice& choice) {
  if (compiled_with(combos, choice)) return;
  std::string why;
  if (choice.accelerator == "cpu" && choice.precision == "16-mixed")
    why = " (16-mixed runs only on CUDA: its gradient scaler and fp16 autocast need a GPU)";
  std::string valid;
  for (const auto& name : combination_names(combos)) valid += "\n  " + name;
  throw UsageError("lightning: trainer.accelerator/strategy/precision = " + choice.accelerator +
                   "/" + choice.strategy + "/" + choice.precision +
                   " is not a combination this program was built with" + why +
                   "; it was built with (accelerator/strategy/precision):" + valid);
}

// Calls f(hana::type_c<Combination<A, S, P>>) for the combination `choice` names (resolved
// and checked by check_combination), and returns what f returns.
template <class Combos, class F>
auto dispatch(Combos combos, const PolicyChoice& choice, F&& f) {
  check_combination(combos, choice);
  using Result = decltype(f(boost::hana::front(combos)));
  std::optional<std::conditional_t<std::is_void_v<Result>, int, Result>> result;
  boost::hana::for_each(combos, [&](auto c) {
    using C = typename decltype(c)::type;
    if (result || C::accelerator::name != choice.accelerator ||
        C::strategy::name != choice.strategy || C::precision::name != choice.precision)
      return;
    if constexpr (std::is_void_v<Result>) {
      f(c);
      result = 0;
    } else {
      result = f(c);
    }
  });
  if constexpr (!std::is_void_v<Result>) return std::move(*result);
}

}  // namespace lightning::cli
