// Trainer<Accelerator, Strategy, Precision, Callbacks...>: owns the fit loop.
//
// The loop is written once against Fabric (and so against the policy concepts); every
// hook of the module and of each callback is resolved at compile time, and a hook
// that no one declares emits no code. Per step the trainer itself does no host-device
// synchronisation, no allocation and no string work (DESIGN.md, rules of the hot loop).
#pragma once

#include <lightning/callbacks/model_checkpoint.hpp>
#include <lightning/callbacks/model_summary.hpp>
#include <lightning/callbacks/progress_bar.hpp>
#include <lightning/core/batch.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/module.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/core/trainer_state.hpp>
#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/fabric/checkpoint_state.hpp>
#include <lightning/fabric/fabric.hpp>
#include <lightning/trainer/options.hpp>

#include <torch/torch.h>
#include <boost/core/demangle.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace lightning {

// What a step that returns nothing (void validation_step) passes to *_batch_end hooks.
struct NoOutput {};

// The checkpoint a run starts from (Lightning's ckpt_path): fit resumes training from it,
// validate/test/predict load its weights. "last" and "best" name what ModelCheckpoint
// (and OnExceptionCheckpoint) saved: trainer.fit(model, loader, L::CheckpointPath{"last"}).
struct CheckpointPath {
  std::filesystem::path path;
};

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

// Whether an evaluation step takes the batches of every loader, and their index when
// there are several (Lightning refuses several loaders without dataloader_idx).
enum class StepFit { ok, wrong_batch, needs_dataloader_idx };
template <class Step, class M, class B, bool Several>
consteval StepFit step_fit_one() {
  if constexpr (Step::template callable<M, B&, std::int64_t, std::int64_t>)
    return StepFit::ok;
  else if constexpr (!Step::template callable<M, B&, std::int64_t>)
    return StepFit::wrong_batch;
  else
    return Several ? StepFit::needs_dataloader_idx : StepFit::ok;
}
template <class Step, class M, class Refs>
struct eval_step_fit;
template <class Step, class M, class... L>
struct eval_step_fit<Step, M, std::tuple<L...>> {
  static constexpr StepFit value = [] {
    StepFit r = StepFit::ok;
    ((r = r == StepFit::ok
              ? step_fit_one<Step, M, loader_batch_t<std::remove_cvref_t<L>>, (sizeof...(L) > 1)>()
              : r),
     ...);
    return r;
  }();
};

// Stands in for Trainer::ManualRun when the module uses automatic optimization.
struct NoManualRun {
  template <class... A>
  explicit NoManualRun(A&&...) noexcept {}
};

template <class C>
concept is_progress_bar = requires {
  requires C::is_progress_bar;
};
template <class C>
concept is_model_checkpoint = requires {
  requires C::is_model_checkpoint;
};
// Callbacks that act on monitored metrics at epoch end, after the module's own hook.
template <class C>
concept is_monitoring = is_model_checkpoint<C> || requires {
  requires C::is_monitoring_callback;
};
template <class C>
concept is_model_summary = requires {
  requires C::is_model_summary;
};
template <class C>
concept is_logger = requires {
  requires C::is_logger;
};

// A callback as a tuple of one when Keep, else an empty tuple (for reordering).
template <bool Keep, class C>
auto keep_if(C& c) {
  if constexpr (Keep)
    return std::tuple<C>(std::move(c));
  else
    return std::tuple<>();
}
template <bool Keep, class C>
using keep_if_t = std::conditional_t<Keep, std::tuple<C>, std::tuple<>>;

// A callback's key in a checkpoint's "callbacks" entry: its state_key() if it has one
// (two ModelCheckpoints with other settings), else its type's name.
template <class C>
std::string callback_state_key(const C& c) {
  if constexpr (requires { c.state_key(); })
    return std::string(c.state_key());
  else
    return boost::core::demangle(typeid(C).name());
}

// A default callback the options turned off (enable_checkpointing = false) keeps no state.
template <class C>
bool callback_enabled(const C& c) {
  if constexpr (requires { c.enabled(); })
    return c.enabled();
  else
    return true;
}

// An optimizer's class name without namespaces ("Adam" for torch::optim::Adam).
template <class Opt>
std::string optimizer_type_name() {
  auto name = boost::core::demangle(typeid(Opt).name());
  if (const auto colon = name.rfind("::"); colon != std::string::npos) name.erase(0, colon + 2);
  return name;
}

