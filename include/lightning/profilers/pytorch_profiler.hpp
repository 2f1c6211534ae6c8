// PyTorchProfiler (Lightning's profilers.PyTorchProfiler): PyTorch's own profiler (Kineto)
// from C++, its operators recorded in a few steps chosen by a schedule, every hook and loop
// action a named scope, a Chrome trace per recorded window, and PyTorch's operator table.
#pragma once

#include <lightning/core/stage.hpp>
#include <lightning/core/torch_version.hpp>
#include <lightning/profilers/operator_table.hpp>
#include <lightning/profilers/profiler.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#if LIGHTNING_TORCH_AT_LEAST(2, 0)
#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

namespace torch::autograd::profiler {
// Adds a key to the trace being recorded (declared in kineto_shim.h, which needs Kineto's
// own headers that LibTorch does not ship).
TORCH_API void addMetadataJson(const std::string& key, const std::string& value);
}  // namespace torch::autograd::profiler
#endif

namespace lightning {

// torch.profiler.schedule: skip `skip_first` steps, then cycles of `wait` steps idle,
// `warmup` steps with the profiler started but not recording, `active` steps recorded;
// `repeat` cycles (0: until the stage ends). Lightning's default: wait 1, warmup 1, active 3.
struct ProfilerSchedule {
  std::int64_t wait = 1;
  std::int64_t warmup = 1;
  std::int64_t active = 3;
  std::int64_t repeat = 0;
  std::int64_t skip_first = 0;
};

enum class ProfilerActivity { cpu, cuda };

struct PyTorchProfilerOptions {
  // Where traces and the report go; empty: the Trainer's log_dir (Lightning's dirpath=None).
  std::filesystem::path dirpath{};
  // The report goes to <dirpath>/<stage>-<filename>[-<rank>].txt, appended; empty: stdout.
  std::string filename{};
  // A Chrome trace per recorded window:
  // <dirpath>/<stage>-<filename>[-<rank>]-<action>.<ns>.pt.trace.json.
  bool export_to_chrome = true;
  int row_limit = 20;  // rows of the operator table; -1: all
  std::string sort_by_key = "cpu_time_total";
  ProfilerSchedule schedule{};
  // What Kineto records; empty: the CPU, and CUDA when a GPU is available (Lightning's).
  std::vector<ProfilerActivity> activities{};
  // Kineto's options (the trace gets the shapes, allocations, FLOPs; the table does not).
  bool record_shapes = false;
  bool profile_memory = false;
  bool with_flops = false;
};

namespace profilers {

#if LIGHTNING_TORCH_AT_LEAST(2, 0)

class PyTorchProfiler {
 public:
  static constexpr bool is_profiler = true;
  static constexpr bool times_actions = true;

  explicit PyTorchProfiler(PyTorchProfilerOptions options = {}) : options_(std::move(options)) {
    const auto& s = options_.schedule;
    if (s.wait < 0 || s.warmup < 0 || s.active <= 0 || s.repeat < 0 || s.skip_first < 0)
      throw std::invalid_argument(
          "lightning: PyTorchProfilerOptions.schedule = {.wait = " + std::to_string(s.wait) +
          ", .warmup = " + std::to_string(s.warmup) + ", .active = " + std::to_string(s.active) +
          ", .repeat = " + std::to_string(s.repeat) +
          ", .skip_first = " + std::to_string(s.skip_first) +
          "} is not a schedule: active must be at least 1, the others at least 0");
    if (options_.row_limit < -1)
      throw std::invalid_argument(
          "lightning: PyTorchProfilerOptions.row_limit = " + std::to_string(options_.row_limit) +
          " must be -1 (every row) or a count of rows");
    if (!options_.sort_by_key.empty() && !detail::sort_value({}, options_.sort_by_key))
      throw std::invalid_argument("lightning: PyTorchProfilerOptions.sort_by_key = \"" +
                                  options_.sort_by_key +
                                  "\" is not a column of the operator table; use " +
                                  std::string(detail::sort_keys) + ", or empty for no sorting");
  }
  // A copy, or a move, is a profiler with the same options that has not run (a profiler is
  // copied or moved into its Trainer before it runs).
  PyTorchProfiler(const PyTorchProfiler& other) : options_(other.options_) {}
  PyTorchProfiler(PyTorchProfiler&& other) noexcept : options_(std::move(other.options_)) {
    other.release();
  }
  PyTorchProfiler& operator=(const PyTorchProfiler&) = delete;
  PyTorchProfiler& operator=(PyTorchProfiler&&) = delete;
  ~PyTorchProfiler() { release(); }

