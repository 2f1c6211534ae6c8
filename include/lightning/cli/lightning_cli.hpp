// LightningCLI: Lightning's command line for a program's module and data.
//
//   int main(int argc, char** argv) {
//     return L::cli::LightningCLI<MyModel, MyData, L::loggers::CSVLogger>(argc, argv).run();
//   }
//
//   ./train fit --config exp.yaml --trainer.max_epochs 20 --model.lr 0.01
//   ./train fit --print_config > exp.yaml
//   ./train test --config lightning_logs/version_0/config.yaml --ckpt_path last.ckpt
//
// The module and the data each declare their hyperparameters once, as a struct Boost.Hana
// can see (`using Hyperparameters = ...;` and a constructor taking it): the struct gives
// --model.* / --data.*, and is what save_hyperparameters records. The callbacks and loggers
// named after the data are always in the Trainer; their options are trainer.callbacks /
// trainer.logger entries. Policies are chosen with Lightning's strings and dispatched once to
// a Trainer compiled for them (cli/policies.hpp). Usage errors exit with status 2, before
// anything is trained or written. docs/cli.md has every flag beside Lightning's.
#pragma once

#include <lightning/cli/config.hpp>
#include <lightning/cli/fields.hpp>
#include <lightning/cli/library.hpp>
#include <lightning/cli/optimizers.hpp>
#include <lightning/cli/policies.hpp>
#include <lightning/core/durable_file.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/python_format.hpp>
#include <lightning/core/seed.hpp>
#include <lightning/lightning.hpp>
#include <lightning/version.hpp>

#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace lightning::cli {

// A module or datamodule the command line can build: its hyperparameters as a Hana struct
// with defaults, and a constructor taking them.
template <class T>
concept Configurable = requires {
  typename T::Hyperparameters;
}
&&HyperparameterStruct<typename T::Hyperparameters>&& std::default_initializable<
    typename T::Hyperparameters>&& std::constructible_from<T, const typename T::Hyperparameters&>;

// A callback or logger the command line can build from its options (cli/library.hpp).
template <class C>
concept ConfigurableCallback = requires {
  typename CallbackTraits<C>::options;
  CallbackTraits<C>::name;
}
&&HyperparameterStruct<typename CallbackTraits<C>::options>&&
    std::constructible_from<C, typename CallbackTraits<C>::options>;

struct LightningCLIOptions {
  std::string description = {};  // the first line of --help
  // fit writes the resolved config to <log_dir>/<config_filename> on rank zero
  // (Lightning's SaveConfigCallback); an existing file is an error unless overwrite is set.
  bool save_config = true;
  bool save_config_overwrite = false;
  std::string config_filename = "config.yaml";
  TrainerOptions trainer_defaults = {};  // Lightning's trainer_defaults
  std::ostream* out = nullptr;           // help and --print_config (default std::cout)
  std::ostream* err = nullptr;           // usage errors (default std::cerr)
};

enum class Subcommand { fit, validate, test, predict };

inline constexpr std::array<std::pair<Subcommand, std::string_view>, 4> subcommands{{
    {Subcommand::fit, "fit"},
    {Subcommand::validate, "validate"},
    {Subcommand::test, "test"},
    {Subcommand::predict, "predict"},
}};

// Lightning's SaveConfigCallback: the resolved config beside the run's logs, on rank zero,
// when fit sets up; never over an existing file unless asked.
class SaveConfig {
 public:
  SaveConfig(std::string text, std::string filename, bool enabled, bool overwrite)
      : text_(std::move(text)),
        filename_(std::move(filename)),
        enabled_(enabled),
        overwrite_(overwrite) {}

  template <class T, class M>
  void setup(T& trainer, M&, Stage stage) {
    if (!enabled_ || stage != Stage::fit || saved_) return;
    const auto path = trainer.log_dir() / filename_;
    std::error_code ec;
    const bool exists = trainer.broadcast(std::filesystem::exists(path, ec));
    if (exists && !overwrite_)
      throw std::runtime_error(
          "lightning: " + path.string() +
          " already exists; fit stops so as not to overwrite the config of a previous run. "
          "Delete the file, give the run its own log folder (e.g. --trainer.default_root_dir), or "
          "construct the LightningCLI with {.save_config_overwrite = true}");
    if (trainer.is_global_zero()) {
      std::filesystem::create_directories(path.parent_path());
      write_file_durably(path, text_);
    }
    saved_ = true;
  }

