// strategies::DDP: distributed data parallel on PyTorch's own engine (Lightning's
// strategy="ddp"). The ranks meet through a TCPStore at the cluster environment's main
// address (policies/cluster_environment.hpp: SLURM, torchrun, or MASTER_ADDR/
// MASTER_PORT/WORLD_SIZE/RANK/LOCAL_RANK); gradients are averaged by c10d::Reducer
// (buckets, all-reduce overlapped with backward), driven as Python's
// DistributedDataParallel drives it; every loader iterates its rank's shard.
//
// With TrainerOptions.devices = N and no launcher around it (no torchrun, srun or
// LOCAL_RANK), the first fit starts the other N-1 ranks itself and supervises them
// (policies/subprocess_launcher.hpp).
//
// Backends as Python's "cpu:gloo,cuda:nccl": Gloo carries CPU tensors (the decisions the
// loop broadcasts), NCCL the CUDA ones (the gradients of a module on a GPU), compiled
// where LibTorch has CUDA (LIGHTNING_WITH_NCCL) and is 2.6 or newer. LibTorch 1.13
// (Debian's) runs it on the CPU with Gloo.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/interrupts.hpp>
#include <lightning/core/torch_version.hpp>
#include <lightning/policies/cluster_environment.hpp>
#include <lightning/policies/subprocess_launcher.hpp>

// c10d's C++ API changed between 1.13 and 2.6 (the process group of backends, the
// Reducer's arguments); the two spellings live in process_group() and make_reducer().
#if LIGHTNING_TORCH_AT_LEAST(2, 0) && !LIGHTNING_TORCH_AT_LEAST(2, 6)
#error "lightning: strategies::DDP supports LibTorch 1.13 and 2.6 or newer"
#endif
#define LIGHTNING_DDP_BACKENDS LIGHTNING_TORCH_AT_LEAST(2, 6)

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#if LIGHTNING_DDP_BACKENDS && defined(LIGHTNING_WITH_NCCL) && LIGHTNING_WITH_NCCL && \
    defined(USE_C10D_NCCL)
#define LIGHTNING_DDP_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#else
#define LIGHTNING_DDP_NCCL 0
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lightning::detail {

// The TCPStore of this process, made at the first rendezvous and kept until exit (rank
// zero hosts it), as torchrun's agent keeps its store: every process group made later by
// a new Trainer takes keys of its own (a generation prefix, the same on every rank, which
// make their Trainers in the same order). A store per group would let a rank that is
// quicker to the next group reach the previous group's server while rank zero closes it.
class ProcessStore {
 public:
  static ProcessStore& instance() {
    static ProcessStore store;
    return store;
  }
  c10::intrusive_ptr<c10d::Store> get(const std::string& address, int port, bool host,
                                      std::int64_t world, std::chrono::milliseconds timeout) {
    std::lock_guard lock(mutex_);
    if (!store_ || address != address_ || port != port_ || world != world_) {
      c10d::TCPStoreOptions options;
      options.port = static_cast<std::uint16_t>(port);
      options.isServer = host;
      options.numWorkers = static_cast<std::size_t>(world);
      options.waitWorkers = true;
      options.timeout = timeout;
      store_.reset();  // a server at the same port closes before the new one opens
      if (host) require_free_port(port, "the cluster environment's main port");
      store_ = c10::make_intrusive<c10d::TCPStore>(address, options);
      address_ = address;
      port_ = port;
      world_ = world;
    }
    return store_;
  }
  std::int64_t next_generation() {
    std::lock_guard lock(mutex_);
    return generation_++;
  }

 private:
  ProcessStore() = default;
  std::mutex mutex_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::string address_;
  int port_ = 0;
  std::int64_t world_ = 0;
  std::int64_t generation_ = 0;
};

}  // namespace lightning::detail

namespace lightning::strategies {

// Lightning's DDPStrategy arguments, with its defaults.
struct DDPOptions {
  // How long a collective, or the rendezvous, may wait for the other ranks (a dead peer
  // then ends the run with an error instead of a hang).
  std::chrono::milliseconds timeout = std::chrono::seconds(1800);
  // When a rank this process launched fails: how long the others have to end before they
  // are killed (rank 0 included, if it has not seen the failure by then).
  std::chrono::milliseconds failure_timeout = std::chrono::seconds(30);
  bool find_unused_parameters = false;
  bool gradient_as_bucket_view = false;
  std::int64_t bucket_cap_mb = 25;
};

class DDP {
 public:
  static constexpr std::string_view name = "ddp";
  static constexpr std::string_view lightning_class = "DDPStrategy";  // profiler rows

  DDP() = default;
  explicit DDP(DDPOptions options) : o_(options) {}
  DDP(const DDP&) = delete;
  DDP& operator=(const DDP&) = delete;
  DDP(DDP&&) = default;
  DDP& operator=(DDP&&) = default;
  ~DDP() { shutdown(); }

  // TrainerOptions.devices (nullopt: "auto") and num_nodes.
  void configure_processes(std::optional<std::int64_t> devices, std::int64_t num_nodes) {
    devices_ = devices;
    num_nodes_ = num_nodes;
  }

