// The Trainer's data plumbing (Lightning's trainer/connectors/data_connector.py): the
// shapes of loaders an entry point takes, their lengths after the limit options, the
// DataModule lifecycle, and the transfer of a batch to the device through the module's
// transfer hooks.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/profiler_connector.hpp>
#include <lightning/trainer/options.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace lightning {
namespace detail {

// Passed as the validation loader when fit() gets none.
struct NoLoader {};

// Several validation/test loaders: a std::tuple of loaders, or of references (std::tie).
template <class T>
struct is_loader_tuple : std::false_type {};
template <class... L>
struct is_loader_tuple<std::tuple<L...>>
    : std::bool_constant<(sizeof...(L) > 0 && (BatchLoader<std::remove_cvref_t<L>> && ...))> {};
template <class T>
concept EvaluationLoaders = BatchLoader<T> || is_loader_tuple<T>::value;

// The evaluation loaders as a tuple of references: one loader is a tuple of one.
template <class L>
auto loader_refs(L& loaders) {
  if constexpr (is_loader_tuple<std::remove_cvref_t<L>>::value)
    return std::apply([](auto&... each) { return std::tie(each...); }, loaders);
  else
    return std::tie(loaders);
}
template <class L>
using loader_refs_t = decltype(loader_refs(std::declval<L&>()));

}  // namespace detail

namespace connectors {

template <class L>
std::optional<std::int64_t> loader_length(L& loader) {
  if constexpr (SizedLoader<L>)
    return static_cast<std::int64_t>(loader.size());
  else
    return std::nullopt;
}

// The loaders this rank iterates: each one's shard where the strategy shards it (Lightning
// puts a DistributedSampler, shuffle as the loader's, in train, val and test loaders),
// else the loader itself (a reference); NoLoader (fit without validation) stays itself.
template <class F, class L>
decltype(auto) setup_loader(F& fabric, L& loader, bool use_distributed_sampler) {
  if constexpr (std::is_same_v<std::remove_cvref_t<L>, detail::NoLoader>)
    return (loader);
  else
    return fabric.setup_dataloader(loader, use_distributed_sampler);
}
template <class F, class Refs>
auto setup_evaluation_loaders(F& fabric, const Refs& loaders, bool use_distributed_sampler) {
  return std::apply(
      [&](auto&... l) {
        return std::tuple<decltype(setup_loader(fabric, l, true))...>(
            setup_loader(fabric, l, use_distributed_sampler)...);
      },
      loaders);
}

// A loader that tells whether it shuffles and gives an in-order copy of itself
// (TensorLoader, DataLoader): what overfit_batches needs, as Lightning swaps a shuffling
// sampler for a SequentialSampler.
template <class L>
concept ShuffleSwitchable = requires(const L& l) {
  { l.shuffles() } -> std::convertible_to<bool>;
  { l.without_shuffle() } -> std::same_as<L>;
};

// The loader a fit iterates on this rank: the given one, or an in-order copy of it
// (overfit_batches), through the strategy (its shard, unless use_distributed_sampler is
// false). set() again when the loaders reload.
template <class F, class L>
class RankLoader {
  using Given = std::remove_reference_t<L>;
  using Plain = std::remove_cv_t<Given>;
  using Prepared = decltype(setup_loader(std::declval<F&>(), std::declval<Given&>(), true));
  static constexpr bool owned = !std::is_lvalue_reference_v<Prepared>;

 public:
  // True when it turned the loader's shuffling off (the caller warns once).
  bool set(F& fabric, Given& loader, const TrainerOptions& run) {
    if constexpr (owned)
      prepared_.reset();
    else
      prepared_ = nullptr;
    in_order_.reset();
    Given* source = &loader;
    bool unshuffled = false;
    if constexpr (ShuffleSwitchable<Plain>) {
      if (overfitting(run) && loader.shuffles()) {
        source = &in_order_.emplace(loader.without_shuffle());
        unshuffled = true;
      }
    }
    if constexpr (owned)
      prepared_.emplace(setup_loader(fabric, *source, run.use_distributed_sampler));
    else
      prepared_ = &setup_loader(fabric, *source, run.use_distributed_sampler);
    return unshuffled;
  }
  [[nodiscard]] auto& get() noexcept { return *prepared_; }

 private:
  std::optional<Plain> in_order_;
  std::conditional_t<owned, std::optional<std::remove_cvref_t<Prepared>>,
                     std::remove_reference_t<Prepared>*>
      prepared_{};
};

// Lightning's warning when overfit_batches turns a loader's shuffling off.
inline void warn_unshuffled(bool any, bool rank_zero, std::string_view prefix) {
  if (any && rank_zero)
    std::cerr << "lightning: warning: You requested to overfit but enabled " << prefix
              << " dataloader shuffling. We are turning off the " << prefix
              << " dataloader shuffling for you.\n";
}

// The validation loaders of a fit (a tuple of references, detail::loader_refs), each a
// RankLoader.
template <class F, class Refs>
class RankLoaders;
template <class F, class... L>
class RankLoaders<F, std::tuple<L&...>> {
 public:
  void set(F& fabric, const std::tuple<L&...>& given, const TrainerOptions& run) {
    const bool any = std::apply(
        [&](auto&... each) {
          return std::apply([&](auto&... g) { return (each.set(fabric, g, run) | ... | false); },
                            given);
        },
        each_);
    warn_unshuffled(any, fabric.is_global_zero(), "val");
  }
  // The loaders to iterate, as references (made again each run: a reload moves them).
  [[nodiscard]] auto refs() {
    return std::apply(
        [](auto&... each) { return std::tuple<decltype(each.get())...>(each.get()...); }, each_);
  }