 private:
  std::string text_;
  std::string filename_;
  bool enabled_;
  bool overwrite_;
  bool saved_ = false;
};

template <class Model, class Data, class... Callbacks>
class LightningCLI {
  static_assert(Configurable<Model>,
                "lightning: LightningCLI's module must declare its hyperparameters: "
                "`using Hyperparameters = MyHParams;` (a struct adapted with "
                "BOOST_HANA_ADAPT_STRUCT, default-constructible) and a constructor "
                "`explicit MyModel(const Hyperparameters&)`");
  static_assert(Configurable<Data>,
                "lightning: LightningCLI's datamodule must declare its hyperparameters: "
                "`using Hyperparameters = MyDataOptions;` (a struct adapted with "
                "BOOST_HANA_ADAPT_STRUCT, default-constructible) and a constructor taking it");
  static_assert((ConfigurableCallback<Callbacks> && ...),
                "lightning: each callback given to LightningCLI needs its options: a library "
                "callback or logger (cli/library.hpp), or one with `using Options = ...;`, "
                "`static constexpr std::string_view cli_name = \"...\";` and a constructor "
                "taking Options");

 public:
  using ModelHParams = typename Model::Hyperparameters;
  static constexpr bool predicts =
      hooks::predict_step::declared<Model> && hooks::predict_dataloader::declared<Data>;
  using DataHParams = typename Data::Hyperparameters;

  // Everything the command line decided, typed.
  struct Config {
    Subcommand subcommand = Subcommand::fit;
    std::optional<std::uint64_t> seed_everything;  // nullopt: false (not seeded)
    PolicyChoice policies;
    TrainerOptions trainer;
    ModelHParams model;
    DataHParams data;
    std::tuple<typename CallbackTraits<Callbacks>::options...> callbacks;
    std::optional<std::filesystem::path> ckpt_path;
    std::optional<OptimizerChoice> optimizer;  // --optimizer; unset: the module's own
    std::optional<SchedulerChoice> lr_scheduler;
  };
  // The module the Trainer runs: the program's, with configure_optimizers open to
  // --optimizer / --lr_scheduler where the shorthand can stand in for it.
  using Module =
      std::conditional_t<supports_optimizer_shorthand<Model>, ConfiguredModule<Model>, Model>;

  LightningCLI(int argc, char** argv, LightningCLIOptions options = {})
      : options_(std::move(options)) {
    program_ = argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "program";
    for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
  }
  LightningCLI(std::vector<std::string> args, LightningCLIOptions options = {})
      : options_(std::move(options)), program_("program"), args_(std::move(args)) {}

  // Parses, then runs the subcommand with the Trainer of the chosen policies (one of
  // `combinations`, default every valid one). Returns the exit status: 0; 2 for a usage
  // error (printed; nothing trained or written); 1 when the run itself failed (printed).
  template <class Combos = decltype(all_policies())>
  int run(Combos combinations = all_policies()) {
    auto& err = options_.err ? *options_.err : std::cerr;
    auto& out = options_.out ? *options_.out : std::cout;
    PolicyChoice choice;
    try {
      if (!parse()) {
        out << help_;
        return 0;
      }
      if (print_config_) {
        out << resolved_yaml();
        return 0;
      }
      if (config_.subcommand == Subcommand::predict && !predicts)
        throw UsageError(
            std::string("lightning: predict needs the module's predict_step and the "
                        "datamodule's predict_dataloader; this program's have ") +
            (hooks::predict_step::declared<Model> ? "no predict_dataloader" : "no predict_step"));
      choice = resolve(config_.policies, config_.trainer.devices, config_.trainer.num_nodes);
      check_combination(combinations, choice);
      build();
    } catch (const UsageError& e) {
      err << usage_line() << "\nerror: " << e.what() << "\n";
      return 2;
    } catch (const std::invalid_argument& e) {  // an option's owner refused its value
      err << usage_line() << "\nerror: " << e.what() << "\n";
      return 2;
    } catch (const YAML::Exception& e) {  // a shape the checks above did not foresee
      err << usage_line() << "\nerror: lightning: the configuration cannot be read: " << e.what()
          << "\n";
      return 2;
    }
    try {
      return dispatch(combinations, choice, [&](auto combination) {
        using C = typename decltype(combination)::type;
        return execute<typename C::accelerator, typename C::strategy, typename C::precision>();
      });
    } catch (const std::exception& e) {  // a failed run: its message and status 1, as Python's
      err << "error: " << e.what() << "\n";
      return 1;
    }
  }

