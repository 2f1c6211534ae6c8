// A module's hyperparameters declared once, as a struct Boost.Hana can see
// (BOOST_HANA_DEFINE_STRUCT / BOOST_HANA_ADAPT_STRUCT): the same struct fills the
// command line's --model.* options (lightning/cli) and is what save_hyperparameters
// records, hparams.yaml and the checkpoint's hyper_parameters hold.
//
//   struct Hyperparameters { double lr = 1e-3; std::int64_t hidden = 128; };
//   BOOST_HANA_ADAPT_STRUCT(Hyperparameters, lr, hidden);
//   save_hyperparameters(h);   // {"lr": 0.001, "hidden": 128}
//
// Fields may be bools, integers, floating values, strings, paths, enums with an
// EnumNames table, std::optional of those (an empty one is left out: HParams has no
// null) and nested structs (their fields named "outer.inner").
#pragma once

#include <lightning/core/hyperparameters.hpp>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include <array>
#include <concepts>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace lightning {

// A struct whose fields Boost.Hana can list.
template <class S>
concept HyperparameterStruct = boost::hana::Struct<S>::value;

// The names an enum's values have in configs and hyperparameters, e.g.
//   template <> struct lightning::EnumNames<Mode> {
//     static constexpr std::array<std::pair<Mode, std::string_view>, 2> values{
//         {{Mode::min, "min"}, {Mode::max, "max"}}};
//   };
template <class E>
struct EnumNames;

template <class E>
concept NamedEnum = std::is_enum_v<E> && requires {
  EnumNames<E>::values;
};

template <NamedEnum E>
std::string_view enum_name(E value) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (v == value) return name;
  return "?";
}

namespace detail {

template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};

template <class T>
void add_hparam(HParams& out, const std::string& name, const T& value) {
  if constexpr (is_std_optional<T>::value) {
    if (value) add_hparam(out, name, *value);
  } else if constexpr (HyperparameterStruct<T>) {
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
      add_hparam(out, name + "." + boost::hana::to<const char*>(boost::hana::first(pair)),
                 boost::hana::second(pair)(value));
    });
  } else if constexpr (std::same_as<T, bool> || std::integral<T> || std::floating_point<T> ||
                       std::convertible_to<const T&, std::string>) {
    out.set(name, HParam(value));
  } else if constexpr (std::same_as<T, std::filesystem::path>) {
    out.set(name, HParam(value.string()));
  } else if constexpr (NamedEnum<T>) {
    out.set(name, HParam(enum_name(value)));
  } else {
    static_assert(std::is_void_v<T>,
                  "lightning: a hyperparameter field must be a bool, an integer, a floating "
                  "value, a string, a path, an enum with a name, std::optional of one, or a "
                  "nested Hana struct");
  }
}

}  // namespace detail

// The struct's fields as HParams, in declaration order.
template <HyperparameterStruct S>
HParams to_hparams(const S& hparams) {
  HParams out;
  boost::hana::for_each(boost::hana::accessors<S>(), [&](auto pair) {
    detail::add_hparam(out, boost::hana::to<const char*>(boost::hana::first(pair)),
                       boost::hana::second(pair)(hparams));
  });
  return out;
}

}  // namespace lightning