  // ---- The Profiler interface (Lightning's setup/start/stop/describe) ----

  void setup(Stage stage, std::optional<std::int64_t> local_rank,
             const std::filesystem::path& log_dir) {
    release();
    stage_ = stage;
    local_rank_ = local_rank;
    log_dir_ = log_dir;
    traces_.clear();
    result_.reset();
  }

  void start(std::string_view action) {
    open_profile(action);
    const std::string name(action);
    if (recordings_.contains(name)) return;
    auto record = std::make_unique<at::RecordFunction>(at::RecordScope::USER_SCOPE);
    if (record->isActive()) begin(*record, action);
    recordings_.emplace(name, std::move(record));
  }
  void stop(std::string_view action) {
    if (const auto it = recordings_.find(std::string(action)); it != recordings_.end()) {
      forget(*it->second);
      recordings_.erase(it);
    }
    if (const auto kind = step_kind(action)) {
      step_action_[*kind].assign(action);
      step(*kind);
    }
  }

  // One action as a named scope; the schedule moves on when a step's scope closes.
  class Scope {
   public:
    Scope(PyTorchProfiler& p, std::string_view action)
        : p_(p), kind_(step_kind(action)), exceptions_(std::uncaught_exceptions()) {
      p_.open_profile(action);
      if (record_.isActive()) p_.begin(record_, action);
      if (kind_) p_.step_action_[*kind_].assign(action);
    }
    ~Scope() noexcept(false) {
      p_.forget(record_);
      record_.end();
      // A step that throws is not a step: the schedule stays where it was.
      if (kind_ && std::uncaught_exceptions() == exceptions_) p_.step(*kind_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    PyTorchProfiler& p_;
    std::optional<std::size_t> kind_;
    int exceptions_;
    at::RecordFunction record_{at::RecordScope::USER_SCOPE};
  };
  [[nodiscard]] Scope scope(std::string_view action) { return Scope(*this, action); }

  // Lightning's summary(): "<STAGE> Profiler Report", "Profile stats for: records" and the
  // operator table of the last recorded window; empty when no window was recorded.
  [[nodiscard]] std::string summary() {
    close_profile();
    const std::string table = operator_table();
    if (table.empty()) return "";
    std::string out = detail::report_heading(stage_) + "\nProfile stats for: records";
    if (local_rank_) out += " rank: " + std::to_string(*local_rank_);
    return out + "\n" + table.substr(0, table.size() - 1);  // Lightning's ends without a newline
  }

  // Lightning's describe(): the summary to stdout (rank zero's), or appended to the report.
  void describe() {
    const std::string text = summary();
    release();
    if (!text.empty())
      detail::write_report(text, "\n", !options_.filename.empty(), local_rank_, report_path(),
                           "PyTorchProfiler");
  }

  // Lightning's teardown(): after a failed entry point, Kineto is stopped and nothing is
  // reported.
  void teardown() noexcept { release(); }

  // ---- What a program reads ----

  // The Chrome traces this entry point wrote, in order (open them in https://ui.perfetto.dev
  // or chrome://tracing).
  [[nodiscard]] const std::vector<std::filesystem::path>& traces() const noexcept {
    return traces_;
  }
  // The events of the last recorded window, as the operator table reads them.
  [[nodiscard]] std::vector<ProfiledEvent> events() const {
    std::vector<ProfiledEvent> out;
    if (!result_) return out;
    const auto start = static_cast<std::int64_t>(result_->trace_start_ns());
    for (const auto& e : result_->events()) {
      if constexpr (requires { e.isHiddenEvent(); })
        if (e.isHiddenEvent()) continue;
      // libkineto's ActivityType: 1 and 2 are (CPU and GPU) user annotations.
      const auto activity = e.activityType();
      out.push_back(ProfiledEvent{.name = e.name(),
                                  .thread = e.startThreadId(),
                                  .start_ns = static_cast<std::int64_t>(e.startNs()) - start,
                                  .end_ns = static_cast<std::int64_t>(e.endNs()) - start,
                                  .device = e.deviceType() == c10::DeviceType::CPU
                                                ? ProfiledEvent::Device::cpu
                                                : ProfiledEvent::Device::accelerator,
                                  .is_async = e.isAsync() || e.startThreadId() != e.endThreadId(),
                                  .is_user_annotation = activity == 1 || activity == 2,
                                  .correlation_id = e.correlationId(),
                                  .linked_correlation_id = e.linkedCorrelationId()});
    }
    return out;
  }
  // PyTorch's key_averages().table() of the last recorded window.
  [[nodiscard]] std::string operator_table() const {
    const bool cuda = activities().contains(ActivityType::CUDA);
    return profilers::operator_table(key_averages(events(), cuda),
                                     {.sort_by = options_.sort_by_key,
                                      .row_limit = options_.row_limit,
                                      .device_name = cuda ? "cuda" : ""});
  }

  // <dirpath or log_dir>/<stage>-<filename>[-<rank>].txt
  [[nodiscard]] std::filesystem::path report_path() const {
    return directory() /
           (detail::profile_file_base(stage_, options_.filename, local_rank_) + ".txt");
  }

 private:
  using ActivityType = torch::profiler::impl::ActivityType;
  enum class Action { none, warmup, record, record_and_save };
  static constexpr std::array<std::string_view, 4> step_functions{
      "training_step", "validation_step", "test_step", "predict_step"};

  static std::optional<std::size_t> step_kind(std::string_view action) noexcept {
    for (std::size_t k = 0; k < step_functions.size(); ++k)
      if (action.ends_with(step_functions[k])) return k;
    return std::nullopt;
  }

  [[nodiscard]] std::filesystem::path directory() const {
    return options_.dirpath.empty() ? log_dir_ : options_.dirpath;
  }

  void begin(at::RecordFunction& record, std::string_view action) {
    name_.assign("[pl][profile]");
    name_.append(action);
    start_record(record, name_);
    open_records_.push_back(&record);
  }
  // A record is ended within the trace it began in: one that ended in a later trace would
  // be written into the buffers of one that is gone. So scopes still open when a trace
  // stops (the epoch around the steps) end with it.
  void forget(at::RecordFunction& record) noexcept {
    const auto it = std::find(open_records_.rbegin(), open_records_.rend(), &record);
    if (it != open_records_.rend()) open_records_.erase(std::next(it).base());
  }
  void end_open_records() noexcept {
    for (auto it = open_records_.rbegin(); it != open_records_.rend(); ++it) (*it)->end();
    open_records_.clear();
  }
  static void start_record(at::RecordFunction& record, const std::string& name) {
    if constexpr (requires { typename at::RecordFunction::FunctionDescriptor; })
      record.before(std::string_view(name));  // copied into the record
    else
      record.before(std::string(name));  // an owned copy (a const char* would be borrowed)
  }

  // torch.profiler.schedule
  [[nodiscard]] Action scheduled(std::int64_t step) const noexcept {
    const auto& s = options_.schedule;
    if (step < s.skip_first) return Action::none;
    step -= s.skip_first;
    const std::int64_t cycle = s.wait + s.warmup + s.active;
    if (s.repeat > 0 && step / cycle >= s.repeat) return Action::none;
    const std::int64_t mod = step % cycle;
    if (mod < s.wait) return Action::none;
    if (mod < s.wait + s.warmup) return Action::warmup;
    return mod < cycle - 1 ? Action::record : Action::record_and_save;
  }

  // Lightning's ScheduleWrapper: one count of steps per kind, each kind recorded once per
  // entry point; validation during fit counts from the sanity check on.
  [[nodiscard]] Action next_action() {
    if (!current_ || finished_[*current_]) return Action::none;
    const std::size_t k = *current_;
    if (k != 1 || !start_is_fit_start_ || steps_[0] > 0) ++steps_[k];
    Action a = scheduled(std::max<std::int64_t>(steps_[k], 0));
    if (previous_ == Action::record && a == Action::warmup) a = Action::record;
    if (a == Action::record_and_save) finished_[k] = true;
    previous_ = a;
    return a;
  }

  // torch.profiler.profile's __enter__, at an entry point's first action.
  void open_profile(std::string_view action) {
    if (open_) return;
    open_ = true;
    start_is_fit_start_ = action.ends_with("on_fit_start");
    step_num_ = 0;
    current_.reset();
    steps_ = {};
    finished_ = {};
    previous_.reset();
    action_ = next_action();  // none: no step has run
    transit(Action::none, action_, {});
    open_step_record();
  }
  // ... its step(): the window moves on at the end of each step.
  void step(std::size_t kind) {
    if (!open_) return;
    current_ = kind;
    step_num_ = steps_[kind];
    drop_step_record();
    const Action previous = action_;
    ++step_num_;
    action_ = next_action();
    transit(previous, action_, step_action_[kind]);
    open_step_record();
  }
  // ... and its __exit__.
  void close_profile() {
    if (!open_) return;
    drop_step_record();
    open_ = false;
    switch (action_) {
      case Action::none:
        break;
      case Action::warmup:
        start_trace();
        stop_trace();
        break;
      case Action::record:
        stop_trace();
        break;
      case Action::record_and_save:
        stop_trace();
        trace_ready(step_action_[*current_]);
        break;
    }
    action_ = Action::none;
  }

  void drop_step_record() noexcept {
    if (step_record_) forget(*step_record_);
    step_record_.reset();
  }
  void open_step_record() {
    step_record_ = std::make_unique<at::RecordFunction>(at::RecordScope::USER_SCOPE);
    if (step_record_->isActive()) {
      start_record(*step_record_, "ProfilerStep#" + std::to_string(step_num_));
      open_records_.push_back(step_record_.get());
    }
  }

  void transit(Action from, Action to, std::string_view action) {
    using A = Action;
    if (from == A::none) {
      if (to != A::none) prepare_trace();
      if (to == A::record || to == A::record_and_save) start_trace();
    } else if (from == A::warmup) {
      if (to == A::none) {
        warn_schedule("WARMUP followed by NONE");
        start_trace();
        stop_trace();
      } else if (to != A::warmup) {
        start_trace();
      }
    } else if (from == A::record) {
      if (to == A::none || to == A::warmup) {
        warn_schedule(to == A::none ? "RECORD followed by NONE" : "RECORD followed by WARMUP");
        stop_trace();
      }
    } else {  // record_and_save: the window ends here
      stop_trace();
      trace_ready(action);
      if (to != A::none) prepare_trace();
      if (to == A::record || to == A::record_and_save) start_trace();
    }
  }
  static void warn_schedule(std::string_view what) {
    std::cerr << "lightning: warning: PyTorchProfiler: incorrect schedule: " << what << '\n';
  }

  [[nodiscard]] std::set<ActivityType> activities() const {
    std::set<ActivityType> out;
    if (options_.activities.empty()) {
      out.insert(ActivityType::CPU);
      if (torch::cuda::is_available()) out.insert(ActivityType::CUDA);
    }
    for (const auto a : options_.activities)
      out.insert(a == ProfilerActivity::cpu ? ActivityType::CPU : ActivityType::CUDA);
    return out;
  }
  [[nodiscard]] torch::profiler::impl::ProfilerConfig config() const {
    return torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::KINETO,
                                                 options_.record_shapes, options_.profile_memory,
                                                 /*with_stack=*/false, options_.with_flops);
  }
  void prepare_trace() {
    // The last window's result goes first: Kineto's trace buffers must not outlive the
    // start of the next (as PyTorch drops its profile object before preparing a new one).
    result_.reset();
    torch::autograd::profiler::prepareProfiler(config(), activities());
  }
  void start_trace() {
    if (enabled_) return;
    torch::autograd::profiler::enableProfiler(config(), activities());
    enabled_ = true;
    torch::autograd::profiler::addMetadataJson("Framework", "\"lightning-cpp\"");
  }
  void stop_trace() {
    if (!enabled_) return;
    enabled_ = false;
    end_open_records();
    result_.reset();
    result_ = torch::autograd::profiler::disableProfiler();
  }
  // tensorboard_trace_handler's file: <worker>.<time_ns>.pt.trace.json
  void trace_ready(std::string_view action) {
    if (!options_.export_to_chrome || !result_) return;
    const auto dir = directory();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    auto path = dir / (detail::profile_file_base(stage_, options_.filename, local_rank_, action) +
                       "." + std::to_string(ns) + ".pt.trace.json");
    result_->save(path.string());
    if (!std::filesystem::exists(path))
      throw std::runtime_error("lightning: PyTorchProfiler could not write its trace to " +
                               path.string() +
                               "; set PyTorchProfilerOptions.dirpath to a writable directory");
    traces_.push_back(std::move(path));
  }