  // Parses the arguments; false when help was asked for (help() has it). Throws UsageError.
  bool parse() {
    if (args_.empty() || args_[0] == "-h" || args_[0] == "--help") {
      if (args_.empty()) throw UsageError("lightning: a subcommand is required: " + names());
      help_ = top_help();
      return false;
    }
    bool found = false;
    for (const auto& [sub, name] : subcommands)
      if (args_[0] == name) config_.subcommand = sub, found = true;
    if (!found) {
      const auto guess = closest_key(args_[0], {"fit", "validate", "test", "predict"});
      throw UsageError("lightning: '" + args_[0] + "' is not a subcommand; the subcommands are " +
                       names() + (guess.empty() ? "" : " (did you mean " + guess + "?)"));
    }
    RawConfig raw(logger_names());
    for (std::size_t i = 1; i < args_.size(); ++i) {
      std::string arg = args_[i];
      std::optional<std::string> value;
      if (arg.starts_with("--")) {
        if (const auto eq = arg.find('='); eq != std::string::npos)
          value = arg.substr(eq + 1), arg = arg.substr(0, eq);
      }
      const auto take_value = [&]() -> std::string {
        if (value) return *value;
        if (i + 1 >= args_.size() || (args_[i + 1].starts_with("--") && args_[i + 1].size() > 2))
          throw UsageError("lightning: " + arg + " needs a value");
        return args_[++i];
      };
      if (arg == "-h" || arg == "--help") {
        help_ = subcommand_help();
        return false;
      } else if (arg == "-c" || arg == "--config") {
        raw.merge_file(take_value());
      } else if (arg == "--print_config") {
        print_config_ = true;
      } else if (arg.starts_with("--") && arg.size() > 2) {
        const auto key = arg.substr(2);
        if (!is_valid_key(key)) unknown_key(key, "--");
        raw.set_flag(key, take_value());
      } else {
        throw UsageError("lightning: unexpected argument '" + arg +
                         "'; options are --key value (see " + program_ + " " + subcommand_name() +
                         " --help)");
      }
    }
    decode_config(raw.root());
    return true;
  }

  [[nodiscard]] const Config& config() const noexcept { return config_; }
  [[nodiscard]] const std::string& help() const noexcept { return help_; }

  // The resolved configuration as YAML (what --print_config prints and fit saves).
  [[nodiscard]] std::string resolved_yaml() const { return resolved().dump(); }

  // Every option key (dotted, without the dashes), for help and suggestions.
  [[nodiscard]] std::vector<OptionHelp> option_help() const {
    std::vector<OptionHelp> out;
    out.push_back({"seed_everything", "int | bool", "true",
                   "seed every generator before the module and data are built (true: a "
                   "random seed, recorded in the saved config)"});
    out.push_back({"ckpt_path", "path | null", "null",
                   "checkpoint to resume fit from, or whose weights validate/test/predict use"});
    out.push_back({"trainer.accelerator", "cpu | cuda | gpu | auto", "auto",
                   "the device (auto: cuda when a GPU is there, else cpu)"});
    out.push_back({"trainer.strategy", "auto | single_device | ddp", "auto",
                   "how processes share the work (auto: ddp when devices x num_nodes > 1)"});
    out.push_back({"trainer.precision",
                   "32-true | 64-true | bf16-mixed | 16-mixed | bf16-true | 16-true", "32-true",
                   "numeric precision (legacy 32, 64, 16, bf16 accepted)"});
    describe(options_.trainer_defaults, "trainer", out);
    describe_callbacks(out, std::index_sequence_for<Callbacks...>{});
    describe(ModelHParams{}, "model", out);
    describe(DataHParams{}, "data", out);
    return out;
  }

