// LightningCLI: parsing in-process (a small module whose CLI is never run, so no Trainer is
// compiled here), and the example program (examples/cli.cpp) driven with real argument
// lists and config files.
#include <lightning/cli/lightning_cli.hpp>

#include <gtest/gtest.h>

#include "support/expect.hpp"
#include "support/python.hpp"

#include <boost/hana/accessors.hpp>
#include <boost/hana/for_each.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace L = lightning;
namespace fs = std::filesystem;

namespace {

enum class Activation { relu, tanh };

struct TinyHParams {
  std::int64_t hidden = 16;
  double lr = 0.01;
  std::string name = "tiny";
  std::optional<double> dropout = std::nullopt;
  Activation activation = Activation::relu;
  std::vector<std::int64_t> milestones = {2, 4};
};

struct Inner {
  std::int64_t width = 9;
};
struct SavedHParams {
  std::int64_t layers = 3;
  double lr = 0.125;
  std::optional<double> dropout = std::nullopt;
  Activation act = Activation::tanh;
  Inner inner;
  std::string name = "net";
  bool bn = true;
  fs::path root = "/data";
};

struct TinyDataOptions {
  std::int64_t batch_size = 8;
  fs::path root = "data";
};

}  // namespace

BOOST_HANA_ADAPT_STRUCT(TinyHParams, hidden, lr, name, dropout, activation, milestones);
BOOST_HANA_ADAPT_STRUCT(TinyDataOptions, batch_size, root);
BOOST_HANA_ADAPT_STRUCT(Inner, width);
BOOST_HANA_ADAPT_STRUCT(SavedHParams, layers, lr, dropout, act, inner, name, bn, root);

template <>
struct lightning::EnumNames<Activation> {
  static constexpr std::array<std::pair<Activation, std::string_view>, 2> values{
      {{Activation::relu, "relu"}, {Activation::tanh, "tanh"}}};
};

