// Cluster environments: what SLURM, torchrun and Lightning's own launcher set is read as
// Lightning reads it, and malformed values are errors that name the variable.
#include <gtest/gtest.h>

#include <lightning/policies/cluster_environment.hpp>

#include <map>
#include <stdexcept>
#include <string>

namespace {

using lightning::ClusterEnvironment;

lightning::EnvironmentLookup environment(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional(it->second);
  };
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    ClusterEnvironment::detect(environment(vars));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ClusterEnvironment, NothingSetIsOneProcessOnThisHost) {
  const auto c = ClusterEnvironment::detect(environment({}));
  EXPECT_EQ(c.kind, ClusterEnvironment::Kind::lightning);
  EXPECT_FALSE(c.creates_processes_externally);
  EXPECT_FALSE(c.world_size.has_value());
  EXPECT_EQ(c.global_rank, 0);
  EXPECT_EQ(c.main_address, "127.0.0.1");
  EXPECT_EQ(c.main_port, 12910);
}

TEST(ClusterEnvironment, LightningsVariablesAsOurLauncherSetsThem) {
  const auto c = ClusterEnvironment::detect(environment({{"MASTER_ADDR", "10.0.0.7"},
                                                         {"MASTER_PORT", "29501"},
                                                         {"WORLD_SIZE", "4"},
                                                         {"RANK", "3"},
                                                         {"LOCAL_RANK", "1"},
                                                         {"NODE_RANK", "1"}}));
  EXPECT_EQ(c.kind, ClusterEnvironment::Kind::lightning);
  EXPECT_TRUE(c.creates_processes_externally);  // LOCAL_RANK: started by someone else
  EXPECT_EQ(c.main_address, "10.0.0.7");
  EXPECT_EQ(c.main_port, 29501);
  EXPECT_EQ(c.world_size, 4);
  EXPECT_EQ(c.global_rank, 3);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.node_rank, 1);
}

TEST(ClusterEnvironment, TorchrunIsDetectedByItsRunId) {
  const auto c = ClusterEnvironment::detect(environment({{"TORCHELASTIC_RUN_ID", "abc"},
                                                         {"MASTER_ADDR", "node1"},
                                                         {"MASTER_PORT", "29400"},
                                                         {"WORLD_SIZE", "8"},
                                                         {"RANK", "5"},
                                                         {"LOCAL_RANK", "1"},
                                                         {"GROUP_RANK", "2"}}));
  EXPECT_EQ(c.kind, ClusterEnvironment::Kind::torchelastic);
  EXPECT_TRUE(c.creates_processes_externally);
  EXPECT_EQ(c.world_size, 8);
  EXPECT_EQ(c.global_rank, 5);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.node_rank, 2);
  EXPECT_EQ(c.main_address, "node1");
  EXPECT_EQ(c.main_port, 29400);
  EXPECT_NE(error_of({{"TORCHELASTIC_RUN_ID", "abc"}, {"RANK", "0"}, {"LOCAL_RANK", "0"}})
                .find("WORLD_SIZE is not set"),
            std::string::npos);
}

TEST(ClusterEnvironment, SlurmGivesRanksTheRootNodeAndAPortFromTheJobId) {
  const auto c = ClusterEnvironment::detect(environment({{"SLURM_NTASKS", "4"},
                                                         {"SLURM_NTASKS_PER_NODE", "2"},
                                                         {"SLURM_PROCID", "3"},
                                                         {"SLURM_LOCALID", "1"},
                                                         {"SLURM_NODEID", "1"},
                                                         {"SLURM_NODELIST", "gpu[017-018]"},
                                                         {"SLURM_JOB_ID", "1234567"},
                                                         {"SLURM_JOB_NAME", "train"}}));
  EXPECT_EQ(c.kind, ClusterEnvironment::Kind::slurm);
  EXPECT_TRUE(c.creates_processes_externally);
  EXPECT_EQ(c.world_size, 4);
  EXPECT_EQ(c.global_rank, 3);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.node_rank, 1);
  EXPECT_EQ(c.main_address, "gpu017");
  EXPECT_EQ(c.main_port, 15000 + 4567);  // Lightning's: the job id's last 4 digits + 15000
  // An interactive allocation (job name bash or interactive) is not a SLURM launch.
  const auto shell = ClusterEnvironment::detect(
      environment({{"SLURM_NTASKS", "1"}, {"SLURM_JOB_NAME", "interactive"}}));
  EXPECT_EQ(shell.kind, ClusterEnvironment::Kind::lightning);
}

TEST(ClusterEnvironment, RootNodeAddressIsLightningsFirstHost) {
  EXPECT_EQ(ClusterEnvironment::root_node_address("host0 host1 host3"), "host0");
  EXPECT_EQ(ClusterEnvironment::root_node_address("host0,host1,host3"), "host0");
  EXPECT_EQ(ClusterEnvironment::root_node_address("host[5-9]"), "host5");
  EXPECT_EQ(ClusterEnvironment::root_node_address("host[5,7,9]"), "host5");
  EXPECT_EQ(ClusterEnvironment::root_node_address("host[5]"), "host5");
  EXPECT_EQ(ClusterEnvironment::root_node_address("alpha,beta[1-3]"), "alpha");
}

TEST(ClusterEnvironment, MalformedValuesAreErrorsNamingTheVariable) {
  EXPECT_NE(error_of({{"RANK", "one"}}).find("RANK = \"one\" is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"MASTER_PORT", "70000"}}).find("MASTER_PORT = 70000 is not a TCP port"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}}).find("rank must be below the world size"),
      std::string::npos);
  EXPECT_NE(error_of({{"SLURM_NTASKS", "4"},
                      {"SLURM_PROCID", "0"},
                      {"SLURM_LOCALID", "0"},
                      {"SLURM_NODEID", "0"}})
                .find("use --ntasks-per-node=4"),
            std::string::npos);
}