 private:
  // ---- Parsing ----

  static std::string names() { return "fit, validate, test, predict"; }
  [[nodiscard]] std::string subcommand_name() const {
    for (const auto& [sub, name] : subcommands)
      if (sub == config_.subcommand) return std::string(name);
    return {};
  }
  [[nodiscard]] std::string usage_line() const {
    return "usage: " + program_ +
           " {fit,validate,test,predict} [-h] [-c CONFIG] [--print_config] " +
           "[--section.key VALUE ...]";
  }

  static std::vector<std::string> logger_names() {
    std::vector<std::string> out;
    (
        [&] {
          if constexpr (CallbackTraits<Callbacks>::is_logger)
            out.emplace_back(CallbackTraits<Callbacks>::name);
        }(),
        ...);
    return out;
  }

  [[nodiscard]] std::vector<std::string> valid_keys() const {
    std::vector<std::string> keys{"config", "print_config", "help"};
    const auto options = option_help();
    for (const auto& o : options) keys.push_back(o.key);
    // --trainer.logger.<field> where there is one logger.
    if (const auto loggers = logger_names(); loggers.size() == 1) {
      const std::string prefix = "trainer.callbacks." + loggers.front() + ".";
      for (const auto& o : options)
        if (o.key.starts_with(prefix))
          keys.push_back("trainer.logger." + o.key.substr(prefix.size()));
    }
    return keys;
  }

  [[nodiscard]] bool is_valid_key(const std::string& key) const {
    // optimizer / lr_scheduler options depend on the class chosen; checked when decoded.
    if (key == "optimizer" || key == "lr_scheduler" || key.starts_with("optimizer.") ||
        key.starts_with("lr_scheduler."))
      return true;
    std::string k = key;
    for (auto at = k.find(".init_args"); at != std::string::npos; at = k.find(".init_args"))
      k.erase(at, 10);
    if (k == "trainer.logger" || k == "trainer.callbacks") return true;
    for (const auto& valid : valid_keys())
      if (valid == k) return true;
    return false;
  }

  [[noreturn]] void unknown_key(const std::string& key, const std::string& dashes) const {
    const auto guess = closest_key(key, valid_keys());
    throw UsageError("lightning: unknown option " + dashes + key +
                     (guess.empty() ? "" : "; did you mean " + dashes + guess + "?") + " (see " +
                     program_ + " " + subcommand_name() + " --help)");
  }

  void decode_config(const YAML::Node& root) {
    const auto unknown = [&](const std::string& key) { unknown_key(key, ""); };
    config_.trainer = options_.trainer_defaults;
    config_.seed_everything = random_seed();
    for (const auto& entry : root) {
      const auto section = detail::key_text(entry.first);
      const YAML::Node& node = entry.second;
      if (section == "seed_everything") {
        if (node.IsScalar() && (node.Scalar() == "true" || node.Scalar() == "false" ||
                                node.Scalar() == "True" || node.Scalar() == "False")) {
          if (!Field<bool>::decode(node, section)) config_.seed_everything.reset();
        } else {
          config_.seed_everything = Field<std::uint64_t>::decode(node, section);
        }
      } else if (section == "ckpt_path") {
        config_.ckpt_path = Field<std::optional<std::filesystem::path>>::decode(node, section);
      } else if (section == "trainer") {
        decode_trainer(node, unknown);
      } else if (section == "model") {
        decode(config_.model, node, "model", unknown);
      } else if (section == "data") {
        decode(config_.data, node, "data", unknown);
      } else if (section == "optimizer" || section == "lr_scheduler") {
        if (!supports_optimizer_shorthand<Model> && !detail::is_null(node))
          throw UsageError("lightning: --" + section +
                           " cannot replace this module's configure_optimizers: the shorthand "
                           "stands in for one optimizer with at most one lr formula scheduler, "
                           "under automatic optimization");
        if (section == "optimizer")
          config_.optimizer = read_optimizer(node);
        else
          config_.lr_scheduler = read_scheduler(node);
      } else {
        unknown(section);
      }
    }
    if (config_.lr_scheduler && !config_.optimizer)
      throw UsageError(
          "lightning: --lr_scheduler " + config_.lr_scheduler->name +
          " needs --optimizer too (as in Lightning: the shorthand replaces configure_optimizers "
          "as a whole)");
    lightning::validate(config_.trainer);  // option errors now, before anything runs
  }

