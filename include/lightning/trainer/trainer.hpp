// Trainer<Accelerator, Strategy, Precision, Callbacks...>: the class template and its
// entry points (fit, validate, test, predict) and the attributes callbacks read.
//
// The loops live in trainer/loops/ and the plumbing in trainer/connectors/
// (docs/architecture.md); each is a template over this class, so every hook of the
// module and of each callback is resolved at compile time and a hook no one declares
// emits no code. The default callbacks come from the layer above (callbacks/defaults.hpp).
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/directories.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/interrupts.hpp>
#include <lightning/core/module.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/core/seed.hpp>
#include <lightning/core/trainer_state.hpp>
#include <lightning/fabric/fabric.hpp>
#include <lightning/fabric/host_memory.hpp>
#include <lightning/trainer/arguments.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/checkpoint_connector.hpp>
#include <lightning/trainer/connectors/data_connector.hpp>
#include <lightning/trainer/connectors/logger_connector.hpp>
#include <lightning/trainer/connectors/profiler_connector.hpp>
#include <lightning/trainer/loops/evaluation_loop.hpp>
#include <lightning/trainer/loops/fit_loop.hpp>
#include <lightning/trainer/loops/prediction_loop.hpp>
#include <lightning/trainer/loops/progress.hpp>
#include <lightning/trainer/options.hpp>

#include <torch/torch.h>

#include <array>
#include <concepts>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning {

template <class A = accelerators::Auto, class S = strategies::SingleDevice,
          class P = precision::F32, class... Callbacks>
class Trainer : public TrainerState {
  static constexpr bool valid_arguments = detail::check_trainer_arguments<A, S, P, Callbacks...>();
  using types = detail::trainer_types<valid_arguments, A, S, P, Callbacks...>;
  static constexpr bool user_progress_bar = (detail::is_progress_bar<Callbacks> || ...);
  static constexpr bool user_checkpoint = (detail::is_model_checkpoint<Callbacks> || ...);
  static constexpr bool user_logger = (detail::is_logger<Callbacks> || ...);
  static constexpr bool user_timer = (detail::is_timer<Callbacks> || ...);
  static constexpr bool user_profiler = (detail::is_profiler<Callbacks> || ...);

 public:
  using accelerator_type = A;
  using strategy_type = S;
  using precision_type = P;
  using fabric_type = typename types::fabric;
  using callback_tuple = typename types::callbacks;
  using profiler_type = typename types::profiler;
  // Whether hooks and loop actions are timed: false without a profiler (or with
  // PassThroughProfiler), and then no timing code is compiled at all.
  static constexpr bool profiling = [] {
    if constexpr (requires { profiler_type::times_actions; })
      return profiler_type::times_actions;
    else
      return true;
  }();

  explicit Trainer(TrainerOptions options = {}, Callbacks... callbacks)
      : options_(std::move(options)),
        callbacks_(types::make(callbacks...)),
        profiler_(types::make_profiler(callbacks...)) {
    check_options();
  }
  // With a strategy that has options of its own, as Lightning's
  // Trainer(strategy=DDPStrategy(...)): Trainer(options, DDP({.timeout = ...}), callbacks...).
  // (type_identity: the strategy never deduces the Trainer's type.)
  Trainer(TrainerOptions options, std::type_identity_t<S> strategy, Callbacks... callbacks)
      : options_(std::move(options)),
        fabric_(A{}, std::move(strategy), P{}),
        callbacks_(types::make(callbacks...)),
        profiler_(types::make_profiler(callbacks...)) {
    check_options();
  }

