// Lightning's Tuner: searches run before training that set something the run needs.
// lr_find and scale_batch_size run short fits on Trainers of their own (the user's
// accelerator, precision and options, one device, no callbacks, loggers or checkpoints but
// their own), then restore the module's weights and write what they found into it.
#pragma once

#include <lightning/fabric/checkpoint_state.hpp>
#include <lightning/policies/strategies.hpp>
#include <lightning/trainer/trainer.hpp>
#include <lightning/tuner/batch_size_finder.hpp>
#include <lightning/tuner/lr_finder.hpp>

#include <concepts>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <utility>

namespace lightning {

template <class T>
class Tuner {
 public:
  explicit Tuner(T& trainer) : trainer_(trainer) {}

  // Lightning's Tuner(trainer).lr_find(model, train_dataloaders, ...): unset when the
  // trainer is a fast_dev_run (skipped, as Lightning does).
  template <class M, class Loader>
  std::optional<LRFinder> lr_find(M& model, Loader&& train, LRFinderOptions options = {}) {
    detail::check_lr_finder_options(options);
    if (skipped("the learning rate finder")) return std::nullopt;
    if (options.update_attr) detail::require_learning_rate_attr(model, options);

    TrainerOptions o = search_options(options.num_training);
    Search<detail::LRSweep> sweep(o, detail::LRSweep(options));

    // The weights come back whatever happens (Lightning restores its checkpoint in a
    // `finally`); optimizers are made anew by the next fit.
    const RestoreWeights<M> restore{model, module_state_dict(model)};
    sweep.fit(model, std::forward<Loader>(train));

    auto& recorded = sweep.template callback<detail::LRSweep>();
    LRFinder result(options, std::move(recorded.lrs), std::move(recorded.losses));
    if (sweep.global_step != options.num_training && trainer_.is_global_zero())
      std::cerr << "lightning: the learning rate finder stopped after " << sweep.global_step
                << " of " << options.num_training << " steps ("
                << (sweep.should_stop ? "the loss diverged" : "max_epochs or max_time ended it")
                << ")\n";
    if (options.update_attr)
      if (const auto lr = result.suggestion()) {
        detail::set_learning_rate(model, options, *lr);
        if (trainer_.is_global_zero())
          std::cerr << "lightning: learning rate set to " << *lr << '\n';
      }
    return result;
  }

  // Lightning's Tuner(trainer).scale_batch_size: the largest batch size whose trials of
  // steps_per_trial steps train (BatchSizeFinderOptions). `make_loader(batch_size)` makes
  // the training loader of a size (where Lightning re-reads a batch_size attribute); the
  // module's `batch_size` member or hyperparameter, if it has one, is where the search
  // starts and what it sets. Unset under fast_dev_run.
  template <class M, class MakeLoader>
  requires std::invocable<MakeLoader&, std::int64_t> std::optional<std::int64_t> scale_batch_size(
      M& model, MakeLoader&& make_loader, BatchSizeFinderOptions options = {}) {
    detail::check_batch_size_finder_options(options);
    if (skipped("the batch size finder")) return std::nullopt;
    const bool talk = trainer_.is_global_zero();
    const auto say = [&](const std::string& line) {
      if (talk) std::cerr << "lightning: " << line << '\n';
    };
    const TrainerOptions o = [&] {
      auto search = search_options(options.steps_per_trial);
      search.limit_train_batches = 1.0;
      return search;
    }();
    const RestoreWeights<M> restore{model, module_state_dict(model)};
    // One trial: a fit of steps_per_trial steps; out of memory (an error, or the CPU
    // limit) is a failure, any other error ends the search.
    const auto trial = [&](std::int64_t size) {
      detail::set_module_batch_size(model, size);
      auto loader = make_loader(size);
      Search<> fit(o);
      try {
        if (!options.memory_limit_bytes) {
          fit.fit(model, loader);
          return true;
        }
        const auto peak = cpu_tensor_memory_peak([&] { fit.fit(model, loader); });
        if (peak <= *options.memory_limit_bytes) return true;
        say("batch size " + std::to_string(size) + " peaked at " + std::to_string(peak) +
            " bytes of CPU tensors, over memory_limit_bytes = " +
            std::to_string(*options.memory_limit_bytes));
        return false;
      } catch (const std::exception& e) {
        if (!detail::is_oom_error(e)) throw;
        detail::release_cached_memory(fit.fabric().device());
        return false;
      }
    };
    const auto start = detail::module_batch_size(model).value_or(options.init_val);
    const auto found = detail::search_batch_size(
        options, start, detail::dataset_length(make_loader(options.init_val)), trial, say);
    detail::set_module_batch_size(model, found);
    say("finished the batch size finder; the full run will use batch size " +
        std::to_string(found));
    return found;
  }

  // The same with a DataModule whose `batch_size` member its train_dataloader() reads
  // (Lightning's datamodule attribute); the member holds the result afterwards.
  template <class M, class D>
  requires(!std::invocable<D&, std::int64_t>) && requires(D& d) {
    d.batch_size = std::int64_t{};
    d.train_dataloader();
  }
  std::optional<std::int64_t> scale_batch_size(M& model, D& datamodule,
                                               BatchSizeFinderOptions options = {}) {
    const auto initial = datamodule.batch_size;
    auto found = scale_batch_size(
        model,
        [&](std::int64_t size) {
          datamodule.batch_size = static_cast<decltype(initial)>(size);
          return datamodule.train_dataloader();
        },
        options);
    datamodule.batch_size = found ? static_cast<decltype(initial)>(*found) : initial;
    return found;
  }

 private:
  // The Trainer a search runs its fits on.
  template <class... C>
  using Search = Trainer<typename T::accelerator_type, strategies::SingleDevice,
                         typename T::precision_type, C...>;

  // The user's options for a search of `steps` optimizer steps, with everything that
  // writes, logs or shows progress off.
  TrainerOptions search_options(std::int64_t steps) const {
    TrainerOptions o = trainer_.options();
    o.max_steps = steps;
    o.barebones = false;
    o.enable_progress_bar = false;
    o.enable_checkpointing = false;
    o.enable_model_summary = false;
    o.logger = false;
    o.num_sanity_val_steps = 0;
    return o;
  }

  bool skipped(const char* what) const {
    if (trainer_.options().fast_dev_run == 0) return false;
    if (trainer_.is_global_zero())
      std::cerr << "lightning: warning: skipping " << what << " since fast_dev_run is enabled\n";
    return true;
  }

  // Puts the module's weights back when a search ends, also when it fails.
  template <class M>
  struct RestoreWeights {
    M& model;
    c10::Dict<std::string, at::Tensor> state;
    ~RestoreWeights() {
      try {
        load_module_state_dict(model, state, "the tuner's copy of the weights");
      } catch (const std::exception& e) {
        std::cerr << "lightning: the tuner could not restore the weights: " << e.what() << '\n';
      }
    }
  };

  T& trainer_;
};

template <class T>
Tuner(T&) -> Tuner<T>;

}  // namespace lightning
