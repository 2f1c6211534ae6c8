// The fit loop (Lightning's loops/fit_loop.py): optimizers and schedulers from the
// module, the resume from a checkpoint, the validation schedule, the sanity check, then
// epochs until a stopping rule holds. Policy points: the strategy's process_dataloader
// (this rank's shard of the train loader) and broadcast (the stop decision after each
// epoch's end hooks), the accelerator's generators (restored on resume).
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/fabric/host_memory.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/checkpoint_connector.hpp>
#include <lightning/trainer/connectors/checkpoint_layout.hpp>
#include <lightning/trainer/connectors/data_connector.hpp>
#include <lightning/trainer/connectors/logger_connector.hpp>
#include <lightning/trainer/loops/evaluation_loop.hpp>
#include <lightning/trainer/loops/optimization/automatic.hpp>
#include <lightning/trainer/loops/optimization/manual.hpp>
#include <lightning/trainer/loops/training_epoch_loop.hpp>

#include <boost/core/demangle.hpp>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace lightning::loops {

// When validation runs within an epoch: check_batch (0: at the epoch's last batch).
template <class T, class Ranked>
void resolve_validation_schedule(T& trainer, ValidationSchedule<Ranked>& v) {
  const auto& run = trainer.run_options();
  auto loaders = v.loaders();
  v.limits = connectors::loader_limits(loaders, run.limit_val_batches, "limit_val_batches");
  trainer.num_val_batches = connectors::total_batches(v.limits);
  v.enabled = !trainer.num_val_batches || *trainer.num_val_batches > 0;
  if (run.val_check_interval.is_count()) {
    v.check_batch = run.val_check_interval.count();
    if (run.check_val_every_n_epoch && trainer.num_training_batches &&
        v.check_batch > *trainer.num_training_batches)
      detail::bad_option("val_check_interval", std::to_string(v.check_batch),
                         ("must be <= the number of training batches (" +
                          std::to_string(*trainer.num_training_batches) +
                          "); unset check_val_every_n_epoch to count batches across epochs")
                             .c_str());
  } else if (trainer.num_training_batches) {
    v.check_batch = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(static_cast<double>(*trainer.num_training_batches) *
                                     run.val_check_interval.fraction()));
  } else if (!run.val_check_interval.is_all()) {
    detail::bad_option("val_check_interval", run.val_check_interval.str(),
                       "a fraction needs a training loader with size(); pass a batch count");
  }
}

// The sanity check: num_sanity_val_steps batches of each validation loader. True when it ran.
template <class T, class M, class Ranked>
bool run_sanity_check(T& trainer, M& model, ValidationSchedule<Ranked>& v) {
  const auto& run = trainer.run_options();
  const std::int64_t steps = *run.num_sanity_val_steps;
  if (!v.enabled || steps == 0) return false;
  trainer.sanity_checking = true;
  connectors::scope(trainer, LogScope::forbidden, "on_sanity_check_start");
  connectors::call_callback_hooks<hooks::on_sanity_check_start>(trainer, model);
  auto limits = v.limits;
  if (steps != -1)
    for (auto& n : limits) n = n ? std::min(*n, steps) : steps;
  trainer.num_sanity_val_batches = connectors::total_batches(limits);
  auto loaders = v.loaders();
  run_evaluation<ValidationLoop>(trainer, model, loaders, limits);
  connectors::scope(trainer, LogScope::forbidden, "on_sanity_check_end");
  connectors::call_callback_hooks<hooks::on_sanity_check_end>(trainer, model);
  trainer.sanity_checking = false;
  trainer.metrics.clear(MetricStore::Phase::validation);
  return true;
}

template <class Opt, class... Scheds>
OptimizerInfo optimizer_info(OptimizerConfig<Opt, Scheds...>& config) {
  OptimizerInfo info;
  info.optimizer = &detail::optimizer_of(config.optimizer);
  info.type_name = detail::optimizer_type_name(config.optimizer);
  if (const auto colon = info.type_name.rfind("::"); colon != std::string::npos)
    info.type_name.erase(0, colon + 2);
  const auto add = [&](const auto& sc) {
    if (detail::scheduler_active(sc.scheduler))
      info.schedulers.emplace_back(sc.options.name, sc.options.interval);
  };
  std::apply([&](const auto&... sc) { (add(sc), ...); }, config.lr_schedulers);
  return info;
}

// Where a fit's loaders come from again with reload_dataloaders_every_n_epochs: nowhere
// (loaders passed to fit), or the DataModule's train_dataloader() / val_dataloader().
struct NoReload {
  static constexpr bool reloads = false;
  static constexpr bool reloads_val = false;
};
template <class D>
struct DataModuleReload {
  D& datamodule;
  static constexpr bool reloads = true;
  static constexpr bool reloads_val = hooks::val_dataloader::declared<D>;
  auto train() { return datamodule.train_dataloader(); }
  auto val() { return datamodule.val_dataloader(); }
};

