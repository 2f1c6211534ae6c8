// Batches: any nesting of tuples, pairs, vectors, arrays, maps, optionals, LibTorch
// `data::Example`s and Boost.Hana structs whose leaves are tensors (or plain values,
// passed through). `map_tensors` rebuilds a batch with a function applied to every
// tensor; batch transfer and precision casts are both written with it.
#pragma once

#include <torch/torch.h>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lightning {

// The batch of a TensorLoader: a tuple of tensors, usable with structured bindings.
template <class... Ts>
using Batch = std::tuple<Ts...>;

namespace detail {
template <class T>
struct is_tuple_like : std::false_type {};
template <class... T>
struct is_tuple_like<std::tuple<T...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T>
struct is_map : std::false_type {};
template <class K, class V, class C, class A>
struct is_map<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct is_map<std::unordered_map<K, V, H, E, A>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_example : std::false_type {};
template <class D, class T>
struct is_example<torch::data::Example<D, T>> : std::true_type {};
template <class T>
inline constexpr bool is_hana_struct = boost::hana::Struct<T>::value;
}  // namespace detail

// Returns a batch of the same type with `f(tensor)` in place of every tensor.
template <class B, class F>
B map_tensors(const B& batch, F&& f) {
  using T = std::remove_cvref_t<B>;
  if constexpr (std::is_same_v<T, torch::Tensor>) {
    return f(batch);
  } else if constexpr (detail::is_tuple_like<T>::value) {
    return std::apply([&](const auto&... e) { return T{map_tensors(e, f)...}; }, batch);
  } else if constexpr (detail::is_vector<T>::value) {
    T out;
    out.reserve(batch.size());
    for (const auto& e : batch) out.push_back(map_tensors(e, f));
    return out;
  } else if constexpr (detail::is_std_array<T>::value) {
    T out;
    for (std::size_t i = 0; i < batch.size(); ++i) out[i] = map_tensors(batch[i], f);
    return out;
  } else if constexpr (detail::is_map<T>::value) {
    T out;
    for (const auto& [k, v] : batch) out.emplace(k, map_tensors(v, f));
    return out;
  } else if constexpr (detail::is_optional<T>::value) {
    return batch ? T{map_tensors(*batch, f)} : T{};
  } else if constexpr (detail::is_example<T>::value) {
    return T{map_tensors(batch.data, f), map_tensors(batch.target, f)};
  } else if constexpr (detail::is_hana_struct<T>) {
    T out = batch;
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
      auto get = boost::hana::second(pair);
      get(out) = map_tensors(get(batch), f);
    });
    return out;
  } else {
    return batch;  // plain values (ids, strings, numbers) travel unchanged
  }
}

// Calls `f(tensor)` for every tensor of a batch, in order; stops when f returns true.
template <class B, class F>
bool visit_tensors(const B& batch, F&& f) {
  using T = std::remove_cvref_t<B>;
  if constexpr (std::is_same_v<T, torch::Tensor>) {
    return f(batch);
  } else if constexpr (detail::is_tuple_like<T>::value) {
    return std::apply([&](const auto&... e) { return (visit_tensors(e, f) || ...); }, batch);
  } else if constexpr (detail::is_vector<T>::value || detail::is_std_array<T>::value) {
    for (const auto& e : batch)
      if (visit_tensors(e, f)) return true;
    return false;
  } else if constexpr (detail::is_map<T>::value) {
    for (const auto& kv : batch)
      if (visit_tensors(kv.second, f)) return true;
    return false;
  } else if constexpr (detail::is_optional<T>::value) {
    return batch && visit_tensors(*batch, f);
  } else if constexpr (detail::is_example<T>::value) {
    return visit_tensors(batch.data, f) || visit_tensors(batch.target, f);
  } else if constexpr (detail::is_hana_struct<T>) {
    bool stop = false;
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
      if (!stop) stop = visit_tensors(boost::hana::second(pair)(batch), f);
    });
    return stop;
  } else {
    return false;
  }
}

// Moves every tensor of a batch to `device`; tensors already there are not touched.
template <class B>
B transfer_batch(const B& batch, c10::Device device, bool non_blocking = false) {
  return map_tensors(batch, [&](const torch::Tensor& t) {
    return !t.defined() || t.device() == device ? t : t.to(device, non_blocking);
  });
}

// Lightning's batch-size inference: the first dimension of the first tensor (1 if none).
template <class B>
std::int64_t infer_batch_size(const B& batch) {
  std::int64_t n = 1;
  visit_tensors(batch, [&](const torch::Tensor& t) {
    if (!t.defined()) return false;
    n = t.dim() > 0 ? t.size(0) : 1;
    return true;
  });
  return n;
}

}  // namespace lightning
