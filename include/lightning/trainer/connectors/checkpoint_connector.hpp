// The Trainer's checkpoints (Lightning's trainer/connectors/checkpoint_connector.py):
// what a checkpoint holds and how it is restored, where a run starts from (a path,
// "last" or "best"), and the background writer that keeps durable saves off the
// training thread.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/module.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/fabric/checkpoint_state.hpp>
#include <lightning/fabric/checkpoint_writer.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/connectors/checkpoint_layout.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning {

// The checkpoint a run starts from (Lightning's ckpt_path): fit resumes training from it,
// validate/test/predict load its weights. "last" and "best" name what ModelCheckpoint
// (and OnExceptionCheckpoint) saved: trainer.fit(model, loader, L::CheckpointPath{"last"}).
struct CheckpointPath {
  std::filesystem::path path;
};

namespace connectors {

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

// The generator state a checkpoint holds (older files have only the CPU generator).
inline CheckpointDict rng_states(const CheckpointDict& c) {
  if (c.contains("rng_states")) return checkpoint_dict(c.at("rng_states"));
  auto state = make_checkpoint();
  if (c.contains("rng_cpu")) state.insert("cpu", c.at("rng_cpu"));
  return state;
}

template <class Trainer>
class CheckpointConnector {
 public:
  // --- Where a run starts from ---

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
  // (after the setup hooks: ModelCheckpoint knows its directory then), the same on every
  // rank (rank zero's). Consumes it.
  std::optional<std::filesystem::path> take_resume_path(Trainer& trainer) {
    if (!resume_path_) return std::nullopt;
    wait_for_writes();
    auto path = *std::exchange(resume_path_, std::nullopt);
    if (path == "best") path = best_checkpoint(trainer);
    if (path == "last") {
      auto last = last_checkpoint(trainer);
      if (!last) return std::nullopt;
      path = *last;
    }
    return std::filesystem::path(trainer.fabric().broadcast(path.string()));
  }

  [[nodiscard]] const std::optional<std::filesystem::path>& loaded_path() const noexcept {
    return loaded_;
  }
  void set_loaded(std::filesystem::path path) { loaded_ = std::move(path); }
  void clear_loaded() noexcept { loaded_.reset(); }

  // Loads the weights of the checkpoint validate/test/predict were given, if any.
  template <class M>
  void load_evaluation_checkpoint(Trainer& trainer, M& model) {
    if (auto path = take_resume_path(trainer)) {
      const auto c = load_checkpoint_file(*path, {.mmap = true});  // copied into the module
      restore_module(model, c, path->string());
      loaded_ = *path;
    }
  }

  // --- Saving ---

  // Binds what save_checkpoint writes to a fitted module and its optimizers (shared:
  // save_checkpoint may still read them after fit() returns).
  template <class M, class Configs>
  void bind(Trainer& trainer, M& model, std::shared_ptr<Configs> configs) {
    source_ = [&trainer, &model, configs](bool weights_only) {
      return collect(trainer, model, *configs, weights_only);
    };
  }
  [[nodiscard]] bool bound() const noexcept { return static_cast<bool>(source_); }

  // Lightning's trainer.save_checkpoint: written before it returns. Every rank calls it;
  // rank zero writes while the others wait at a barrier, so none goes on (or exits)
  // before the file is there.
  void save(Trainer& trainer, const std::filesystem::path& path, bool weights_only) {
    auto content = content_for(path, weights_only);
    wait_for_writes();
    if (trainer.is_global_zero()) save_checkpoint_file(path, content);
    trainer.fabric().barrier();
  }
  // The same content, written by the background writer: the training thread only copies
  // the tensors training can still change. A failed write is raised by
  // raise_if_write_failed (every step) or later.
  void save_in_background(Trainer& trainer, const std::filesystem::path& path, bool weights_only) {
    auto content = content_for(path, weights_only);
    if (!trainer.is_global_zero()) return;
    // Lightning's loop state (some fifty small dicts) is built for this save from counters
    // and holds no tensor that training changes in place: handed over as it is, not copied.
    c10::IValue loops;
    if (content.contains("loops")) {
      loops = content.at("loops");
      (void)content.erase("loops");
    }
    auto snapshot = checkpoint_snapshot(content).toGenericDict();
    if (!loops.isNone()) snapshot.insert("loops", std::move(loops));
    writer_.submit(path, std::move(snapshot));
  }
  void raise_if_write_failed() { writer_.raise_if_failed(); }
  void remove_after_write(std::filesystem::path path) {
    writer_.remove_after_write(std::move(path));
  }
  void wait_for_writes() { writer_.wait(); }