// trainer.fit's body, inside the Trainer's entry (setup hooks done, module on the device).
template <class T, class M, class TL, class VL, class Source>
void run_fit(T& trainer, M& model, TL& given_train_loader, VL& val_loader, Source source) {
  using Callbacks = std::remove_cvref_t<decltype(trainer.callbacks())>;
  constexpr bool has_val = has_validation_loop<M, VL>;
  constexpr bool manual = uses_manual_optimization<M>;
  auto& progress = trainer.progress();
  auto& checkpoints = trainer.checkpoint_connector();
  const auto& run = trainer.run_options();
  if constexpr (manual) check_manual_options(run);
  std::optional<torch::autograd::DetectAnomalyGuard> anomaly_detection;
  if (run.detect_anomaly) anomaly_detection.emplace();

  connectors::scope(trainer, LogScope::forbidden, "configure_optimizers");
  // On the heap: save_checkpoint() may still read them after fit() returns.
  using Configs = decltype(detail::to_optimizer_configs(model.configure_optimizers()));
  auto configs_owner = std::make_shared<Configs>(
      detail::to_optimizer_configs(connectors::profiled_module<hooks::configure_optimizers, T, M>(
          trainer, [&] { return model.configure_optimizers(); })));
  auto& configs = *configs_owner;
  std::apply([](auto&... config) { (attach_schedulers(config), ...); }, configs);
  trainer.optimizer_infos_ = std::apply(
      [](auto&... config) { return std::vector<OptimizerInfo>{optimizer_info(config)...}; },
      configs);
  checkpoints.bind(trainer, model, configs_owner);
  std::optional<CheckpointDict> resume;
  if (auto path = checkpoints.take_resume_path(trainer)) {
    // Mapped (copy-on-write views of the file): restore copies the weights and optimizer
    // states into the module and optimizers, and the fit then lets the file go, keeping
    // only the small entries it reads below (no second copy of the model for the whole run).
    resume = connectors::migrate_checkpoint(load_checkpoint_file(*path, {.mmap = true}));
    checkpoints.restore(trainer, model, configs, *resume, path->string());
    (void)resume->erase("state_dict");
    (void)resume->erase("optimizer_states");
    checkpoints.set_loaded(*path);
  }
  connectors::log_hyperparameters(trainer, model);
  std::conditional_t<manual, ManualRun<T, M>, NoManualRun> manual_run(trainer, model, configs);

  // The loaders this rank iterates (shards, in-order copies under overfit_batches), set up
  // again when the DataModule's are reloaded.
  using F = std::remove_cvref_t<decltype(trainer.fabric())>;
  connectors::RankLoader<F, TL> rank_train;
  std::optional<std::remove_cv_t<TL>> reloaded_train;
  const auto setup_train = [&](TL& loader) {
    connectors::warn_unshuffled(rank_train.set(trainer.fabric(), loader, run),
                                trainer.is_global_zero(), "train");
    auto& mine = rank_train.get();
    trainer.num_training_batches = connectors::limited(
        run.limit_train_batches, connectors::loader_length(mine), "limit_train_batches");
    if (auto n = connectors::loader_length(mine); n && *n == 0)
      throw std::invalid_argument(
          "lightning: the training loader is empty (0 batches); check the number of examples, "
          "batch_size and drop_last");
  };
  setup_train(given_train_loader);
  ValidationSchedule<connectors::RankLoaders<F, detail::loader_refs_t<VL>>> validation;
  validation.ranked.set(trainer.fabric(), detail::loader_refs(val_loader), run);
  if constexpr (has_val) {
    resolve_validation_schedule(trainer, validation);
    trainer.fit_has_validation_ = validation.enabled;
  }
  // reload_dataloaders_every_n_epochs, as Lightning's: the train loader at the start of
  // an epoch, the validation loaders before a validation run, each once n epochs have
  // passed since it was last loaded. The validation loaders count as loaded at the epoch
  // of the sanity check only if that epoch validates (else the first run reloads them),
  // and without a sanity check at their first run.
  const std::int64_t reload_every = run.reload_dataloaders_every_n_epochs;
  constexpr std::int64_t uncounted = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t long_ago = std::numeric_limits<std::int64_t>::min() / 2;
  std::int64_t train_loaded_at = 0, val_loaded_at = uncounted;
  [[maybe_unused]] std::optional<std::remove_cv_t<VL>> reloaded_val;
  if constexpr (Source::reloads_val && has_val) {
    if (reload_every > 0)
      validation.reload_if_due = [&] {
        if (val_loaded_at == uncounted) {
          val_loaded_at = trainer.current_epoch;
          return;
        }
        if (trainer.current_epoch - val_loaded_at < reload_every) return;
        reloaded_val.reset();
        reloaded_val.emplace(source.val());
        validation.ranked.set(trainer.fabric(), detail::loader_refs(*reloaded_val), run);
        resolve_validation_schedule(trainer, validation);
        val_loaded_at = trainer.current_epoch;
      };
  }

  connectors::scope(trainer, LogScope::forbidden, "on_fit_start");
  connectors::call_hooks<hooks::on_fit_start>(trainer, model);
  bool sanity_checked = false;
  if constexpr (has_val) sanity_checked = run_sanity_check(trainer, model, validation);

  model.train();
  trainer.training = true;
  connectors::scope(trainer, LogScope::train_epoch, "on_train_start");
  connectors::call_hooks<hooks::on_train_start>(trainer, model);

  if (resume) {
    const auto loops =
        connectors::resume_state(checkpoint_dict(resume->at("loops")),
                                 checkpoints.loaded_path().value_or("the checkpoint").string());
    const bool completed = progress.from_checkpoint(loops, connectors::rng_states(*resume));
    trainer.current_epoch = resume->at("epoch").toInt() + (completed ? 1 : 0);
    trainer.global_step = resume->at("global_step").toInt();
    if (resume->contains("train_loader"))
      connectors::load_loader_state(rank_train.get(), resume->at("train_loader"));
    if (!progress.mid_epoch_resume) trainer.fabric().set_rng_state(connectors::rng_states(*resume));
  }
  train_loaded_at = trainer.current_epoch;
  if (sanity_checked)
    val_loaded_at = validates_in_epoch(trainer) ? trainer.current_epoch : long_ago;
  if (!progress.mid_epoch_resume) progress.epoch_boundary(rank_train.get());
  while (!fit_done(trainer)) {
    if constexpr (Source::reloads) {
      if (reload_every > 0 && trainer.current_epoch - train_loaded_at >= reload_every) {
        reloaded_train.reset();
        reloaded_train.emplace(source.train());
        setup_train(*reloaded_train);
        train_loaded_at = trainer.current_epoch;
        if (!progress.mid_epoch_resume) progress.epoch_boundary(rank_train.get());
      }
    }
    progress.in_epoch = true;
    progress.epoch_start(trainer.global_step);
    trainer.metrics.reset_epoch(MetricStore::Phase::train);
    if (progress.mid_epoch_resume)
      trainer.metrics.resume_epoch(MetricStore::Phase::train,
                                   progress.mid_epoch_resume->accumulators);
    connectors::scope(trainer, LogScope::train_epoch, "on_train_epoch_start");
    connectors::call_hooks<hooks::on_train_epoch_start>(trainer, model);
    const bool completed = connectors::profiled(trainer, "run_training_epoch", [&] {
      return run_training_epoch(trainer, model, configs, rank_train.get(), validation);
    });
    // As Lightning: the epoch's values are visible to the hook, and the monitoring
    // callbacks (ModelCheckpoint, EarlyStopping) run after the module's hook, so they see
    // what it logged. Plateau schedulers step before them: a checkpoint saved there holds
    // the finished epoch and resumes at the next one exactly.
    trainer.metrics.finalize_epoch(MetricStore::Phase::train);
    connectors::scope(trainer, LogScope::train_epoch, "on_train_epoch_end");
    connectors::call_monitoring_hooks<hooks::on_train_epoch_end, false>(trainer, model);
    connectors::call_module_hook<hooks::on_train_epoch_end>(trainer, model);
    trainer.metrics.finalize_epoch(MetricStore::Phase::train);
    if constexpr (!manual)
      if (completed)
        step_schedulers(trainer, std::get<0>(configs), Interval::epoch, /*plateau=*/true);
    progress.epoch_end(rank_train.get());
    connectors::call_monitoring_hooks<hooks::on_train_epoch_end, true>(trainer, model);
    trainer.should_stop = trainer.fabric().broadcast(static_cast<bool>(trainer.should_stop));
    if constexpr (connectors::has_loggers<Callbacks>)
      connectors::emit_logs(trainer, trainer.metrics.take_epoch_metrics(MetricStore::Phase::train),
                            std::max<std::int64_t>(trainer.global_step - 1, 0));
    ++trainer.current_epoch;
    progress.epoch_boundary(rank_train.get());
  }
  trainer.training = false;

  connectors::scope(trainer, LogScope::forbidden, "on_train_end");
  connectors::call_hooks<hooks::on_train_end>(trainer, model);
  connectors::scope(trainer, LogScope::forbidden, "on_fit_end");
  connectors::call_hooks<hooks::on_fit_end>(trainer, model);
  checkpoints.wait_for_writes();  // fit returns with every checkpoint on disk
}

}  // namespace lightning::loops
