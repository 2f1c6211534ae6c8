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

// The evaluation loaders this rank iterates: each one's shard where the strategy shards it
// (Lightning puts a DistributedSampler, shuffle as the loader's, in val and test loaders
// too), else the loader itself (a reference).
template <class F, class L>
decltype(auto) setup_evaluation_loader(F& fabric, L& loader) {
  if constexpr (std::is_same_v<std::remove_cvref_t<L>, detail::NoLoader>)
    return (loader);
  else
    return fabric.setup_dataloader(loader);
}
template <class F, class Refs>
auto setup_evaluation_loaders(F& fabric, const Refs& loaders) {
  return std::apply(
      [&](auto&... l) {
        return std::tuple<decltype(setup_evaluation_loader(fabric, l))...>(
            setup_evaluation_loader(fabric, l)...);
      },
      loaders);
}

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