 private:
  void check_options() {
    const TrainerOptions run = resolve(options_);  // validates
    // As Lightning's callback connector: a flag that turns a feature off cannot also be
    // given an instance of it (barebones turns them all off).
    const auto refuse = [&](const char* name, const char* what) {
      if (options_.barebones)
        detail::bad_option(
            "barebones", "true",
            (std::string(what) + " was passed among the callbacks, and barebones turns it off; "
                                 "remove it or set barebones = false")
                .c_str());
      detail::bad_option(
          name, "false",
          (std::string(what) + " was passed among the callbacks; remove one of the two").c_str());
    };
    if (user_checkpoint && !*run.enable_checkpointing)
      refuse("enable_checkpointing", "a ModelCheckpoint");
    if (user_progress_bar && !*run.enable_progress_bar)
      refuse("enable_progress_bar", "a ProgressBar");
    if (user_logger && !*run.logger) refuse("logger", "a logger");
    if (user_profiler && options_.barebones) refuse("barebones", "a profiler");
    if constexpr (valid_arguments)  // devices > 1 for a strategy of one process throws here
      fabric_.configure_processes(options_.devices, options_.num_nodes);
  }

 public:
  // Loops, connectors and the checkpoint source hold references to this object.
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  Trainer(Trainer&&) = delete;
  Trainer& operator=(Trainer&&) = delete;
  ~Trainer() = default;

  // trainer.fit(model, train_loader[, val_loader][, CheckpointPath]) or
  // trainer.fit(model, datamodule[, CheckpointPath]): Lightning's fit lifecycle. With a
  // CheckpointPath, training resumes exactly where that checkpoint was saved.
  // trainer.validate/test/predict(model, loader or datamodule, CheckpointPath): the same
  // with the checkpoint's weights (and hyperparameters) loaded first.
  template <class M, class Loader>
  auto validate(M& model, Loader&& loader, CheckpointPath ckpt) {
    return checkpoints_.resuming_from(std::move(ckpt), [&] { return validate(model, loader); });
  }
  template <class M, class Loader>
  auto test(M& model, Loader&& loader, CheckpointPath ckpt) {
    return checkpoints_.resuming_from(std::move(ckpt), [&] { return test(model, loader); });
  }
  template <class M, class Loader>
  auto predict(M& model, Loader&& loader, CheckpointPath ckpt) {
    return checkpoints_.resuming_from(std::move(ckpt), [&] { return predict(model, loader); });
  }
  template <class M, class TrainLoader>
  void fit(M& model, TrainLoader&& train_loader, CheckpointPath ckpt) {
    checkpoints_.resuming_from(std::move(ckpt),
                               [&] { fit(model, std::forward<TrainLoader>(train_loader)); });
  }
  template <class M, class TrainLoader, class ValLoader>
  void fit(M& model, TrainLoader&& train_loader, ValLoader&& val_loader, CheckpointPath ckpt) {
    checkpoints_.resuming_from(std::move(ckpt), [&] {
      fit(model, std::forward<TrainLoader>(train_loader), std::forward<ValLoader>(val_loader));
    });
  }

  template <class M, class TrainLoader>
  void fit(M& model, TrainLoader&& train_loader) {
    if constexpr (DataModule<std::remove_cvref_t<TrainLoader>>) {
      auto& dm = train_loader;
      const loops::DataModuleReload<std::remove_cvref_t<TrainLoader>> source{dm};
      connectors::with_datamodule(dm, Stage::fit, [&] {
        auto train = dm.train_dataloader();
        if constexpr (decltype(source)::reloads_val) {
          auto val = dm.val_dataloader();
          fit_from(model, train, val, source);
        } else {
          detail::NoLoader none;
          fit_from(model, train, none, source);
        }
      });
    } else {
      detail::NoLoader none;
      fit(model, std::forward<TrainLoader>(train_loader), none);
    }
  }

  template <class M, class TrainLoader, class ValLoader>
  requires(!std::same_as<std::remove_cvref_t<ValLoader>, CheckpointPath>) void fit(
      M& model, TrainLoader&& train_loader, ValLoader&& val_loader) {
    fit_from(model, train_loader, val_loader, loops::NoReload{});
  }