namespace {

struct TinyModel : L::LightningModule {
  using Hyperparameters = TinyHParams;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  explicit TinyModel(const Hyperparameters&) {}
  auto configure_optimizers() {
    return L::optimizers(torch::optim::SGD(parameters(), 0.1), L::scheduler(L::lr::StepLR{}));
  }
};
struct TinyData {
  using Hyperparameters = TinyDataOptions;
  explicit TinyData(const Hyperparameters&) {}
};

using TinyCLI = L::cli::LightningCLI<TinyModel, TinyData, L::callbacks::EarlyStopping,
                                     L::callbacks::ModelCheckpoint, L::loggers::CSVLogger>;

TinyCLI parsed(std::vector<std::string> args) {
  TinyCLI cli(std::move(args));
  EXPECT_TRUE(cli.parse());
  return cli;
}

// The message of the usage error parsing `args` throws.
std::string error_of(std::vector<std::string> args) {
  TinyCLI cli(std::move(args));
  try {
    cli.parse();
  } catch (const L::cli::UsageError& e) {
    return e.what();
  }
  return "no error";
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The example program, run in the test's directory.
struct Run {
  int status = -1;
  std::string out, err;
};
Run example(const std::vector<std::string>& args) {
  std::string command = L::testing::shell_quoted(LIGHTNING_CLI_EXAMPLE);
  for (const auto& a : args) command += " " + L::testing::shell_quoted(a);
  command += " 2>stderr.txt";
  Run run;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
    const int status = ::pclose(pipe);
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  run.err = read("stderr.txt");
  fs::remove("stderr.txt");
  return run;
}

// A small, quick run of the example: 500 training images, 100 for validation.
std::vector<std::string> quick(std::vector<std::string> more = {}) {
  std::vector<std::string> args{"fit",   "--data.limit",
                                "600",   "--data.val_size",
                                "100",   "--trainer.max_epochs",
                                "2",     "--trainer.enable_progress_bar",
                                "false", "--trainer.enable_model_summary",
                                "false"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::map<std::string, torch::Tensor> weights(const fs::path& checkpoint) {
  std::map<std::string, torch::Tensor> out;
  const auto state = L::checkpoint_dict(L::load_checkpoint_file(checkpoint).at("state_dict"));
  for (const auto& entry : state) out[entry.key().toStringRef()] = entry.value().toTensor();
  return out;
}

std::vector<fs::path> files_under(const fs::path& dir, const std::string& extension) {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == extension) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> everything_here() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(fs::current_path()))
    out.push_back(e.path());
  return out;
}

}  // namespace

// ---- In-process: parsing ----

TEST(LightningCLI, DefaultsAreTheStructsDefaults) {
  auto cli = parsed({"fit"});
  const auto& c = cli.config();
  EXPECT_EQ(c.subcommand, L::cli::Subcommand::fit);
  EXPECT_EQ(c.model.hidden, 16);
  EXPECT_EQ(c.trainer.max_epochs, std::nullopt);
  EXPECT_EQ(c.trainer.log_every_n_steps, std::nullopt);  // Lightning's None: 50 when resolved
  EXPECT_EQ(L::resolve(c.trainer).log_every_n_steps, 50);
  EXPECT_EQ(c.policies.accelerator, "auto");
  EXPECT_EQ(c.policies.precision, "32-true");
  EXPECT_TRUE(c.seed_everything.has_value());  // seed_everything: true draws one
  EXPECT_FALSE(c.ckpt_path);
}

TEST(LightningCLI, ConfigFilesMergeInOrderAndLaterFlagsWin) {
  write("a.yaml",
        "trainer:\n  max_epochs: 5\n  log_every_n_steps: 7\nmodel:\n  hidden: 32\n  lr: 0.5\n");
  write("b.yaml", "trainer:\n  max_epochs: 9\nmodel:\n  name: second\n");
  auto cli = parsed({"fit", "--model.lr", "0.25", "-c", "a.yaml", "--config", "b.yaml",
                     "--trainer.max_epochs=20", "--model.dropout", "0.1"});
  const auto& c = cli.config();
  EXPECT_EQ(c.trainer.max_epochs, 20);        // the flag after both files
  EXPECT_EQ(c.trainer.log_every_n_steps, 7);  // a.yaml, untouched by b.yaml
  EXPECT_EQ(c.model.hidden, 32);
  EXPECT_EQ(c.model.lr, 0.5);  // a.yaml came after the flag, as jsonargparse reads them
  EXPECT_EQ(c.model.name, "second");
  EXPECT_EQ(c.model.dropout, 0.1);
}

TEST(LightningCLI, AliasesClassChangesAndListFlagsAreReadAsLightningReadsThem) {
  // A flag sets one key, not every YAML alias of it.
  write("alias.yaml", "trainer:\n  max_epochs: &e 5\n  min_epochs: *e\n");
  auto aliased = parsed({"fit", "-c", "alias.yaml", "--trainer.max_epochs", "9"});
  EXPECT_EQ(aliased.config().trainer.max_epochs, 9);
  EXPECT_EQ(aliased.config().trainer.min_epochs, 5);
  // A later file naming another optimizer class replaces the section, arguments included.
  write("adam.yaml",
        "optimizer:\n  class_path: torch.optim.Adam\n  init_args:\n    betas: [0.8, 0.9]\n");
  write("sgd.yaml", "optimizer: SGD\n");
  auto changed = parsed({"fit", "-c", "adam.yaml", "-c", "sgd.yaml"});
  ASSERT_TRUE(changed.config().optimizer);
  EXPECT_EQ(changed.config().optimizer->name, "SGD");
  // Lightning's list of callbacks as one flag.
  auto listed = parsed({"fit", "--trainer.callbacks",
                        "[{class_path: ModelCheckpoint, init_args: {save_top_k: 2}}]"});
  EXPECT_EQ(std::get<1>(listed.config().callbacks).save_top_k, 2);
  // Shapes that are not options are usage errors, not yaml-cpp's exceptions.
  write("key.yaml", "? [a, b]\n: 1\n");
  EXPECT_EQ(error_of({"fit", "-c", "key.yaml"}),
            "lightning: [a, b] is not a valid key: keys are names (trainer, max_epochs, ...)");
  EXPECT_EQ(error_of({"fit", "--trainer.callbacks", "3"}),
            "lightning: --trainer.callbacks: trainer.callbacks = '3' is not a valid value: a list "
            "of {class_path, init_args}");
  // Arguments LibTorch or the scheduler would refuse later are refused now.
  EXPECT_EQ(error_of({"fit", "--optimizer", "SGD", "--optimizer.nesterov", "true"}),
            "lightning: optimizer SGD refuses its init_args: Nesterov momentum requires a momentum "
            "and zero dampening");
  EXPECT_EQ(error_of({"fit", "--optimizer", "SGD", "--lr_scheduler", "StepLR",
                      "--lr_scheduler.step_size", "0"}),
            "lightning: lr_scheduler.init_args.step_size = 0 is not a valid value: must be >= 1");
  EXPECT_EQ(
      error_of({"fit", "--optimizer", "SGD", "--lr_scheduler", "MultiStepLR",
                "--lr_scheduler.milestones", "[5, 2]"}),
      "lightning: lr_scheduler.init_args.milestones is not a valid value: the milestones must "
      "be in increasing order");
}

TEST(LightningCLI, EveryKindOfValueIsReadAsYaml) {
  auto cli = parsed({"fit",         "--model.name",
                     "123",         "--model.activation",
                     "tanh",        "--model.milestones",
                     "[3, 5, 8]",   "--model.dropout",
                     "null",        "--trainer.limit_train_batches",
                     "0.25",        "--trainer.limit_val_batches",
                     "10",          "--trainer.gradient_clip_algorithm",
                     "value",       "--trainer.devices",
                     "auto",        "--trainer.deterministic",
                     "true",        "--seed_everything",
                     "false",       "--trainer.default_root_dir",
                     "runs/a b",    "--ckpt_path",
                     "x/last.ckpt", "--trainer.max_time",
                     "00:01:30:00"});
  const auto& c = cli.config();
  EXPECT_EQ(c.model.name, "123");  // a str field takes what looks like a number
  EXPECT_EQ(c.model.activation, Activation::tanh);
  EXPECT_EQ(c.model.milestones, (std::vector<std::int64_t>{3, 5, 8}));
  EXPECT_FALSE(c.model.dropout);
  EXPECT_FALSE(c.trainer.limit_train_batches.is_count());
  EXPECT_EQ(c.trainer.limit_train_batches.fraction(), 0.25);
  EXPECT_EQ(c.trainer.limit_val_batches.count(), 10);
  EXPECT_EQ(c.trainer.gradient_clip_algorithm, L::GradClipAlgorithm::value);
  EXPECT_FALSE(c.trainer.devices);
  EXPECT_TRUE(c.trainer.deterministic);
  EXPECT_FALSE(c.seed_everything);
  EXPECT_EQ(c.trainer.default_root_dir, fs::path("runs/a b"));
  EXPECT_EQ(c.ckpt_path, fs::path("x/last.ckpt"));
  ASSERT_TRUE(c.trainer.max_time);  // Lightning's "DD:HH:MM:SS"
  EXPECT_EQ(*c.trainer.max_time, std::chrono::minutes(90));
  // ... and written back so that they read the same: "123" quoted, the list a list.
  const auto yaml = cli.resolved_yaml();
  EXPECT_NE(yaml.find("  name: '123'\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  milestones:\n  - 3\n  - 5\n  - 8\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("seed_everything: false\n"), std::string::npos) << yaml;
}

TEST(LightningCLI, LightningsConfigShapeIsRead) {
  write("lightning.yaml", R"(seed_everything: 7
trainer:
  max_epochs: 3
  callbacks:
    - class_path: lightning.pytorch.callbacks.EarlyStopping
      init_args:
        monitor: val_loss
        patience: 5
        mode: max
    - class_path: ModelCheckpoint
      init_args: {save_top_k: 3, monitor: val_acc}
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: logs
      version: 4
ckpt_path: null
)");
  auto cli = parsed({"fit", "-c", "lightning.yaml", "--trainer.logger.name", "exp",
                     "--trainer.callbacks.EarlyStopping.init_args.min_delta", "0.5",
                     "--trainer.callbacks.ModelCheckpoint.save_last", "true"});
  const auto& c = cli.config();
  EXPECT_EQ(c.seed_everything, 7u);
  const auto& early = std::get<0>(c.callbacks);
  EXPECT_EQ(early.monitor, "val_loss");
  EXPECT_EQ(early.patience, 5);
  EXPECT_EQ(early.mode, L::callbacks::Mode::max);
  EXPECT_EQ(early.min_delta, 0.5);
  const auto& checkpoint = std::get<1>(c.callbacks);
  EXPECT_EQ(checkpoint.save_top_k, 3);
  EXPECT_EQ(checkpoint.monitor, "val_acc");
  EXPECT_TRUE(checkpoint.save_last);
  const auto& logger = std::get<2>(c.callbacks);
  EXPECT_EQ(logger.save_dir, fs::path("logs"));
  EXPECT_EQ(logger.version, 4);
  EXPECT_EQ(logger.name, "exp");
}

TEST(LightningCLI, TheResolvedConfigReadsBackToItself) {
  auto first = parsed({"fit", "--model.lr", "0.003", "--trainer.precision", "bf16",
                       "--trainer.callbacks.EarlyStopping.monitor", "val_loss",
                       "--trainer.logger.save_dir", "logs", "--model.name", "yes"});
  const auto yaml = first.resolved_yaml();
  write("resolved.yaml", yaml);
  auto second = parsed({"fit", "--config", "resolved.yaml"});
  EXPECT_EQ(second.resolved_yaml(), yaml);
  EXPECT_EQ(second.config().model.name, "yes");  // quoted: YAML 1.1 would read a bool
  EXPECT_NE(yaml.find("precision: bf16-mixed"), std::string::npos) << yaml;  // legacy name

  // Python reads the same values (yaml.safe_load, as jsonargparse does).
  const auto py = L::testing::run_python_program(R"(import yaml
c = yaml.safe_load(open("resolved.yaml"))
print(c["model"]["lr"], repr(c["model"]["name"]), c["trainer"]["precision"],
      c["trainer"]["callbacks"][0]["class_path"], c["trainer"]["callbacks"][0]["init_args"]["monitor"],
      c["trainer"]["logger"]["init_args"]["save_dir"], type(c["seed_everything"]).__name__)
)");
  LIGHTNING_EXPECT_PYTHON_OK(py);
  EXPECT_EQ(py.output,
            "0.003 'yes' bf16-mixed lightning.pytorch.callbacks.EarlyStopping val_loss logs int\n");
}

TEST(LightningCLI, EveryOptionIsListedWithItsTypeDefaultAndDoc) {
  TinyCLI cli({"fit", "--help"});
  EXPECT_FALSE(cli.parse());
  const auto& help = cli.help();
  boost::hana::for_each(boost::hana::accessors<L::TrainerOptions>(), [&](auto pair) {
    const std::string key =
        std::string("--trainer.") + boost::hana::to<const char*>(boost::hana::first(pair)) + " ";
    EXPECT_NE(help.find(key), std::string::npos) << key;
  });
  for (const char* line :
       {"  --model.lr float (default: 0.01)\n", "  --model.dropout float | null (default: null)\n",
        "  --model.activation relu | tanh (default: relu)\n",
        "  --model.milestones list[int] (default: [2, 4])\n",
        "  --trainer.max_epochs int | null (default: null)\n      stop after this many epochs",
        "  --trainer.callbacks.EarlyStopping.patience int (default: 3)\n      checks without",
        "  --trainer.callbacks.CSVLogger.save_dir path (default: .)\n",
        "  --trainer.precision 32-true | 64-true | bf16-mixed | 16-mixed | bf16-true | 16-true",
        "  --data.batch_size int (default: 8)\n", "  -c, --config CONFIG\n", "  --print_config\n",
        "  --seed_everything int | bool (default: true)\n"})
    EXPECT_NE(help.find(line), std::string::npos) << line << "\n---\n" << help;
  // Every library options field has its doc line (an undocumented field would print none).
  for (const auto& option : cli.option_help()) {
    if (!option.key.starts_with("model.") && !option.key.starts_with("data.")) {
      EXPECT_FALSE(option.doc.empty()) << option.key;
    }
  }

  TinyCLI top({"--help"});
  EXPECT_FALSE(top.parse());
  for (const char* sub : {"  fit ", "  validate ", "  test ", "  predict "})
    EXPECT_NE(top.help().find(sub), std::string::npos) << sub;
}

TEST(LightningCLI, MistakesAreUsageErrorsThatSayWhatToDo) {
  EXPECT_EQ(error_of({"fit", "--trainer.max_epoch", "3"}),
            "lightning: unknown option --trainer.max_epoch; did you mean --trainer.max_epochs? "
            "(see program fit --help)");
  EXPECT_EQ(error_of({"fit", "--model.lrr", "3"}),
            "lightning: unknown option --model.lrr; did you mean --model.lr? (see program fit "
            "--help)");
  EXPECT_EQ(error_of({"fit", "--trainer.max_epochs", "ten"}),
            "lightning: trainer.max_epochs = 'ten' is not a valid value: trainer.max_epochs takes "
            "int | null");
  EXPECT_EQ(error_of({"fit", "--model.activation", "gelu"}),
            "lightning: model.activation = 'gelu' is not a valid value: model.activation takes "
            "relu | tanh");
  EXPECT_EQ(error_of({"fit", "--model.milestones", "3"}),
            "lightning: model.milestones = '3' is not a valid value: model.milestones takes "
            "list[int]");
  EXPECT_EQ(error_of({"fit", "--config", "missing.yaml"}),
            "lightning: config file not found: missing.yaml");
  write("broken.yaml", "trainer:\n  max_epochs: 3\n model: [\n");
  EXPECT_EQ(error_of({"fit", "--config", "broken.yaml"})
                .find("lightning: config file broken.yaml, line 3, column "),
            0u)
      << error_of({"fit", "--config", "broken.yaml"});
  write("unknown.yaml", "trainer:\n  max_epcohs: 3\n");
  EXPECT_EQ(error_of({"fit", "-c", "unknown.yaml"}),
            "lightning: unknown option trainer.max_epcohs; did you mean trainer.max_epochs? (see "
            "program fit --help)");
  write("wrong.yaml", "model:\n  hidden: [1, 2]\n");
  EXPECT_EQ(error_of({"fit", "-c", "wrong.yaml"}),
            "lightning: model.hidden = [1, 2] is not a valid value: model.hidden takes int");
  EXPECT_EQ(error_of({"fti"}),
            "lightning: 'fti' is not a subcommand; the subcommands are fit, validate, test, "
            "predict (did you mean fit?)");
  EXPECT_EQ(error_of({"fit", "--model.lr"}), "lightning: --model.lr needs a value");
  EXPECT_EQ(error_of({"fit", "model.lr"}),
            "lightning: unexpected argument 'model.lr'; options are --key value (see program fit "
            "--help)");
  EXPECT_NE(error_of({"fit", "--trainer.callbacks.Timer.duration", "1"})
                .find("lightning: unknown option --trainer.callbacks.Timer.duration"),
            std::string::npos);
  write("undeclared.yaml",
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.Timer\n");
  EXPECT_EQ(error_of({"fit", "-c", "undeclared.yaml"}),
            "lightning: trainer.callbacks: 'Timer' is not a callback this program declares; it "
            "declares: EarlyStopping, ModelCheckpoint, CSVLogger (callbacks are chosen when the "
            "program is compiled: LightningCLI<Model, Data, Callbacks...>)");
  // An option's own rule, checked where the option is defined.
  TinyCLI negative({"fit", "--trainer.max_epochs", "-5"});
  L::testing::expect_invalid_argument([&] { negative.parse(); },
                                      "TrainerOptions.max_epochs = -5 is invalid");
}

TEST(LightningCLI, PolicyStringsAreLightnings) {
  using L::cli::resolve;
  const auto r = [](std::string a, std::string s, std::string p, std::optional<std::int64_t> d = 1,
                    std::int64_t nodes = 1) {
    const auto c = resolve({a, s, p}, d, nodes);
    return c.accelerator + "/" + c.strategy + "/" + c.precision;
  };
  const std::string here = torch::cuda::is_available() ? "cuda" : "cpu";
  EXPECT_EQ(r("auto", "auto", "32"), here + "/single_device/32-true");
  EXPECT_EQ(r("cpu", "auto", "16"), "cpu/single_device/16-mixed");  // refused at dispatch
  EXPECT_EQ(r("cpu", "auto", "bf16"), "cpu/single_device/bf16-mixed");
  EXPECT_EQ(r("cpu", "auto", "64"), "cpu/single_device/64-true");
  EXPECT_EQ(r("cpu", "auto", "bf16-true", 2), "cpu/ddp/bf16-true");
  EXPECT_EQ(r("cpu", "auto", "16-true", 1, 2), "cpu/ddp/16-true");
  EXPECT_EQ(r("cpu", "ddp", "32-true"), "cpu/ddp/32-true");
  EXPECT_THROW(r("tpu", "auto", "32"), L::cli::UsageError);
  EXPECT_THROW(r("cpu", "fsdp", "32"), L::cli::UsageError);
  EXPECT_THROW(r("cpu", "auto", "8-true"), L::cli::UsageError);
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(r("cuda", "auto", "32"), L::cli::UsageError);
  }

  // The default set: every valid combination (22), 16-mixed never on the CPU.
  const auto names = L::cli::combination_names(L::cli::all_policies());
  EXPECT_EQ(names.size(), 22u);
  EXPECT_EQ(std::count(names.begin(), names.end(), "cpu/single_device/16-mixed"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "cuda/ddp/16-mixed"), 1);
  try {
    L::cli::check_combination(
        L::cli::policy_product(L::cli::policies<L::accelerators::CPU>,
                               L::cli::policies<L::strategies::SingleDevice>,
                               L::cli::policies<L::precision::F32, L::precision::F16Mixed>),
        {"cpu", "single_device", "16-mixed"});
    ADD_FAILURE() << "no error";
  } catch (const L::cli::UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "lightning: trainer.accelerator/strategy/precision = cpu/single_device/16-mixed "
                 "is not a combination this program was built with (16-mixed runs only on CUDA: "
                 "its gradient scaler and fp16 autocast need a GPU); it was built with "
                 "(accelerator/strategy/precision):\n  cpu/single_device/32-true");
  }
}

TEST(LightningCLI, OptimizerShorthandIsReadWithPyTorchsNamesAndDefaults) {
  static_assert(L::cli::supports_optimizer_shorthand<TinyModel>);
  auto cli = parsed({"fit", "--optimizer", "torch.optim.AdamW", "--optimizer.lr", "0.01",
                     "--lr_scheduler", "CosineAnnealingLR", "--lr_scheduler.T_max", "20"});
  const auto& c = cli.config();
  ASSERT_TRUE(c.optimizer && c.lr_scheduler);
  EXPECT_EQ(c.optimizer->name, "AdamW");
  const auto yaml = cli.resolved_yaml();
  EXPECT_NE(
      yaml.find("optimizer:\n  class_path: torch.optim.AdamW\n  init_args:\n    lr: 0.01\n"
                "    betas:\n    - 0.9\n    - 0.999\n    eps: 1.0e-08\n    weight_decay: 0.01\n"),
      std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("lr_scheduler:\n  class_path: torch.optim.lr_scheduler.CosineAnnealingLR\n"
                      "  init_args:\n    T_max: 20\n    eta_min: 0.0\n"),
            std::string::npos)
      << yaml;
  write("resolved.yaml", yaml);
  EXPECT_EQ(parsed({"fit", "-c", "resolved.yaml"}).resolved_yaml(), yaml);

  // What it builds: torch's optimizer with these options, the library's scheduler.
  torch::nn::Linear layer(2, 1);
  const auto optimizer = c.optimizer->make(layer->parameters());
  auto* adamw = dynamic_cast<torch::optim::AdamW*>(optimizer.get());
  ASSERT_NE(adamw, nullptr);
  const auto& o = static_cast<const torch::optim::AdamWOptions&>(adamw->defaults());
  EXPECT_EQ(o.lr(), 0.01);
  EXPECT_EQ(o.weight_decay(), 0.01);
  EXPECT_EQ(std::get<0>(o.betas()), 0.9);
  const auto scheduler = c.lr_scheduler->make();
  EXPECT_EQ(std::get<L::lr::Scheduler<L::lr::CosineAnnealingLR>>(scheduler).formula().t_max, 20);

  EXPECT_EQ(error_of({"fit", "--optimizer", "Adamm"}),
            "lightning: optimizer = 'Adamm' is not a class the optimizer shorthand knows (did you "
            "mean Adam?); it knows SGD, Adam, AdamW, RMSprop, Adagrad");
  EXPECT_EQ(error_of({"fit", "--optimizer", "SGD", "--optimizer.momentun", "0.9"}),
            "lightning: unknown option --optimizer.momentun for SGD; did you mean "
            "--optimizer.momentum? (SGD takes lr, momentum, dampening, weight_decay, nesterov)");
  EXPECT_EQ(error_of({"fit", "--optimizer", "Adam", "--optimizer.betas", "[0.9]"}),
            "lightning: optimizer.init_args.betas must hold two values, not 1");
  EXPECT_EQ(
      error_of({"fit", "--lr_scheduler", "StepLR"}),
      "lightning: --lr_scheduler StepLR needs --optimizer too (as in Lightning: the shorthand "
      "replaces configure_optimizers as a whole)");
  EXPECT_EQ(error_of({"fit", "--optimizer", "SGD", "--lr_scheduler", "ReduceLROnPlateau"}),
            "lightning: lr_scheduler = 'ReduceLROnPlateau' is not a class the lr_scheduler "
            "shorthand knows; it knows StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, "
            "LinearLR, OneCycleLR");
}

TEST(HyperparameterStruct, IsWhatSaveHyperparametersRecords) {
  SavedHParams h;
  L::LightningModule m;
  m.save_hyperparameters(h);
  const auto& p = m.hparams();
  ASSERT_EQ(p.size(), 7u);  // the empty optional is left out
  auto it = p.begin();
  for (const char* name : {"layers", "lr", "act", "inner.width", "name", "bn", "root"})
    EXPECT_EQ((it++)->first, name);
  EXPECT_EQ(p.find("layers")->get<std::int64_t>(), 3);
  EXPECT_EQ(p.find("lr")->get<double>(), 0.125);
  EXPECT_EQ(p.find("act")->get<std::string>(), "tanh");
  EXPECT_EQ(p.find("inner.width")->get<std::int64_t>(), 9);
  EXPECT_EQ(p.find("name")->get<std::string>(), "net");
  EXPECT_EQ(p.find("bn")->get<bool>(), true);
  EXPECT_EQ(p.find("root")->get<std::string>(), "/data");
  h.dropout = 0.5;
  m.save_hyperparameters(h);
  EXPECT_EQ(m.hparams().find("dropout")->get<double>(), 0.5);
}

// ---- The example program ----

TEST(LightningCLIExample, FitSavesItsConfigAndTheConfigReproducesTheRunBitForBit) {
  const auto first = example(quick({"--model.lr", "0.002", "--model.hidden", "64"}));
  ASSERT_EQ(first.status, 0) << first.err;
  const fs::path run0 = "lightning_logs/version_0";
  const auto config = read(run0 / "config.yaml");
  EXPECT_TRUE(config.starts_with(std::string("# lightning-cpp==") + L::version + "\n")) << config;
  EXPECT_NE(config.find("\nmodel:\n  channels: 32\n  hidden: 64\n  lr: 0.002\n"), std::string::npos)
      << config;
  // The module's struct is what hparams.yaml and the checkpoint hold.
  EXPECT_EQ(read(run0 / "hparams.yaml"), "channels: 32\nhidden: 64\nlr: 0.002\n");
  const auto checkpoints0 = files_under(run0, ".ckpt");
  ASSERT_EQ(checkpoints0.size(), 1u);
  const auto hparams = L::load_hyperparameters(checkpoints0[0]);
  EXPECT_EQ(hparams.find("lr")->get<double>(), 0.002);

  const auto second = example({"fit", "--config", (run0 / "config.yaml").string()});
  ASSERT_EQ(second.status, 0) << second.err;
  const auto checkpoints1 = files_under("lightning_logs/version_1", ".ckpt");
  ASSERT_EQ(checkpoints1.size(), 1u);
  EXPECT_EQ(checkpoints1[0].filename(), checkpoints0[0].filename());
  const auto a = weights(checkpoints0[0]), b = weights(checkpoints1[0]);
  ASSERT_EQ(a.size(), 8u);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  // The same config, saved again beside the second run (the drawn seed included).
  EXPECT_EQ(read("lightning_logs/version_1/config.yaml"), config);
}

TEST(LightningCLIExample, AnExistingConfigIsNotOverwritten) {
  const auto first = example(quick({"--trainer.logger.version", "3", "--trainer.max_epochs", "1"}));
  ASSERT_EQ(first.status, 0) << first.err;
  const fs::path file = "lightning_logs/version_3/config.yaml";
  const auto before = read(file);
  const auto second = example(quick({"--trainer.logger.version", "3", "--model.lr", "0.5"}));
  EXPECT_EQ(second.status, 1);
  EXPECT_NE(second.err.find("config.yaml already exists; fit stops so as not to overwrite"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(read(file), before);
}

TEST(LightningCLIExample, UsageErrorsExitWithStatusTwoAndWriteNothing) {
  write("bad.yaml", "trainer:\n  max_epochs: [\n");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"fit", "--trainer.max_epoch", "3"}, "did you mean --trainer.max_epochs?"},
      {{"fit", "--model.lr", "fast"},
       "model.lr = 'fast' is not a valid value: model.lr takes float"},
      {{"fit", "--config", "bad.yaml"}, "config file bad.yaml, line 3"},
      {{"fit", "--config", "nowhere.yaml"}, "config file not found: nowhere.yaml"},
      {{"fit", "--trainer.accelerator", "cpu", "--trainer.precision", "16-mixed"},
       "16-mixed runs only on CUDA"},
      {{"fit", "--trainer.max_epochs", "-5"}, "TrainerOptions.max_epochs = -5 is invalid"},
      {{"fit", "--trainer.callbacks.ModelCheckpoint.save_top_k", "-3"}, "save_top_k"},
      {{"train"}, "'train' is not a subcommand"},
      {{"fit", "--optimizer", "SGD", "--optimizer.nesterov", "true"},
       "Nesterov momentum requires a momentum"},
      {{"fit", "--optimizer", "SGD", "--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "0"},
       "step_size = 0 is not a valid value"},
  };
  for (const auto& [args, message] : cases) {
    const auto run = example(args);
    EXPECT_EQ(run.status, 2) << args.back() << "\n" << run.err;
    EXPECT_NE(run.err.find(message), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("usage: cli "), std::string::npos) << run.err;
  }
  const auto left = everything_here();
  EXPECT_EQ(left, std::vector<fs::path>{fs::current_path() / "bad.yaml"});
}

TEST(LightningCLIExample, HelpAndPrintConfig) {
  const auto help = example({"fit", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("  --model.lr float (default: 0.001)\n      Adam's learning rate\n"),
            std::string::npos)
      << help.out;
  EXPECT_NE(help.out.find("  --data.limit int | null (default: null)\n"), std::string::npos);
  EXPECT_NE(help.out.find("  --trainer.callbacks.ModelCheckpoint.monitor str"), std::string::npos);
  for (const char* sub : {"validate", "test", "predict"})
    EXPECT_EQ(example({sub, "--help"}).status, 0) << sub;

  const auto printed = example({"fit", "-c", LIGHTNING_EXAMPLE_CONFIGS "/fashion_mnist.yaml", "-c",
                                LIGHTNING_EXAMPLE_CONFIGS "/quick.yaml", "--print_config"});
  ASSERT_EQ(printed.status, 0) << printed.err;
  EXPECT_TRUE(printed.out.starts_with("seed_everything: 0\ntrainer:\n  accelerator: auto\n"))
      << printed.out;
  EXPECT_NE(printed.out.find("  max_epochs: 1\n"), std::string::npos);  // quick.yaml won
  EXPECT_NE(printed.out.find("      save_top_k: 2\n"), std::string::npos);
  EXPECT_NE(printed.out.find("  limit: 3000\n"), std::string::npos);
  EXPECT_TRUE(everything_here().empty());  // printing writes nothing
}

TEST(LightningCLIExample, ThePrecisionStringChoosesTheCompiledPolicy) {
  // 64-true: the weights the run saves are float64; bf16-mixed trains in float32.
  const auto f64 = example(quick({"--trainer.precision", "64", "--trainer.max_epochs", "1"}));
  ASSERT_EQ(f64.status, 0) << f64.err;
  const auto double_weights = weights(files_under("lightning_logs/version_0", ".ckpt").at(0));
  EXPECT_EQ(double_weights.at("fc2.weight").scalar_type(), torch::kDouble);
  EXPECT_NE(read("lightning_logs/version_0/config.yaml").find("  precision: 64-true\n"),
            std::string::npos);

  const auto bf16 =
      example(quick({"-c", LIGHTNING_EXAMPLE_CONFIGS "/bf16.yaml", "--trainer.max_epochs", "1"}));
  ASSERT_EQ(bf16.status, 0) << bf16.err;
  EXPECT_EQ(weights(files_under("lightning_logs/version_1", ".ckpt").at(0))
                .at("fc2.weight")
                .scalar_type(),
            torch::kFloat);
}

TEST(LightningCLIExample, ValidateTestAndPredictFromTheFitsCheckpoint) {
  ASSERT_EQ(example(quick({"--trainer.max_epochs", "1"})).status, 0);
  const auto checkpoint = files_under("lightning_logs/version_0", ".ckpt").at(0).string();
  const auto config = "lightning_logs/version_0/config.yaml";
  for (const char* sub : {"validate", "test", "predict"}) {
    const auto run = example({sub, "-c", config, "--ckpt_path", checkpoint});
    EXPECT_EQ(run.status, 0) << sub << "\n" << run.err;
  }
  const auto test = example({"test", "-c", config, "--ckpt_path", checkpoint});
  EXPECT_NE(test.out.find("test_acc"), std::string::npos) << test.out;
  // validate/test/predict save no config (Lightning saves it for fit only).
  const auto yaml_files = files_under("lightning_logs", ".yaml");
  EXPECT_EQ(std::count_if(yaml_files.begin(), yaml_files.end(),
                          [](const fs::path& p) { return p.filename() == "config.yaml"; }),
            1);
  const auto missing = example({"test", "-c", config, "--ckpt_path", "nope.ckpt"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("nope.ckpt"), std::string::npos) << missing.err;
}

TEST(LightningCLIExample, DevicesTwoRunsDdpAndRankZeroSavesTheConfig) {
  const auto run = example(quick(
      {"--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.max_epochs", "1"}));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(files_under("lightning_logs", ".yaml").size(), 2u);  // one run folder
  const auto config = read("lightning_logs/version_0/config.yaml");
  EXPECT_NE(config.find("  strategy: auto\n"), std::string::npos);
  EXPECT_NE(config.find("  devices: 2\n"), std::string::npos);
}

TEST(LightningCLIExample, OptimizerShorthandTrainsAsTheSameOptimizerWrittenInCode) {
  // The module's own configure_optimizers is Adam(lr 1e-3): the shorthand's Adam with the same
  // arguments trains to the same weights, bit for bit.
  ASSERT_EQ(example(quick({"--seed_everything", "5"})).status, 0);
  const auto shorthand =
      example(quick({"--seed_everything", "5", "--optimizer", "Adam", "--optimizer.lr", "0.001"}));
  ASSERT_EQ(shorthand.status, 0) << shorthand.err;
  const auto own = weights(files_under("lightning_logs/version_0", ".ckpt").at(0));
  const auto chosen = weights(files_under("lightning_logs/version_1", ".ckpt").at(0));
  for (const auto& [name, tensor] : own) EXPECT_TRUE(torch::equal(tensor, chosen.at(name))) << name;
  // Without a scheduler, the checkpoint lists none (as the module's own run).
  for (const char* run : {"lightning_logs/version_0", "lightning_logs/version_1"})
    EXPECT_EQ(L::load_checkpoint_file(files_under(run, ".ckpt").at(0))
                  .at("lr_schedulers")
                  .toList()
                  .size(),
              0u);
}

TEST(LightningCLIExample, AShorthandRunResumesExactlyWithItsScheduler) {
  const std::vector<std::string> sgd{
      "--seed_everything",    "9",   "--optimizer",    "SGD",    "--optimizer.lr",           "0.05",
      "--optimizer.momentum", "0.9", "--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1",
      "--lr_scheduler.gamma", "0.5"};
  auto two = sgd;
  two.insert(two.end(), {"--trainer.max_epochs", "2"});
  ASSERT_EQ(example(quick(two)).status, 0);  // version_0: two epochs at once
  auto one = sgd;
  one.insert(one.end(), {"--trainer.max_epochs", "1"});
  ASSERT_EQ(example(quick(one)).status, 0);  // version_1: the first epoch
  auto resumed = sgd;
  resumed.insert(resumed.end(), {"--trainer.max_epochs", "2", "--ckpt_path",
                                 files_under("lightning_logs/version_1", ".ckpt").at(0).string()});
  const auto run = example(quick(resumed));  // version_2: the second, from version_1's file
  ASSERT_EQ(run.status, 0) << run.err;
  const auto straight = files_under("lightning_logs/version_0", ".ckpt").at(0);
  const auto after_resume = files_under("lightning_logs/version_2", ".ckpt").at(0);
  const auto a = weights(straight), b = weights(after_resume);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  const auto c = L::load_checkpoint_file(after_resume);
  const auto scheduler = L::checkpoint_dict(c.at("lr_schedulers").toList().get(0));
  EXPECT_EQ(scheduler.at("last_epoch").toInt(), 2);  // StepLR steps each epoch
  EXPECT_EQ(scheduler.at("step_size").toInt(), 1);
  const auto groups =
      L::checkpoint_dict(c.at("optimizer_states").toList().get(0)).at("param_groups").toList();
  const auto group = L::checkpoint_dict(groups.get(0));
  EXPECT_DOUBLE_EQ(group.at("lr").toDouble(), 0.05 * 0.5 * 0.5);
  EXPECT_DOUBLE_EQ(group.at("momentum").toDouble(), 0.9);
}

TEST(LightningCLI, SaveConfigWritesOnRankZeroAndOverwritesOnlyWhenAsked) {
  struct FakeTrainer {
    fs::path dir;
    bool zero = true;
    [[nodiscard]] fs::path log_dir() const { return dir; }
    [[nodiscard]] bool is_global_zero() const { return zero; }
    [[nodiscard]] bool broadcast(bool v) const { return v; }
  };
  L::LightningModule module;
  FakeTrainer rank0{"run"}, rank1{"other", false};
  L::cli::SaveConfig first("a: 1\n", "config.yaml", true, false);
  first.setup(rank0, module, L::Stage::fit);
  first.setup(rank0, module, L::Stage::fit);  // once per run: a second setup writes nothing
  L::cli::SaveConfig(std::string("b: 2\n"), "config.yaml", true, false)
      .setup(rank1, module, L::Stage::fit);
  EXPECT_EQ(read("run/config.yaml"), "a: 1\n");
  EXPECT_FALSE(fs::exists("other/config.yaml"));  // only rank zero writes
  L::cli::SaveConfig validate("c: 3\n", "config.yaml", true, false);
  validate.setup(rank0, module, L::Stage::validate);  // fit only
  L::cli::SaveConfig again("d: 4\n", "config.yaml", true, false);
  L::testing::expect_error<std::runtime_error>(
      [&] { again.setup(rank0, module, L::Stage::fit); },
      "run/config.yaml already exists; fit stops so as not to overwrite the config of a "
      "previous run");
  EXPECT_EQ(read("run/config.yaml"), "a: 1\n");
  L::cli::SaveConfig overwrite("e: 5\n", "config.yaml", true, true);
  overwrite.setup(rank0, module, L::Stage::fit);
  EXPECT_EQ(read("run/config.yaml"), "e: 5\n");
  L::cli::SaveConfig off("f: 6\n", "config.yaml", false, true);
  off.setup(rank0, module, L::Stage::fit);
  EXPECT_EQ(read("run/config.yaml"), "e: 5\n");
}

TEST(LightningCLI, TheRestOfTheLibraryIncludesNeitherTheCliNorYaml) {
  // A program that does not include lightning/cli pays nothing for it.
  const fs::path include =
      fs::path(LIGHTNING_TEST_DATA_DIR).parent_path().parent_path() / "include";
  std::size_t headers = 0;
  for (const auto& e : fs::recursive_directory_iterator(include / "lightning")) {
    if (e.path().extension() != ".hpp" || e.path().parent_path() == include / "lightning" / "cli")
      continue;
    ++headers;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      if (!line.starts_with("#include")) continue;
      EXPECT_EQ(line.find("yaml-cpp"), std::string::npos) << e.path() << ": " << line;
      EXPECT_EQ(line.find("lightning/cli/"), std::string::npos) << e.path() << ": " << line;
    }
  }
  EXPECT_GT(headers, 50u);
}
