// The layout of a Trainer checkpoint: PyTorch Lightning 2.6's, so that either library
// resumes a run the other saved. Lightning's fit loop state is written from lightning-cpp's
// progress counters (its "loops" entry: progress objects of the epoch, batch, optimizer
// and scheduler loops); what only lightning-cpp needs to resume bitwise (the generator
// as the epoch began, the epoch's metric accumulators) sits under loops["lightning_cpp"],
// which Lightning's loop loader skips. A file of Lightning's has no such entry: its
// position is read from the fit loop's counters. Files of lightning-cpp 0.1's own layout
// are migrated on load.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/errors.hpp>

#include <cstdint>
#include <string>

namespace lightning::connectors {

// Where a fit stands, in the counts Lightning's progress objects keep.
struct LoopCounts {
  std::int64_t epoch = 0;            // trainer.current_epoch (the running epoch's index)
  std::int64_t global_step = 0;      // optimizer steps over all epochs
  bool in_epoch = false;             // saved between two batches of an epoch
  bool epoch_completed = false;      // saved in on_train_epoch_end, after the epoch's batches
  std::int64_t batches_done = 0;     // training batches over all epochs
  std::int64_t epoch_batches = 0;    // in the running epoch (between epochs: the last one)
  std::int64_t epoch_steps = 0;      // optimizer steps in that epoch
  std::int64_t scheduler_steps = 0;  // scheduler steps over all epochs
  std::int64_t epoch_scheduler_steps = 0;
  std::int64_t val_batches_last_run = 0;  // batches of the latest validation run
  std::int64_t val_batches_epoch = 0;     // validation batches in that epoch
  bool manual_optimization = false;
};

namespace layout {

inline CheckpointDict progress_entry(std::int64_t ready, std::int64_t started,
                                     std::int64_t processed, std::int64_t completed) {
  CheckpointDict d = make_checkpoint();
  d.insert("ready", ready);
  d.insert("started", started);
  d.insert("processed", processed);
  d.insert("completed", completed);
  return d;
}
inline CheckpointDict ready_completed(std::int64_t ready, std::int64_t completed) {
  CheckpointDict d = make_checkpoint();
  d.insert("ready", ready);
  d.insert("completed", completed);
  return d;
}
inline CheckpointDict total_current(CheckpointDict total, CheckpointDict current) {
  CheckpointDict d = make_checkpoint();
  d.insert("total", std::move(total));
  d.insert("current", std::move(current));
  return d;
}
// Lightning's _BatchProgress: batches started/processed/completed, as one count each
// (every batch saved here has been through all four stages) except a save between
// batches, which Lightning makes in on_train_batch_end, before it counts the batch
// completed.
inline CheckpointDict batch_progress(std::int64_t total, std::int64_t current, bool last,
                                     bool in_batch_end) {
  const std::int64_t lag = in_batch_end && current > 0 ? 1 : 0;
  auto d = total_current(progress_entry(total, total, total, total - lag),
                         progress_entry(current, current, current, current - lag));
  d.insert("is_last_batch", last);
  return d;
}
inline CheckpointDict evaluation_loop(std::int64_t total, std::int64_t current, bool with_last) {
  CheckpointDict d = make_checkpoint();
  d.insert("state_dict", make_checkpoint());
  auto progress = total_current(progress_entry(total, total, total, total),
                                progress_entry(current, current, current, current));
  if (with_last) progress.insert("is_last_batch", current > 0);
  d.insert("batch_progress", progress);
  return d;
}
}  // namespace layout

// Lightning 2.6's "loops" entry for a fit at `n`, with lightning-cpp's own resume state.
inline CheckpointDict lightning_loops(const LoopCounts& n, CheckpointDict own) {
  using namespace layout;
  // Lightning's epoch progress: an epoch is ready/started when it runs, processed after
  // its batches (in on_train_epoch_end), completed after that.
  const bool running = n.in_epoch || n.epoch_completed;
  const std::int64_t started = n.epoch + (running ? 1 : 0);
  const std::int64_t processed = n.epoch + (n.epoch_completed ? 1 : 0);
  const auto epochs = progress_entry(started, started, processed, n.epoch);

  CheckpointDict fit = make_checkpoint();
  fit.insert("state_dict", make_checkpoint());
  fit.insert("epoch_progress", total_current(epochs, epochs.copy()));
  CheckpointDict epoch_state = make_checkpoint();
  epoch_state.insert("_batches_that_stepped", n.global_step);
  fit.insert("epoch_loop.state_dict", epoch_state);
  fit.insert("epoch_loop.batch_progress",
             batch_progress(n.batches_done, n.epoch_batches, !n.in_epoch && n.epoch_batches > 0,
                            n.in_epoch));
  fit.insert("epoch_loop.scheduler_progress",
             total_current(ready_completed(n.scheduler_steps, n.scheduler_steps),
                           ready_completed(n.epoch_scheduler_steps, n.epoch_scheduler_steps)));
  const std::int64_t auto_total = n.manual_optimization ? 0 : n.global_step;
  const std::int64_t auto_epoch = n.manual_optimization ? 0 : n.epoch_steps;
  CheckpointDict optimizer = make_checkpoint();
  optimizer.insert("step", total_current(ready_completed(auto_total, auto_total),
                                         ready_completed(auto_epoch, auto_epoch)));
  optimizer.insert("zero_grad",
                   total_current(progress_entry(auto_total, auto_total, auto_total, auto_total),
                                 progress_entry(auto_epoch, auto_epoch, auto_epoch, auto_epoch)));
  CheckpointDict optim_progress = make_checkpoint();
  optim_progress.insert("optimizer", optimizer);
  fit.insert("epoch_loop.automatic_optimization.optim_progress", optim_progress);
  fit.insert("epoch_loop.automatic_optimization.state_dict", make_checkpoint());
  const std::int64_t manual_total = n.manual_optimization ? n.global_step : 0;
  const std::int64_t manual_epoch = n.manual_optimization ? n.epoch_steps : 0;
  fit.insert("epoch_loop.manual_optimization.optim_step_progress",
             total_current(ready_completed(manual_total, manual_total),
                           ready_completed(manual_epoch, manual_epoch)));
  fit.insert("epoch_loop.manual_optimization.state_dict", make_checkpoint());
  const auto val = evaluation_loop(n.val_batches_epoch, n.val_batches_last_run, true);
  fit.insert("epoch_loop.val_loop.state_dict", val.at("state_dict"));
  fit.insert("epoch_loop.val_loop.batch_progress", val.at("batch_progress"));

  CheckpointDict loops = make_checkpoint();
  loops.insert("fit_loop", fit);
  loops.insert("validate_loop", evaluation_loop(0, 0, true));
  loops.insert("test_loop", evaluation_loop(0, 0, true));
  loops.insert("predict_loop", evaluation_loop(0, 0, false));
  loops.insert("lightning_cpp", std::move(own));
  return loops;
}

// lightning-cpp's resume state of a checkpoint's "loops": its own entry, or, in a file
// Lightning wrote, the position its fit loop's counters name (between epochs, in
// on_train_epoch_end, or after a batch: there without the generator and loader state
// Lightning does not save, so a shuffled epoch continues with another order, as it
// would in Lightning).
inline CheckpointDict resume_state(const CheckpointDict& loops, const std::string& source) {
  if (loops.contains("lightning_cpp")) return checkpoint_dict(loops.at("lightning_cpp"));
  if (!loops.contains("fit_loop"))
    throw CheckpointError("lightning: " + source +
                          ": its \"loops\" entry has neither Lightning's fit_loop nor "
                          "lightning-cpp's state; it cannot resume training");
  const auto fit = checkpoint_dict(loops.at("fit_loop"));
  const auto epochs = checkpoint_dict(checkpoint_dict(fit.at("epoch_progress")).at("current"));
  const auto batches = checkpoint_dict(fit.at("epoch_loop.batch_progress"));
  const auto current = checkpoint_dict(batches.at("current"));
  const auto started = epochs.at("started").toInt(), processed = epochs.at("processed").toInt(),
             completed = epochs.at("completed").toInt();
  const bool epoch_end = processed > completed;
  const bool mid_epoch = !epoch_end && started > completed;
  // A save in on_train_batch_end counts its batch processed, not yet completed.
  const std::int64_t epoch_batches = mid_epoch ? current.at("processed").toInt() : 0;
  CheckpointDict own = make_checkpoint();
  own.insert("mid_epoch", mid_epoch);
  own.insert("epoch_completed", epoch_end);
  own.insert("total_batch_idx", checkpoint_dict(batches.at("total")).at("processed").toInt());
  own.insert("epoch_batch_idx", epoch_batches);
  if (mid_epoch) own.insert("train_metrics", c10::impl::GenericList(c10::AnyType::get()));
  return own;
}

// A checkpoint of lightning-cpp 0.1's own layout in this one: optimizer states and
// schedulers were dicts keyed "0", "1", ...; loops a flat dict; the scaler under
// "precision". Files in the current layout pass unchanged.
inline CheckpointDict migrate_checkpoint(CheckpointDict c) {
  const auto as_list = [&](const char* key) {
    if (!c.contains(key) || !c.at(key).isGenericDict()) return;
    const auto d = c.at(key).toGenericDict();
    c10::impl::GenericList list(c10::AnyType::get());
    for (std::size_t i = 0; i < d.size(); ++i) {
      const auto k = std::to_string(i);
      if (!d.contains(k))
        throw CheckpointError(std::string("lightning: the checkpoint's \"") + key +
                              "\" entry has no \"" + k + "\"");
      list.push_back(d.at(k));
    }
    c.insert_or_assign(key, list);
  };
  as_list("optimizer_states");
  as_list("lr_schedulers");
  if (c.contains("loops")) {
    const auto loops = checkpoint_dict(c.at("loops"));
    if (loops.contains("mid_epoch")) {
      CheckpointDict wrapped = make_checkpoint();
      wrapped.insert("lightning_cpp", loops);
      c.insert_or_assign("loops", wrapped);
    }
  }
  if (c.contains("precision") && !c.contains("MixedPrecision")) {
    c.insert("MixedPrecision", c.at("precision"));
    (void)c.erase("precision");
  }
  return c;
}

}  // namespace lightning::connectors
