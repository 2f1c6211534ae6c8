// StochasticWeightAveraging (Lightning's callbacks.StochasticWeightAveraging): from
// swa_epoch_start on, an SWALR anneals the learning rate to swa_lrs in place of the
// module's scheduler, and the weights are folded into an equal-weight average at the
// start of every epoch up to the last. A model with BatchNorm gets one more epoch, of
// forward passes only, in which its statistics are recomputed for the averaged weights
// (torch.optim.swa_utils.update_bn); the module ends holding the average.
//
// One difference from Lightning 2.6, on purpose: its BatchNorm epoch skips backward but
// still steps the optimizer once, at its last batch, with the gradients the last training
// step left behind, which moves the weights away from the average it has just set. Here
// that epoch takes no optimizer step (global_step does not advance), so the module is the
// average, as swa_utils computes it.
#pragma once

#include <lightning/core/averaged_model.hpp>
#include <lightning/core/bad_option.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/lr_schedulers.hpp>
#include <lightning/core/manual_optimization.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/core/python_format.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/core/update_bn.hpp>
#include <lightning/fabric/checkpoint_state.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace lightning::callbacks {

struct StochasticWeightAveragingOptions {
  // The SWA learning rate: one value for every param group, or one per group (required).
  std::vector<double> swa_lrs = {};
  // The first averaged epoch: an epoch number (>= 1, counted from 1) or a fraction of
  // max_epochs in [0, 1] (the epoch int(max_epochs * fraction)).
  std::variant<std::int64_t, double> swa_epoch_start = 0.8;
  std::int64_t annealing_epochs = 10;  // epochs over which the lr anneals to swa_lrs
  lr::SWALR::Anneal annealing_strategy = lr::SWALR::Anneal::cos;
  // Where the average lives (Lightning's default: the CPU); unset: the training device.
  std::optional<torch::Device> device = torch::Device(torch::kCPU);
};

template <AveragingFunction Average = SwaAverage>
class StochasticWeightAveraging {
 public:
  using Options = StochasticWeightAveragingOptions;

  explicit StochasticWeightAveraging(Options options, Average average = {})
      : o_(std::move(options)), average_fn_(std::move(average)) {
    const auto bad = [](const char* field, const std::string& value, const char* rule) {
      throw_bad_option("StochasticWeightAveragingOptions", field, value, rule);
    };
    if (o_.swa_lrs.empty())
      bad("swa_lrs", "{}",
          "give the SWA learning rate, one value for every param group or one per group "
          "(e.g. .swa_lrs = {1e-2})");
    for (const double lr : o_.swa_lrs)
      if (!(lr > 0.0))
        bad("swa_lrs", "{.., " + python_float_repr(lr) + ", ..}",
            "every SWA learning rate must be a positive number");
    if (const auto* n = std::get_if<std::int64_t>(&o_.swa_epoch_start); n && *n < 1)
      bad("swa_epoch_start", std::to_string(*n),
          "an epoch number counts from 1 (or give a fraction of max_epochs in [0, 1], e.g. 0.8)");
    if (const auto* f = std::get_if<double>(&o_.swa_epoch_start); f && !(*f >= 0.0 && *f <= 1.0))
      bad("swa_epoch_start", python_float_repr(*f),
          "a fraction of max_epochs must be in [0, 1] (or give an epoch number >= 1)");
    if (o_.annealing_epochs < 0)
      bad("annealing_epochs", std::to_string(o_.annealing_epochs),
          "must be >= 0 (0: the SWA learning rate from the first averaged epoch)");
  }

  [[nodiscard]] std::string state_key() const { return "StochasticWeightAveraging"; }

  // The first and last averaged epochs, 0-based (Lightning's swa_start and swa_end; set
  // when fit starts; swa_end is unset without max_epochs).
  [[nodiscard]] std::int64_t swa_start() const noexcept { return swa_start_; }
  [[nodiscard]] std::optional<std::int64_t> swa_end() const noexcept {
    if (max_epochs_ == -1) return std::nullopt;
    return max_epochs_ - 1;
  }
  // The average (set from the fit's setup on), e.g. to evaluate or save it apart.
  [[nodiscard]] const std::optional<AveragedModel<Average>>& average() const noexcept {
    return average_;
  }

  template <class T, class M>
  void setup(T& trainer, M& module, Stage stage) {
    if (stage != Stage::fit) return;
    // Each fit starts over: a resumed one gets its state back from the checkpoint.
    swalr_.reset();
    optimizer_ = nullptr;
    bn_pass_.reset();
    latest_update_epoch_ = -1;
    batch_norm_epoch_ = false;
    average_.emplace(module,
                     AveragedModelOptions{.device = o_.device.value_or(trainer.fabric().device()),
                                          .use_buffers = false},
                     average_fn_);
  }