  template <class Unknown>
  void decode_trainer(const YAML::Node& node, Unknown&& unknown) {
    if (detail::is_null(node)) return;
    if (!node.IsMap())
      throw UsageError("lightning: trainer = " + detail::node_text(node) +
                       " is not a valid value: trainer is a section of options (a map)");
    YAML::Node options(YAML::NodeType::Map);
    for (const auto& entry : node) {
      const auto key = detail::key_text(entry.first);
      const auto& value = entry.second;
      if (key == "accelerator") {
        config_.policies.accelerator = Field<std::string>::decode(value, "trainer.accelerator");
      } else if (key == "strategy") {
        config_.policies.strategy = Field<std::string>::decode(value, "trainer.strategy");
      } else if (key == "precision") {
        config_.policies.precision = Field<std::string>::decode(value, "trainer.precision");
      } else if (key == "devices" && value.IsScalar() && value.Scalar() == "auto") {
        options["devices"] = YAML::Node(YAML::NodeType::Null);
      } else if (key == "callbacks") {
        decode_callbacks(value, unknown, std::index_sequence_for<Callbacks...>{});
      } else {
        options[key] = value;
      }
    }
    decode(config_.trainer, options, "trainer", unknown);
  }

  template <class Unknown, std::size_t... I>
  void decode_callbacks(const YAML::Node& node, Unknown&& unknown, std::index_sequence<I...>) {
    if (detail::is_null(node)) return;
    if (!node.IsMap())
      throw UsageError("lightning: trainer.callbacks = " + detail::node_text(node) +
                       " is not a valid value: a list of {class_path, init_args}");
    for (const auto& entry : node) {
      const auto name = detail::key_text(entry.first);
      bool found = false;
      (
          [&] {
            using C = std::tuple_element_t<I, std::tuple<Callbacks...>>;
            if (found || name != CallbackTraits<C>::name) return;
            found = true;
            decode(std::get<I>(config_.callbacks), entry.second, "trainer.callbacks." + name,
                   unknown);
          }(),
          ...);
      if (!found) {
        std::string declared;
        ((declared +=
          (declared.empty() ? "" : ", ") + std::string(CallbackTraits<Callbacks>::name)),
         ...);
        throw UsageError("lightning: trainer.callbacks: '" + name +
                         "' is not a callback this program declares; it declares: " +
                         (declared.empty() ? std::string("none") : declared) +
                         " (callbacks are chosen when the program is compiled: "
                         "LightningCLI<Model, Data, Callbacks...>)");
      }
    }
  }

  template <std::size_t... I>
  void describe_callbacks(std::vector<OptionHelp>& out, std::index_sequence<I...>) const {
    (describe(
         typename CallbackTraits<std::tuple_element_t<I, std::tuple<Callbacks...>>>::options{},
         "trainer.callbacks." +
             std::string(CallbackTraits<std::tuple_element_t<I, std::tuple<Callbacks...>>>::name),
         out),
     ...);
  }

  // seed_everything: true draws a seed, shared with the ranks a launcher starts
  // (PL_GLOBAL_SEED, as Lightning), and recorded in the resolved config.
  static std::uint64_t random_seed() {
    if (const char* inherited = std::getenv("PL_GLOBAL_SEED"))
      if (auto v = detail::parse_number<std::uint64_t>(inherited)) return *v;
    std::random_device device;
    return std::uniform_int_distribution<std::uint32_t>()(device);
  }

  // ---- The resolved config ----