 private:
  std::tuple<RankLoader<F, L>...> each_;
};

// Applies a BatchLimit, refusing a fraction that leaves no batch of a non-empty loader.
inline std::optional<std::int64_t> limited(const BatchLimit& limit, std::optional<std::int64_t> n,
                                           const char* option) {
  if (!limit.is_count() && !limit.is_all() && !n)
    detail::bad_option(option, limit.str(),
                       "a fraction needs a loader with size(); pass a batch count instead");
  auto r = limit.apply(n);
  if (r && *r == 0 && !limit.is_count() && limit.fraction() > 0.0 && n && *n > 0)
    detail::bad_option(
        option, limit.str(),
        ("less than one batch of the loader's " + std::to_string(*n) + "; raise it or pass a count")
            .c_str());
  return r;
}

// Each evaluation loader's batch count after the limit (unknown: no size()).
template <class Loaders>
using Limits = std::array<std::optional<std::int64_t>, std::tuple_size_v<Loaders>>;
template <class Loaders>
Limits<Loaders> loader_limits(Loaders& loaders, const BatchLimit& limit, const char* option) {
  return std::apply(
      [&](auto&... l) { return Limits<Loaders>{limited(limit, loader_length(l), option)...}; },
      loaders);
}
template <std::size_t N>
std::optional<std::int64_t> total_batches(
    const std::array<std::optional<std::int64_t>, N>& limits) {
  std::int64_t total = 0;
  for (const auto& n : limits) {
    if (!n) return std::nullopt;
    total += *n;
  }
  return total;
}

// Restores a train loader's state_dict() from a checkpoint: a TensorLoader's generator
// (a tensor) or a DataLoader's dict.
template <class L>
void load_loader_state(L& loader, const c10::IValue& state) {
  if constexpr (requires { loader.load_state_dict(torch::Tensor()); }) {
    if (state.isTensor()) loader.load_state_dict(state.toTensor());
  } else if constexpr (requires { loader.load_state_dict(make_checkpoint()); }) {
    if (state.isGenericDict()) loader.load_state_dict(checkpoint_dict(state));
  }
}

// Runs a DataModule's prepare_data and setup(stage) before, teardown(stage) after.
template <class D, class F>
void with_datamodule(D& dm, Stage stage, F&& body) {
  hooks::call_module<hooks::prepare_data>(dm);
  hooks::call_module<hooks::setup>(dm, stage);
  body();
  hooks::call_module<hooks::teardown>(dm, stage);
}

// A batch on the device, through the module's transfer hooks if it has any; the
// accelerator moves it and the precision casts it (Fabric::to_device), one rebuild.
template <class T, class M, class B>
auto prepare_batch(T& trainer, M& model, B&& raw, std::int64_t dataloader_idx = 0) {
  auto& fabric = trainer.fabric();
  const auto to_device = [&](auto&& b) {
    return profiled_strategy(trainer, "batch_to_device", [&] { return fabric.to_device(b); });
  };
  if constexpr (hooks::on_before_batch_transfer::declared<M> ||
                hooks::on_after_batch_transfer::declared<M>) {
    auto before = [&] {
      if constexpr (hooks::on_before_batch_transfer::declared<M>)
        return call_module_hook<hooks::on_before_batch_transfer>(
            trainer, model, std::forward<B>(raw), dataloader_idx);
      else
        return std::remove_cvref_t<B>(std::forward<B>(raw));
    }();
    auto moved = to_device(before);
    if constexpr (hooks::on_after_batch_transfer::declared<M>)
      return call_module_hook<hooks::on_after_batch_transfer>(trainer, model, std::move(moved),
                                                              dataloader_idx);
    else
      return moved;
  } else {
    return to_device(std::forward<B>(raw));
  }
}

// The loader's next batch, on the device, and the iterator advanced. A profiler times
// the fetch as `action` (Lightning's "[_TrainingEpochLoop].train_dataloader_next"): the
// loader's work is in *it for some loaders and in ++it for others, so both are timed,
// the batch first copied out of the iterator (only when profiling).
template <class T, class M, class It>
auto next_batch(T& trainer, M& model, It& it, std::string_view action,
                std::int64_t dataloader_idx = 0) {
  if constexpr (T::profiling) {
    auto raw = profiled(trainer, action, [&] {
      std::remove_cvref_t<decltype(*it)> fetched = *it;
      ++it;
      return fetched;
    });
    return prepare_batch(trainer, model, std::move(raw), dataloader_idx);
  } else {
    auto batch = prepare_batch(trainer, model, *it, dataloader_idx);
    ++it;
    return batch;
  }
}

}  // namespace connectors
}  // namespace lightning