  template <class T, class M>
  void on_fit_start(T& trainer, M& module) {
    static_assert(!uses_manual_optimization<M>,
                  "lightning: StochasticWeightAveraging needs automatic optimization: its "
                  "BatchNorm epoch and its SWALR rely on the Trainer stepping the optimizer");
    using Configs =
        decltype(lightning::detail::to_optimizer_configs(module.configure_optimizers()));
    static_assert(
        std::tuple_size_v<decltype(std::get<0>(std::declval<Configs&>()).lr_schedulers)> <= 1,
        "lightning: StochasticWeightAveraging replaces at most one lr scheduler (as "
        "Lightning's): configure_optimizers returns several");
    max_epochs_ = trainer.max_epochs();
    if (const auto* fraction = std::get_if<double>(&o_.swa_epoch_start)) {
      if (max_epochs_ == -1)
        throw_bad_option("StochasticWeightAveragingOptions", "swa_epoch_start",
                         python_float_repr(*fraction),
                         "a fraction of max_epochs needs max_epochs; with max_epochs = -1 give "
                         "the epoch number");
      swa_start_ = std::max<std::int64_t>(
          static_cast<std::int64_t>(static_cast<double>(max_epochs_) * *fraction) - 1, 0);
    } else {
      swa_start_ = std::get<std::int64_t>(o_.swa_epoch_start) - 1;
    }
    // One more epoch, in which BatchNorm's statistics are recomputed for the average;
    // none where no epoch is averaged (Lightning's would copy the weights the module had
    // at setup into it).
    batch_norm_epoch_ = lightning::detail::contains_batch_norm(module) && max_epochs_ != -1 &&
                        swa_start_ <= max_epochs_ - 1;
    if (batch_norm_epoch_) trainer.set_max_epochs(max_epochs_ + 1);
  }

  template <class T, class M>
  void on_train_epoch_start(T& trainer, M& module) {
    const std::int64_t epoch = trainer.current_epoch;
    const bool averaging = epoch >= swa_start_ && (max_epochs_ == -1 || epoch <= max_epochs_ - 1);
    if (!swalr_ && averaging) install_scheduler(trainer, epoch);
    if (averaging && epoch > latest_update_epoch_) {
      require_average().update_parameters(module);
      latest_update_epoch_ = epoch;
    }
    if (batch_norm_epoch_ && epoch == max_epochs_) {
      // The BatchNorm epoch: the module takes the average, and its statistics are
      // accumulated afresh (or go on, where a checkpoint saved inside this epoch resumed).
      require_average().copy_parameters_to(module);
      bn_pass_ = std::make_shared<lightning::detail::BatchNormPass>(
          module, /*reset_statistics=*/!trainer.progress().mid_epoch_resume.has_value());
      trainer.skip_optimization(true);
    }
  }

  // As Lightning's (current_epoch has counted the last epoch): after the BatchNorm epoch
  // the module already holds the average; a run without one takes it now, if it reached
  // swa_end (a run stopped earlier keeps its own weights).
  template <class T, class M>
  void on_train_end(T& trainer, M& module) {
    const bool after_batch_norm_epoch =
        batch_norm_epoch_ && trainer.current_epoch - 1 == max_epochs_;
    // A run that never averaged keeps its weights (Lightning's would take the setup's).
    if (!after_batch_norm_epoch &&
        (max_epochs_ == -1 || trainer.current_epoch - 1 == max_epochs_ - 1) && average_ &&
        latest_update_epoch_ >= 0)
      average_->copy_parameters_to(module);
    end_batch_norm_epoch(trainer);
  }

  template <class T, class M>
  void on_exception(T& trainer, M&, const std::exception&) {
    end_batch_norm_epoch(trainer);
  }
  template <class T, class M>
  void teardown(T& trainer, M&, Stage stage) {
    if (stage == Stage::fit) end_batch_norm_epoch(trainer);
  }

  // Lightning's state: "n_averaged", "latest_update_epoch", "scheduler_state" (the
  // SWALR's, or None) and "average_model_state" (the average as the module's state_dict).
  [[nodiscard]] CheckpointDict state_dict() const {
    auto s = make_checkpoint();
    s.insert("n_averaged", average_ ? average_->n_averaged() : std::int64_t{0});
    s.insert("latest_update_epoch", latest_update_epoch_);
    s.insert("scheduler_state", swalr_ && optimizer_
                                    ? c10::IValue(scheduler_state(*swalr_, *optimizer_))
                                    : c10::IValue());
    if (average_) {
      auto state = c10::Dict<std::string, torch::Tensor>();
      for (const auto* list : {&average_->parameters(), &average_->buffers()})
        for (const auto& [name, t] : *list) state.insert(name, t.detach().to(torch::kCPU).clone());
      s.insert("average_model_state", state);
    } else {
      s.insert("average_model_state", c10::IValue());
    }
    return s;
  }
  void load_state_dict(const CheckpointDict& s) {
    latest_update_epoch_ = s.at("latest_update_epoch").toInt();
    if (!average_ || !s.contains("average_model_state") || s.at("average_model_state").isNone())
      return;
    auto state = c10::Dict<std::string, torch::Tensor>();
    state.insert("n_averaged", torch::tensor(s.at("n_averaged").toInt(), torch::kLong));
    for (const auto& kv : checkpoint_dict<at::Tensor>(s.at("average_model_state")))
      state.insert("module." + kv.key(), kv.value());
    average_->load_state_dict(state, "the checkpoint's StochasticWeightAveraging state");
  }

