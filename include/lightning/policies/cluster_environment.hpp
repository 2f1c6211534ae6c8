// Where this process sits in a distributed job, read from the environment the launcher
// set, as Lightning's cluster environments read it (lightning_fabric/plugins/
// environments): SLURM (srun), torchrun (torchelastic), else Lightning's own variables
// (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK), which our launcher
// sets when it starts the ranks. The DDP strategy rendezvouses at main_address:main_port.
// Torch-free.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace lightning {

// Reads one environment variable; unset is nullopt. Tests pass their own.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string&)>;

inline std::optional<std::string> process_environment(const std::string& name) {
  if (const char* value = std::getenv(name.c_str())) return std::string(value);
  return std::nullopt;
}

struct ClusterEnvironment {
  enum class Kind { lightning, torchelastic, slurm };
  Kind kind = Kind::lightning;
  std::string main_address = "127.0.0.1";
  int main_port = 12910;
  // Unset under Lightning's variables until a launcher sets WORLD_SIZE; the strategy then
  // takes devices x num_nodes.
  std::optional<std::int64_t> world_size = std::nullopt;
  std::int64_t global_rank = 0;
  std::int64_t local_rank = 0;
  std::int64_t node_rank = 0;
  // Whether the ranks were started by someone else (srun, torchrun, or a process that
  // already has LOCAL_RANK): then this process is one rank and launches nothing.
  bool creates_processes_externally = false;

  [[nodiscard]] std::string_view kind_name() const noexcept {
    switch (kind) {
      case Kind::slurm:
        return "SLURM";
      case Kind::torchelastic:
        return "torchelastic (torchrun)";
      default:
        return "Lightning";
    }
  }

  // SLURM's first host: "host0 host1", "host0,host1", "node[5-9]" and "node[5,7]" give
  // host0, host0, node5 and node5 (Lightning's resolve_root_node_address).
  static std::string root_node_address(std::string nodes) {
    nodes = std::regex_replace(nodes, std::regex(R"(\[(.*?)[,-].*\])"), "$1");
    nodes = std::regex_replace(nodes, std::regex(R"(\[(.*?)\])"), "$1");
    nodes = nodes.substr(0, nodes.find(' '));
    return nodes.substr(0, nodes.find(','));
  }

  // Detects the environment as Lightning does (SLURM, then torchelastic, else its own)
  // and reads it. Malformed values are errors naming the variable and its value.
  static ClusterEnvironment detect(const EnvironmentLookup& env = process_environment) {
    ClusterEnvironment c;
    const auto job_name = env("SLURM_JOB_NAME");
    const bool interactive = job_name && (*job_name == "bash" || *job_name == "interactive");
    if (env("SLURM_NTASKS") && !interactive) {
      c.kind = Kind::slurm;
      c.creates_processes_externally = true;
      c.world_size = integer(env, "SLURM_NTASKS");
      if (*c.world_size > 1 && !env("SLURM_NTASKS_PER_NODE"))
        throw std::invalid_argument(
            "lightning: SLURM runs " + std::to_string(*c.world_size) +
            " tasks (--ntasks), which Lightning does not support: use --ntasks-per-node=" +
            std::to_string(*c.world_size) + " instead");
      c.global_rank = integer(env, "SLURM_PROCID");
      c.local_rank = integer(env, "SLURM_LOCALID");
      c.node_rank = integer(env, "SLURM_NODEID");
      c.main_address =
          env("MASTER_ADDR")
              .value_or(root_node_address(env("SLURM_NODELIST").value_or("127.0.0.1")));
      if (env("MASTER_PORT"))
        c.main_port = port(env, "MASTER_PORT");
      else if (const auto job = env("SLURM_JOB_ID"))
        c.main_port =
            15000 + static_cast<int>(parse("SLURM_JOB_ID",
                                           job->size() > 4 ? job->substr(job->size() - 4) : *job));
    } else if (env("TORCHELASTIC_RUN_ID")) {
      c.kind = Kind::torchelastic;
      c.creates_processes_externally = true;
      c.world_size = integer(env, "WORLD_SIZE");
      c.global_rank = integer(env, "RANK");
      c.local_rank = integer(env, "LOCAL_RANK");
      c.node_rank = optional_integer(env, "GROUP_RANK").value_or(0);
      c.main_address = env("MASTER_ADDR").value_or("127.0.0.1");
      if (env("MASTER_PORT")) c.main_port = port(env, "MASTER_PORT");
    } else {
      c.creates_processes_externally = env("LOCAL_RANK").has_value();
      c.world_size = optional_integer(env, "WORLD_SIZE");
      c.global_rank = optional_integer(env, "RANK").value_or(0);
      c.local_rank = optional_integer(env, "LOCAL_RANK").value_or(0);
      c.node_rank = optional_integer(env, "NODE_RANK")
                        .value_or(optional_integer(env, "GROUP_RANK").value_or(0));
      c.main_address = env("MASTER_ADDR").value_or("127.0.0.1");
      if (env("MASTER_PORT")) c.main_port = port(env, "MASTER_PORT");
    }
    c.validate();
    return c;
  }

 private:
  void validate() const {
    if (global_rank < 0 || local_rank < 0 || node_rank < 0)
      throw std::invalid_argument(
          "lightning: the " + std::string(kind_name()) +
          " environment gives a negative rank (global " + std::to_string(global_rank) + ", local " +
          std::to_string(local_rank) + ", node " + std::to_string(node_rank) + ")");
    if (world_size && (*world_size < 1 || global_rank >= *world_size))
      throw std::invalid_argument("lightning: the " + std::string(kind_name()) +
                                  " environment gives rank " + std::to_string(global_rank) +
                                  " of a world of " + std::to_string(*world_size) +
                                  " processes; the rank must be below the world size");
  }
  static std::int64_t parse(const std::string& name, std::string_view text) {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty())
      throw std::invalid_argument("lightning: environment variable " + name + " = \"" +
                                  std::string(text) + "\" is not an integer");
    return value;
  }
  static std::optional<std::int64_t> optional_integer(const EnvironmentLookup& env,
                                                      const std::string& name) {
    const auto text = env(name);
    return text ? std::optional(parse(name, *text)) : std::nullopt;
  }
  static std::int64_t integer(const EnvironmentLookup& env, const std::string& name) {
    const auto text = env(name);
    if (!text)
      throw std::invalid_argument("lightning: environment variable " + name +
                                  " is not set, but the launcher's other variables say it must be");
    return parse(name, *text);
  }
  static int port(const EnvironmentLookup& env, const std::string& name) {
    const auto value = parse(name, *env(name));
    if (value < 1 || value > 65535)
      throw std::invalid_argument("lightning: environment variable " + name + " = " +
                                  std::to_string(value) + " is not a TCP port (1 to 65535)");
    return static_cast<int>(value);
  }
};

}  // namespace lightning