  // Joins the process group (once per process): rank zero hosts the store. Without a
  // launcher around this process, devices > 1 starts the other local ranks first.
  void setup_environment() {
    if (group_) return;
    detail::follow_launcher();
    env_ = ClusterEnvironment::detect();
    if (!env_.creates_processes_externally && devices_.value_or(1) * num_nodes_ > 1) {
      detail::Supervisor::instance().launch(*devices_, num_nodes_, env_.node_rank,
                                            o_.failure_timeout);
      env_ = ClusterEnvironment::detect();
    }
    world_ = env_.world_size.value_or(devices_.value_or(1) * num_nodes_);
    if (devices_ && *devices_ * num_nodes_ != world_)
      throw_bad_option("TrainerOptions", "devices", std::to_string(*devices_),
                       "the " + std::string(env_.kind_name()) + " environment started " +
                           std::to_string(world_) + " processes, not devices x num_nodes = " +
                           std::to_string(*devices_ * num_nodes_) +
                           "; set devices to the processes per node (or leave it unset)");
    auto& shared = detail::ProcessStore::instance();
    store_ = c10::make_intrusive<c10d::PrefixStore>(
        "group" + std::to_string(shared.next_generation()) + "/",
        shared.get(env_.main_address, env_.main_port, env_.global_rank == 0, world_, o_.timeout));
    group_ = process_group();
  }

  // After the precision converted the module: every rank starts from rank zero's
  // parameters and buffers, then the Reducer hooks the parameters (built last: it must
  // see the final tensors).
  void setup_module(torch::nn::Module& module, c10::Device device) {
    if (device.is_cuda())
      add_nccl(device);
    else if (!device.is_cpu())
      throw std::invalid_argument(
          "lightning: strategies::DDP runs on the CPU (Gloo) and on "
          "CUDA (NCCL), not on " +
          device.str());
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
    c10d::verify_params_across_processes(group_, params, {});
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> state = params;
      for (const auto& b : module.buffers()) state.push_back(b);
      for (auto& t : state) {
        std::vector<at::Tensor> one{t.detach()};
        group_->broadcast(one)->wait();
      }
    }
    reducer_ = make_reducer(std::move(params), std::move(names));
  }

