// rproxy/config/field.hpp: config structs, declared once with Hana, plus one line of docs per
// field.
//
// A config struct is an aggregate reflected by Boost.Hana. Default member initializers are the
// defaults (a missing key keeps them), so BOOST_HANA_ADAPT_STRUCT next to a plain struct is the
// usual form; BOOST_HANA_DEFINE_STRUCT works too when the defaults are the types' own.
// Descriptions, and which fields are required, go in a static describe() keyed by member
// pointers, so a misspelled member does not compile and the name is never written as text:
//
//     struct route {
//       std::string host;
//       std::string pool;
//       std::chrono::milliseconds connect_timeout{5000};
//
//       static constexpr auto describe() {
//         using namespace rproxy::config;
//         return fields(required(&route::host, "hostname players connect with, e.g. lobby.example.com"),
//                       required(&route::pool, "backend pool that serves this host"),
//                       doc(&route::connect_timeout, "give up on a backend after this long"));
//       }
//       // optional: one line about the whole struct, shown in the reference
//       static constexpr std::string_view summary = "one hostname and where it goes";
//     };
//     BOOST_HANA_ADAPT_STRUCT(route, host, pool, connect_timeout);   // at global namespace scope
//
// The YAML key of a field is its C++ name. decode(), starter_config() and reference_markdown()
// all read this one declaration.
#pragma once

#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/define_struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace rproxy::config {

/// One field's documentation: which member, a one-line description, and whether it must be set.
template <class C, class M>
struct field_doc {
  M C::*member;
  std::string_view description;
  bool required = false;
};

/// A documented optional field: a missing key keeps the default member initializer.
template <class C, class M>
constexpr field_doc<C, M> doc(M C::*member, std::string_view description) {
  return {member, description, false};
}

/// A documented field that the file must set.
template <class C, class M>
constexpr field_doc<C, M> required(M C::*member, std::string_view description) {
  return {member, description, true};
}

/// The list a describe() returns.
template <class... Docs>
constexpr std::tuple<Docs...> fields(Docs... docs) {
  return {docs...};
}

/// A struct reflected with BOOST_HANA_ADAPT_STRUCT or BOOST_HANA_DEFINE_STRUCT.
template <class T>
concept reflected = boost::hana::Struct<T>::value;

/// What is known about one field of a reflected struct, in declaration order.
struct field_meta {
  std::string_view name;
  std::string_view description;
  bool required = false;
};

namespace detail {

template <class T>
std::string_view type_name_raw() {
  return __PRETTY_FUNCTION__;
}

/// The unqualified C++ name of T (for messages and docs), from the compiler's function name.
template <class T>
std::string type_name() {
  std::string_view s = type_name_raw<T>();
  const auto start = s.find("T = ");
  if (start == std::string_view::npos) return "struct";
  s.remove_prefix(start + 4);
  std::size_t depth = 0, end = 0, last_sep = 0;
  for (; end < s.size(); ++end) {
    const char c = s[end];
    if (c == '<') ++depth;
    else if (c == '>') --depth;
    else if (depth == 0 && (c == ';' || c == ']')) break;
    else if (depth == 0 && c == ':' && end + 1 < s.size() && s[end + 1] == ':') last_sep = end + 2;
  }
  return std::string(s.substr(last_sep, end - last_sep));
}

/// "parent.key", or "key" at the top.
inline std::string child_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string p(parent);
  p += '.';
  p += key;
  return p;
}

/// Calls f(name, member) for each reflected member of obj, in order.
template <reflected T, class F>
void for_each_field(T& obj, F&& f) {
  boost::hana::for_each(boost::hana::accessors<std::remove_const_t<T>>(), [&](auto pair) {
    f(std::string_view{boost::hana::to<char const*>(boost::hana::first(pair))}, boost::hana::second(pair)(obj));
  });
}

/// Index of the reflected member that `member` points to, or npos.
template <reflected T, class M>
std::size_t field_index(M T::*member) {
  // On the heap: g++ 12 at -O3 reports the members of a value-initialized local or static
  // aggregate as "maybe uninitialized" on its exception-cleanup path (a false positive).
  static const std::unique_ptr<const T> owner = std::make_unique<const T>();
  const T& probe = *owner;
  const void* target = &(probe.*member);
  std::size_t i = 0, found = static_cast<std::size_t>(-1);
  for_each_field(probe, [&](std::string_view, const auto& m) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(m)>, M>)
      if (static_cast<const void*>(&m) == target) found = i;
    ++i;
  });
  return found;
}

}  // namespace detail

/// Every field of T with its description and required flag, in declaration order (computed on
/// first use). A describe() entry for a member that the Hana declaration does not list is a
/// programmer error: std::logic_error.
template <reflected T>
const std::vector<field_meta>& field_metas() {
  static_assert(std::is_default_constructible_v<T>, "rproxy::config: a config struct must be default-constructible");
  static const std::vector<field_meta> metas = [] {
    std::vector<field_meta> out;
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
      out.push_back({std::string_view{boost::hana::to<char const*>(boost::hana::first(pair))}, {}, false});
    });
    if constexpr (requires { T::describe(); }) {
      std::vector<bool> seen(out.size());
      std::apply(
          [&](const auto&... d) {
            auto apply_one = [&](const auto& entry) {
              const std::size_t i = detail::field_index<T>(entry.member);
              if (i == static_cast<std::size_t>(-1))
                throw std::logic_error("rproxy::config: " + detail::type_name<T>() +
                                       "::describe() documents a member missing from its BOOST_HANA declaration");
              if (seen[i])
                throw std::logic_error("rproxy::config: " + detail::type_name<T>() + "::describe() documents '" +
                                       std::string(out[i].name) + "' twice");
              seen[i] = true;
              out[i].description = entry.description;
              out[i].required = entry.required;
            };
            (apply_one(d), ...);
          },
          T::describe());
    }
    return out;
  }();
  return metas;
}

/// The YAML key of a member: `field_name(&route::host)` is "host".
template <reflected T, class M>
std::string_view field_name(M T::*member) {
  const std::size_t i = detail::field_index<T>(member);
  if (i == static_cast<std::size_t>(-1))
    throw std::logic_error("rproxy::config: field_name(): member not in " + detail::type_name<T>() +
                           "'s BOOST_HANA declaration");
  return field_metas<T>()[i].name;
}

}  // namespace rproxy::config
