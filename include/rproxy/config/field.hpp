// rproxy/config/field.hpp: config structs, declared once: one describe() lists the fields, each
// with one line of docs.
//
// A config struct is a plain aggregate. Default member initializers are the defaults (a missing
// key keeps them). A static describe() lists its config fields in order, each named by a member
// pointer given as a template argument; the YAML key is the member's C++ name, derived from that
// pointer, so a misspelled member does not compile and no name is ever written as text:
//
//     struct route {
//       std::string host;
//       std::string pool;
//       std::chrono::milliseconds connect_timeout{5000};
//       std::size_t hits_ = 0;   // not listed below: not a config field
//
//       static constexpr auto describe() {
//         using namespace rproxy::config;
//         return fields(required<&route::host>("hostname players connect with, e.g. lobby.example.com"),
//                       required<&route::pool>("backend pool that serves this host"),
//                       doc<&route::connect_timeout>("give up on a backend after this long"));
//       }
//       // optional: one line about the whole struct, shown in the reference
//       static constexpr std::string_view summary = "one hostname and where it goes";
//     };
//
// describe() is the one list of fields: decode(), validate(), starter_config() and
// reference_markdown() all read it, in its order. A member that describe() does not list is not
// a config field: its key in a file is an unknown key, and it keeps its default when decoded.
// Listing a member twice, or a member of another struct, does not compile.
#pragma once

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace rproxy::config {

namespace detail {

template <class P>
struct member_pointer;
template <class C, class M>
struct member_pointer<M C::*> {
  using owner = C;
  using value_type = M;
};

template <auto Member>
constexpr std::string_view pretty_function_of() {
  return __PRETTY_FUNCTION__;
}

/// The last identifier before the end of the template argument list in a __PRETTY_FUNCTION__
/// of `template <auto Member> f()`: g++ 12 prints "[with auto Member = &ns::route::host; ...]",
/// clang 14 "[Member = &ns::route::host]"; both give "host".
constexpr std::string_view last_identifier(std::string_view pretty) {
  const std::size_t at = pretty.find("Member = ");
  if (at == std::string_view::npos) return {};
  pretty.remove_prefix(at + 9);
  std::size_t end = 0;
  while (end < pretty.size() && pretty[end] != ';' && pretty[end] != ']') ++end;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  std::size_t begin = end;
  while (begin > 0 && word(pretty[begin - 1])) --begin;
  if (begin == end || (pretty[begin] >= '0' && pretty[begin] <= '9')) return {};
  return pretty.substr(begin, end - begin);
}

/// The member's name, copied out of the function name so that only the name is kept.
template <auto Member>
struct member_name_storage {
  static constexpr std::string_view source = last_identifier(pretty_function_of<Member>());
  static_assert(!source.empty(),
                "rproxy::config: cannot read a member's name from this compiler's __PRETTY_FUNCTION__");
  static constexpr auto chars = [] {
    std::array<char, source.size() + 1> a{};
    for (std::size_t i = 0; i < source.size(); ++i) a[i] = source[i];
    return a;
  }();
  static constexpr std::string_view value{chars.data(), source.size()};
};

}  // namespace detail

/// The C++ name of a data member, at compile time: `member_name<&route::host>` is "host".
template <auto Member>
  requires std::is_member_object_pointer_v<decltype(Member)>
inline constexpr std::string_view member_name = detail::member_name_storage<Member>::value;

/// One entry of a describe(): which member (its name is the YAML key), a one-line description,
/// and whether the file must set it.
template <auto Member>
  requires std::is_member_object_pointer_v<decltype(Member)>
struct field_doc {
  using owner = typename detail::member_pointer<decltype(Member)>::owner;
  using value_type = typename detail::member_pointer<decltype(Member)>::value_type;
  static constexpr auto member = Member;
  static constexpr std::string_view name = member_name<Member>;

  std::string_view description;
  bool required = false;
};

/// An optional field: a missing key keeps the default member initializer.
template <auto Member>
constexpr field_doc<Member> doc(std::string_view description = {}) {
  return {description, false};
}

/// A field that the file must set.
template <auto Member>
constexpr field_doc<Member> required(std::string_view description = {}) {
  return {description, true};
}

namespace detail {

template <class D>
struct is_field_doc : std::false_type {};
template <auto Member>
struct is_field_doc<field_doc<Member>> : std::true_type {};

template <class L>
struct is_field_list : std::false_type {};
template <class... Docs>
struct is_field_list<std::tuple<Docs...>> : std::bool_constant<(is_field_doc<Docs>::value && ...)> {};

}  // namespace detail

/// The list a describe() returns.
template <class... Docs>
constexpr std::tuple<Docs...> fields(Docs... docs) {
  static_assert((detail::is_field_doc<Docs>::value && ...),
                "rproxy::config::fields: every entry is doc<&T::member>(...) or required<&T::member>(...)");
  return {docs...};
}

/// A config struct: a class whose static describe() returns fields(...).
template <class T>
concept reflected = std::is_class_v<T> && requires { T::describe(); } &&
                    detail::is_field_list<std::remove_cvref_t<decltype(T::describe())>>::value;

/// What is known about one field of a reflected struct, in describe() order.
struct field_meta {
  std::string_view name;
  std::string_view description;
  bool required = false;
};

namespace detail {

/// The describe() entry types of T, as a tuple type.
template <reflected T>
using field_list = std::remove_cvref_t<decltype(T::describe())>;

/// Whether every entry of T's describe() is a member of T (or of a base of T).
template <reflected T>
constexpr bool all_members_of() {
  return []<class... Docs>(std::type_identity<std::tuple<Docs...>>) {
    return (std::is_base_of_v<typename Docs::owner, T> && ...);
  }(std::type_identity<field_list<T>>{});
}

/// Whether no two entries of T's describe() name the same member.
template <reflected T>
constexpr bool no_member_twice() {
  return []<class... Docs>(std::type_identity<std::tuple<Docs...>>) {
    constexpr std::array<std::string_view, sizeof...(Docs)> names{Docs::name...};
    for (std::size_t i = 0; i < names.size(); ++i)
      for (std::size_t j = i + 1; j < names.size(); ++j)
        if (names[i] == names[j]) return false;
    return true;
  }(std::type_identity<field_list<T>>{});
}

/// The checks on a describe(), made once per struct (one error each, naming T in its context).
template <reflected T>
struct checked_fields {
  static_assert(all_members_of<T>(), "rproxy::config: describe() lists a member of another struct");
  static_assert(no_member_twice<T>(), "rproxy::config: describe() lists a member twice");
  static constexpr bool value = true;
};

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

/// Calls f(name, member) for each field of obj, in describe() order.
template <class T, class F>
  requires reflected<std::remove_const_t<T>>
void for_each_field(T& obj, F&& f) {
  using U = std::remove_const_t<T>;
  static_assert(checked_fields<U>::value);
  [&]<class... Docs>(std::type_identity<std::tuple<Docs...>>) {
    (f(Docs::name, obj.*(Docs::member)), ...);
  }(std::type_identity<field_list<U>>{});
}

}  // namespace detail

/// Every field of T with its description and required flag, in describe() order.
template <reflected T>
const std::vector<field_meta>& field_metas() {
  static_assert(std::is_default_constructible_v<T>, "rproxy::config: a config struct must be default-constructible");
  static_assert(detail::checked_fields<T>::value);
  static const std::vector<field_meta> metas = std::apply(
      [](const auto&... d) { return std::vector<field_meta>{field_meta{d.name, d.description, d.required}...}; },
      T::describe());
  return metas;
}

/// The YAML key of a member: `field_name(&route::host)` is "host". A member that T's
/// describe() does not list is a programmer error: std::logic_error.
template <reflected T, class M>
constexpr std::string_view field_name(M T::*member) {
  std::string_view found;
  [&]<class... Docs>(std::type_identity<std::tuple<Docs...>>) {
    auto one = [&]<class D>(std::type_identity<D>) {
      if constexpr (std::is_same_v<typename D::owner, T> && std::is_same_v<typename D::value_type, M>)
        if (D::member == member) found = D::name;
    };
    (one(std::type_identity<Docs>{}), ...);
  }(std::type_identity<detail::field_list<T>>{});
  if (found.empty())
    throw std::logic_error("rproxy::config: field_name(): member not listed in " + detail::type_name<T>() +
                           "::describe()");
  return found;
}

}  // namespace rproxy::config
