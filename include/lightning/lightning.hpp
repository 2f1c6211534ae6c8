// lightning-cpp: PyTorch Lightning's structure for C++20 and LibTorch.
//
// The module map, one folder per layer of DESIGN.md, lowest first:
//   core/      concepts.hpp     every concept: module, loader, callback, policy kinds
//              hooks.hpp        compile-time hook detection and dispatch
//              module.hpp       LightningModule: log(), trainer state access
//              metrics.hpp      LogOptions, Reduce, the on-device metric store
//              metric_map.hpp, hyperparameters.hpp  MetricMap, HParams (torch-free)
//              batch.hpp        Batch, map_tensors, transfer_batch, infer_batch_size
//              optimizers.hpp   what configure_optimizers returns; scheduler configuration
//              manual_optimization.hpp LightningOptimizer, LightningScheduler (manual mode)
//              lr_schedulers.hpp PyTorch's LR schedules (lr::StepLR, ..., ReduceLROnPlateau)
//              averaged_model.hpp, update_bn.hpp  torch.optim.swa_utils (SWA, EMA averages)
//              checkpoint_dict.hpp CheckpointDict, generator state
//              trainer_state.hpp, stage.hpp, seed.hpp
//              errors.hpp       MisconfigurationError (a run that cannot go on as set up)
//              directories.hpp  require_directory: a run's folders checked when it starts
//              durable_file.hpp write_file_durably: temporary, fsync, rename (torch-free)
//              interrupts.hpp   SIGTERM/SIGINT during fit, Interrupted
//   policies/  accelerators.hpp (CPU, Auto), strategies.hpp (SingleDevice),
//              precision.hpp (F32, F64)
//   fabric/    fabric.hpp       Fabric<Accelerator, Strategy, Precision> for custom loops
//              gradient_clipping.hpp
//              checkpoint_io.hpp     atomic, verified checkpoint files torch.load can read
//              checkpoint_state.hpp  module/optimizer/scheduler state as entries
//              optimizer_state_dict.hpp  optimizer state in PyTorch's layout
//              checkpoint_writer.hpp durable saves off the training thread
//   trainer/   options.hpp      TrainerOptions, BatchLimit
//              trainer.hpp      Trainer<Accelerator, Strategy, Precision, Callbacks...>
//              loops/           fit, training epoch, optimization/{automatic,manual},
//                               evaluation, prediction, progress (the loop position)
//              connectors/      checkpoint, callback, logger, data plumbing
//   callbacks/ defaults.hpp     what Trainer() adds: bar, summary, checkpoint, logger
//              progress_bar.hpp ProgressBar (terminal redraws, plain lines off a terminal)
//              model_summary.hpp ModelSummary, summarize()
//              timer.hpp        Timer (stop fit after a duration)
//              lambda_callback.hpp LambdaCallback from closures, lambda::on_*(fn)
//              model_checkpoint.hpp (+ checkpoint_name.hpp),
//              early_stopping.hpp (+ monitor.hpp),
//              learning_rate_monitor.hpp (+ logger_required.hpp),
//              gradient_accumulation_scheduler.hpp, on_exception_checkpoint.hpp,
//              throughput_monitor.hpp (+ fabric/throughput.hpp),
//              device_stats_monitor.hpp (+ fabric/device_stats.hpp),
//              weight_averaging.hpp WeightAveraging, EMAWeightAveraging
//              stochastic_weight_averaging.hpp StochasticWeightAveraging (SWALR, BatchNorm epoch)
//   tuner/     tuner.hpp        Tuner(trainer).lr_find, .scale_batch_size (+ lr_finder.hpp,
//                               batch_size_finder.hpp: options, results, the searches)
//   profilers/ profiler.hpp     the Profiler concept, PassThroughProfiler
//              simple_profiler.hpp SimpleProfiler: Lightning's table of hook and loop timings
//              pytorch_profiler.hpp PyTorchProfiler: Kineto traces and PyTorch's operator table
//                               (not included here: it brings in Kineto's headers; include it)
//              operator_table.hpp PyTorch's key_averages().table() of a profile's events
//   loggers/   csv_logger.hpp   CSVLogger: metrics.csv and hparams.yaml, Lightning's layout
//              tensorboard_logger.hpp TensorBoardLogger: event files, no TensorFlow needed
//              experiment_dir.hpp (version_N), hparams_yaml.hpp, tfevents.hpp (torch-free)
//   data/      tensor_loader.hpp TensorLoader, LoaderOptions
//              idx.hpp, fashion_mnist.hpp  IDX files, the Fashion-MNIST DataModule
#pragma once