  // Everything fit() needs to resume: module, callbacks, optimizers and schedulers,
  // generators, precision; the loop's position is restored when the loop starts.
  template <class M, class Configs>
  static void restore(Trainer& trainer, M& model, Configs& configs, const CheckpointDict& c,
                      const std::string& source) {
    if (!c.contains("optimizer_states") || !c.contains("loops"))
      throw CheckpointError("lightning: " + source +
                            " holds only the module's weights (save_weights_only), so training "
                            "cannot resume from it; pass it to validate/test/predict, or resume "
                            "from a full checkpoint");
    restore_module(model, c, source);
    call_callback_hooks<hooks::on_load_checkpoint>(trainer, model, c);
    if (c.contains("callbacks")) restore_callbacks(trainer, checkpoint_dict(c.at("callbacks")));
    // The gradient scaler where Lightning's MixedPrecision plugin keeps it.
    if (c.contains(precision_key))
      trainer.fabric().load_precision_state(checkpoint_dict(c.at(precision_key)));
    const auto optimizers = c.at("optimizer_states").toList();
    const auto schedulers = c.contains("lr_schedulers")
                                ? c.at("lr_schedulers").toList()
                                : c10::impl::GenericList(c10::AnyType::get());
    if (optimizers.size() != std::tuple_size_v<Configs>)
      throw CheckpointError("lightning: " + source + " holds " + std::to_string(optimizers.size()) +
                            " optimizer state(s), configure_optimizers returned " +
                            std::to_string(std::tuple_size_v<Configs>));
    std::size_t next_optimizer = 0, next_scheduler = 0;
    // A callback that replaced the first optimizer's schedulers (it claims them in its
    // on_load_checkpoint, which ran above) restores the one state saved in their place.
    std::apply(
        [&](auto&... config) {
          (restore_config(config, optimizers, schedulers, next_optimizer, next_scheduler, source,
                          next_optimizer == 0 ? trainer.replacement_lr_scheduler() : nullptr),
           ...);
        },
        configs);
    if (next_scheduler != schedulers.size())
      throw CheckpointError("lightning: " + source + " holds " + std::to_string(schedulers.size()) +
                            " scheduler state(s), configure_optimizers returned " +
                            std::to_string(next_scheduler));
  }

 private:
  CheckpointDict content_for(const std::filesystem::path& path, bool weights_only) {
    if (!source_)
      throw std::logic_error(
          "lightning: save_checkpoint(\"" + path.string() +
          "\") needs a module fitted by this trainer: call it during or after fit()");
    return source_(weights_only);
  }

  // Lightning's key for its precision plugin's state (the plugin's class name).
  static constexpr const char* precision_key = "MixedPrecision";