// Classifies a Trainer template argument and says what is wrong with a misplaced one.
template <class A, class S, class P, class... C>
consteval bool check_trainer_arguments() {
  if constexpr (!Accelerator<A>) {
    static_assert(Accelerator<A>,
                  "lightning: Trainer's first template argument must be an Accelerator "
                  "(accelerators::CPU, accelerators::Auto); the order is "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (!Strategy<S>) {
    static_assert(Strategy<S>,
                  "lightning: Trainer's second template argument must be a Strategy "
                  "(strategies::SingleDevice); the order is "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (!Precision<P>) {
    static_assert(Precision<P>,
                  "lightning: Trainer's third template argument must be a Precision "
                  "(precision::F32, precision::F64); the order is "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (((Accelerator<C> || Strategy<C> || Precision<C>) || ...)) {
    static_assert(detail::always_false<A>,
                  "lightning: a policy (Accelerator, Strategy or Precision) was passed among the "
                  "callbacks; each policy goes in its own position: "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (!(Callback<C> && ...)) {
    static_assert((Callback<C> && ...), "lightning: every callback must be a movable class type");
    return false;
  } else {
    return true;
  }
}

// Fabric<A, S, P> only when the arguments are valid: naming it otherwise would add a
// second, less readable error after check_trainer_arguments' own.
template <bool Valid, class A, class S, class P>
struct fabric_for {
  struct type {};
};
template <class A, class S, class P>
struct fabric_for<true, A, S, P> {
  using type = Fabric<A, S, P>;
};

// The hooks of an evaluation loop (validation or test): one loop body serves both.
struct ValidationLoop {
  using step = hooks::validation_step;
  using start = hooks::on_validation_start;
  using end = hooks::on_validation_end;
  using epoch_start = hooks::on_validation_epoch_start;
  using epoch_end = hooks::on_validation_epoch_end;
  using batch_start = hooks::on_validation_batch_start;
  using batch_end = hooks::on_validation_batch_end;
};
struct TestLoop {
  using step = hooks::test_step;
  using start = hooks::on_test_start;
  using end = hooks::on_test_end;
  using epoch_start = hooks::on_test_epoch_start;
  using epoch_end = hooks::on_test_epoch_end;
  using batch_start = hooks::on_test_batch_start;
  using batch_end = hooks::on_test_batch_end;
};

// Calls f() and returns its result, or NoOutput when it returns void.
template <class F>
decltype(auto) invoke_output(F&& f) {
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    return NoOutput{};
  } else {
    return f();
  }
}

}  // namespace detail

template <class A = accelerators::Auto, class S = strategies::SingleDevice,
          class P = precision::F32, class... Callbacks>
class Trainer : public TrainerState {
  static constexpr bool valid_arguments = detail::check_trainer_arguments<A, S, P, Callbacks...>();
  static constexpr bool user_progress_bar = (detail::is_progress_bar<Callbacks> || ...);
  static constexpr bool user_checkpoint = (detail::is_model_checkpoint<Callbacks> || ...);
  static constexpr bool user_summary = (detail::is_model_summary<Callbacks> || ...);
  using default_progress_bar =
      std::conditional_t<user_progress_bar, std::tuple<>, std::tuple<callbacks::ProgressBar>>;
  using default_summary =
      std::conditional_t<user_summary, std::tuple<>, std::tuple<callbacks::ModelSummary>>;
  using default_checkpoint =
      std::conditional_t<user_checkpoint, std::tuple<>, std::tuple<callbacks::ModelCheckpoint>>;

 public:
  using accelerator_type = A;
  using strategy_type = S;
  using precision_type = P;
  using fabric_type = typename detail::fabric_for<valid_arguments, A, S, P>::type;
  // As Lightning orders them: the user's callbacks, the default progress bar and model
  // summary (unless the user passed them), then every ModelCheckpoint, the default one
  // last, so that a
  // checkpoint saved at a hook holds the state other callbacks reached at that hook.
  using callback_tuple = decltype(std::tuple_cat(
      std::declval<detail::keep_if_t<!detail::is_model_checkpoint<Callbacks>, Callbacks>>()...,
      std::declval<default_progress_bar>(), std::declval<default_summary>(),
      std::declval<detail::keep_if_t<detail::is_model_checkpoint<Callbacks>, Callbacks>>()...,
      std::declval<default_checkpoint>()));

  explicit Trainer(TrainerOptions options = {}, Callbacks... callbacks)
      : options_(std::move(options)), callbacks_(make_callbacks(callbacks...)) {
    lightning::validate(options_);
    if (user_checkpoint && !options_.enable_checkpointing)
      throw std::invalid_argument(
          "lightning: TrainerOptions.enable_checkpointing = false, but a ModelCheckpoint was "
          "passed among the callbacks; remove one of the two");
  }

  // trainer.fit(model, train_loader[, val_loader][, CheckpointPath]) or
  // trainer.fit(model, datamodule[, CheckpointPath]): Lightning's fit lifecycle. With a
  // CheckpointPath, training resumes exactly where that checkpoint was saved.
  // trainer.validate/test/predict(model, loader or datamodule, CheckpointPath): the same
  // with the checkpoint's weights (and hyperparameters) loaded first.
  template <class M, class Loader>
  auto validate(M& model, Loader&& loader, CheckpointPath ckpt) {
    return resuming_from(std::move(ckpt), [&] { return validate(model, loader); });
  }
  template <class M, class Loader>
  auto test(M& model, Loader&& loader, CheckpointPath ckpt) {
    return resuming_from(std::move(ckpt), [&] { return test(model, loader); });
  }
  template <class M, class Loader>
  auto predict(M& model, Loader&& loader, CheckpointPath ckpt) {
    return resuming_from(std::move(ckpt), [&] { return predict(model, loader); });
  }

  template <class M, class TrainLoader>
  void fit(M& model, TrainLoader&& train_loader, CheckpointPath ckpt) {
    resuming_from(std::move(ckpt), [&] { fit(model, std::forward<TrainLoader>(train_loader)); });
  }
  template <class M, class TrainLoader, class ValLoader>
  void fit(M& model, TrainLoader&& train_loader, ValLoader&& val_loader, CheckpointPath ckpt) {
    resuming_from(std::move(ckpt), [&] {
      fit(model, std::forward<TrainLoader>(train_loader), std::forward<ValLoader>(val_loader));
    });
  }

  template <class M, class TrainLoader>
  void fit(M& model, TrainLoader&& train_loader) {
    if constexpr (DataModule<std::remove_cvref_t<TrainLoader>>) {
      auto& dm = train_loader;
      with_datamodule(dm, Stage::fit, [&] {
        auto train = dm.train_dataloader();
        if constexpr (hooks::val_dataloader::declared<std::remove_cvref_t<TrainLoader>>) {
          auto val = dm.val_dataloader();
          fit(model, train, val);
        } else {
          fit(model, train);
        }
      });
    } else {
      detail::NoLoader none;
      fit(model, std::forward<TrainLoader>(train_loader), none);
    }
  }

  // trainer.validate(model, loader or datamodule): one validation run, module in eval
  // mode (restored after), no gradients. Returns the logged epoch metrics per loader.
  template <class M, class Loader>
  std::vector<MetricMap> validate(M& model, Loader&& loader) {
    if constexpr (DataModule<std::remove_cvref_t<Loader>>) {
      std::vector<MetricMap> out;
      with_datamodule(loader, Stage::validate, [&] {
        auto l = loader.val_dataloader();
        out = validate(model, l);
      });
      return out;
    } else {
      using LT = std::remove_cvref_t<Loader>;
      if constexpr (!detail::EvaluationLoaders<LT>) {
        static_assert(detail::EvaluationLoaders<LT>,
                      "lightning: validate() takes a loader, a std::tuple of loaders or a "
                      "DataModule");
        return {};
      } else {
        constexpr auto fit =
            detail::eval_step_fit<hooks::validation_step, M, detail::loader_refs_t<LT>>::value;
        static_assert(fit != detail::StepFit::wrong_batch,
                      "lightning: validate() needs `validation_step(const Batch& batch, int64_t "
                      "batch_idx)` taking the loader's batches");
        static_assert(fit != detail::StepFit::needs_dataloader_idx,
                      "lightning: several validation loaders were given, but `validation_step` "
                      "does not take their index; add it: validation_step(const Batch& batch, "
                      "int64_t batch_idx, int64_t dataloader_idx)");
        auto loaders = detail::loader_refs(loader);
        return run_evaluation_entry<detail::ValidationLoop>(
            model, loaders, Stage::validate, options_.limit_val_batches, "limit_val_batches");
      }
    }
  }

  // trainer.test(model, loader or datamodule): as validate, with test_step and the test hooks.
  template <class M, class Loader>
  std::vector<MetricMap> test(M& model, Loader&& loader) {
    if constexpr (DataModule<std::remove_cvref_t<Loader>>) {
      std::vector<MetricMap> out;
      with_datamodule(loader, Stage::test, [&] {
        auto l = loader.test_dataloader();
        out = test(model, l);
      });
      return out;
    } else {
      using LT = std::remove_cvref_t<Loader>;
      if constexpr (!detail::EvaluationLoaders<LT>) {
        static_assert(detail::EvaluationLoaders<LT>,
                      "lightning: test() takes a loader, a std::tuple of loaders or a DataModule");
        return {};
      } else {
        constexpr auto fit =
            detail::eval_step_fit<hooks::test_step, M, detail::loader_refs_t<LT>>::value;
        static_assert(fit != detail::StepFit::wrong_batch,
                      "lightning: test() needs `test_step(const Batch& batch, int64_t "
                      "batch_idx)` taking the loader's batches");
        static_assert(fit != detail::StepFit::needs_dataloader_idx,
                      "lightning: several test loaders were given, but `test_step` does not "
                      "take their index; add it: test_step(const Batch& batch, int64_t "
                      "batch_idx, int64_t dataloader_idx)");
        auto loaders = detail::loader_refs(loader);
        return run_evaluation_entry<detail::TestLoop>(
            model, loaders, Stage::test, options_.limit_test_batches, "limit_test_batches");
      }
    }
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
      with_datamodule(loader, Stage::predict, [&] {
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
      return run_predict_entry(model, loader);
    }
  }

  template <class M, class TrainLoader, class ValLoader>
  requires(!std::same_as<std::remove_cvref_t<ValLoader>, CheckpointPath>) void fit(
      M& model, TrainLoader&& train_loader, ValLoader&& val_loader) {
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
                         check_validation<M, VL>()) {
      run_fit(model, train_loader, val_loader);
    }
  }

  [[nodiscard]] const TrainerOptions& options() const noexcept { return options_; }
  [[nodiscard]] fabric_type& fabric() noexcept { return fabric_; }
  [[nodiscard]] callback_tuple& callbacks() noexcept { return callbacks_; }
  // The callback of type C (C must occur once among the callbacks).
  template <class C>
  [[nodiscard]] C& callback() noexcept {
    return std::get<C>(callbacks_);
  }
  [[nodiscard]] bool is_global_zero() const { return fabric_.is_global_zero(); }

  // Lightning's trainer.save_checkpoint: the module's state_dict and hyperparameters,
  // every optimizer's and scheduler's state, epoch, global_step, loop progress (mid-epoch
  // too), callback states, the CPU generator and the train loader's shuffling state, in
  // one atomic, verified file (docs/checkpointing.md); weights_only keeps the module's
  // part. Valid during fit() and after it, while the fitted module is alive. Only rank
  // zero writes.
  void save_checkpoint(const std::filesystem::path& path, bool weights_only = false) {
    if (!checkpoint_source_)
      throw std::logic_error(
          "lightning: save_checkpoint(\"" + path.string() +
          "\") needs a module fitted by this trainer: call it during or after fit()");
    auto content = checkpoint_source_(weights_only);
    if (is_global_zero()) save_checkpoint_file(path, content);
  }
  [[nodiscard]] bool can_save_checkpoint() const noexcept {
    return static_cast<bool>(checkpoint_source_);
  }
  // Lightning's trainer.ckpt_path: the checkpoint the latest run loaded, if any.
  [[nodiscard]] const std::optional<std::filesystem::path>& ckpt_path() const noexcept {
    return loaded_ckpt_path_;
  }
  [[nodiscard]] std::int64_t max_epochs() const noexcept { return run_.max_epochs.value_or(-1); }
  // The options as the running (or latest) entry point uses them: defaults filled in.
  [[nodiscard]] const TrainerOptions& run_options() const noexcept { return run_; }

  // ---- What callbacks use (Lightning's trainer attributes) ----

  // Whether a callback takes metrics (Lightning's trainer.loggers is not empty).
  static constexpr bool has_loggers = (hooks::log_metrics::declared<Callbacks> || ...);
  // Sends metrics to every logger, on rank zero only (LearningRateMonitor uses it).
  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    if (!is_global_zero()) return;
    std::apply([&](auto&... cb) { (hooks::log_metrics::on_callback(cb, metrics, step), ...); },
               callbacks_);
  }
  // Whether the running batch is a logging step (log_every_n_steps, or a stop).
  [[nodiscard]] bool should_update_logs() const noexcept {
    return (total_batch_idx_ + 1) % run_.log_every_n_steps == 0 || should_stop;
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
    if (n < 1)
      throw std::invalid_argument(std::string("lightning: accumulate_grad_batches = ") +
                                  std::to_string(n) + " is invalid: must be >= 1");
    run_.accumulate_grad_batches = n;
  }
  // Whether the running fit has a validation loop.
  [[nodiscard]] bool has_validation() const noexcept { return fit_has_validation_; }
  [[nodiscard]] std::filesystem::path default_root_dir() const {
    return options_.default_root_dir.empty() ? std::filesystem::current_path()
                                             : options_.default_root_dir;
  }
  // Lightning's trainer.log_dir: the first logger's directory, else default_root_dir.
  [[nodiscard]] std::filesystem::path log_dir() const {
    std::optional<std::filesystem::path> dir;
    std::apply(
        [&](const auto&... cb) {
          const auto first = [&](const auto& c) {
            if constexpr (requires { c.log_dir(); })
              if (!dir) dir = std::filesystem::path(c.log_dir());
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

 private:
  static callback_tuple make_callbacks(Callbacks&... c) {
    return std::tuple_cat(detail::keep_if<!detail::is_model_checkpoint<Callbacks>>(c)...,
                          default_progress_bar{}, default_summary{},
                          detail::keep_if<detail::is_model_checkpoint<Callbacks>>(c)...,
                          default_checkpoint{});
  }

  template <class M, class VL>
  static consteval bool check_validation() {
    if constexpr (std::is_same_v<VL, detail::NoLoader> || !hooks::validation_step::declared<M>) {
      return true;
    } else {
      // At most one of the two fires: `fit` has one value.
      constexpr auto fit =
          detail::eval_step_fit<hooks::validation_step, M, detail::loader_refs_t<VL>>::value;
      static_assert(fit != detail::StepFit::wrong_batch,
                    "lightning: `validation_step` cannot take the batches of the validation "
                    "loader. Expected validation_step(const Batch& batch, int64_t batch_idx)");
      static_assert(fit != detail::StepFit::needs_dataloader_idx,
                    "lightning: several validation loaders were given, but `validation_step` "
                    "does not take their index; add it: validation_step(const Batch& batch, "
                    "int64_t batch_idx, int64_t dataloader_idx)");
      return fit == detail::StepFit::ok;
    }
  }

  // Runs `run` (an entry point) starting from `ckpt`; a run that fails before it reads
  // the path must not leave it for the next one.
  template <class F>
  decltype(auto) resuming_from(CheckpointPath ckpt, F&& run) {
    resume_path_ = std::move(ckpt.path);
    struct Clear {
      std::optional<std::filesystem::path>& p;
      ~Clear() { p.reset(); }
    } clear{resume_path_};
    return run();
  }

  // The checkpoint a run was asked to start from, with "last" and "best" resolved
  // (after the setup hooks: ModelCheckpoint knows its directory then). Consumes it.
  std::optional<std::filesystem::path> take_resume_path() {
    if (!resume_path_) return std::nullopt;
    auto path = *std::exchange(resume_path_, std::nullopt);
    if (path == "best") return best_checkpoint();
    if (path == "last") return last_checkpoint();
    return path;
  }
  std::filesystem::path best_checkpoint() {
    std::optional<std::string> best;
    bool any = false;
    std::apply(
        [&](auto&... cb) {
          const auto first = [&](auto& c) {
            if constexpr (detail::is_model_checkpoint<std::remove_cvref_t<decltype(c)>>) {
              if (!any) best = c.best_model_path();
              any = true;
            }
          };
          (first(cb), ...);
        },
        callbacks_);
    if (!any || (run_.enable_checkpointing == false && !user_checkpoint))
      throw std::invalid_argument(
          "lightning: ckpt_path = \"best\" needs a ModelCheckpoint among the callbacks (or "
          "enable_checkpointing = true)");
    if (!best || best->empty())
      throw std::invalid_argument(
          "lightning: ckpt_path = \"best\", but the ModelCheckpoint has no best model yet: "
          "run fit() with it first (with a monitor to rank checkpoints by)");
    return *best;
  }
  std::optional<std::filesystem::path> last_checkpoint() {
    std::vector<std::filesystem::path> candidates;
    std::apply(
        [&](auto&... cb) {
          const auto add = [&](auto& c) {
            if constexpr (detail::is_model_checkpoint<std::remove_cvref_t<decltype(c)>>) {
              for (auto& p : c.find_last_checkpoints(*this)) candidates.push_back(std::move(p));
            } else if constexpr (requires { c.ckpt_path(); }) {
              if (std::filesystem::exists(c.ckpt_path())) candidates.push_back(c.ckpt_path());
            }
          };
          (add(cb), ...);
        },
        callbacks_);
    if (candidates.empty()) {
      std::cerr << "lightning: ckpt_path = \"last\" found no last checkpoint; "
                << (stage == Stage::fit ? "training starts from scratch"
                                        : "using the module's current weights")
                << '\n';
      return std::nullopt;
    }
    return *std::max_element(
        candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
          return std::filesystem::last_write_time(a) < std::filesystem::last_write_time(b);
        });
  }

  // Runs a DataModule's prepare_data and setup(stage) before, teardown(stage) after.
  template <class D, class F>
  void with_datamodule(D& dm, Stage stage, F&& body) {
    hooks::call_module<hooks::prepare_data>(dm);
    hooks::call_module<hooks::setup>(dm, stage);
    body();
    hooks::call_module<hooks::teardown>(dm, stage);
  }

  // Binds each scheduler of an optimizer to it (records the base learning rates).
  template <class Config>
  static void attach_schedulers(Config& config) {
    std::apply([&](auto&... sc) { (sc.scheduler.attach(config.optimizer), ...); },
               config.lr_schedulers);
  }

  // Steps the schedulers of `config` that run at this interval (plateau ones separately,
  // as Lightning does: after on_train_epoch_end, reading their monitored metric).
  template <class Config>
  void step_schedulers(Config& config, Interval interval, bool plateau) {
    std::apply([&](auto&... s) { (step_scheduler(s, config.optimizer, interval, plateau), ...); },
               config.lr_schedulers);
  }
  template <class Sched, class Opt>
  void step_scheduler(SchedulerConfig<Sched>& s, Opt& optimizer, Interval interval, bool plateau) {
    if (s.options.interval != interval || SchedulerConfig<Sched>::reduce_on_plateau != plateau)
      return;
    const std::int64_t idx = interval == Interval::step ? global_step : current_epoch + 1;
    if (s.options.frequency <= 0 || idx % s.options.frequency != 0) return;
    if constexpr (SchedulerConfig<Sched>::reduce_on_plateau) {
      const auto available = metrics.callback_metrics();
      const auto it = available.find(s.options.monitor);
      if (it == available.end()) {
        if (!s.options.strict) return;
        std::string names;
        for (const auto& kv : available) names += (names.empty() ? "" : ", ") + kv.first;
        throw std::runtime_error("lightning: ReduceLROnPlateau monitors \"" + s.options.monitor +
                                 "\", which was never logged. Logged metrics: [" + names +
                                 "]. Log it (e.g. log(\"" + s.options.monitor +
                                 "\", loss) in validation_step) or set SchedulerOptions.monitor");
      }
      s.scheduler.step(optimizer, it->second);
    } else {
      s.scheduler.step(optimizer);
    }
  }

  // Shared start of every entry point: fresh state, resolved options, seed, setup hooks,
  // module on the device. The default progress bar draws only during fit.
  template <class M>
  void begin_entry(M& model, Stage s) {
    static_cast<TrainerState&>(*this) = TrainerState{};
    stage = s;
    run_ = resolve(options_);
    total_batch_idx_ = 0;
    fit_has_validation_ = false;
    loaded_ckpt_path_.reset();
    if constexpr (!user_progress_bar) {
      auto& bar = std::get<callbacks::ProgressBar>(callbacks_);
      run_.enable_progress_bar ? bar.enable() : bar.disable();
    }
    if constexpr (!user_summary) {
      auto& summary = std::get<callbacks::ModelSummary>(callbacks_);
      run_.enable_model_summary ? summary.enable() : summary.disable();
    }
    if constexpr (!user_checkpoint) {
      auto& checkpoint = std::get<callbacks::ModelCheckpoint>(callbacks_);
      run_.enable_checkpointing ? checkpoint.enable() : checkpoint.disable();
    }
    if (run_.seed) seed_everything(*run_.seed);
    if (run_.deterministic) use_deterministic_algorithms(true);
    scope(LogScope::forbidden, "setup");
    call_hooks<hooks::setup>(model, s);
    scope(LogScope::forbidden, "configure_model");
    hooks::call_module<hooks::configure_model>(model);
    fabric_.setup_module(model);
  }

  // Loads the weights of the checkpoint validate/test/predict were given, if any.
  template <class M>
  void load_evaluation_checkpoint(M& model) {
    if (auto path = take_resume_path()) {
      const auto c = load_checkpoint_file(*path);
      restore_module(model, c, path->string());
      loaded_ckpt_path_ = *path;
    }
  }

  // Lightning logs the module's hyperparameters to every logger when a run starts.
  template <class M>
  void log_hyperparameters(M& model) {
    if constexpr (std::derived_from<M, LightningModule> &&
                  (hooks::log_hyperparams::declared<Callbacks> || ...)) {
      if (!is_global_zero()) return;
      std::apply(
          [&](auto&... cb) { (hooks::log_hyperparams::on_callback(cb, model.hparams()), ...); },
          callbacks_);
    }
  }

  template <class Loop, class M, class Loaders>
  std::vector<MetricMap> run_evaluation_entry(M& model, Loaders& loaders, Stage s,
                                              const BatchLimit& limit, const char* limit_name) {
    constexpr std::size_t count = std::tuple_size_v<Loaders>;
    Attachment<M> attachment(model, this);
    try {
      begin_entry(model, s);
      load_evaluation_checkpoint(model);
      log_hyperparameters(model);
      const auto limits = loader_limits(loaders, limit, limit_name);
      num_val_batches = total_batches(limits);
      if (s == Stage::test) num_test_batches = num_val_batches;
      if (!num_val_batches || *num_val_batches > 0) run_evaluation<Loop>(model, loaders, limits);
      scope(LogScope::forbidden, "teardown");
      call_hooks<hooks::teardown>(model, s);
    } catch (const std::exception& error) {
      validating = false;
      scope(LogScope::forbidden, "on_exception");
      hooks::call_callbacks<hooks::on_exception>(callbacks_, *this, model, error);
      throw;
    }
    if constexpr (count == 1) {
      return {metrics.logged_metrics()};
    } else {
      std::vector<MetricMap> results;
      for (std::size_t i = 0; i < count; ++i)
        results.push_back(metrics.logged_metrics(static_cast<std::int64_t>(i)));
      return results;
    }
  }

  // Each evaluation loader's batch count after the limit (unknown: no size()).
  template <class Loaders>
  using Limits = std::array<std::optional<std::int64_t>, std::tuple_size_v<Loaders>>;
  template <class Loaders>
  static Limits<Loaders> loader_limits(Loaders& loaders, const BatchLimit& limit,
                                       const char* option) {
    return std::apply(
        [&](auto&... l) { return Limits<Loaders>{limited(limit, loader_length(l), option)...}; },
        loaders);
  }
  template <std::size_t N>
  static std::optional<std::int64_t> total_batches(
      const std::array<std::optional<std::int64_t>, N>& limits) {
    std::int64_t total = 0;
    for (const auto& n : limits) {
      if (!n) return std::nullopt;
      total += *n;
    }
    return total;
  }

  template <class M, class L>
  auto run_predict_entry(M& model, L& loader) {
    using B = loader_batch_t<L>;
    using Out =
        std::remove_cvref_t<decltype(model.predict_step(std::declval<B&>(), std::int64_t{}))>;
    static_assert(!std::is_void_v<Out>, "lightning: predict_step must return its prediction");
    std::vector<Out> outputs;
    Attachment<M> attachment(model, this);
    try {
      begin_entry(model, Stage::predict);
      load_evaluation_checkpoint(model);
      const auto limit =
          limited(run_.limit_predict_batches, loader_length(loader), "limit_predict_batches");
      num_predict_batches = limit;
      if (limit) outputs.reserve(static_cast<std::size_t>(*limit));
      const bool was_training = model.is_training();
      model.eval();
      {
        c10::InferenceMode inference;
        scope(LogScope::forbidden, "on_predict_start");
        call_hooks<hooks::on_predict_start>(model);
        call_hooks<hooks::on_predict_epoch_start>(model);
        auto it = detail::loader_begin(loader);
        auto end = detail::loader_end(loader);
        for (std::int64_t idx = 0; it != end && (!limit || idx < *limit); ++idx) {
          auto batch = prepare_batch(model, *it);
          ++it;
          batch_idx = idx;
          scope(LogScope::forbidden, "predict_step");
          call_hooks<hooks::on_predict_batch_start>(model, std::as_const(batch), idx);
          outputs.push_back([&] {
            [[maybe_unused]] auto autocast = fabric_.autocast();
            return model.predict_step(batch, idx);
          }());
          call_hooks<hooks::on_predict_batch_end>(model, std::as_const(outputs.back()),
                                                  std::as_const(batch), idx);
        }
        call_hooks<hooks::on_predict_epoch_end>(model);
        call_hooks<hooks::on_predict_end>(model);
      }
      if (was_training) model.train();
      scope(LogScope::forbidden, "teardown");
      call_hooks<hooks::teardown>(model, Stage::predict);
    } catch (const std::exception& error) {
      scope(LogScope::forbidden, "on_exception");
      hooks::call_callbacks<hooks::on_exception>(callbacks_, *this, model, error);
      throw;
    }
    return outputs;
  }

  // The epoch's batches and schedulers are done: a checkpoint saved now resumes at the
  // next epoch (ModelCheckpoint saves here, in on_train_epoch_end).
  template <class TL>
  void note_epoch_end(TL& train_loader) {
    in_epoch_ = false;
    epoch_completed_ = true;
    if constexpr (requires { train_loader.state_dict(); })
      train_loader_state_ = train_loader.state_dict();
  }

  // Between epochs: a checkpoint saved now resumes exactly at the next epoch.
  template <class TL>
  void note_epoch_boundary(TL& train_loader, std::int64_t total_batch_idx) {
    in_epoch_ = false;
    epoch_completed_ = false;
    batches_seen_ = total_batch_idx;
    epoch_batches_done_ = 0;
    if constexpr (requires { train_loader.state_dict(); })
      train_loader_state_ = train_loader.state_dict();
  }

  template <class M, class Configs>
  CheckpointDict collect_checkpoint(M& model, Configs& configs, bool weights_only) {
    CheckpointDict c = make_checkpoint();
    c.insert("epoch", current_epoch);
    c.insert("global_step", global_step);
    c.insert("state_dict", module_state_dict(model));
    if constexpr (std::derived_from<M, LightningModule>)
      if (!model.hparams().empty())
        c.insert("hyper_parameters", hyperparameters_state(model.hparams()));
    if (!weights_only) {
      CheckpointDict optimizers = make_checkpoint(), schedulers = make_checkpoint();
      std::apply([&](auto&... config) { (save_config(config, optimizers, schedulers), ...); },
                 configs);
      c.insert("optimizer_states", optimizers);
      c.insert("lr_schedulers", schedulers);
      c.insert("loops", loop_state());
      c.insert("rng_cpu", cpu_rng_state());
      if (train_loader_state_.defined()) c.insert("train_loader", train_loader_state_);
      c.insert("callbacks", callback_states());
      hooks::call_callbacks<hooks::on_save_checkpoint>(callbacks_, *this, model, c);
    }
    hooks::call_module<hooks::on_save_checkpoint>(model, c);
    return c;
  }

  // Where the fit loop is: between epochs, or inside one (then also the generator as the
  // epoch began, to replay its shuffle, and the epoch's metric accumulators).
  CheckpointDict loop_state() const {
    CheckpointDict loops = make_checkpoint();
    loops.insert("mid_epoch", in_epoch_);
    loops.insert("epoch_completed", epoch_completed_);
    loops.insert("total_batch_idx", batches_seen_);
    loops.insert("epoch_batch_idx", epoch_batches_done_);
    if (in_epoch_) {
      loops.insert("epoch_rng_cpu", epoch_rng_state_);
      c10::impl::GenericList accumulators(c10::AnyType::get());
      for (const auto& a : metrics.epoch_state(MetricStore::Phase::train)) {
        CheckpointDict one = make_checkpoint();
        one.insert("name", a.name);
        one.insert("dataloader", a.dataloader);
        one.insert("value", a.value);
        one.insert("weight", a.weight);
        accumulators.push_back(one);
      }
      loops.insert("train_metrics", accumulators);
    }
    return loops;
  }

  CheckpointDict callback_states() {
    CheckpointDict states = make_checkpoint();
    std::apply(
        [&](auto&... cb) {
          const auto add = [&](auto& c) {
            if constexpr (hooks::state_dict::declared<std::remove_cvref_t<decltype(c)>>) {
              if (!detail::callback_enabled(c)) return;
              const auto key = detail::callback_state_key(c);
              if (states.contains(key))
                throw std::logic_error(
                    "lightning: two callbacks save their state under the key \"" + key +
                    "\"; give one of them a distinct `std::string state_key() const`");
              states.insert(key, hooks::state_dict::on_callback(c));
            }
          };
          (add(cb), ...);
        },
        callbacks_);
    return states;
  }

  template <class Config>
  static void save_config(Config& config, CheckpointDict& optimizers, CheckpointDict& schedulers) {
    optimizers.insert(std::to_string(optimizers.size()), optimizer_state(config.optimizer));
    std::apply(
        [&](auto&... sc) {
          (schedulers.insert(std::to_string(schedulers.size()), scheduler_state(sc.scheduler)),
           ...);
        },
        config.lr_schedulers);
  }

  // The module's part of a checkpoint, for every entry point (Lightning's restore_model):
  // its on_load_checkpoint hook, the weights, the hyperparameters.
  template <class M>
  void restore_module(M& model, const CheckpointDict& c, const std::string& source) {
    hooks::call_module<hooks::on_load_checkpoint>(model, c);
    load_module_state_dict(model, checkpoint_dict<at::Tensor>(c.at("state_dict")), source);
    if constexpr (std::derived_from<M, LightningModule>)
      if (c.contains("hyper_parameters"))
        model.save_hyperparameters(
            load_hyperparameters_state(checkpoint_dict(c.at("hyper_parameters")), source));
  }

  // Everything fit() needs to resume: module, callbacks, optimizers and schedulers (the
  // loop's position is restored when the loop starts).
  template <class M, class Configs>
  void restore_checkpoint(M& model, Configs& configs, const CheckpointDict& c,
                          const std::string& source) {
    if (!c.contains("optimizer_states") || !c.contains("loops"))
      throw CheckpointError("lightning: " + source +
                            " holds only the module's weights (save_weights_only), so training "
                            "cannot resume from it; pass it to validate/test/predict, or resume "
                            "from a full checkpoint");
    restore_module(model, c, source);
    hooks::call_callbacks<hooks::on_load_checkpoint>(callbacks_, *this, model, c);
    if (c.contains("callbacks")) {
      const auto states = checkpoint_dict(c.at("callbacks"));
      std::apply(
          [&](auto&... cb) {
            const auto load = [&](auto& one) {
              if constexpr (hooks::load_state_dict::declared<std::remove_cvref_t<decltype(one)>>) {
                const auto key = detail::callback_state_key(one);
                if (states.contains(key))
                  hooks::load_state_dict::on_callback(one, checkpoint_dict(states.at(key)));
              }
            };
            (load(cb), ...);
          },
          callbacks_);
    }
    const auto optimizers = checkpoint_dict(c.at("optimizer_states"));
    const auto schedulers = checkpoint_dict(c.at("lr_schedulers"));
    if (optimizers.size() != std::tuple_size_v<Configs>)
      throw CheckpointError("lightning: " + source + " holds " + std::to_string(optimizers.size()) +
                            " optimizer state(s), configure_optimizers returned " +
                            std::to_string(std::tuple_size_v<Configs>));
    std::size_t next_optimizer = 0, next_scheduler = 0;
    std::apply(
        [&](auto&... config) {
          (restore_config(config, optimizers, schedulers, next_optimizer, next_scheduler, source),
           ...);
        },
        configs);
    if (next_scheduler != schedulers.size())
      throw CheckpointError("lightning: " + source + " holds " + std::to_string(schedulers.size()) +
                            " scheduler state(s), configure_optimizers returned " +
                            std::to_string(next_scheduler));
  }
  template <class Config>
  static void restore_config(Config& config, const CheckpointDict& optimizers,
                             const CheckpointDict& schedulers, std::size_t& next_optimizer,
                             std::size_t& next_scheduler, const std::string& source) {
    // Schedulers first: restoring one re-applies its lr; the optimizer's saved lrs, the
    // values the run really had, are restored last.
    std::apply(
        [&](auto&... sc) {
          [[maybe_unused]] const auto restore_one = [&](auto& one) {
            const auto key = std::to_string(next_scheduler++);
            if (!schedulers.contains(key))
              throw CheckpointError("lightning: " + source +
                                    " holds fewer scheduler states than configure_optimizers "
                                    "returns schedulers");
            load_scheduler_state(one.scheduler, config.optimizer,
                                 checkpoint_dict(schedulers.at(key)));
          };
          (restore_one(sc), ...);
        },
        config.lr_schedulers);
    load_optimizer_state(config.optimizer,
                         checkpoint_dict(optimizers.at(std::to_string(next_optimizer++))));
  }

  template <class Opt, class... Scheds>
  void add_optimizer_info(OptimizerConfig<Opt, Scheds...>& config) {
    OptimizerInfo info;
    info.optimizer = &config.optimizer;
    info.type_name = detail::optimizer_type_name<Opt>();
    std::apply(
        [&](auto&... sc) {
          (info.schedulers.emplace_back(sc.options.name, sc.options.interval), ...);
        },
        config.lr_schedulers);
    optimizer_infos_.push_back(std::move(info));
  }

  // Lightning refuses the Trainer's automatic accumulation and clipping in manual
  // optimization: the module would silently not get them.
  void check_manual_options() const {
    if (run_.accumulate_grad_batches != 1)
      throw std::invalid_argument(
          "lightning: TrainerOptions.accumulate_grad_batches = " +
          std::to_string(run_.accumulate_grad_batches) +
          " is not supported with manual optimization (automatic_optimization = false): "
          "accumulate in training_step (step every N batches) or use automatic optimization");
    if (run_.gradient_clip_val)
      throw std::invalid_argument(
          "lightning: TrainerOptions.gradient_clip_val = " +
          std::to_string(*run_.gradient_clip_val) +
          " is not supported with manual optimization (automatic_optimization = false): call "
          "clip_gradients(opt, value) in training_step before opt.step()");
  }

  // The Trainer's side of manual optimization for one fit(): handles on the configured
  // optimizers and schedulers, and what manual_backward / opt.step() run. Attached to
  // the module for its lifetime; undoes toggle_optimizer on the way out.
  template <class M>
  struct ManualRun {
    Trainer& trainer;
    M& model;
    detail::ManualOptimization table;
    std::vector<LightningOptimizer> optimizers;
    std::vector<LightningScheduler> schedulers;

    template <class Configs>
    ManualRun(Trainer& t, M& m, Configs& configs) : trainer(t), model(m) {
      table.trainer = this;
      table.backward = &backward;
      table.step = &step;
      table.step_closure = &step_closure;
      table.clip = &clip;
      std::apply([&](auto&... config) { (add(config), ...); }, configs);
      table.optimizers = optimizers;
      table.schedulers = schedulers;
      model.attach_manual_optimization(&table);
    }
    ~ManualRun() {
      model.untoggle_optimizer();  // a toggle left active by an exception
      model.attach_manual_optimization(nullptr);
    }
    ManualRun(const ManualRun&) = delete;
    ManualRun& operator=(const ManualRun&) = delete;

    template <class Opt, class... Scheds>
    void add(OptimizerConfig<Opt, Scheds...>& config) {
      optimizers.emplace_back(config.optimizer, table);
      std::apply(
          [&](auto&... sc) {
            (schedulers.emplace_back(static_cast<void*>(&sc), config.optimizer,
                                     &LightningScheduler::step_config<Scheds>),
             ...);
          },
          config.lr_schedulers);
    }

    static ManualRun& self(void* p) { return *static_cast<ManualRun*>(p); }
    static void backward(void* p, const torch::Tensor& loss) {
      auto& r = self(p);
      r.trainer.template call_hooks<hooks::on_before_backward>(r.model, loss);
      r.trainer.fabric_.backward(loss);
      r.trainer.template call_hooks<hooks::on_after_backward>(r.model);
    }
    static bool step(void* p, torch::optim::Optimizer& optimizer) {
      auto& r = self(p);
      r.trainer.template call_hooks<hooks::on_before_optimizer_step>(r.model, optimizer);
      const bool stepped = r.trainer.fabric_.step(optimizer);
      ++r.trainer.global_step;
      return stepped;
    }
    // As Lightning: the hooks run after each evaluation of the closure, before the update.
    static torch::Tensor step_closure(void* p, torch::optim::Optimizer& optimizer,
                                      const torch::optim::Optimizer::LossClosure& closure) {
      auto& r = self(p);
      auto loss = r.trainer.fabric_.step(optimizer, [&] {
        auto value = closure();
        r.trainer.template call_hooks<hooks::on_before_optimizer_step>(r.model, optimizer);
        return value;
      });
      ++r.trainer.global_step;
      return loss;
    }
    static torch::Tensor clip(void* p, torch::optim::Optimizer& optimizer, double value,
                              GradClipAlgorithm algorithm) {
      auto& fabric = self(p).trainer.fabric_;
      if (algorithm == GradClipAlgorithm::norm)
        return fabric.clip_gradients_by_norm(optimizer, value);
      fabric.clip_gradients_by_value(optimizer, value);
      return {};
    }
  };

  // Connects a LightningModule to this trainer for the duration of a run.
  template <class M>
  struct Attachment {
    M& m;
    Attachment(M& model, TrainerState* s) : m(model) {
      if constexpr (std::derived_from<M, LightningModule>) m.attach_trainer(s);
    }
    ~Attachment() {
      if constexpr (std::derived_from<M, LightningModule>) m.attach_trainer(nullptr);
    }
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;
  };

  // Sets where log() calls come from (Lightning's defaults and restrictions per hook).
  void scope(LogScope s, const char* hook, MetricStore::Phase phase = MetricStore::Phase::train) {
    metrics.enter(s, hook, phase);
  }

  // A hook of the callbacks that are (Monitoring) or are not monitoring ones.
  template <class Hook, bool Monitoring, class M>
  void call_monitoring_hooks(M& model) {
    std::apply(
        [&](auto&... cb) {
          const auto one = [&](auto& c) {
            if constexpr (detail::is_monitoring<std::remove_cvref_t<decltype(c)>> == Monitoring)
              Hook::on_callback(c, *this, model);
          };
          (one(cb), ...);
        },
        callbacks_);
  }

  template <class Hook, class M, class... Args>
  void call_hooks(M& model, Args&&... args) {
    hooks::call_callbacks<Hook>(callbacks_, *this, model, args...);
    hooks::call_module<Hook>(model, std::forward<Args>(args)...);
  }

  [[nodiscard]] bool can_stop_early() const noexcept {
    return current_epoch >= run_.min_epochs && global_step >= run_.min_steps;
  }
  [[nodiscard]] bool max_steps_reached() const noexcept {
    return run_.max_steps != -1 && global_step >= run_.max_steps;
  }
  [[nodiscard]] bool stop_requested() {
    if (!should_stop) return false;
    if (can_stop_early()) return true;
    if (!min_warning_given_) {
      std::cerr << "lightning: Trainer was signaled to stop but the required min_epochs="
                << run_.min_epochs << " or min_steps=" << run_.min_steps
                << " has not been met. Training will continue...\n";
      min_warning_given_ = true;
    }
    return false;
  }
  [[nodiscard]] bool fit_done() {
    if (run_.max_epochs == 0 || max_steps_reached()) return true;
    if (*run_.max_epochs != -1 && current_epoch >= *run_.max_epochs) return true;
    return stop_requested();
  }

  template <class L>
  static std::optional<std::int64_t> loader_length(L& loader) {
    if constexpr (SizedLoader<L>)
      return static_cast<std::int64_t>(loader.size());
    else
      return std::nullopt;
  }

  // Applies a BatchLimit, refusing a fraction that leaves no batch of a non-empty loader.
  static std::optional<std::int64_t> limited(const BatchLimit& limit, std::optional<std::int64_t> n,
                                             const char* option) {
    if (!limit.is_count() && !limit.is_all() && !n)
      throw std::invalid_argument(std::string("lightning: TrainerOptions.") + option + " = " +
                                  limit.str() +
                                  " is a fraction, but the loader has no size(); pass a batch "
                                  "count instead");
    auto r = limit.apply(n);
    if (r && *r == 0 && !limit.is_count() && limit.fraction() > 0.0 && n && *n > 0)
      throw std::invalid_argument(std::string("lightning: TrainerOptions.") + option + " = " +
                                  limit.str() + " of " + std::to_string(*n) +
                                  " batches is less than one batch; raise it or pass a count");
    return r;
  }

  // Transfers a batch to the device through the module's transfer hooks, if any.
  template <class M, class B>
  auto prepare_batch(M& model, B&& raw, std::int64_t dataloader_idx = 0) {
    if constexpr (hooks::on_before_batch_transfer::declared<M> ||
                  hooks::on_after_batch_transfer::declared<M>) {
      auto before = [&] {
        if constexpr (hooks::on_before_batch_transfer::declared<M>)
          return hooks::call_module<hooks::on_before_batch_transfer>(model, std::forward<B>(raw),
                                                                     dataloader_idx);
        else
          return std::remove_cvref_t<B>(std::forward<B>(raw));
      }();
      auto moved = fabric_.to_device(before);
      if constexpr (hooks::on_after_batch_transfer::declared<M>)
        return hooks::call_module<hooks::on_after_batch_transfer>(model, std::move(moved),
                                                                  dataloader_idx);
      else
        return moved;
    } else {
      return fabric_.to_device(std::forward<B>(raw));
    }
  }

  // Sends metrics (plus "epoch") to every logger.
  void emit_logs(MetricMap&& m, std::int64_t step) {
    if (m.empty()) return;
    m.insert_or_assign("epoch", static_cast<double>(current_epoch));
    log_metrics(m, step);
  }

  template <class M, class VL>
  static constexpr bool has_validation_loop =
      !std::is_same_v<VL, detail::NoLoader> && hooks::validation_step::declared<M>;

  template <class M, class TL, class VL>
  void run_fit(M& model, TL& train_loader, VL& val_loader) {
    constexpr bool has_val = has_validation_loop<M, VL>;
    constexpr bool manual = uses_manual_optimization<M>;
    if constexpr (!std::is_same_v<VL, detail::NoLoader> && !hooks::validation_step::declared<M>)
      std::cerr << "lightning: a validation loader was passed to fit() but the module has no "
                   "validation_step; the validation loop will be skipped\n";

    Attachment<M> attachment(model, this);

    try {
      begin_entry(model, Stage::fit);
      min_warning_given_ = false;
      if constexpr (manual) check_manual_options();
      scope(LogScope::forbidden, "configure_optimizers");
      // On the heap: save_checkpoint() may still read them after fit() returns.
      using Configs = decltype(detail::to_optimizer_configs(model.configure_optimizers()));
      auto configs_owner =
          std::make_shared<Configs>(detail::to_optimizer_configs(model.configure_optimizers()));
      auto& configs = *configs_owner;
      std::apply([](auto&... config) { (attach_schedulers(config), ...); }, configs);
      optimizer_infos_.clear();
      std::apply([&](auto&... config) { (add_optimizer_info(config), ...); }, configs);
      checkpoint_source_ = [this, &model, configs_owner](bool weights_only) {
        return collect_checkpoint(model, *configs_owner, weights_only);
      };
      std::optional<CheckpointDict> resume;
      if (auto path = take_resume_path()) {
        resume = load_checkpoint_file(*path);
        restore_checkpoint(model, configs, *resume, path->string());
        loaded_ckpt_path_ = *path;
      }
      log_hyperparameters(model);
      std::conditional_t<manual, ManualRun<M>, detail::NoManualRun> manual_run(*this, model,
                                                                               configs);

      num_training_batches =
          limited(run_.limit_train_batches, loader_length(train_loader), "limit_train_batches");
      if (auto n = loader_length(train_loader); n && *n == 0)
        throw std::invalid_argument(
            "lightning: the training loader is empty (0 batches); check the number of "
            "examples, batch_size and drop_last");
      bool val_enabled = false;
      std::int64_t val_check_batch = 0;  // 0: validate on the last batch of the epoch
      auto val_loaders = detail::loader_refs(val_loader);
      Limits<decltype(val_loaders)> val_limits{};
      if constexpr (has_val) {
        val_limits = loader_limits(val_loaders, run_.limit_val_batches, "limit_val_batches");
        num_val_batches = total_batches(val_limits);
        val_enabled = !num_val_batches || *num_val_batches > 0;
        fit_has_validation_ = val_enabled;
        if (run_.val_check_interval.is_count()) {
          val_check_batch = run_.val_check_interval.count();
          if (run_.check_val_every_n_epoch && num_training_batches &&
              val_check_batch > *num_training_batches)
            throw std::invalid_argument(
                "lightning: TrainerOptions.val_check_interval = " +
                std::to_string(val_check_batch) + " must be <= the number of training batches (" +
                std::to_string(*num_training_batches) +
                "); unset check_val_every_n_epoch to count batches across epochs");
        } else if (num_training_batches) {
          val_check_batch = std::max<std::int64_t>(
              1, static_cast<std::int64_t>(static_cast<double>(*num_training_batches) *
                                           run_.val_check_interval.fraction()));
        } else if (!run_.val_check_interval.is_all()) {
          throw std::invalid_argument(
              "lightning: TrainerOptions.val_check_interval = " + run_.val_check_interval.str() +
              " is a fraction, but the training loader has no size(); pass a batch count");
        }
      }

      scope(LogScope::forbidden, "on_fit_start");
      call_hooks<hooks::on_fit_start>(model);

      if constexpr (has_val) {
        if (val_enabled && run_.num_sanity_val_steps != 0) {
          sanity_checking = true;
          scope(LogScope::forbidden, "on_sanity_check_start");
          hooks::call_callbacks<hooks::on_sanity_check_start>(callbacks_, *this, model);
          auto sanity_limits = val_limits;  // num_sanity_val_steps batches of each loader
          if (run_.num_sanity_val_steps != -1)
            for (auto& n : sanity_limits)
              n = n ? std::min(*n, run_.num_sanity_val_steps) : run_.num_sanity_val_steps;
          num_sanity_val_batches = total_batches(sanity_limits);
          run_validation(model, val_loaders, sanity_limits);
          scope(LogScope::forbidden, "on_sanity_check_end");
          hooks::call_callbacks<hooks::on_sanity_check_end>(callbacks_, *this, model);
          sanity_checking = false;
          metrics.clear(MetricStore::Phase::validation);
        }
      }

      model.train();
      training = true;
      scope(LogScope::train_epoch, "on_train_start");
      call_hooks<hooks::on_train_start>(model);

      std::int64_t total_batch_idx = 0;
      if (resume) {
        const auto loops = checkpoint_dict(resume->at("loops"));
        current_epoch =
            resume->at("epoch").toInt() + (loops.at("epoch_completed").toBool() ? 1 : 0);
        global_step = resume->at("global_step").toInt();
        total_batch_idx = loops.at("total_batch_idx").toInt();
        if constexpr (requires { train_loader.load_state_dict(torch::Tensor()); })
          if (resume->contains("train_loader"))
            train_loader.load_state_dict(resume->at("train_loader").toTensor());
        if (loops.at("mid_epoch").toBool()) {
          // Replayed when the epoch's loader starts: see run_training_epoch.
          MidEpochResume r;
          r.batches_done = loops.at("epoch_batch_idx").toInt();
          r.epoch_rng = loops.at("epoch_rng_cpu").toTensor();
          r.rng = resume->at("rng_cpu").toTensor();
          for (const auto& a : loops.at("train_metrics").toListRef()) {
            const auto one = checkpoint_dict(a);
            r.accumulators.push_back({one.at("name").toStringRef(), one.at("dataloader").toInt(),
                                      one.at("value").toDouble(), one.at("weight").toInt()});
          }
          mid_epoch_resume_ = std::move(r);
        } else {
          set_cpu_rng_state(resume->at("rng_cpu").toTensor());
        }
      }
      if (!mid_epoch_resume_) note_epoch_boundary(train_loader, total_batch_idx);
      while (!fit_done()) {
        in_epoch_ = true;
        metrics.reset_epoch(MetricStore::Phase::train);
        if (mid_epoch_resume_)
          metrics.resume_epoch(MetricStore::Phase::train, mid_epoch_resume_->accumulators);
        scope(LogScope::train_epoch, "on_train_epoch_start");
        call_hooks<hooks::on_train_epoch_start>(model);
        const bool completed =
            run_training_epoch(model, configs, train_loader, val_loaders, val_limits, val_enabled,
                               val_check_batch, total_batch_idx);
        // As Lightning: the epoch's values are visible to the hook, and the monitoring
        // callbacks (ModelCheckpoint, EarlyStopping) run after the module's hook, so they
        // see what it logged. Plateau schedulers step before them: a checkpoint saved
        // there holds the finished epoch and resumes at the next one exactly.
        metrics.finalize_epoch(MetricStore::Phase::train);
        scope(LogScope::train_epoch, "on_train_epoch_end");
        call_monitoring_hooks<hooks::on_train_epoch_end, false>(model);
        hooks::call_module<hooks::on_train_epoch_end>(model);
        metrics.finalize_epoch(MetricStore::Phase::train);
        if constexpr (!manual)
          if (completed) step_schedulers(std::get<0>(configs), Interval::epoch, /*plateau=*/true);
        note_epoch_end(train_loader);
        call_monitoring_hooks<hooks::on_train_epoch_end, true>(model);
        if constexpr (has_loggers)
          emit_logs(metrics.take_epoch_metrics(MetricStore::Phase::train),
                    std::max<std::int64_t>(global_step - 1, 0));
        ++current_epoch;
        note_epoch_boundary(train_loader, total_batch_idx);
      }
      training = false;

      scope(LogScope::forbidden, "on_train_end");
      call_hooks<hooks::on_train_end>(model);
      scope(LogScope::forbidden, "on_fit_end");
      call_hooks<hooks::on_fit_end>(model);
      scope(LogScope::forbidden, "teardown");
      call_hooks<hooks::teardown>(model, Stage::fit);
      release_free_host_memory();  // what the steps kept for each other (fabric/host_memory.hpp)
    } catch (const std::exception& error) {
      training = validating = sanity_checking = false;
      mid_epoch_resume_.reset();
      scope(LogScope::forbidden, "on_exception");
      hooks::call_callbacks<hooks::on_exception>(callbacks_, *this, model, error);
      throw;
    }
  }

  // One training epoch; true when it ran through all of its batches.
  template <class M, class Configs, class TL, class VLs>
  bool run_training_epoch(M& model, Configs& configs, TL& loader, [[maybe_unused]] VLs& val_loaders,
                          [[maybe_unused]] const Limits<VLs>& val_limits,
                          [[maybe_unused]] bool val_enabled,
                          [[maybe_unused]] std::int64_t val_check_batch,
                          std::int64_t& total_batch_idx) {
    const auto limit = num_training_batches;
    if (limit && *limit == 0) return false;
    bool completed = false;
    [[maybe_unused]] const std::int64_t accumulate = run_.accumulate_grad_batches;
    [[maybe_unused]] const double clip_value = run_.gradient_clip_val.value_or(0.0);
    [[maybe_unused]] const bool clip_by_norm =
        run_.gradient_clip_algorithm == GradClipAlgorithm::norm;

    // A checkpoint saved inside this epoch resumes by replaying the epoch's start: the
    // generators as they were when its loader began (same shuffle), then the batches it
    // had done are skipped and the generator continues from the checkpoint.
    std::int64_t first = 0;
    if (mid_epoch_resume_) {
      set_cpu_rng_state(mid_epoch_resume_->epoch_rng);
      first = mid_epoch_resume_->batches_done;
    }
    epoch_rng_state_ = cpu_rng_state();
    if constexpr (requires { loader.state_dict(); }) train_loader_state_ = loader.state_dict();
    auto it = detail::loader_begin(loader);
    auto end = detail::loader_end(loader);
    for (std::int64_t skipped = 0; skipped < first && it != end; ++skipped) ++it;
    if (mid_epoch_resume_) {
      set_cpu_rng_state(mid_epoch_resume_->rng);
      mid_epoch_resume_.reset();
      epoch_batches_done_ = first;
      batches_seen_ = total_batch_idx;
    }
    bool have = it != end;
    // A checkpoint saved after the epoch's last batch (in on_validation_end) resumes here.
    if (first > 0 && (!have || (limit && first >= *limit))) completed = true;
    if (!have && !limit && first == 0)
      throw std::invalid_argument("lightning: the training loader yielded no batches in epoch " +
                                  std::to_string(current_epoch) +
                                  "; check the dataset, batch_size and drop_last");
    for (std::int64_t idx = first; have && (!limit || idx < *limit); ++idx, ++total_batch_idx) {
      auto batch = prepare_batch(model, *it);
      ++it;
      have = it != end;
      const bool is_last = !have || (limit && idx + 1 == *limit);
      batch_idx = idx;
      total_batch_idx_ = total_batch_idx;
      metrics.set_batch_size(infer_batch_size(batch));

      scope(LogScope::train_step, "on_train_batch_start");
      hooks::call_callbacks<hooks::on_train_batch_start>(callbacks_, *this, model, batch, idx);
      using StartResult =
          decltype(hooks::call_module<hooks::on_train_batch_start>(model, batch, idx));
      if constexpr (std::is_void_v<StartResult>) {
        hooks::call_module<hooks::on_train_batch_start>(model, batch, idx);
      } else {
        if (hooks::call_module<hooks::on_train_batch_start>(model, batch, idx) == -1) break;
      }

      scope(LogScope::train_step, "training_step");
      auto output = detail::invoke_output([&]() -> decltype(auto) {
        [[maybe_unused]] auto autocast = fabric_.autocast();
        return model.training_step(batch, idx);
      });
      if constexpr (uses_manual_optimization<M>) {
        // The module zeroed, back-propagated and stepped itself; each step counted.
        if (is_last) completed = true;
      } else {
        auto& config = std::get<0>(configs);
        auto& optimizer = config.optimizer;
        const torch::Tensor& loss = detail::loss_of(output);
        const bool step_now = (idx + 1) % accumulate == 0 || is_last;
        if (idx % accumulate == 0) {
          call_hooks<hooks::on_before_zero_grad>(model,
                                                 static_cast<torch::optim::Optimizer&>(optimizer));
          optimizer.zero_grad();
        }
        {
          call_hooks<hooks::on_before_backward>(model, loss);
          if (step_now) {
            fabric_.backward(accumulate == 1 ? loss : loss / static_cast<double>(accumulate));
          } else {
            [[maybe_unused]] auto no_sync = fabric_.no_backward_sync();
            fabric_.backward(loss / static_cast<double>(accumulate));
          }
          call_hooks<hooks::on_after_backward>(model);
        }
        if (step_now) {
          call_hooks<hooks::on_before_optimizer_step>(
              model, static_cast<torch::optim::Optimizer&>(optimizer));
          if (clip_value > 0.0) {
            if (clip_by_norm)
              fabric_.clip_gradients_by_norm(optimizer, clip_value);
            else
              fabric_.clip_gradients_by_value(optimizer, clip_value);
          }
          fabric_.step(optimizer);
          ++global_step;
          step_schedulers(config, Interval::step, /*plateau=*/false);
          step_schedulers(config, Interval::step, /*plateau=*/true);
        }
        if (is_last) {
          completed = true;
          step_schedulers(config, Interval::epoch, /*plateau=*/false);
        }
      }

      // A checkpoint saved from here on resumes after this batch.
      epoch_batches_done_ = idx + 1;
      batches_seen_ = total_batch_idx + 1;
      scope(LogScope::train_step, "on_train_batch_end");
      call_hooks<hooks::on_train_batch_end>(model, std::as_const(output), std::as_const(batch),
                                            idx);

      if constexpr (has_loggers)
        if ((total_batch_idx + 1) % run_.log_every_n_steps == 0 || should_stop)
          emit_logs(metrics.take_step_metrics(), std::max<std::int64_t>(global_step - 1, 0));

      if constexpr (has_validation_loop<M, std::remove_cvref_t<std::tuple_element_t<0, VLs>>>) {
        if (val_enabled && should_validate(idx, total_batch_idx, is_last, val_check_batch))
          run_validation(model, val_loaders, val_limits);
      }
      if (max_steps_reached() || stop_requested()) {
        ++total_batch_idx;
        break;
      }
    }
    return completed;
  }

  [[nodiscard]] bool should_validate(std::int64_t idx, std::int64_t total_idx, bool is_last,
                                     std::int64_t val_check_batch) {
    if (run_.check_val_every_n_epoch && (current_epoch + 1) % *run_.check_val_every_n_epoch != 0)
      return false;
    if (should_stop && can_stop_early()) return true;
    if (val_check_batch == 0) return is_last;
    const std::int64_t iteration = run_.check_val_every_n_epoch ? idx : total_idx;
    return (iteration + 1) % val_check_batch == 0;
  }

  template <class M, class Loaders>
  void run_validation(M& model, Loaders& loaders, const Limits<Loaders>& limits) {
    run_evaluation<detail::ValidationLoop>(model, loaders, limits);
  }

  // One evaluation run (validation or test) over every loader in turn: eval mode,
  // inference mode, Lightning's hooks.
  template <class Loop, class M, class Loaders>
  void run_evaluation(M& model, Loaders& loaders, const Limits<Loaders>& limits) {
    using Phase = MetricStore::Phase;
    validating = true;
    const bool was_training = model.is_training();
    model.eval();
    {
      c10::InferenceMode inference;
      metrics.reset_epoch(Phase::validation);
      scope(LogScope::evaluation, Loop::start::name, Phase::validation);
      call_hooks<typename Loop::start>(model);
      scope(LogScope::evaluation, Loop::epoch_start::name, Phase::validation);
      call_hooks<typename Loop::epoch_start>(model);
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (run_evaluation_batches<Loop>(model, std::get<I>(loaders), limits[I],
                                      static_cast<std::int64_t>(I), sizeof...(I) > 1),
         ...);
      }
      (std::make_index_sequence<std::tuple_size_v<Loaders>>{});
      metrics.set_dataloader(-1);
      scope(LogScope::evaluation, Loop::epoch_end::name, Phase::validation);
      call_hooks<typename Loop::epoch_end>(model);
      metrics.finalize_epoch(Phase::validation);
    }
    if constexpr (has_loggers)
      if (!sanity_checking)  // inside fit: the step of the batch it follows, as Lightning
        emit_logs(metrics.take_epoch_metrics(Phase::validation),
                  training ? std::max<std::int64_t>(global_step - 1, 0) : global_step);
    scope(LogScope::forbidden, Loop::end::name, Phase::validation);
    call_hooks<typename Loop::end>(model);
    if (was_training) model.train();
    validating = false;
  }

  // The batches of one evaluation loader. With several loaders, metrics logged here
  // get the loader's suffix, and steps and batch hooks that take it get dataloader_idx.
  template <class Loop, class M, class VL>
  void run_evaluation_batches(M& model, VL& loader, std::optional<std::int64_t> limit,
                              std::int64_t dataloader_idx, bool several) {
    using Phase = MetricStore::Phase;
    metrics.set_dataloader(several ? dataloader_idx : -1);
    auto it = detail::loader_begin(loader);
    auto end = detail::loader_end(loader);
    for (std::int64_t idx = 0; it != end && (!limit || idx < *limit); ++idx) {
      auto batch = prepare_batch(model, *it, dataloader_idx);
      ++it;
      metrics.set_batch_size(infer_batch_size(batch));
      scope(LogScope::evaluation, Loop::batch_start::name, Phase::validation);
      call_batch_hooks<typename Loop::batch_start>(model, dataloader_idx, std::as_const(batch),
                                                   idx);
      scope(LogScope::evaluation, Loop::step::name, Phase::validation);
      auto output = detail::invoke_output([&]() -> decltype(auto) {
        [[maybe_unused]] auto autocast = fabric_.autocast();
        using B = decltype(batch);
        if constexpr (Loop::step::template callable<M, B&, std::int64_t&, std::int64_t&>)
          return Loop::step::on_module(model, batch, idx, dataloader_idx);
        else
          return Loop::step::on_module(model, batch, idx);
      });
      scope(LogScope::evaluation, Loop::batch_end::name, Phase::validation);
      call_batch_hooks<typename Loop::batch_end>(model, dataloader_idx, std::as_const(output),
                                                 std::as_const(batch), idx);
    }
  }

  // A batch hook of the callbacks, then of the module, with dataloader_idx appended for
  // those that take it (Lightning's optional last parameter).
  template <class Hook, class M, class... Args>
  void call_batch_hooks(M& model, std::int64_t dataloader_idx, const Args&... args) {
    std::apply(
        [&](auto&... cb) { (call_batch_callback<Hook>(cb, model, dataloader_idx, args...), ...); },
        callbacks_);
    if constexpr (Hook::template callable<M, const Args&..., std::int64_t&>)
      Hook::on_module(model, args..., dataloader_idx);
    else
      Hook::on_module(model, args...);
  }
  template <class Hook, class C, class M, class... Args>
  void call_batch_callback(C& cb, M& model, std::int64_t dataloader_idx, const Args&... args) {
    if constexpr (Hook::template callable<C, Trainer&, M&, const Args&..., std::int64_t&>)
      Hook::on_callback(cb, *this, model, args..., dataloader_idx);
    else
      Hook::on_callback(cb, *this, model, args...);
  }

  TrainerOptions options_;
  TrainerOptions run_;  // options_ resolved for the running fit
  fabric_type fabric_{};
  callback_tuple callbacks_;
  bool min_warning_given_ = false;
  // Checkpointing: what save_checkpoint writes (set by fit), where a run starts from.
  std::function<CheckpointDict(bool weights_only)> checkpoint_source_;
  std::optional<std::filesystem::path> resume_path_;
  std::optional<std::filesystem::path> loaded_ckpt_path_;
  bool in_epoch_ = false;
  bool epoch_completed_ = false;         // in on_train_epoch_end, after the epoch's work
  std::int64_t batches_seen_ = 0;        // batches completed over all epochs
  std::int64_t epoch_batches_done_ = 0;  // batches completed in the running epoch
  std::int64_t total_batch_idx_ = 0;     // the running batch over all epochs
  torch::Tensor train_loader_state_;     // the train loader's generator as the epoch began
  torch::Tensor epoch_rng_state_;        // the CPU generator as the epoch's loader began
  struct MidEpochResume {
    std::int64_t batches_done = 0;
    torch::Tensor epoch_rng, rng;
    std::vector<MetricStore::EpochAccumulator> accumulators;
  };
  std::optional<MidEpochResume> mid_epoch_resume_;
  // What callbacks see of a fit.
  std::vector<OptimizerInfo> optimizer_infos_;
  bool fit_has_validation_ = false;
};

}  // namespace lightning
