// rproxy/config/diagnostics.hpp: config errors with their position, "file:line:col: message".
//
// Loading a config never stops at the first problem: every decode, load and validate call
// collects all of them in a `diagnostics` list, in file order, so a user fixes a file in one go.
//
//     auto cfg = rproxy::config::load_file<my_config>("proxy.yaml");
//     if (!cfg) { std::cerr << cfg.error(); return 1; }   // one "file:line:col: message" per line
//
// Lines and columns are 1-based. A diagnostic that belongs to a whole file (unreadable file)
// has line 0 and prints as "file: message".
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/config/error.hpp>

namespace rproxy::config {

/// A 1-based position in a file; line 0 means "the file as a whole".
struct mark {
  int line = 0;
  int col = 0;

  friend bool operator==(const mark&, const mark&) = default;
};

/// One problem: where it is, what it is (human text), and its kind as an error_code.
struct diagnostic {
  std::string file;
  int line = 0;  ///< 1-based; 0: no position
  int col = 0;   ///< 1-based
  std::string message;
  std::error_code code = error::invalid;

  /// "file:line:col: message" (or "file: message" without a position).
  std::string to_string() const {
    std::string s = file;
    if (line > 0) {
      s += ':';
      s += std::to_string(line);
      s += ':';
      s += std::to_string(col);
    }
    s += ": ";
    s += message;
    return s;
  }

  friend bool operator==(const diagnostic&, const diagnostic&) = default;
  friend std::ostream& operator<<(std::ostream& os, const diagnostic& d) { return os << d.to_string(); }
};

/// Every problem found in one load, in order.
class diagnostics {
public:
  using value_type = diagnostic;
  using const_iterator = std::vector<diagnostic>::const_iterator;

  diagnostics() = default;
  diagnostics(std::initializer_list<diagnostic> l) : items_(l) {}

  void add(diagnostic d) { items_.push_back(std::move(d)); }
  void add(std::string file, mark m, error code, std::string message) {
    items_.push_back({std::move(file), m.line, m.col, std::move(message), code});
  }
  void append(const diagnostics& other) {
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
  }

  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  const diagnostic& operator[](std::size_t i) const { return items_[i]; }
  const_iterator begin() const noexcept { return items_.begin(); }
  const_iterator end() const noexcept { return items_.end(); }

  /// Orders by position within each file, keeping the order files were added in and the order
  /// of problems found at the same position.
  void sort() {
    std::vector<std::string> files;
    for (const auto& d : items_)
      if (std::find(files.begin(), files.end(), d.file) == files.end()) files.push_back(d.file);
    auto rank = [&](const std::string& f) { return std::find(files.begin(), files.end(), f) - files.begin(); };
    std::stable_sort(items_.begin(), items_.end(), [&](const diagnostic& a, const diagnostic& b) {
      auto ra = rank(a.file), rb = rank(b.file);
      if (ra != rb) return ra < rb;
      if (a.line != b.line) return a.line < b.line;
      return a.col < b.col;
    });
  }

  /// All of them, one "file:line:col: message" per line (each line ends with '\n').
  std::string to_string() const {
    std::string s;
    for (const auto& d : items_) {
      s += d.to_string();
      s += '\n';
    }
    return s;
  }

  friend std::ostream& operator<<(std::ostream& os, const diagnostics& ds) { return os << ds.to_string(); }

private:
  std::vector<diagnostic> items_;
};

}  // namespace rproxy::config