  template <class M, class Configs>
  static CheckpointDict collect(Trainer& trainer, M& model, Configs& configs, bool weights_only) {
    CheckpointDict c = make_checkpoint();
    c.insert("epoch", trainer.current_epoch);
    c.insert("global_step", trainer.global_step);
    c.insert("state_dict", module_state_dict(model));
    if constexpr (std::derived_from<M, LightningModule>)
      if (!model.hparams().empty()) {
        c.insert("hparams_name", "kwargs");  // as Lightning's save_hyperparameters(**kwargs)
        c.insert("hyper_parameters", hyperparameters_state(model.hparams()));
      }
    if (!weights_only) {
      c10::impl::GenericList optimizers(c10::AnyType::get()), schedulers(c10::AnyType::get());
      LoopCounts counts = loop_counts(trainer, uses_manual_optimization<M>);
      std::apply(
          [&](auto&... config) {
            (save_config(config, optimizers, schedulers, counts, trainer.global_step,
                         optimizers.empty() ? trainer.replacement_lr_scheduler() : nullptr),
             ...);
          },
          configs);
      c.insert("optimizer_states", optimizers);
      c.insert("lr_schedulers", schedulers);
      c.insert("loops", lightning_loops(counts, trainer.progress().to_checkpoint(trainer.metrics)));
      c.insert("rng_states", trainer.fabric().rng_state());
      if (auto precision = trainer.fabric().precision_state(); !precision.empty())
        c.insert(precision_key, precision);
      if (const auto& loader = trainer.progress().train_loader_state;
          !loader.isNone() && !(loader.isTensor() && !loader.toTensor().defined()))
        c.insert("train_loader", loader);
      c.insert("callbacks", callback_states(trainer));
      call_callback_hooks<hooks::on_save_checkpoint>(trainer, model, c);
    }
    call_module_hook<hooks::on_save_checkpoint>(trainer, model, c);
    return c;
  }

  static CheckpointDict callback_states(Trainer& trainer) {
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
        trainer.callbacks());
    return states;
  }

  static void restore_callbacks(Trainer& trainer, const CheckpointDict& states) {
    std::apply(
        [&](auto&... cb) {
          const auto load = [&](auto& one) {
            if constexpr (hooks::load_state_dict::declared<std::remove_cvref_t<decltype(one)>>) {
              // A default callback turned off (enable_checkpointing = false) is not there
              // in Lightning: it restores nothing and says nothing.
              if (!detail::callback_enabled(one)) return;
              const auto key = detail::callback_state_key(one);
              if (states.contains(key))
                hooks::load_state_dict::on_callback(one, checkpoint_dict(states.at(key)));
            }
          };
          (load(cb), ...);
        },
        trainer.callbacks());
  }

  static LoopCounts loop_counts(const Trainer& trainer, bool manual) {
    const auto& p = trainer.progress();
    const bool between = !p.in_epoch && !p.epoch_completed;
    LoopCounts n;
    n.epoch = trainer.current_epoch;
    n.global_step = trainer.global_step;
    n.in_epoch = p.in_epoch;
    n.epoch_completed = p.epoch_completed;
    n.batches_done = p.batches_done;
    n.epoch_batches = between ? p.last_epoch_batches : p.epoch_batches_done;
    n.epoch_steps = trainer.global_step - p.epoch_start_step;
    n.val_batches_last_run = p.val_batches_last_run;
    n.val_batches_epoch = p.val_batches_epoch;
    n.manual_optimization = manual;
    return n;
  }

  template <class Config>
  static void save_config(Config& config, c10::impl::GenericList& optimizers,
                          c10::impl::GenericList& schedulers, LoopCounts& counts,
                          std::int64_t global_step, const lr::SWALR* replacement) {
    auto& optimizer = detail::optimizer_of(config.optimizer);
    auto state = optimizer_state(optimizer);
    const bool epoch_ran = counts.epoch_completed || (!counts.in_epoch && global_step > 0);
    const auto save = [&](const auto& sc) {
      if (!detail::scheduler_active(sc.scheduler)) return;
      // Lightning counts each scheduler step (a replaced one's before it was replaced
      // too); which of them fell in the running epoch follows from its interval.
      const auto steps = scheduler_steps(sc.scheduler);
      counts.scheduler_steps += steps;
      if (replacement) return;
      schedulers.push_back(scheduler_state(sc.scheduler, optimizer));
      add_scheduler_group_keys(state, sc.scheduler);
      counts.epoch_scheduler_steps +=
          std::min(steps, sc.options.interval == Interval::step
                              ? counts.epoch_steps / std::max<std::int64_t>(sc.options.frequency, 1)
                              : std::int64_t{epoch_ran ? 1 : 0});
    };
    std::apply([&](const auto&... sc) { (save(sc), ...); }, config.lr_schedulers);
    if (replacement) {
      schedulers.push_back(scheduler_state(*replacement, optimizer));
      add_scheduler_group_keys(state, *replacement);
      const auto steps = scheduler_steps(*replacement);
      counts.scheduler_steps += steps;
      counts.epoch_scheduler_steps += std::min(steps, std::int64_t{epoch_ran ? 1 : 0});
    }
    optimizers.push_back(std::move(state));
  }