  [[nodiscard]] YamlTree resolved() const {
    auto root = YamlTree::map();
    root.set("seed_everything", config_.seed_everything
                                    ? Field<std::uint64_t>::encode(*config_.seed_everything)
                                    : YamlTree::scalar("false"));
    auto trainer = YamlTree::map();
    trainer.set("accelerator", Field<std::string>::encode(config_.policies.accelerator));
    trainer.set("strategy", Field<std::string>::encode(config_.policies.strategy));
    trainer.set("precision",
                Field<std::string>::encode(normalize_precision(config_.policies.precision)));
    for (auto& entry : encode(config_.trainer).entries) trainer.set(entry.first, entry.second);
    auto callbacks = YamlTree::list();
    auto loggers = YamlTree::list();
    encode_callbacks(callbacks, loggers, std::index_sequence_for<Callbacks...>{});
    if (!callbacks.items.empty()) trainer.set("callbacks", callbacks);
    if (loggers.items.size() == 1)
      trainer.set("logger", loggers.items.front());
    else if (!loggers.items.empty())
      trainer.set("logger", loggers);
    root.set("trainer", trainer);
    root.set("model", encode(config_.model));
    root.set("data", encode(config_.data));
    const auto choice = [](const auto& c) {
      if (!c) return YamlTree::scalar("null");
      auto tree = YamlTree::map();
      tree.set("class_path", YamlTree::scalar(c->class_path));
      tree.set("init_args", c->init_args);
      return tree;
    };
    root.set("optimizer", choice(config_.optimizer));
    root.set("lr_scheduler", choice(config_.lr_scheduler));
    root.set("ckpt_path", Field<std::optional<std::filesystem::path>>::encode(config_.ckpt_path));
    return root;
  }

  template <std::size_t... I>
  void encode_callbacks(YamlTree& callbacks, YamlTree& loggers, std::index_sequence<I...>) const {
    (
        [&] {
          using Traits = CallbackTraits<std::tuple_element_t<I, std::tuple<Callbacks...>>>;
          auto entry = YamlTree::map();
          entry.set("class_path", YamlTree::scalar(std::string(Traits::class_path)));
          entry.set("init_args", encode(std::get<I>(config_.callbacks)));
          (Traits::is_logger ? loggers : callbacks).items.push_back(std::move(entry));
        }(),
        ...);
  }

  // ---- Running ----

  // Seeds, then builds the data, the module and the callbacks: everything that does not
  // depend on the policies, once, outside the per-combination code. An option a callback
  // refuses is a usage error (std::invalid_argument, caught by run()).
  void build() {
    if (config_.seed_everything) {  // before anything is built: the weights and split repeat
      seed_everything(*config_.seed_everything);
      ::setenv("PL_GLOBAL_SEED", std::to_string(*config_.seed_everything).c_str(), 1);
    }
    data_.emplace(config_.data);
    model_.emplace(config_.model);
    if (model_->hparams().empty()) model_->save_hyperparameters(config_.model);
    if constexpr (supports_optimizer_shorthand<Model>)
      model_->choose(&config_.optimizer, &config_.lr_scheduler);
    std::apply(
        [&](const auto&... options) {
          callbacks_.emplace(
              SaveConfig(
                  "# lightning-cpp==" + std::string(lightning::version) + "\n" + resolved_yaml(),
                  options_.config_filename,
                  options_.save_config && config_.subcommand == Subcommand::fit,
                  options_.save_config_overwrite),
              Callbacks(options)...);
        },
        config_.callbacks);
  }

  // The one piece compiled per policy combination: the Trainer and the subcommand.
  template <class A, class S, class P>
  int execute() {
    std::optional<Trainer<A, S, P, SaveConfig, Callbacks...>> trainer;
    try {
      std::apply(
          [&](auto&... callbacks) { trainer.emplace(config_.trainer, std::move(callbacks)...); },
          *callbacks_);
    } catch (const std::invalid_argument& e) {  // options that contradict each other
      auto& err = options_.err ? *options_.err : std::cerr;
      err << usage_line() << "\nerror: " << e.what() << "\n";
      return 2;
    }
    auto& model = *model_;
    auto& data = *data_;
    const auto ckpt = config_.ckpt_path;
    switch (config_.subcommand) {
      case Subcommand::fit:
        if (ckpt)
          trainer->fit(model, data, CheckpointPath{*ckpt});
        else
          trainer->fit(model, data);
        break;
      case Subcommand::validate:
        print_results(trainer->is_global_zero(), "Validate",
                      ckpt ? trainer->validate(model, data, CheckpointPath{*ckpt})
                           : trainer->validate(model, data));
        break;
      case Subcommand::test:
        print_results(
            trainer->is_global_zero(), "Test",
            ckpt ? trainer->test(model, data, CheckpointPath{*ckpt}) : trainer->test(model, data));
        break;
      case Subcommand::predict:
        if constexpr (predicts) {
          if (ckpt)
            (void)trainer->predict(model, data, CheckpointPath{*ckpt});
          else
            (void)trainer->predict(model, data);
        }
        break;
    }
    return 0;
  }

