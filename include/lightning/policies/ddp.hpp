// strategies::DDP: distributed data parallel on PyTorch's own engine (Lightning's
// strategy="ddp"). The ranks meet through a TCPStore at the cluster environment's main
// address (policies/cluster_environment.hpp: SLURM, torchrun, or MASTER_ADDR/
// MASTER_PORT/WORLD_SIZE/RANK/LOCAL_RANK); gradients are averaged by c10d::Reducer
// (buckets, all-reduce overlapped with backward), driven as Python's
// DistributedDataParallel drives it; every loader iterates its rank's shard.
//
// This release: CPU with Gloo, LibTorch 2.6 or newer (the ProcessGroup of backends).
// NCCL, LibTorch 1.13's Reducer, and the launcher that starts the ranks come next
// (issue 12); until then start one process per rank yourself (torchrun, srun, or with
// the variables set).
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/torch_version.hpp>
#include <lightning/policies/cluster_environment.hpp>

#if !LIGHTNING_TORCH_AT_LEAST(2, 6)
#error "lightning: strategies::DDP needs LibTorch 2.6 or newer in this release"
#endif

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lightning::strategies {

// Lightning's DDPStrategy arguments, with its defaults.
struct DDPOptions {
  // How long a collective, or the rendezvous, may wait for the other ranks (a dead peer
  // then ends the run with an error instead of a hang).
  std::chrono::milliseconds timeout = std::chrono::seconds(1800);
  bool find_unused_parameters = false;
  bool gradient_as_bucket_view = false;
  std::int64_t bucket_cap_mb = 25;
};

class DDP {
 public:
  static constexpr std::string_view name = "ddp";

  DDP() = default;
  explicit DDP(DDPOptions options) : o_(options) {}
  DDP(const DDP&) = delete;
  DDP& operator=(const DDP&) = delete;
  DDP(DDP&&) = default;
  DDP& operator=(DDP&&) = default;
  ~DDP() { shutdown(); }

  // Joins the process group (once per process): rank zero hosts the store.
  void setup_environment() {
    if (group_) return;
    env_ = ClusterEnvironment::detect();
    world_ = env_.world_size.value_or(1);
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(env_.main_port);
    store_options.isServer = env_.global_rank == 0;
    store_options.numWorkers = static_cast<std::size_t>(world_);
    store_options.waitWorkers = true;
    store_options.timeout = o_.timeout;
    store_ = c10::make_intrusive<c10d::TCPStore>(env_.main_address, store_options);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(o_.timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    const auto rank = static_cast<int>(env_.global_rank), size = static_cast<int>(world_);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, size, gloo_options);
    group_ = c10::make_intrusive<c10d::ProcessGroup>(store_, rank, size);
    group_->setBackend(c10::kCPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    group_->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  }

  // After the precision converted the module: every rank starts from rank zero's
  // parameters and buffers, then the Reducer hooks the parameters (built last: it must
  // see the final tensors).
  void setup_module(torch::nn::Module& module, c10::Device device) {
    if (!device.is_cpu())
      throw std::invalid_argument(
          "lightning: strategies::DDP runs on the CPU (Gloo) in this release; NCCL for " +
          device.str() + " comes next");
    std::vector<torch::Tensor> params;
    std::unordered_map<std::size_t, std::string> names;
    for (const auto& p : module.named_parameters()) {
      if (!p.value().requires_grad()) continue;
      names.emplace(params.size(), p.key());
      params.push_back(p.value());
    }
    if (params.empty())
      throw std::invalid_argument(
          "lightning: strategies::DDP: the module has no parameter to train");
    c10d::verify_params_across_processes(group_, params, std::nullopt);
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> state = params;
      for (const auto& b : module.buffers()) state.push_back(b);
      for (auto& t : state) {
        std::vector<at::Tensor> one{t.detach()};
        group_->broadcast(one)->wait();
      }
    }
    const auto cap = static_cast<std::size_t>(o_.bucket_cap_mb) * 1024 * 1024;
    // As DistributedDataParallel: one bucket until the first iteration has shown the
    // order gradients arrive in (rebuild_buckets), unless unused parameters are looked for.
    const std::vector<std::size_t> limits =
        o_.find_unused_parameters
            ? std::vector<std::size_t>{static_cast<std::size_t>(c10d::kDefaultFirstBucketBytes),
                                       cap}
            : std::vector<std::size_t>{static_cast<std::size_t>(-1)};
    auto buckets = std::get<0>(c10d::compute_bucket_assignment_by_size(params, limits));
    std::reverse(buckets.begin(), buckets.end());  // roughly the order gradients arrive in
    reducer_ = std::make_unique<c10d::Reducer>(
        params, std::move(buckets), group_, std::vector<bool>(params.size(), false),
        static_cast<std::int64_t>(cap), o_.find_unused_parameters, o_.gradient_as_bucket_view,
        std::move(names), c10d::kDefaultFirstBucketBytes,
        /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
        std::vector<std::int64_t>{});
  }

  // The rank's shard of a loader that can shard itself (TensorLoader::shard); any other
  // loader is the user's to shard.
  template <class L>
  decltype(auto) process_dataloader(L&& loader) const {
    if constexpr (requires { loader.shard(std::int64_t{}, std::int64_t{}); })
      return loader.shard(rank(), world_size());
    else
      return std::forward<L>(loader);
  }

  // Python's DistributedDataParallel._pre_forward: the Reducer counts the iteration and,
  // after the first, lays its buckets out in the order gradients arrived.
  void pre_forward(torch::nn::Module&) {
    if (!reducer_ || !torch::GradMode::is_enabled()) return;
    reducer_->prepare_for_forward();
    reducer_->rebuild_buckets();
  }
  // In place: a gradient that is a view into a bucket cannot be detached or dropped.
  void zero_grad(torch::optim::Optimizer& optimizer) {
    if (!o_.gradient_as_bucket_view) {
      optimizer.zero_grad();
      return;
    }
    torch::NoGradGuard no_grad;
    for (auto& group : optimizer.param_groups())
      for (auto& p : group.params())
        if (p.grad().defined()) p.mutable_grad().zero_();
  }
  // Arms the Reducer for a backward whose gradients are averaged; an accumulation
  // micro-batch (sync false) keeps its gradients local.
  void pre_backward(const torch::Tensor& loss, bool sync) {
    if (!reducer_ || !sync) return;
    reducer_->prepare_for_backward(o_.find_unused_parameters ? std::vector<at::Tensor>{loss}
                                                             : std::vector<at::Tensor>{});
  }
  void post_backward(const torch::Tensor&, bool) noexcept {}

  [[nodiscard]] torch::Tensor reduce(const torch::Tensor& t, Reduce op = Reduce::mean) const {
    if (!group_ || world_ == 1) return t;
    std::vector<at::Tensor> one{t.detach().clone()};
    c10d::AllreduceOptions options;
    options.reduceOp = op == Reduce::max   ? c10d::ReduceOp::MAX
                       : op == Reduce::min ? c10d::ReduceOp::MIN
                                           : c10d::ReduceOp::SUM;
    group_->allreduce(one, options)->wait();
    if (op == Reduce::mean) one[0].div_(static_cast<double>(world_));
    return one[0];
  }

  // Rank zero's value on every rank.
  [[nodiscard]] bool broadcast(bool value) const { return broadcast_number(value ? 1 : 0) != 0; }
  [[nodiscard]] std::int64_t broadcast(std::int64_t value) const { return broadcast_number(value); }
  [[nodiscard]] double broadcast(double value) const {
    auto t = torch::tensor({value}, torch::kDouble);
    broadcast_tensor(t);
    return t.item<double>();
  }
  [[nodiscard]] std::string broadcast(std::string value) const {
    const auto size = broadcast_number(static_cast<std::int64_t>(value.size()));
    auto bytes = torch::zeros({size}, torch::kUInt8);
    if (rank() == 0 && size > 0) std::memcpy(bytes.data_ptr(), value.data(), value.size());
    broadcast_tensor(bytes);
    return std::string(reinterpret_cast<const char*>(bytes.data_ptr()),
                       static_cast<std::size_t>(size));
  }
  // Every rank's own decision, combined: all of them (`all`) or any of them.
  [[nodiscard]] bool reduce_boolean_decision(bool decision, bool all = true) const {
    if (!group_ || world_ == 1) return decision;
    std::vector<at::Tensor> one{torch::tensor({decision ? 1 : 0}, torch::kLong)};
    group_->allreduce(one)->wait();
    const auto agreeing = one[0].item<std::int64_t>();
    return all ? agreeing == world_ : agreeing > 0;
  }
  void barrier() const {
    if (group_) group_->barrier()->wait();
  }
  // Unhooks the module (the process group lives as long as the strategy).
  void teardown() { reducer_.reset(); }

  [[nodiscard]] std::int64_t rank() const noexcept { return env_.global_rank; }
  [[nodiscard]] std::int64_t local_rank() const noexcept { return env_.local_rank; }
  [[nodiscard]] std::int64_t world_size() const noexcept { return world_; }
  [[nodiscard]] bool is_global_zero() const noexcept { return rank() == 0; }
  [[nodiscard]] const ClusterEnvironment& cluster_environment() const noexcept { return env_; }

 private:
  void broadcast_tensor(torch::Tensor& t) const {
    if (!group_ || world_ == 1) return;
    std::vector<at::Tensor> one{t};
    group_->broadcast(one)->wait();
  }
  std::int64_t broadcast_number(std::int64_t value) const {
    auto t = torch::tensor({value}, torch::kLong);
    broadcast_tensor(t);
    return t.item<std::int64_t>();
  }
  void shutdown() noexcept {
    reducer_.reset();
    if (group_) {
      try {
        group_->shutdown();
      } catch (...) {  // at exit nothing can be done about a peer that is gone
      }
    }
    group_.reset();
    store_.reset();
  }

  DDPOptions o_;
  ClusterEnvironment env_;
  std::int64_t world_ = 1;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::unique_ptr<c10d::Reducer> reducer_;
};

static_assert(Strategy<DDP>);

}  // namespace lightning::strategies
