// Where the fit loop is, in one place (Lightning's loops/progress.py): the running batch,
// what is done, and what a checkpoint saved now must replay to resume exactly.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/metrics.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lightning::loops {

struct Progress {
  bool in_epoch = false;
  bool epoch_completed = false;         // in on_train_epoch_end, after the epoch's work
  std::int64_t total_batch_idx = 0;     // the running batch, counted over all epochs
  std::int64_t batches_done = 0;        // batches completed over all epochs
  std::int64_t epoch_batches_done = 0;  // batches completed in the running epoch
  c10::IValue train_loader_state;       // the train loader's state as the epoch began
  // A loader that can start an epoch at any batch (DataLoader::begin_at): its workers'
  // generators after k batches of the running epoch (set while the epoch runs).
  std::function<torch::Tensor(std::int64_t)> train_loader_workers;
  torch::Tensor epoch_rng_cpu;     // the CPU generator as the epoch's loader began
  bool min_limits_warned = false;  // the "min_epochs/min_steps not met" warning was given
  // Counts Lightning's loop state holds (checkpoint_layout.hpp), kept once per epoch or
  // per validation run.
  std::int64_t epoch_start_step = 0;      // global_step as the running epoch began
  std::int64_t last_epoch_batches = 0;    // batches of the latest finished epoch
  std::int64_t val_batches_last_run = 0;  // batches of the latest validation run
  std::int64_t val_batches_epoch = 0;     // validation batches in the running epoch

  // What a checkpoint saved inside an epoch restores when that epoch starts again.
  struct MidEpochResume {
    std::int64_t batches_done = 0;
    torch::Tensor epoch_rng_cpu;   // replayed before the loader starts: the same shuffle
                                   // (undefined from a file of Lightning's, which has none)
    torch::Tensor loader_workers;  // DataLoader::worker_states at the save
    CheckpointDict rng = make_checkpoint();  // the accelerator's generators at the save
    std::vector<MetricStore::EpochAccumulator> accumulators;
  };
  std::optional<MidEpochResume> mid_epoch_resume;

  // The epoch's batches and schedulers are done: a checkpoint saved now resumes at the
  // next epoch (ModelCheckpoint saves here, in on_train_epoch_end).
  template <class TL>
  void epoch_end(TL& train_loader) {
    in_epoch = false;
    epoch_completed = true;
    last_epoch_batches = epoch_batches_done;
    if constexpr (requires { train_loader.state_dict(); })
      train_loader_state = train_loader.state_dict();
  }

  // Between epochs: a checkpoint saved now resumes exactly at the next epoch.
  template <class TL>
  void epoch_boundary(TL& train_loader) {
    in_epoch = false;
    epoch_completed = false;
    batches_done = total_batch_idx;
    epoch_batches_done = 0;
    if constexpr (requires { train_loader.state_dict(); })
      train_loader_state = train_loader.state_dict();
  }

  // An epoch starts (after a resume too: its steps are counted from here).
  void epoch_start(std::int64_t global_step) noexcept {
    epoch_start_step = global_step;
    val_batches_epoch = 0;
  }
  void validation_done(std::int64_t batches) noexcept {
    val_batches_last_run = batches;
    val_batches_epoch += batches;
  }

  // A batch finished: a checkpoint saved from here on resumes after it.
  void batch_done(std::int64_t idx) noexcept {
    epoch_batches_done = idx + 1;
    batches_done = total_batch_idx + 1;
  }

  // lightning-cpp's own part of the checkpoint's "loops" entry (checkpoint_layout.hpp):
  // between epochs, or inside one (then also the CPU generator as the epoch began, to
  // replay its shuffle, and the epoch's accumulators).
  [[nodiscard]] CheckpointDict to_checkpoint(const MetricStore& metrics) const {
    CheckpointDict loops = make_checkpoint();
    loops.insert("mid_epoch", in_epoch);
    loops.insert("epoch_completed", epoch_completed);
    loops.insert("total_batch_idx", batches_done);
    loops.insert("epoch_batch_idx", epoch_batches_done);
    if (in_epoch) {
      loops.insert("epoch_rng_cpu", epoch_rng_cpu);
      if (train_loader_workers)
        if (auto workers = train_loader_workers(epoch_batches_done); workers.defined())
          loops.insert("train_loader_workers", workers);
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

  // Restores the position lightning-cpp's part of "loops" names; `rng` is the generator
  // state saved with it. Returns whether the saved epoch had completed (the next starts).
  bool from_checkpoint(const CheckpointDict& loops, CheckpointDict rng) {
    total_batch_idx = loops.at("total_batch_idx").toInt();
    mid_epoch_resume.reset();
    if (loops.at("mid_epoch").toBool()) {
      MidEpochResume r;
      r.batches_done = loops.at("epoch_batch_idx").toInt();
      if (loops.contains("epoch_rng_cpu")) r.epoch_rng_cpu = loops.at("epoch_rng_cpu").toTensor();
      if (loops.contains("train_loader_workers"))
        r.loader_workers = loops.at("train_loader_workers").toTensor();
      r.rng = std::move(rng);
      for (const auto& a : loops.at("train_metrics").toListRef()) {
        const auto one = checkpoint_dict(a);
        r.accumulators.push_back({one.at("name").toStringRef(), one.at("dataloader").toInt(),
                                  one.at("value").toDouble(), one.at("weight").toInt()});
      }
      mid_epoch_resume = std::move(r);
    }
    return loops.at("epoch_completed").toBool();
  }
};

}  // namespace lightning::loops