  // Lightning's table of what validate/test logged (trainer.test(verbose=True)), rank zero.
  void print_results(bool global_zero, std::string_view stage,
                     const std::vector<MetricMap>& results) {
    if (!global_zero || results.empty()) return;
    auto& out = options_.out ? *options_.out : std::cout;
    std::size_t width = stage.size() + 7;
    for (const auto& metrics : results)
      for (const auto& [name, value] : metrics) width = std::max(width, name.size());
    const std::string rule(width + 8 + 22 * results.size(), '-');
    const auto cell = [](std::string text, std::size_t w) {
      const auto left = (w - std::min(w, text.size())) / 2;
      return std::string(left, ' ') + text + std::string(w - std::min(w, text.size()) - left, ' ');
    };
    out << rule << "\n" << cell(std::string(stage) + " metric", width + 8);
    for (std::size_t i = 0; i < results.size(); ++i)
      out << cell("DataLoader " + std::to_string(i), 22);
    out << "\n" << rule << "\n";
    std::set<std::string> names;
    for (const auto& metrics : results)
      for (const auto& [name, value] : metrics) names.insert(name);
    for (const auto& name : names) {
      out << cell(name, width + 8);
      for (const auto& metrics : results) {
        const auto it = metrics.find(name);
        out << cell(it == metrics.end() ? std::string() : python_float_repr(it->second), 22);
      }
      out << "\n";
    }
    out << rule << "\n";
  }

  // ---- Help ----

  [[nodiscard]] std::string top_help() const {
    std::ostringstream os;
    os << usage_line() << "\n\n";
    if (!options_.description.empty()) os << options_.description << "\n\n";
    os << "subcommands (each has --help):\n"
       << "  fit        train the model (Lightning's Trainer.fit)\n"
       << "  validate   one evaluation epoch over the validation set\n"
       << "  test       one evaluation epoch over the test set\n"
       << "  predict    run predict_step over the prediction set\n";
    return os.str();
  }

  [[nodiscard]] std::string subcommand_help() const {
    std::ostringstream os;
    os << "usage: " << program_ << " " << subcommand_name()
       << " [-h] [-c CONFIG] [--print_config] [--section.key VALUE ...]\n\n";
    if (!options_.description.empty()) os << options_.description << "\n\n";
    os << "options:\n"
       << "  -h, --help\n      show this help and exit\n"
       << "  -c, --config CONFIG\n      a YAML config file; repeatable, later files and "
          "flags win\n"
       << "  --print_config\n      print the resolved config (YAML) and exit\n"
       << "  --KEY=VALUE works as --KEY VALUE; values are YAML (null, 3, 0.1, [1, 2])\n";
    if constexpr (supports_optimizer_shorthand<Model>)
      os << "  --optimizer NAME, --lr_scheduler NAME\n      replace the module's "
            "configure_optimizers (--optimizer.lr 0.01, --lr_scheduler.step_size 10):\n"
         << shorthand_help();
    std::string section;
    for (const auto& o : option_help()) {
      const auto dot = o.key.rfind('.');
      const auto this_section = dot == std::string::npos ? std::string() : o.key.substr(0, dot);
      if (this_section != section) {
        section = this_section;
        os << "\n" << section << ":\n";
      }
      os << "  --" << o.key << " " << o.type << " (default: " << o.default_value << ")\n";
      if (!o.doc.empty()) os << "      " << o.doc << "\n";
    }
    return os.str();
  }

  LightningCLIOptions options_;
  std::string program_;
  std::vector<std::string> args_;
  Config config_;
  std::optional<Data> data_;
  std::optional<Module> model_;
  std::optional<std::tuple<SaveConfig, Callbacks...>> callbacks_;
  bool print_config_ = false;
  std::string help_;
};

}  // namespace lightning::cli
