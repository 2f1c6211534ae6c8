// The training epoch loop (Lightning's loops/training_epoch_loop.py): the batches of one
// epoch, each through training_step and automatic optimization (or the module's own,
// manual), logging steps, validation at its schedule, the stopping rules, and the replay
// that resumes a checkpoint saved inside an epoch. Policy points: the accelerator's
// transfer and the precision's cast (prepare_batch), the strategy's pre_forward and the
// precision's autocast around training_step, and those of automatic.hpp.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/interrupts.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/data_connector.hpp>
#include <lightning/trainer/connectors/logger_connector.hpp>
#include <lightning/trainer/loops/evaluation_loop.hpp>
#include <lightning/trainer/loops/optimization/automatic.hpp>
#include <lightning/trainer/options.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace lightning::loops {

// When validation runs inside fit: over these loaders (connectors::RankLoaders), at this
// batch of each epoch (0: its last batch), unless no loader yields a batch. `reload`
// (reload_dataloaders_every_n_epochs) asks the DataModule again before a run when due.
template <class Ranked>
struct ValidationSchedule {
  Ranked ranked;
  using Loaders = decltype(std::declval<Ranked&>().refs());
  using first_loader = std::remove_cvref_t<std::tuple_element_t<0, Loaders>>;
  connectors::Limits<Loaders> limits{};
  bool enabled = false;
  std::int64_t check_batch = 0;
  std::function<void()> reload_if_due;

  [[nodiscard]] Loaders loaders() { return ranked.refs(); }
};

// --- Stopping rules (Lightning's fit_loop.done / _can_stop_early) ---

template <class T>
bool can_stop_early(const T& trainer) noexcept {
  const auto& run = trainer.run_options();
  return trainer.current_epoch >= run.min_epochs && trainer.global_step >= run.min_steps;
}
template <class T>
bool max_steps_reached(const T& trainer) noexcept {
  const auto& run = trainer.run_options();
  return run.max_steps != -1 && trainer.global_step >= run.max_steps;
}
// should_stop, unless min_epochs/min_steps are not met yet (then a warning, once).
template <class T>
bool stop_requested(T& trainer) {
  if (!trainer.should_stop) return false;
  if (can_stop_early(trainer)) return true;
  if (!trainer.progress().min_limits_warned) {
    const auto& run = trainer.run_options();
    std::cerr << "lightning: Trainer was signaled to stop but the required min_epochs="
              << run.min_epochs << " or min_steps=" << run.min_steps
              << " has not been met. Training will continue...\n";
    trainer.progress().min_limits_warned = true;
  }
  return false;
}
template <class T>
bool fit_done(T& trainer) {
  const auto& run = trainer.run_options();
  if (run.max_epochs == 0 || max_steps_reached(trainer)) return true;
  if (*run.max_epochs != -1 && trainer.current_epoch >= *run.max_epochs) return true;
  return stop_requested(trainer);
}

// SIGTERM or SIGINT, agreed by every rank at this step boundary: the run is saved as a
// checkpoint saved in on_train_batch_end would be (rank zero writes, the others wait), and
// fit ends with Interrupted.
template <class T>
[[noreturn]] void stop_for_interrupt(T& trainer) {
  const auto path = trainer.default_root_dir() / "interrupted.ckpt";
  trainer.save_checkpoint(path);
  throw Interrupted(received_interrupt() != 0 ? received_interrupt() : SIGTERM, path);
}

// Whether the running epoch may validate (Lightning's _should_check_val_epoch).
template <class T>
bool validates_in_epoch(const T& trainer) noexcept {
  const auto& every = trainer.run_options().check_val_every_n_epoch;
  return !every || (trainer.current_epoch + 1) % *every == 0;
}

template <class T>
bool should_validate(const T& trainer, std::int64_t idx, std::int64_t total_idx, bool is_last,
                     std::int64_t check_batch) {
  const auto& run = trainer.run_options();
  if (!validates_in_epoch(trainer)) return false;
  if (trainer.should_stop && can_stop_early(trainer)) return true;
  if (check_batch == 0) return is_last;
  const std::int64_t iteration = run.check_val_every_n_epoch ? idx : total_idx;
  return (iteration + 1) % check_batch == 0;
}

template <class M, class VL>
inline constexpr bool has_validation_loop =
    !std::is_same_v<VL, detail::NoLoader> && hooks::validation_step::declared<M>;