  // A checkpoint saved once the SWALR was in charge holds its state where the module's
  // schedulers' was: it is claimed here, before the Trainer restores the schedulers, and
  // the restored SWALR goes on from the next epoch.
  template <class T, class M>
  void on_load_checkpoint(T& trainer, M&, const CheckpointDict& checkpoint) {
    if (!checkpoint.contains("callbacks")) return;
    const auto states = checkpoint_dict(checkpoint.at("callbacks"));
    if (!states.contains(state_key())) return;
    const auto mine = checkpoint_dict(states.at(state_key()));
    if (!mine.contains("scheduler_state") || mine.at("scheduler_state").isNone()) return;
    optimizer_ = &first_optimizer(trainer);
    swalr_.emplace(swalr_options(*optimizer_, -1));
    trainer.replace_lr_schedulers(&*swalr_);
  }

 private:
  // BatchNorm's momenta as they were, optimization back on, max_epochs as the fit began
  // (also when it stopped early or failed).
  template <class T>
  void end_batch_norm_epoch(T& trainer) {
    bn_pass_.reset();
    trainer.skip_optimization(false);
    if (batch_norm_epoch_) trainer.set_max_epochs(max_epochs_);
  }

  template <class T>
  static torch::optim::Optimizer& first_optimizer(T& trainer) {
    const auto& infos = trainer.optimizer_infos();
    if (infos.empty() || infos.front().optimizer == nullptr)
      throw std::logic_error(
          "lightning: StochasticWeightAveraging found no optimizer (its hooks run inside fit)");
    return *infos.front().optimizer;
  }

  lr::SWALROptions swalr_options(const torch::optim::Optimizer& optimizer,
                                 std::int64_t last_epoch) const {
    const auto groups = optimizer.param_groups().size();
    auto lrs = o_.swa_lrs;
    if (lrs.size() == 1) lrs.assign(groups, lrs.front());
    if (lrs.size() != groups)
      throw_bad_option("StochasticWeightAveragingOptions", "swa_lrs",
                       "{" + std::to_string(o_.swa_lrs.size()) + " values}",
                       ("the optimizer has " + std::to_string(groups) +
                        " param groups: give one value for all of them, or one per group")
                           .c_str());
    return {.swa_lrs = std::move(lrs),
            .anneal_epochs = o_.annealing_epochs,
            .anneal_strategy = o_.annealing_strategy,
            .last_epoch = last_epoch};
  }

  // Lightning's swap of trainer.lr_scheduler_configs[0] for the SWALR, whose base lrs are
  // the SWA lrs (the groups' "initial_lr") and whose last_epoch is max_epochs under cos
  // annealing, as Lightning constructs it.
  template <class T>
  void install_scheduler(T& trainer, std::int64_t epoch) {
    auto& optimizer = first_optimizer(trainer);
    auto options = swalr_options(
        optimizer, o_.annealing_strategy == lr::SWALR::Anneal::cos ? trainer.max_epochs() : -1);
    const auto base_lrs = options.swa_lrs;
    swalr_.emplace(std::move(options));
    swalr_->attach(optimizer, base_lrs);
    optimizer_ = &optimizer;
    trainer.replace_lr_schedulers(&*swalr_);
    if (!trainer.is_global_zero()) return;
    if (epoch != swa_start_)
      std::cerr << "lightning: warning: StochasticWeightAveraging starts at epoch " << epoch
                << ", after swa_start (" << swa_start_
                << "), without its state from a checkpoint; the average holds fewer epochs\n";
    const auto& schedulers = trainer.optimizer_infos().front().schedulers;
    if (!schedulers.empty()) {
      if (schedulers.front().second != Interval::epoch)
        std::cerr << "lightning: warning: StochasticWeightAveraging's SWALR steps every epoch; "
                     "the scheduler it replaces stepped every optimizer step\n";
      std::cerr << "lightning: StochasticWeightAveraging: SWALR replaces the module's lr "
                   "scheduler from epoch "
                << epoch << '\n';
    }
  }

  AveragedModel<Average>& require_average() {
    if (!average_)
      throw std::logic_error(
          "lightning: StochasticWeightAveraging has no average: its setup hook did not run for "
          "fit (the callback must be among the Trainer's callbacks when fit starts)");
    return *average_;
  }

  Options o_;
  Average average_fn_;
  std::optional<AveragedModel<Average>> average_;
  std::optional<lr::SWALR> swalr_;
  torch::optim::Optimizer* optimizer_ = nullptr;               // the one the SWALR steps
  std::shared_ptr<lightning::detail::BatchNormPass> bn_pass_;  // during the BatchNorm epoch
  std::int64_t swa_start_ = 0;
  std::int64_t max_epochs_ = -1;  // as fit started, before the BatchNorm epoch was added
  std::int64_t latest_update_epoch_ = -1;
  bool batch_norm_epoch_ = false;  // the fit has one more epoch, for BatchNorm's statistics
};

}  // namespace lightning::callbacks