 private:
  // fit with the loaders given, and where they come from again when they reload.
  template <class M, class TrainLoader, class ValLoader, class Source>
  void fit_from(M& model, TrainLoader& train_loader, ValLoader& val_loader, Source source) {
    using TL = std::remove_cvref_t<TrainLoader>;
    using VL = std::remove_cvref_t<ValLoader>;
    if constexpr (!BatchLoader<TL>) {
      static_assert(BatchLoader<TL>,
                    "lightning: fit()'s train loader must be iterable (begin()/end() yielding "
                    "batches): a lightning::data::TensorLoader, a std::vector of batches, a "
                    "range-v3 view or a torch::data loader");
    } else if constexpr (!std::is_same_v<VL, detail::NoLoader> && !detail::EvaluationLoaders<VL>) {
      static_assert(detail::EvaluationLoaders<VL>,
                    "lightning: fit()'s validation loader must be iterable "
                    "(begin()/end() yielding batches), or a std::tuple of such loaders");
    } else if constexpr (valid_arguments &&
                         detail::check_training_module<M, loader_batch_t<TL>>() &&
                         check_fit_validation<M, VL>()) {
      if constexpr (!std::is_same_v<VL, detail::NoLoader> && !hooks::validation_step::declared<M>)
        std::cerr << "lightning: a validation loader was passed to fit() but the module has no "
                     "validation_step; the validation loop will be skipped\n";
      const InterruptHandlers interrupts;  // SIGTERM/SIGINT: a checkpoint at the next step
      run_entry(model, Stage::fit,
                [&] { loops::run_fit(*this, model, train_loader, val_loader, source); });
      release_free_host_memory();  // what the steps kept for each other (fabric/host_memory.hpp)
    }
  }

 public:
  // trainer.validate(model, loader or datamodule): one validation run, module in eval
  // mode (restored after), no gradients. Returns the logged epoch metrics per loader.
  template <class M, class Loader>
  std::vector<MetricMap> validate(M& model, Loader&& loader) {
    return evaluate<loops::ValidationLoop>(model, loader);
  }
  // trainer.test(model, loader or datamodule): as validate, with test_step and the test hooks.
  template <class M, class Loader>
  std::vector<MetricMap> test(M& model, Loader&& loader) {
    return evaluate<loops::TestLoop>(model, loader);
  }

  // trainer.predict(model, loader or datamodule): predict_step over the loader, no
  // gradients, eval mode; returns every predict_step output in order.
  template <class M, class Loader>
  auto predict(M& model, Loader&& loader) {
    if constexpr (DataModule<std::remove_cvref_t<Loader>>) {
      using L = decltype(loader.predict_dataloader());
      using Out = decltype(std::declval<M&>().predict_step(std::declval<loader_batch_t<L>&>(),
                                                           std::int64_t{}));
      std::vector<std::remove_cvref_t<Out>> out;
      connectors::with_datamodule(loader, Stage::predict, [&] {
        auto l = loader.predict_dataloader();
        out = predict(model, l);
      });
      return out;
    } else {
      using LT = std::remove_cvref_t<Loader>;
      static_assert(BatchLoader<LT>, "lightning: predict() takes a loader or a DataModule");
      using B = loader_batch_t<LT>;
      static_assert(hooks::predict_step::callable<M, B&, std::int64_t>,
                    "lightning: predict() needs `predict_step(const Batch& batch, int64_t "
                    "batch_idx)` taking the loader's batches");
      return loops::run_prediction_entry(*this, model, loader);
    }
  }

  [[nodiscard]] const TrainerOptions& options() const noexcept { return options_; }
  [[nodiscard]] fabric_type& fabric() noexcept { return fabric_; }
  [[nodiscard]] const fabric_type& fabric() const noexcept { return fabric_; }
  [[nodiscard]] callback_tuple& callbacks() noexcept { return callbacks_; }
  // Lightning's trainer.profiler: the one passed among the callbacks, else a pass-through.
  [[nodiscard]] profiler_type& profiler() noexcept { return profiler_; }

