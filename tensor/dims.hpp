#pragma once
// Dims: the vector of sizes or strides of a tensor, stored inline up to kInline entries.
// Every op builds a few shapes; keeping them off the heap removes most of the per-op allocation
// cost of small tensors. The interface is the subset of std::vector that theta uses, and it
// converts to and from std::vector<int64_t> implicitly.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <vector>

namespace theta {

class Dims {
 public:
  using value_type = std::int64_t;
  using iterator = std::int64_t*;
  using const_iterator = const std::int64_t*;
  using size_type = std::size_t;
  static constexpr std::size_t kInline = 6;

  Dims() = default;
  Dims(std::initializer_list<std::int64_t> values) { assign(values.begin(), values.end()); }
  explicit Dims(std::size_t count, std::int64_t value = 0) { assign(count, value); }
  template <class It, class = decltype(*std::declval<It>())>
  Dims(It first, It last) {
    assign(first, last);
  }
  Dims(const std::vector<std::int64_t>& values) { assign(values.begin(), values.end()); }  // NOLINT
  Dims(const Dims& other) { copy_from(other); }
  Dims(Dims&& other) noexcept { move_from(other); }
  Dims& operator=(const Dims& other) {
    if (this != &other) copy_from(other);
    return *this;
  }
  Dims& operator=(Dims&& other) noexcept {
    if (this != &other) {
      heap_.reset();
      move_from(other);
    }
    return *this;
  }
  Dims& operator=(std::initializer_list<std::int64_t> values) {
    assign(values.begin(), values.end());
    return *this;
  }
  operator std::vector<std::int64_t>() const { return std::vector<std::int64_t>(begin(), end()); }  // NOLINT

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::int64_t* data() { return heap_ ? heap_.get() : inline_; }
  const std::int64_t* data() const { return heap_ ? heap_.get() : inline_; }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }
  std::int64_t& operator[](std::size_t i) { return data()[i]; }
  const std::int64_t& operator[](std::size_t i) const { return data()[i]; }
  std::int64_t& front() { return data()[0]; }
  const std::int64_t& front() const { return data()[0]; }
  std::int64_t& back() { return data()[size_ - 1]; }
  const std::int64_t& back() const { return data()[size_ - 1]; }

  void clear() { size_ = 0; }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::unique_ptr<std::int64_t[]> grown(new std::int64_t[n]);
    std::copy(begin(), end(), grown.get());
    heap_ = std::move(grown);
    capacity_ = n;
  }
  void resize(std::size_t n, std::int64_t value = 0) {
    reserve(n);
    for (std::size_t i = size_; i < n; ++i) data()[i] = value;
    size_ = n;
  }
  void assign(std::size_t n, std::int64_t value) {
    clear();
    resize(n, value);
  }
  template <class It> void assign(It first, It last) {
    const auto n = static_cast<std::size_t>(std::distance(first, last));
    clear();
    reserve(n);
    std::copy(first, last, data());
    size_ = n;
  }
  void push_back(std::int64_t value) {
    if (size_ == capacity_) reserve(capacity_ * 2);
    data()[size_++] = value;
  }
  void pop_back() { --size_; }
  iterator insert(const_iterator pos, std::int64_t value) { return insert(pos, &value, &value + 1); }
  iterator insert(const_iterator pos, std::initializer_list<std::int64_t> values) {
    return insert(pos, values.begin(), values.end());
  }
  template <class It> iterator insert(const_iterator pos, It first, It last) {
    const auto at = static_cast<std::size_t>(pos - begin());
    const auto n = static_cast<std::size_t>(std::distance(first, last));
    // Copy the new values first: they may point into this container.
    std::int64_t tmp_inline[kInline];
    std::unique_ptr<std::int64_t[]> tmp_heap(n > kInline ? new std::int64_t[n] : nullptr);
    std::int64_t* tmp = n > kInline ? tmp_heap.get() : tmp_inline;
    std::copy(first, last, tmp);
    reserve(size_ + n);
    std::copy_backward(begin() + at, end(), end() + n);
    std::copy(tmp, tmp + n, begin() + at);
    size_ += n;
    return begin() + at;
  }
  iterator erase(const_iterator pos) {
    const auto at = static_cast<std::size_t>(pos - begin());
    std::copy(begin() + at + 1, end(), begin() + at);
    --size_;
    return begin() + at;
  }

  friend bool operator==(const Dims& a, const Dims& b) {
    if (a.size_ != b.size_) return false;
    const std::int64_t* pa = a.data();
    const std::int64_t* pb = b.data();
    for (std::size_t i = 0; i < a.size_; ++i)  // a handful of entries: cheaper than memcmp
      if (pa[i] != pb[i]) return false;
    return true;
  }
  friend bool operator!=(const Dims& a, const Dims& b) { return !(a == b); }

 private:
  // Copies of inline dims copy the whole fixed-size array: a few vector moves instead of a
  // variable-length memmove call (shapes are copied on every op).
  void copy_from(const Dims& other) {
    if (heap_ || other.heap_) {
      assign(other.begin(), other.end());
      return;
    }
    std::memcpy(inline_, other.inline_, sizeof inline_);
    size_ = other.size_;
  }

  void move_from(Dims& other) {
    size_ = other.size_;
    capacity_ = other.capacity_;
    if (other.heap_) {
      heap_ = std::move(other.heap_);
    } else {
      std::memcpy(inline_, other.inline_, sizeof inline_);
    }
    other.size_ = 0;
    other.capacity_ = kInline;
  }

  alignas(16) std::int64_t inline_[kInline] = {};  // aligned: copies compile to a few vector moves
  std::unique_ptr<std::int64_t[]> heap_;
  std::size_t size_ = 0;
  std::size_t capacity_ = kInline;
};

}  // namespace theta
