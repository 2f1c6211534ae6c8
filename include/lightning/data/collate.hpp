// default_collate (torch.utils.data.default_collate): a list of examples to one batch.
// Tensors are stacked, numbers become a tensor (integers int64, floating point float64,
// as Python makes them), strings a vector, tuples and pairs are collated field by field.
// Any other example type needs the loader's `.collate`.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning::data {

// The batch type of examples that default_collate cannot collate.
struct NoDefaultCollate {};

namespace detail {
template <class T>
struct collated {
  using type = NoDefaultCollate;
};
template <>
struct collated<torch::Tensor> {
  using type = torch::Tensor;
};
template <class T>
requires std::is_arithmetic_v<T>
struct collated<T> {
  using type = torch::Tensor;
};
template <>
struct collated<std::string> {
  using type = std::vector<std::string>;
};
template <class... T>
struct collated<std::tuple<T...>> {
  using type =
      std::conditional_t<(std::is_same_v<typename collated<T>::type, NoDefaultCollate> || ...),
                         NoDefaultCollate, std::tuple<typename collated<T>::type...>>;
};
template <class A, class B>
struct collated<std::pair<A, B>> : collated<std::tuple<A, B>> {};

template <class T, class Get>
auto collate_field(std::vector<T>& examples, Get get) {
  using F = std::remove_cvref_t<decltype(get(examples.front()))>;
  if constexpr (std::is_same_v<F, torch::Tensor>) {
    std::vector<torch::Tensor> parts;
    parts.reserve(examples.size());
    for (auto& e : examples) parts.push_back(std::move(get(e)));
    return torch::stack(parts);
  } else if constexpr (std::is_same_v<F, bool> || std::is_integral_v<F>) {
    auto out = torch::empty({static_cast<std::int64_t>(examples.size())}, torch::kLong);
    auto* p = out.data_ptr<std::int64_t>();
    for (auto& e : examples) *p++ = static_cast<std::int64_t>(get(e));
    return out;
  } else if constexpr (std::is_floating_point_v<F>) {
    auto out = torch::empty({static_cast<std::int64_t>(examples.size())}, torch::kDouble);
    auto* p = out.data_ptr<double>();
    for (auto& e : examples) *p++ = static_cast<double>(get(e));
    return out;
  } else if constexpr (std::is_same_v<F, std::string>) {
    std::vector<std::string> out;
    out.reserve(examples.size());
    for (auto& e : examples) out.push_back(std::move(get(e)));
    return out;
  } else {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::tuple{
          collate_field(examples, [&](T& e) -> decltype(auto) { return std::get<I>(get(e)); })...};
    }
    (std::make_index_sequence<std::tuple_size_v<F>>{});
  }
}
}  // namespace detail

// The batch default_collate makes of examples of type T (NoDefaultCollate: none).
template <class T>
using default_collate_t = typename detail::collated<std::remove_cvref_t<T>>::type;

template <class T>
concept DefaultCollatable = !std::is_same_v<default_collate_t<T>, NoDefaultCollate>;

// Consumes the examples (tensors are moved into the stack's input, not copied twice).
template <DefaultCollatable T>
default_collate_t<T> default_collate(std::vector<T>&& examples) {
  if (examples.empty())
    throw std::invalid_argument("lightning: default_collate needs at least one example");
  return detail::collate_field(examples, [](T& e) -> T& { return e; });
}

}  // namespace lightning::data
