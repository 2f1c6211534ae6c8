// The Trainer's loggers (Lightning's trainer/connectors/logger_connector): loggers are
// callbacks with log_metrics; this sends them the metrics of a logging step or an epoch
// and the module's hyperparameters, on rank zero only.
#pragma once

#include <lightning/core/hooks.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/core/module.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>

#include <concepts>
#include <cstdint>
#include <tuple>
#include <utility>

namespace lightning::connectors {

// Whether any callback takes metrics (Lightning's trainer.loggers is not empty).
template <class Callbacks>
inline constexpr bool has_loggers = false;
template <class... C>
inline constexpr bool has_loggers<std::tuple<C...>> = (hooks::log_metrics::declared<C> || ...);

// Metrics to every enabled logger, on rank zero only.
template <class T>
void log_metrics(T& trainer, const MetricMap& metrics, std::int64_t step) {
  if (!trainer.is_global_zero()) return;
  std::apply(
      [&](auto&... cb) {
        const auto one = [&](auto& c) {
          if constexpr (hooks::log_metrics::declared<std::remove_cvref_t<decltype(c)>>)
            if (detail::callback_enabled(c)) hooks::log_metrics::on_callback(c, metrics, step);
        };
        (one(cb), ...);
      },
      trainer.callbacks());
}

// A logging step's or an epoch's metrics, plus "epoch", as Lightning sends them.
template <class T>
void emit_logs(T& trainer, MetricMap&& metrics, std::int64_t step) {
  if (metrics.empty()) return;
  metrics.insert_or_assign("epoch", static_cast<double>(trainer.current_epoch));
  log_metrics(trainer, metrics, step);
}

// Lightning logs the module's hyperparameters to every logger when a run starts.
template <class T, class M>
void log_hyperparameters(T& trainer, M& model) {
  using Callbacks = std::remove_cvref_t<decltype(trainer.callbacks())>;
  if constexpr (std::derived_from<M, LightningModule> && has_loggers<Callbacks>) {
    if (!trainer.is_global_zero()) return;
    std::apply(
        [&](auto&... cb) {
          const auto one = [&](auto& c) {
            if constexpr (hooks::log_hyperparams::declared<std::remove_cvref_t<decltype(c)>>)
              if (detail::callback_enabled(c))
                hooks::log_hyperparams::on_callback(c, model.hparams());
          };
          (one(cb), ...);
        },
        trainer.callbacks());
  }
}

}  // namespace lightning::connectors

namespace lightning::connectors {

// Sets where log() calls come from (Lightning's defaults and restrictions per hook).
template <class T>
void scope(T& trainer, LogScope s, const char* hook,
           MetricStore::Phase phase = MetricStore::Phase::train) {
  trainer.metrics.enter(s, hook, phase);
}

}  // namespace lightning::connectors
