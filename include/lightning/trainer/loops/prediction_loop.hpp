// The prediction loop (Lightning's loops/prediction_loop.py): predict_step over a
// loader, no gradients, eval mode; every output kept in order.
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/data_connector.hpp>
#include <lightning/trainer/connectors/logger_connector.hpp>
#include <lightning/trainer/loops/evaluation_mode.hpp>

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning::loops {

template <class T, class M, class L>
auto run_prediction_entry(T& trainer, M& model, L& loader) {
  using B = loader_batch_t<L>;
  using Out = std::remove_cvref_t<decltype(model.predict_step(std::declval<B&>(), std::int64_t{}))>;
  static_assert(!std::is_void_v<Out>, "lightning: predict_step must return its prediction");
  std::vector<Out> outputs;
  trainer.run_entry(model, Stage::predict, [&] {
    trainer.checkpoint_connector().load_evaluation_checkpoint(trainer, model);
    const auto limit =
        connectors::limited(trainer.run_options().limit_predict_batches,
                            connectors::loader_length(loader), "limit_predict_batches");
    trainer.num_predict_batches = limit;
    if (limit) outputs.reserve(static_cast<std::size_t>(*limit));
    const bool was_training = model.is_training();
    model.eval();
    {
      const EvaluationGradMode grad_mode(trainer.run_options().inference_mode);
      connectors::scope(trainer, LogScope::forbidden, "on_predict_start");
      connectors::call_hooks<hooks::on_predict_start>(trainer, model);
      connectors::call_hooks<hooks::on_predict_epoch_start>(trainer, model);
      auto it = detail::loader_begin(loader);
      auto end = detail::loader_end(loader);
      for (std::int64_t idx = 0; it != end && (!limit || idx < *limit); ++idx) {
        auto batch = connectors::next_batch(trainer, model, it, "[_PredictionLoop].predict_next");
        trainer.batch_idx = idx;
        connectors::scope(trainer, LogScope::forbidden, "predict_step");
        connectors::call_hooks<hooks::on_predict_batch_start>(trainer, model, std::as_const(batch),
                                                              idx);
        outputs.push_back(connectors::profiled_strategy(trainer, "predict_step", [&] {
          [[maybe_unused]] auto autocast = trainer.fabric().autocast();
          return model.predict_step(batch, idx);
        }));
        connectors::call_hooks<hooks::on_predict_batch_end>(
            trainer, model, std::as_const(outputs.back()), std::as_const(batch), idx);
      }
      connectors::call_hooks<hooks::on_predict_epoch_end>(trainer, model);
      connectors::call_hooks<hooks::on_predict_end>(trainer, model);
    }
    if (was_training) model.train();
  });
  return outputs;
}

}  // namespace lightning::loops