  // Leaves no profiler running and no scope open (Lightning's teardown).
  void release() noexcept {
    end_open_records();
    recordings_.clear();
    step_record_.reset();
    open_ = false;
    action_ = Action::none;
    if (enabled_) {
      enabled_ = false;
      result_.reset();
      try {
        result_ = torch::autograd::profiler::disableProfiler();
      } catch (...) {  // a profiler someone else stopped
      }
    }
  }

  PyTorchProfilerOptions options_;
  std::optional<Stage> stage_;
  std::optional<std::int64_t> local_rank_;
  std::filesystem::path log_dir_;

  bool open_ = false;     // the profile of this entry point exists
  bool enabled_ = false;  // Kineto is recording
  Action action_ = Action::none;
  std::int64_t step_num_ = 0;
  std::optional<std::size_t> current_;
  std::array<std::int64_t, 4> steps_{};
  std::array<bool, 4> finished_{};
  std::optional<Action> previous_;
  bool start_is_fit_start_ = false;
  std::array<std::string, 4> step_action_{};  // each kind's step action, for trace names

  std::string name_;  // the record name being built
  std::unique_ptr<at::RecordFunction> step_record_;
  std::vector<at::RecordFunction*> open_records_;  // begun in the trace being recorded
  std::unordered_map<std::string, std::unique_ptr<at::RecordFunction>> recordings_;
  std::unique_ptr<torch::autograd::profiler::ProfilerResult> result_;
  std::vector<std::filesystem::path> traces_;
};

#else  // LibTorch 1.13

// Kineto's C++ API of LibTorch 1.13 differs from 2.x's; the profiler is 2.x only.
class PyTorchProfiler {
 public:
  static constexpr bool is_profiler = true;
  static constexpr bool times_actions = false;
  template <class Options = PyTorchProfilerOptions>
  explicit PyTorchProfiler(Options = {}) {
    static_assert(sizeof(Options) == 0,
                  "lightning: PyTorchProfiler needs LibTorch 2.x (Kineto's C++ API); this build "
                  "uses LibTorch 1.13. Use SimpleProfiler, or build against LibTorch 2.x");
  }
  void start(std::string_view) {}
  void stop(std::string_view) {}
  void setup(Stage, std::optional<std::int64_t>, const std::filesystem::path&) {}
  void describe() {}
};

#endif

}  // namespace profilers

using profilers::PyTorchProfiler;

}  // namespace lightning