  template <class Config>
  static void restore_config(Config& config, const c10::impl::GenericList& optimizers,
                             const c10::impl::GenericList& schedulers, std::size_t& next_optimizer,
                             std::size_t& next_scheduler, const std::string& source,
                             lr::SWALR* replacement) {
    const auto next_state = [&]() {
      if (next_scheduler >= schedulers.size())
        throw CheckpointError("lightning: " + source +
                              " holds fewer scheduler states than configure_optimizers "
                              "returns schedulers");
      return checkpoint_dict(schedulers.get(next_scheduler++));
    };
    // Schedulers first: restoring one re-applies its lr; the optimizer's saved lrs, the
    // values the run really had, are restored last.
    if (replacement) {
      load_scheduler_state(*replacement, detail::optimizer_of(config.optimizer), next_state());
    } else {
      std::apply(
          [&](auto&... sc) {
            [[maybe_unused]] const auto restore_one = [&](auto& one) {
              if (!detail::scheduler_active(one.scheduler)) return;
              load_scheduler_state(one.scheduler, detail::optimizer_of(config.optimizer),
                                   next_state());
            };
            (restore_one(sc), ...);
          },
          config.lr_schedulers);
    }
    load_optimizer_state(detail::optimizer_of(config.optimizer),
                         checkpoint_dict(optimizers.get(next_optimizer++)), source);
  }

  static std::filesystem::path best_checkpoint(Trainer& trainer) {
    std::optional<std::string> best;
    bool any = false;
    std::apply(
        [&](auto&... cb) {
          const auto first = [&](auto& c) {
            if constexpr (detail::is_model_checkpoint<std::remove_cvref_t<decltype(c)>>) {
              if (!any && detail::callback_enabled(c)) {
                best = c.best_model_path();
                any = true;
              }
            }
          };
          (first(cb), ...);
        },
        trainer.callbacks());
    if (!any)
      throw std::invalid_argument(
          "lightning: ckpt_path = \"best\" needs a ModelCheckpoint among the callbacks (or "
          "enable_checkpointing = true)");
    if (!best || best->empty())
      throw std::invalid_argument(
          "lightning: ckpt_path = \"best\", but the ModelCheckpoint has no best model yet: "
          "run fit() with it first (with a monitor to rank checkpoints by)");
    return *best;
  }

  static std::optional<std::filesystem::path> last_checkpoint(Trainer& trainer) {
    std::vector<std::filesystem::path> candidates;
    std::apply(
        [&](auto&... cb) {
          const auto add = [&](auto& c) {
            if constexpr (detail::is_model_checkpoint<std::remove_cvref_t<decltype(c)>>) {
              for (auto& p : c.find_last_checkpoints(trainer)) candidates.push_back(std::move(p));
            } else if constexpr (requires { c.ckpt_path(); }) {
              if (std::filesystem::exists(c.ckpt_path())) candidates.push_back(c.ckpt_path());
            }
          };
          (add(cb), ...);
        },
        trainer.callbacks());
    if (candidates.empty()) {
      std::cerr << "lightning: ckpt_path = \"last\" found no last checkpoint; "
                << (trainer.stage == Stage::fit ? "training starts from scratch"
                                                : "using the module's current weights")
                << '\n';
      return std::nullopt;
    }
    return *std::max_element(
        candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
          return std::filesystem::last_write_time(a) < std::filesystem::last_write_time(b);
        });
  }

  std::function<CheckpointDict(bool weights_only)> source_;
  std::optional<std::filesystem::path> resume_path_;
  std::optional<std::filesystem::path> loaded_;
  BackgroundCheckpointWriter writer_;
};

}  // namespace connectors
}  // namespace lightning
