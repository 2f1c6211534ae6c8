// The evaluation loop (Lightning's loops/evaluation_loop.py): one body serves validation
// inside fit, trainer.validate and trainer.test, over one loader or several; eval mode,
// inference mode, Lightning's hooks. Its policy points: the accelerator's transfer and
// the precision's cast (prepare_batch), the precision's autocast around each step.
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/data_connector.hpp>
#include <lightning/trainer/connectors/logger_connector.hpp>
#include <lightning/trainer/loops/evaluation_mode.hpp>

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning {
namespace detail {

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

namespace loops {

// The hooks of an evaluation loop (validation or test), and how its entry point is
// spelled in the diagnostics.
struct ValidationLoop {
  using step = hooks::validation_step;
  using start = hooks::on_validation_start;
  using end = hooks::on_validation_end;
  using epoch_start = hooks::on_validation_epoch_start;
  using epoch_end = hooks::on_validation_epoch_end;
  using batch_start = hooks::on_validation_batch_start;
  using batch_end = hooks::on_validation_batch_end;
  static constexpr Stage stage = Stage::validate;
  static constexpr std::string_view next_action = "[_EvaluationLoop].val_next";
};
struct TestLoop {
  using step = hooks::test_step;
  using start = hooks::on_test_start;
  using end = hooks::on_test_end;
  using epoch_start = hooks::on_test_epoch_start;
  using epoch_end = hooks::on_test_epoch_end;
  using batch_start = hooks::on_test_batch_start;
  using batch_end = hooks::on_test_batch_end;
  static constexpr Stage stage = Stage::test;
  static constexpr std::string_view next_action = "[_EvaluationLoop].test_next";
};

// Whether the module's step of this loop takes the loaders' batches; one wording for
// fit's validation and validate(), one for test().
template <class Loop, class M, class Loaders>
consteval bool check_evaluation_step() {
  constexpr auto fit = detail::eval_step_fit<typename Loop::step, M, Loaders>::value;
  if constexpr (Loop::stage == Stage::test) {
    static_assert(fit != detail::StepFit::wrong_batch,
                  "lightning: `test_step` cannot take the batches of the test loader. Expected "
                  "test_step(const Batch& batch, int64_t batch_idx)");
    static_assert(fit != detail::StepFit::needs_dataloader_idx,
                  "lightning: several test loaders were given, but `test_step` does not take "
                  "their index; add it: test_step(const Batch& batch, int64_t batch_idx, int64_t "
                  "dataloader_idx)");
  } else {
    static_assert(fit != detail::StepFit::wrong_batch,
                  "lightning: `validation_step` cannot take the batches of the validation "
                  "loader. Expected validation_step(const Batch& batch, int64_t batch_idx)");
    static_assert(fit != detail::StepFit::needs_dataloader_idx,
                  "lightning: several validation loaders were given, but `validation_step` does "
                  "not take their index; add it: validation_step(const Batch& batch, int64_t "
                  "batch_idx, int64_t dataloader_idx)");
  }
  return fit == detail::StepFit::ok;
}

// The batches of one evaluation loader. With several loaders, metrics logged here get
// the loader's suffix, and steps and batch hooks that take it get dataloader_idx.
template <class Loop, class T, class M, class L>
void run_evaluation_batches(T& trainer, M& model, L& loader, std::optional<std::int64_t> limit,
                            std::int64_t dataloader_idx, bool several) {
  using Phase = MetricStore::Phase;
  auto& metrics = trainer.metrics;
  metrics.set_dataloader(several ? dataloader_idx : -1);
  auto it = detail::loader_begin(loader);
  auto end = detail::loader_end(loader);
  for (std::int64_t idx = 0; it != end && (!limit || idx < *limit); ++idx) {
    auto batch = connectors::next_batch(trainer, model, it, Loop::next_action, dataloader_idx);
    metrics.set_batch_size(infer_batch_size(batch));
    connectors::scope(trainer, LogScope::evaluation, Loop::batch_start::name, Phase::validation);
    connectors::call_batch_hooks<typename Loop::batch_start>(trainer, model, dataloader_idx,
                                                             std::as_const(batch), idx);
    connectors::scope(trainer, LogScope::evaluation, Loop::step::name, Phase::validation);
    auto output = connectors::profiled_strategy(trainer, Loop::step::name, [&] {
      return detail::invoke_output([&]() -> decltype(auto) {
        [[maybe_unused]] auto autocast = trainer.fabric().autocast();
        using B = decltype(batch);
        if constexpr (Loop::step::template callable<M, B&, std::int64_t&, std::int64_t&>)
          return Loop::step::on_module(model, batch, idx, dataloader_idx);
        else
          return Loop::step::on_module(model, batch, idx);
      });
    });
    connectors::scope(trainer, LogScope::evaluation, Loop::batch_end::name, Phase::validation);
    connectors::call_batch_hooks<typename Loop::batch_end>(
        trainer, model, dataloader_idx, std::as_const(output), std::as_const(batch), idx);
  }
}

// One evaluation run over every loader in turn. Inside fit its epoch metrics go to the
// loggers at the step of the batch it follows, as in Lightning; the stop decision the
// callbacks made in its end hooks is rank zero's on every rank.
template <class Loop, class T, class M, class Loaders>
void run_evaluation(T& trainer, M& model, Loaders& loaders,
                    const connectors::Limits<Loaders>& limits) {
  using Phase = MetricStore::Phase;
  auto& metrics = trainer.metrics;
  trainer.validating = true;
  const bool was_training = model.is_training();
  model.eval();
  {
    const EvaluationGradMode grad_mode(trainer.run_options().inference_mode);
    metrics.reset_epoch(Phase::validation);
    connectors::scope(trainer, LogScope::evaluation, Loop::start::name, Phase::validation);
    connectors::call_hooks<typename Loop::start>(trainer, model);
    connectors::scope(trainer, LogScope::evaluation, Loop::epoch_start::name, Phase::validation);
    connectors::call_hooks<typename Loop::epoch_start>(trainer, model);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (run_evaluation_batches<Loop>(trainer, model, std::get<I>(loaders), limits[I],
                                    static_cast<std::int64_t>(I), sizeof...(I) > 1),
       ...);
    }
    (std::make_index_sequence<std::tuple_size_v<Loaders>>{});
    metrics.set_dataloader(-1);
    connectors::scope(trainer, LogScope::evaluation, Loop::epoch_end::name, Phase::validation);
    connectors::call_hooks<typename Loop::epoch_end>(trainer, model);
    metrics.finalize_epoch(Phase::validation);
  }
  using Callbacks = std::remove_cvref_t<decltype(trainer.callbacks())>;
  if constexpr (connectors::has_loggers<Callbacks>)
    if (!trainer.sanity_checking)
      connectors::emit_logs(trainer, metrics.take_epoch_metrics(Phase::validation),
                            trainer.training ? std::max<std::int64_t>(trainer.global_step - 1, 0)
                                             : trainer.global_step);
  connectors::scope(trainer, LogScope::forbidden, Loop::end::name, Phase::validation);
  connectors::call_hooks<typename Loop::end>(trainer, model);
  trainer.should_stop = trainer.fabric().broadcast(static_cast<bool>(trainer.should_stop));
  if (was_training) model.train();
  trainer.validating = false;
}

// trainer.validate / trainer.test: one evaluation run as an entry point. Returns the
// logged epoch metrics per loader.
template <class Loop, class T, class M, class Loaders>
std::vector<MetricMap> run_evaluation_entry(T& trainer, M& model, Loaders& loaders) {
  constexpr std::size_t count = std::tuple_size_v<Loaders>;
  constexpr bool test = Loop::stage == Stage::test;
  const auto& run = trainer.run_options();
  connectors::Limits<Loaders> limits{};
  trainer.run_entry(model, Loop::stage, [&] {
    trainer.checkpoint_connector().load_evaluation_checkpoint(trainer, model);
    connectors::log_hyperparameters(trainer, model);
    auto mine = connectors::setup_evaluation_loaders(trainer.fabric(), loaders,
                                                     run.use_distributed_sampler);  // its shards
    limits = connectors::loader_limits(mine, test ? run.limit_test_batches : run.limit_val_batches,
                                       test ? "limit_test_batches" : "limit_val_batches");
    trainer.num_val_batches = connectors::total_batches(limits);
    if (test) trainer.num_test_batches = trainer.num_val_batches;
    if (!trainer.num_val_batches || *trainer.num_val_batches > 0)
      run_evaluation<Loop>(trainer, model, mine, limits);
  });
  if constexpr (count == 1) {
    return {trainer.metrics.logged_metrics()};
  } else {
    std::vector<MetricMap> results;
    for (std::size_t i = 0; i < count; ++i)
      results.push_back(trainer.metrics.logged_metrics(static_cast<std::int64_t>(i)));
    return results;
  }
}

}  // namespace loops
}  // namespace lightning
