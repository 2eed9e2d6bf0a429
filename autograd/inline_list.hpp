#pragma once
// InlineList: a fixed-length list that keeps up to N elements inside the object and spills to the
// heap only beyond that. Nodes hold their inputs, input versions and gradients in these: almost
// every op has one or two inputs, so recording and running a node costs no list allocations.

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace theta::autograd {

template <class T, std::size_t N> class InlineList {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  InlineList() = default;
  /// `count` value-initialised elements.
  explicit InlineList(std::size_t count) : size_(count) {
    if (count > N) heap_ = std::make_unique<T[]>(count);
  }
  InlineList(std::initializer_list<T> values) : InlineList(values.size()) {
    std::copy(values.begin(), values.end(), begin());
  }
  InlineList(std::vector<T> values) : InlineList(values.size()) {  // NOLINT: lists convert implicitly
    std::move(values.begin(), values.end(), begin());
  }
  InlineList(const InlineList& other) : InlineList(other.size()) {
    std::copy(other.begin(), other.end(), begin());
  }
  InlineList(InlineList&& other) noexcept
      : size_(std::exchange(other.size_, 0)), inline_(std::move(other.inline_)), heap_(std::move(other.heap_)) {}
  InlineList& operator=(InlineList other) noexcept {
    size_ = std::exchange(other.size_, 0);
    inline_ = std::move(other.inline_);
    heap_ = std::move(other.heap_);
    return *this;
  }
  ~InlineList() = default;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return size_ > N ? heap_.get() : inline_.data(); }
  const T* data() const { return size_ > N ? heap_.get() : inline_.data(); }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }

 private:
  std::size_t size_ = 0;
  std::array<T, N> inline_{};
  std::unique_ptr<T[]> heap_;
};

}  // namespace theta::autograd