  // Times one action until the returned scope ends; the name is joined from its parts
  // into a buffer this Trainer reuses (no allocation once it has grown).
  template <class... Parts>
  [[nodiscard]] auto profile_action(const Parts&... parts) {
    action_.clear();
    (action_.append(std::string_view(parts)), ...);
    if constexpr (requires { profiler_.scope(std::string_view()); })
      return profiler_.scope(std::string_view(action_));
    else
      return profilers::ActionScope<profiler_type>(profiler_, action_);
  }
  // "[Callback]<state_key>.": how callback i's actions begin (Lightning's callback.state_key,
  // else the class name), fixed when an entry point starts.
  [[nodiscard]] std::string_view callback_action_prefix(std::size_t i) const noexcept {
    return callback_actions_[i];
  }
  // The callback of type C (C must occur once among the callbacks).
  template <class C>
  [[nodiscard]] C& callback() noexcept {
    return std::get<C>(callbacks_);
  }
  [[nodiscard]] bool is_global_zero() const { return fabric_.is_global_zero(); }
  // Rank zero's value on every rank (Lightning's trainer.strategy.broadcast): what a
  // callback decides (a path, a stop) must be the same everywhere.
  template <class T>
  [[nodiscard]] T broadcast(T value) const {
    return fabric_.broadcast(std::move(value));
  }
  // Each rank's own decision, combined (Lightning's trainer.strategy.reduce_boolean_decision):
  // true when all ranks decided so, or with `all` false, when any did.
  [[nodiscard]] bool reduce_boolean_decision(bool decision, bool all = true) const {
    return fabric_.reduce_boolean_decision(decision, all);
  }

  // Lightning's trainer.save_checkpoint: the module's state_dict and hyperparameters,
  // every optimizer's and scheduler's state, epoch, global_step, loop progress (mid-epoch
  // too), callback states, the generators and the precision's state, in one atomic,
  // verified file (docs/checkpointing.md), on disk when it returns; weights_only keeps the
  // module's part. Valid during fit() and after it, while the fitted module is alive.
  // Only rank zero writes.
  void save_checkpoint(const std::filesystem::path& path, bool weights_only = false) {
    connectors::profiled(*this, "save_checkpoint",
                         [&] { checkpoints_.save(*this, path, weights_only); });
  }
  // The same content, written by a background thread (one save in flight): the training
  // thread only copies the tensors. ModelCheckpoint saves this way; a failed write is
  // raised at the next step, the next save or at the end of fit().
  void save_checkpoint_in_background(const std::filesystem::path& path, bool weights_only = false) {
    connectors::profiled(*this, "save_checkpoint",
                         [&] { checkpoints_.save_in_background(*this, path, weights_only); });
  }
  // Deletes a checkpoint file that a newer one replaces, once the newer one is on disk.
  void remove_checkpoint(const std::filesystem::path& path) {
    checkpoints_.remove_after_write(path);
  }
  [[nodiscard]] bool can_save_checkpoint() const noexcept { return checkpoints_.bound(); }
  // Lightning's trainer.ckpt_path: the checkpoint the latest run loaded, if any.
  [[nodiscard]] const std::optional<std::filesystem::path>& ckpt_path() const noexcept {
    return checkpoints_.loaded_path();
  }
  [[nodiscard]] std::int64_t max_epochs() const noexcept { return run_.max_epochs.value_or(-1); }
  // The options as the running (or latest) entry point uses them: defaults filled in.
  [[nodiscard]] const TrainerOptions& run_options() const noexcept { return run_; }

  // ---- What callbacks use (Lightning's trainer attributes) ----