#include <lightning/version.hpp>

#include <lightning/core/averaged_model.hpp>
#include <lightning/core/batch.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/directories.hpp>
#include <lightning/core/durable_file.hpp>
#include <lightning/core/errors.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/lr_schedulers.hpp>
#include <lightning/core/manual_optimization.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/core/module.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/core/seed.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/core/trainer_state.hpp>
#include <lightning/core/update_bn.hpp>

#include <lightning/policies/accelerators.hpp>
#include <lightning/policies/precision.hpp>
#include <lightning/policies/strategies.hpp>

#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/fabric/checkpoint_state.hpp>
#include <lightning/fabric/checkpoint_writer.hpp>
#include <lightning/fabric/device_stats.hpp>
#include <lightning/fabric/fabric.hpp>
#include <lightning/fabric/gradient_clipping.hpp>
#include <lightning/fabric/optimizer_state_dict.hpp>
#include <lightning/fabric/throughput.hpp>

#include <lightning/trainer/arguments.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/checkpoint_connector.hpp>
#include <lightning/trainer/connectors/data_connector.hpp>
#include <lightning/trainer/connectors/logger_connector.hpp>
#include <lightning/trainer/loops/evaluation_loop.hpp>
#include <lightning/trainer/loops/fit_loop.hpp>
#include <lightning/trainer/loops/optimization/automatic.hpp>
#include <lightning/trainer/loops/optimization/manual.hpp>
#include <lightning/trainer/loops/prediction_loop.hpp>
#include <lightning/trainer/loops/progress.hpp>
#include <lightning/trainer/loops/training_epoch_loop.hpp>
#include <lightning/trainer/options.hpp>
#include <lightning/trainer/trainer.hpp>

#include <lightning/callbacks/checkpoint_name.hpp>
#include <lightning/callbacks/defaults.hpp>
#include <lightning/callbacks/device_stats_monitor.hpp>
#include <lightning/callbacks/early_stopping.hpp>
#include <lightning/callbacks/gradient_accumulation_scheduler.hpp>
#include <lightning/callbacks/lambda_callback.hpp>
#include <lightning/callbacks/learning_rate_monitor.hpp>
#include <lightning/callbacks/model_checkpoint.hpp>
#include <lightning/callbacks/model_summary.hpp>
#include <lightning/callbacks/monitor.hpp>
#include <lightning/callbacks/on_exception_checkpoint.hpp>
#include <lightning/callbacks/progress_bar.hpp>
#include <lightning/callbacks/stochastic_weight_averaging.hpp>
#include <lightning/callbacks/throughput_monitor.hpp>
#include <lightning/callbacks/timer.hpp>
#include <lightning/callbacks/weight_averaging.hpp>

#include <lightning/tuner/batch_size_finder.hpp>
#include <lightning/tuner/lr_finder.hpp>
#include <lightning/tuner/tuner.hpp>

#include <lightning/profilers/profiler.hpp>
#include <lightning/profilers/simple_profiler.hpp>

#include <lightning/loggers/csv_logger.hpp>
#include <lightning/loggers/tensorboard_logger.hpp>

#include <lightning/data/tensor_loader.hpp>