// One training epoch; true when it ran through all of its batches.
template <class T, class M, class Configs, class TL, class Ranked>
bool run_training_epoch(T& trainer, M& model, Configs& configs, TL& loader,
                        [[maybe_unused]] ValidationSchedule<Ranked>& validation) {
  using Callbacks = std::remove_cvref_t<decltype(trainer.callbacks())>;
  auto& progress = trainer.progress();
  auto& fabric = trainer.fabric();
  const auto& run = trainer.run_options();
  const auto limit = trainer.num_training_batches;
  if (limit && *limit == 0) return false;
  bool completed = false;
  [[maybe_unused]] const AutomaticSettings settings{
      .accumulate = run.accumulate_grad_batches,
      .clip_value = run.gradient_clip_val.value_or(0.0),
      .clip_by_norm = run.gradient_clip_algorithm == GradClipAlgorithm::norm};

  // A checkpoint saved inside this epoch resumes by replaying the epoch's start: the CPU
  // generator as it was when the loader began (same shuffle), then the batches it had
  // done are skipped and the generators continue from the checkpoint.
  std::int64_t first = 0;
  if (progress.mid_epoch_resume) {
    if (progress.mid_epoch_resume->epoch_rng_cpu.defined())
      set_cpu_rng_state(progress.mid_epoch_resume->epoch_rng_cpu);
    first = progress.mid_epoch_resume->batches_done;
  }
  progress.epoch_rng_cpu = cpu_rng_state();
  if constexpr (requires { loader.state_dict(); })
    progress.train_loader_state = loader.state_dict();
  // A distributed shard orders each epoch by its number (Lightning's sampler.set_epoch),
  // so a resumed run continues the order the interrupted one would have drawn.
  if constexpr (requires { loader.set_epoch(trainer.current_epoch); })
    loader.set_epoch(trainer.current_epoch);
  // A loader that can start at any batch does, its workers' generators restored; any
  // other is iterated past the batches done.
  constexpr bool starts_anywhere = requires {
    loader.begin_at(first, torch::Tensor());
  };
  auto it = [&] {
    if constexpr (starts_anywhere)
      return loader.begin_at(first, progress.mid_epoch_resume
                                        ? progress.mid_epoch_resume->loader_workers
                                        : torch::Tensor());
    else
      return detail::loader_begin(loader);
  }();
  auto end = detail::loader_end(loader);
  if constexpr (!starts_anywhere)
    for (std::int64_t skipped = 0; skipped < first && it != end; ++skipped) ++it;
  struct ForgetLoader {
    std::remove_cvref_t<decltype(progress)>& p;
    ~ForgetLoader() { p.train_loader_workers = nullptr; }
  } forget{progress};
  if constexpr (requires { loader.worker_states(std::int64_t{}); })
    progress.train_loader_workers = [&loader](std::int64_t k) { return loader.worker_states(k); };
  if (progress.mid_epoch_resume) {
    fabric.set_rng_state(progress.mid_epoch_resume->rng);
    progress.mid_epoch_resume.reset();
    progress.epoch_batches_done = first;
    progress.batches_done = progress.total_batch_idx;
  }
  bool have = it != end;
  // A checkpoint saved after the epoch's last batch (in on_validation_end) resumes here.
  if (first > 0 && (!have || (limit && first >= *limit))) completed = true;
  if (!have && !limit && first == 0)
    throw std::invalid_argument("lightning: the training loader yielded no batches in epoch " +
                                std::to_string(trainer.current_epoch) +
                                "; check the dataset, batch_size and drop_last");
  for (std::int64_t idx = first; have && (!limit || idx < *limit);
       ++idx, ++progress.total_batch_idx) {
    trainer.checkpoint_connector().raise_if_write_failed();
    auto batch =
        connectors::next_batch(trainer, model, it, "[_TrainingEpochLoop].train_dataloader_next");
    have = it != end;
    const bool is_last = !have || (limit && idx + 1 == *limit);
    trainer.batch_idx = idx;
    trainer.metrics.set_batch_size(infer_batch_size(batch));

    connectors::scope(trainer, LogScope::train_step, "on_train_batch_start");
    connectors::call_callback_hooks<hooks::on_train_batch_start>(trainer, model, batch, idx);
    using StartResult =
        decltype(hooks::call_module<hooks::on_train_batch_start>(model, batch, idx));
    if constexpr (std::is_void_v<StartResult>) {
      connectors::call_module_hook<hooks::on_train_batch_start>(trainer, model, batch, idx);
    } else {
      if (connectors::call_module_hook<hooks::on_train_batch_start>(trainer, model, batch, idx) ==
          -1)
        break;
    }

    connectors::scope(trainer, LogScope::train_step, "training_step");
    // Lightning's run_training_batch: training_step and the optimization it feeds.
    auto output = connectors::profiled(trainer, "run_training_batch", [&] {
      fabric.pre_forward(model);
      auto out = connectors::profiled_strategy(trainer, "training_step", [&] {
        return detail::invoke_output([&]() -> decltype(auto) {
          [[maybe_unused]] auto autocast = fabric.autocast();
          return model.training_step(batch, idx);
        });
      });
      if constexpr (!uses_manual_optimization<M>)
        automatic_optimization_step(trainer, model, std::get<0>(configs), detail::loss_of(out), idx,
                                    is_last, settings);
      return out;
    });
    if (is_last) {
      completed = true;
      if constexpr (!uses_manual_optimization<M>)
        step_schedulers(trainer, std::get<0>(configs), Interval::epoch, /*plateau=*/false);
    }

    progress.batch_done(idx);
    connectors::scope(trainer, LogScope::train_step, "on_train_batch_end");
    connectors::call_hooks<hooks::on_train_batch_end>(trainer, model, std::as_const(output),
                                                      std::as_const(batch), idx);

    if constexpr (connectors::has_loggers<Callbacks>)
      if (trainer.should_update_logs())
        connectors::emit_logs(trainer, trainer.metrics.take_step_metrics(),
                              std::max<std::int64_t>(trainer.global_step - 1, 0));

    if constexpr (has_validation_loop<M, typename ValidationSchedule<Ranked>::first_loader>) {
      if (validation.enabled && should_validate(trainer, idx, progress.total_batch_idx, is_last,
                                                validation.check_batch)) {
        if (validation.reload_if_due) validation.reload_if_due();
        if (validation.enabled) {
          auto loaders = validation.loaders();
          run_evaluation<ValidationLoop>(trainer, model, loaders, validation.limits);
          progress.validation_done(trainer.num_val_batches.value_or(0));
        }
      }
    }
    if (fabric.interrupt_requested()) stop_for_interrupt(trainer);
    if (max_steps_reached(trainer) || stop_requested(trainer)) {
      ++progress.total_batch_idx;
      break;
    }
  }
  return completed;
}

}  // namespace lightning::loops