  // Whether a callback takes metrics (Lightning's trainer.loggers is not empty).
  static constexpr bool has_loggers = connectors::has_loggers<callback_tuple>;
  // Whether a logger will take metrics in this run (Lightning's bool(trainer.loggers)).
  [[nodiscard]] bool has_active_logger() const {
    return std::apply(
        [](const auto&... cb) {
          return ((hooks::log_metrics::declared<std::remove_cvref_t<decltype(cb)>> &&
                   detail::callback_enabled(cb)) ||
                  ...);
        },
        callbacks_);
  }
  // Sends metrics to every logger, on rank zero only (LearningRateMonitor uses it).
  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    connectors::log_metrics(*this, metrics, step);
  }
  // Whether the running batch is a logging step (log_every_n_steps, or a stop).
  [[nodiscard]] bool should_update_logs() const noexcept {
    const std::int64_t n = *run_.log_every_n_steps;  // 0 (barebones): never
    return n > 0 && ((progress_.total_batch_idx + 1) % n == 0 || should_stop);
  }
  // The configured optimizers, their class names and schedulers (set when fit starts).
  [[nodiscard]] const std::vector<OptimizerInfo>& optimizer_infos() const noexcept {
    return optimizer_infos_;
  }
  // Lightning's trainer.accumulate_grad_batches; a change applies from the next epoch
  // (GradientAccumulationScheduler sets it at each epoch start).
  [[nodiscard]] std::int64_t accumulate_grad_batches() const noexcept {
    return run_.accumulate_grad_batches;
  }
  void set_accumulate_grad_batches(std::int64_t n) {
    if (n < 1) detail::bad_option("accumulate_grad_batches", std::to_string(n), "must be >= 1");
    run_.accumulate_grad_batches = n;
  }
  // Lightning's trainer.fit_loop.max_epochs: a callback may lengthen or shorten the
  // running fit (StochasticWeightAveraging adds an epoch for BatchNorm's statistics).
  void set_max_epochs(std::int64_t n) {
    if (n < -1) detail::bad_option("max_epochs", std::to_string(n), "must be >= -1 (-1: no limit)");
    run_.max_epochs = n;
  }
  // An epoch whose batches run training_step and the batch hooks, but no backward and no
  // optimizer step (Lightning's fit_loop._skip_backward): StochasticWeightAveraging's pass
  // that only collects BatchNorm's statistics. The callback that sets it clears it.
  void skip_optimization(bool skip) noexcept { skip_optimization_ = skip; }
  [[nodiscard]] bool skips_optimization() const noexcept { return skip_optimization_; }
  // How many such epochs the running fit has run to their last batch: ModelCheckpoint
  // saves what one changed although global_step did not move (and, as Lightning, skips
  // the saves inside it). The loop counts them, before the last batch's hooks run.
  [[nodiscard]] std::int64_t epochs_without_optimization() const noexcept {
    return epochs_without_optimization_;
  }
  void count_epoch_without_optimization() noexcept { ++epochs_without_optimization_; }
  // Lightning's `trainer.lr_scheduler_configs[0] = ...` from a callback: from now on this
  // SWALR (owned by the callback, StochasticWeightAveraging's) steps the optimizer's
  // learning rate at every epoch's end in place of the schedulers configure_optimizers
  // returned, and checkpoints hold its state in theirs; nullptr gives them back.
  void replace_lr_schedulers(lr::SWALR* scheduler) noexcept { replacement_scheduler_ = scheduler; }
  [[nodiscard]] lr::SWALR* replacement_lr_scheduler() const noexcept {
    return replacement_scheduler_;
  }
  // Whether the running fit has a validation loop.
  [[nodiscard]] bool has_validation() const noexcept { return fit_has_validation_; }
  [[nodiscard]] std::filesystem::path default_root_dir() const {
    return options_.default_root_dir.empty() ? std::filesystem::current_path()
                                             : options_.default_root_dir;
  }
  // Lightning's trainer.log_dir: the first enabled logger's directory, else default_root_dir.
  [[nodiscard]] std::filesystem::path log_dir() const {
    std::optional<std::filesystem::path> dir;
    std::apply(
        [&](const auto&... cb) {
          const auto first = [&](const auto& c) {
            if constexpr (requires { c.log_dir(); })
              if (!dir && detail::callback_enabled(c)) dir = std::filesystem::path(c.log_dir());
          };
          (first(cb), ...);
        },
        callbacks_);
    return dir ? *dir : default_root_dir();
  }
  // Where a ModelCheckpoint without dirpath saves: <log_dir>/checkpoints.
  [[nodiscard]] std::filesystem::path default_checkpoint_dir() const {
    return log_dir() / "checkpoints";
  }

  // ---- What the loops use (Lightning's trainer.fit_loop, trainer._checkpoint_connector) ----

  [[nodiscard]] loops::Progress& progress() noexcept { return progress_; }
  [[nodiscard]] const loops::Progress& progress() const noexcept { return progress_; }
  [[nodiscard]] connectors::CheckpointConnector<Trainer>& checkpoint_connector() noexcept {
    return checkpoints_;
  }

  // An entry point's frame: fresh state, resolved options, defaults configured, seed,
  // setup hooks, the module on the device; then `body`; then teardown. On an error the
  // callbacks' on_exception runs and the error goes on.
  template <class M, class F>
  void run_entry(M& model, Stage s, F&& body) {
    detail::Attachment<M> attachment(model, this);
    try {
      begin_entry(model, s);
      body();
      connectors::scope(*this, LogScope::forbidden, "teardown");
      connectors::call_hooks<hooks::teardown>(*this, model, s);
      fabric_.teardown();
      profiler_.describe();
    } catch (const std::exception& error) {
      training = validating = sanity_checking = false;
      progress_.mid_epoch_resume.reset();
      connectors::scope(*this, LogScope::forbidden, "on_exception");
      connectors::call_callback_hooks<hooks::on_exception>(*this, model, error);
      // A profiler that holds something (PyTorchProfiler: Kineto, recording every
      // operator) lets go of it now, not at the next entry point.
      if constexpr (requires { profiler_.teardown(); }) profiler_.teardown();
      finish_writes_after_error();
      fabric_.handle_failure(error);  // may throw the rank's failure that caused this one
      throw;
    }
  }

 private:
  template <class T, class M, class TL, class VL, class Source>
  friend void loops::run_fit(T&, M&, TL&, VL&, Source);

  template <class Loop, class M, class Loader>
  std::vector<MetricMap> evaluate(M& model, Loader& loader) {
    if constexpr (DataModule<std::remove_cvref_t<Loader>>) {
      std::vector<MetricMap> out;
      connectors::with_datamodule(loader, Loop::stage, [&] {
        auto l = [&] {
          if constexpr (Loop::stage == Stage::test)
            return loader.test_dataloader();
          else
            return loader.val_dataloader();
        }();
        out = evaluate<Loop>(model, l);
      });
      return out;
    } else {
      using LT = std::remove_cvref_t<Loader>;
      if constexpr (!detail::EvaluationLoaders<LT>) {
        static_assert(detail::EvaluationLoaders<LT>,
                      "lightning: validate() and test() take a loader, a std::tuple of loaders "
                      "or a DataModule");
        return {};
      } else if constexpr (!loops::check_evaluation_step<Loop, M, detail::loader_refs_t<LT>>()) {
        return {};
      } else {
        auto loaders = detail::loader_refs(loader);
        return loops::run_evaluation_entry<Loop>(*this, model, loaders);
      }
    }
  }

  template <class M, class VL>
  static consteval bool check_fit_validation() {
    if constexpr (std::is_same_v<VL, detail::NoLoader> || !hooks::validation_step::declared<M>)
      return true;
    else
      return loops::check_evaluation_step<loops::ValidationLoop, M, detail::loader_refs_t<VL>>();
  }

  template <class M>
  void begin_entry(M& model, Stage s) {
    static_cast<TrainerState&>(*this) = TrainerState{};
    stage = s;
    run_ = resolve(options_);
    // As Lightning: with a Timer among the callbacks an unset max_epochs is no limit.
    if (user_timer && !options_.max_epochs && options_.fast_dev_run == 0) run_.max_epochs = -1;
    progress_ = loops::Progress{};
    fit_has_validation_ = false;
    skip_optimization_ = false;
    // A fit's scheduler replacement outlives it, for save_checkpoint after validate/test.
    if (s == Stage::fit) {
      epochs_without_optimization_ = 0;
      replacement_scheduler_ = nullptr;
    }
    checkpoints_.clear_loaded();
    types::defaults::configure(callbacks_, run_);
    if (run_.seed) seed_everything(*run_.seed);
    if (run_.deterministic) use_deterministic_algorithms(true);
    if (run_.benchmark) at::globalContext().setBenchmarkCuDNN(*run_.benchmark);
    fabric_.configure_processes(run_.devices, run_.num_nodes);
    fabric_.launch();  // ranks known (and started) before any hook asks is_global_zero()
    barebones = run_.barebones;
    barebones_log_warned = !fabric_.is_global_zero();  // one warning, from rank zero
    if (barebones && fabric_.is_global_zero())
      std::cerr << "lightning: Trainer(barebones = true) started running: checkpointing, logging "
                   "(log() included), the progress bar, the model summary and the sanity check "
                   "are off; print the progress from your module if you need it\n";
    if (run_.deterministic && run_.benchmark.value_or(false) && fabric_.is_global_zero())
      std::cerr << "lightning: warning: TrainerOptions.deterministic = true and benchmark = true: "
                   "cuDNN's autotuner may pick nondeterministic kernels, which LibTorch does not "
                   "prevent (as PyTorch ignores cudnn.deterministic under cudnn.benchmark); set "
                   "benchmark = false or leave it unset for deterministic runs\n";
    // Where fit writes (interrupted.ckpt, the default checkpoint and log folders): a path
    // that cannot be a directory fails now, naming the option, before any step runs.
    if (s == Stage::fit && fabric_.is_global_zero() && !options_.default_root_dir.empty())
      require_directory(options_.default_root_dir,
                        {"TrainerOptions.default_root_dir",
                         "set TrainerOptions.default_root_dir to a directory this process may "
                         "create and write"},
                        /*create=*/true);
    if constexpr (profiling) {
      connectors::for_each_callback(*this, [&](const auto& c, auto i) {
        using C = std::remove_cvref_t<decltype(c)>;
        callback_actions_[i()] = "[Callback]";
        if constexpr (requires { c.state_key(); })
          callback_actions_[i()] += std::string(c.state_key());
        else
          callback_actions_[i()] += detail::class_name<C>();
        callback_actions_[i()] += '.';
      });
    }
    // As Lightning: the rank is in the report's file name only when there are several.
    profiler_.setup(
        s,
        fabric_.world_size() > 1 ? std::optional<std::int64_t>(fabric_.local_rank()) : std::nullopt,
        log_dir());
    metrics.set_cross_rank_reduce(
        [this](const torch::Tensor& t, Reduce op) { return fabric_.all_reduce(t, op); });
    connectors::scope(*this, LogScope::forbidden, "setup");
    connectors::call_hooks<hooks::setup>(*this, model, s);
    connectors::scope(*this, LogScope::forbidden, "configure_model");
    connectors::call_module_hook<hooks::configure_model>(*this, model);
    fabric_.setup_module(model);
  }

  // A checkpoint in flight when a run fails is finished; its own error is printed, not
  // thrown over the run's.
  void finish_writes_after_error() noexcept {
    try {
      checkpoints_.wait_for_writes();
    } catch (const std::exception& e) {
      std::cerr << "lightning: a checkpoint written in the background failed: " << e.what() << '\n';
    }
  }

  TrainerOptions options_;
  TrainerOptions run_;  // options_ resolved for the running entry point
  fabric_type fabric_{};
  callback_tuple callbacks_;
  profiler_type profiler_;
  std::string action_;  // the name of the action being opened (profile_action)
  std::array<std::string, std::tuple_size_v<callback_tuple>> callback_actions_{};
  loops::Progress progress_;
  connectors::CheckpointConnector<Trainer> checkpoints_;
  std::vector<OptimizerInfo> optimizer_infos_;  // what callbacks see of a fit
  bool fit_has_validation_ = false;
  bool skip_optimization_ = false;
  std::int64_t epochs_without_optimization_ = 0;
  lr::SWALR* replacement_scheduler_ = nullptr;
};

}  // namespace lightning