  // The rank's shard of a loader that can shard itself (TensorLoader::shard); any other
  // loader is the user's to shard. Without the distributed sampler (Lightning's
  // use_distributed_sampler=False) every rank iterates all of it: a copy, so that the
  // type is the shard's either way.
  template <class L>
  decltype(auto) process_dataloader(L&& loader, bool use_distributed_sampler = true) const {
    if constexpr (requires { loader.shard(std::int64_t{}, std::int64_t{}); }) {
      if (!use_distributed_sampler) return std::remove_cvref_t<L>(loader);
      return loader.shard(rank(), world_size());
    } else {
      return std::forward<L>(loader);
    }
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

  // Whether any rank was interrupted, without a wait at each step: every call starts the
  // all-reduce of this rank's flag and answers with the one the previous call started
  // (done meanwhile), so all ranks give the same answer at the same step boundary, one
  // step after the signal. Two preallocated flags: no allocation of tensors per step.
  [[nodiscard]] bool agree_on_interrupt(bool mine) {
    if (!group_ || world_ == 1) return mine;
    bool any = false;
    if (interrupt_work_) {
      interrupt_work_->wait();
      any = interrupt_flags_[interrupt_slot_][0].data_ptr<std::int64_t>()[0] > 0;
      interrupt_slot_ ^= 1;
    }
    auto& flag = interrupt_flags_[interrupt_slot_];
    if (flag.empty()) flag.push_back(torch::zeros({1}, torch::kLong));
    flag[0].data_ptr<std::int64_t>()[0] = mine ? 1 : 0;
    interrupt_work_ = group_->allreduce(flag);
    // Rank 0 tells its supervisor now, not after the checkpoint and on_exception: a copy
    // may stop and exit with 128 + the signal before then, and that is no failure.
    if (any && detail::Supervisor::instance().launched())
      detail::Supervisor::instance().interrupted();
    return any;
  }

  // This rank failed. On the rank that launched the others, an error of a collective is
  // most likely another rank's end: that rank's error (its exit and last error output)
  // is thrown instead. Any other error is this rank's own: the ranks it started, which
  // would wait for it, are stopped. An agreed interrupt ends every rank by itself.
  void handle_failure(const std::exception& error) {
    auto& supervisor = detail::Supervisor::instance();
    if (!supervisor.launched()) return;
    if (dynamic_cast<const Interrupted*>(&error) != nullptr) {
      supervisor.interrupted();
      return;
    }
    if (is_collective_error(error))
      if (auto failure = supervisor.failure(o_.failure_timeout)) throw RankFailure(*failure);
    if (dynamic_cast<const RankFailure*>(&error) == nullptr) supervisor.abandon();
  }

  // A collective that broke: c10d's own errors, and Gloo's, which reach C++ as they are
  // (gloo::IoException, whose header the wheel does not ship: known by its text).
  static bool is_collective_error(const std::exception& error) {
#if LIGHTNING_DDP_BACKENDS
    if (dynamic_cast<const c10::DistError*>(&error) != nullptr) return true;
#endif
    const std::string_view what = error.what();
    for (const std::string_view sign :
         {"gloo/", "Connection reset by peer", "Connection closed by peer", "Broken pipe"})
      if (what.find(sign) != std::string_view::npos) return true;
    return false;
  }

  // Unhooks the module (the process group lives as long as the strategy).
  void teardown() {
    if (interrupt_work_) std::exchange(interrupt_work_, {})->wait();
    reducer_.reset();
  }

  [[nodiscard]] std::int64_t rank() const noexcept {
    return env_.global_rank;
  }
  [[nodiscard]] std::int64_t local_rank() const noexcept {
    return env_.local_rank;
  }
  [[nodiscard]] std::int64_t world_size() const noexcept {
    return world_;
  }
  [[nodiscard]] bool is_global_zero() const noexcept {
    return rank() == 0;
  }
  [[nodiscard]] const ClusterEnvironment& cluster_environment() const noexcept {
    return env_;
  }

 private:
  // Gloo for the CPU (2.6+: a process group of backends, NCCL added for CUDA later; 1.13:
  // ProcessGroupGloo is the process group).
  c10::intrusive_ptr<c10d::ProcessGroup> process_group() const {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(o_.timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    const auto rank = static_cast<int>(env_.global_rank), size = static_cast<int>(world_);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, size, gloo_options);
#if LIGHTNING_DDP_BACKENDS
    auto group = c10::make_intrusive<c10d::ProcessGroup>(store_, rank, size);
    group->setBackend(c10::kCPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    return group;
#else
    return gloo;
#endif
  }

  // As DistributedDataParallel builds it: one bucket until the first iteration has shown
  // the order gradients arrive in (rebuild_buckets), unless unused parameters are looked
  // for; buckets reversed, roughly the order gradients arrive in.
  std::unique_ptr<c10d::Reducer> make_reducer(std::vector<torch::Tensor> params,
                                              std::unordered_map<std::size_t, std::string> names) {
    const auto cap = static_cast<std::size_t>(o_.bucket_cap_mb) * 1024 * 1024;
    const std::vector<std::size_t> limits =
        o_.find_unused_parameters
            ? std::vector<std::size_t>{static_cast<std::size_t>(c10d::kDefaultFirstBucketBytes),
                                       cap}
            : std::vector<std::size_t>{static_cast<std::size_t>(-1)};
    const std::vector<bool> sparse(params.size(), false);
    auto [buckets, bucket_limits] = c10d::compute_bucket_assignment_by_size(params, limits, sparse);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(bucket_limits.begin(), bucket_limits.end());
#if LIGHTNING_DDP_BACKENDS
    return std::make_unique<c10d::Reducer>(
        std::move(params), std::move(buckets), group_, sparse, static_cast<std::int64_t>(cap),
        o_.find_unused_parameters, o_.gradient_as_bucket_view, std::move(names),
        c10d::kDefaultFirstBucketBytes, /*skip_all_reduce_unused_params=*/false,
        /*use_python_reducer=*/false, std::vector<std::int64_t>{});
#else
    return std::make_unique<c10d::Reducer>(
        std::move(params), std::move(buckets), std::move(bucket_limits), group_, sparse,
        static_cast<std::int64_t>(cap), o_.find_unused_parameters, o_.gradient_as_bucket_view,
        std::move(names), c10d::kDefaultFirstBucketBytes);
#endif
  }

  // CUDA tensors go through NCCL (once per process group), bound to this rank's device.
  void add_nccl([[maybe_unused]] c10::Device device) {
#if LIGHTNING_DDP_NCCL
    if (has_nccl_) return;
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = o_.timeout;
    options->is_high_priority_stream = false;
    const auto rank = static_cast<int>(env_.global_rank), size = static_cast<int>(world_);
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl/", store_), rank, size, options);
    nccl->setBoundDeviceId(device);
    group_->setBackend(c10::kCUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    has_nccl_ = true;
#else
    throw std::invalid_argument(
        "lightning: strategies::DDP on " + device.str() +
        " needs NCCL, and this program was built without it (a LibTorch without CUDA, or "
        "LIGHTNING_CUDA=OFF)");
#endif
  }

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
    interrupt_work_.reset();
    reducer_.reset();
#if LIGHTNING_DDP_BACKENDS
    if (group_) {
      try {
        group_->shutdown();
      } catch (...) {  // at exit nothing can be done about a peer that is gone
      }
    }
#endif
    group_.reset();
    store_.reset();
  }

  DDPOptions o_;
  std::optional<std::int64_t> devices_;
  std::int64_t num_nodes_ = 1;
  ClusterEnvironment env_;
  std::int64_t world_ = 1;
  c10::intrusive_ptr<c10d::Work> interrupt_work_;
  std::vector<at::Tensor> interrupt_flags_[2];  // allreduce's argument, one tensor each
  int interrupt_slot_ = 0;
  bool has_nccl_ = false;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::unique_ptr<c10d::Reducer> reducer_;
};

static_assert(Strategy<DDP>);

}  // namespace lightning::strategies
